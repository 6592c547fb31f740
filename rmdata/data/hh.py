"""Anthropic HH-RLHF transcripts: ``"\\n\\nHuman: ...\\n\\nAssistant: ..."`` strings -> messages.

A transcript must start with a Human turn, alternate Human/Assistant and end with an Assistant turn;
the text of each turn is stripped of the whitespace around it (the separators belong to the format).
"""

from __future__ import annotations

import re
from typing import Any

from rmdata.data.rules import Message, Problems, describe, first_difference

_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant):")
_ROLE = {"Human": "user", "Assistant": "assistant"}


def parse_transcript(value: Any, field: str, problems: Problems) -> list[Message] | None:
    """Split one transcript into user/assistant messages, or add what is wrong with it to ``problems``."""
    if not isinstance(value, str):
        problems.add(field, f"{field} must be an HH transcript string; got {describe(value)}")
        return None
    text = value.lstrip()
    marks = list(_TURN.finditer(text))
    if not marks:
        problems.add(
            field,
            f'{field} is not an HH transcript: no "Human:" / "Assistant:" turns found '
            "(pairs of plain strings need a prompt column)",
        )
        return None
    if marks[0].start() > 0:
        problems.add(field, f"{field} must start with a Human: turn; got {describe(text[: marks[0].start()])} first")
        return None
    before = len(problems)
    turns: list[Message] = []
    for i, mark in enumerate(marks):
        speaker = mark.group(1)
        expected = "Human" if i % 2 == 0 else "Assistant"
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        content = text[mark.end() : end].strip()
        if speaker != expected:
            problems.add(
                field, f"{field} turn {i + 1} is {speaker}, expected {expected} (turns must alternate Human, Assistant)"
            )
            break
        if not content:
            problems.add(field, f"{field} turn {i + 1} ({speaker}) is empty")
        turns.append({"role": _ROLE[speaker], "content": content})
    if len(problems) == before and turns[-1]["role"] != "assistant":
        problems.add(field, f"{field} must end with an Assistant turn (the reply being judged); it ends with Human")
    return turns if len(problems) == before else None


def split_pair(chosen: Any, rejected: Any, problems: Problems) -> tuple[list[Message], str, str] | None:
    """Both transcripts -> (shared prompt turns, chosen reply, rejected reply).

    The transcripts must agree on every turn before the final Assistant turn; when they do not, the
    pair's responses do not answer the same conversation, and it is rejected.
    """
    turns_c = parse_transcript(chosen, "chosen", problems)
    turns_r = parse_transcript(rejected, "rejected", problems)
    if turns_c is None or turns_r is None:
        return None
    at = first_difference(turns_c[:-1], turns_r[:-1])
    if at is not None:
        problems.add(
            "rejected",
            f"chosen and rejected transcripts do not line up: they differ at turn {at + 1} "
            f"({len(turns_c)} vs {len(turns_r)} turns); only the final Assistant turn may differ",
        )
        return None
    return turns_c[:-1], turns_c[-1]["content"], turns_r[-1]["content"]
