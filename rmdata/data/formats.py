"""The input formats: which keys each one reads, how it is recognised, and record -> normalized rows.

Each normalizer takes one raw record (whose required keys are present) and a :class:`Problems` list, and
returns the record's valid normalized rows: ``{prompt, chosen, rejected, margin}`` for pairs,
``{prompt, response}`` for corpus rows (plus ``response_index`` for multi-response). A record with a
problem returns no rows, except multi-response, where only the bad responses are left out.

Pure Python (no polars): the CLI imports :data:`FORMATS` at startup for its ``--format`` choices.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from rmdata.data.hh import split_pair
from rmdata.data.rules import (
    Message,
    Problems,
    check_margin,
    check_messages,
    check_prompt,
    check_prompt_ends_with_user,
    check_reply,
    check_text,
    describe,
    first_difference,
)

Row = dict[str, Any]
Record = dict[str, Any]
RESPONSE_INDEX = "response_index"  # multi-response only: position of the response in its record's list


@dataclass(frozen=True)
class Format:
    name: str
    kind: str  # "pairs" or "corpus"
    required: tuple[str, ...]
    optional: tuple[str, ...]
    summary: str
    normalize: Callable[[Record, Problems], list[Row]]
    # A whole-batch check, column by column: True only when every record is valid and gives one row; False
    # sends the batch through ``normalize`` record by record, which names each problem. None: no such check.
    batch_check: Callable[[list[Record]], bool] | None = None

    def all_valid(self, records: list[Record]) -> bool:
        """Whether ``batch_check`` finds every record valid (each giving one row); False when unsure."""
        if self.batch_check is None:
            return False
        try:
            return self.batch_check(records)
        except KeyError:  # a record lacks a required key
            return False

    @property
    def consumed(self) -> tuple[str, ...]:
        """Input keys this format turns into normalized columns; every other key is carried through."""
        return self.required + self.optional


def _pair_row(prompt: list[Message], chosen: str, rejected: str, margin: float | None, problems: Problems) -> list[Row]:
    if not check_prompt_ends_with_user(prompt, "prompt", "the prompt's last message", problems):
        return []
    if chosen == rejected:
        problems.add("rejected", "chosen and rejected are the same text; a pair needs two different responses")
        return []
    return [{"prompt": prompt, "chosen": chosen, "rejected": rejected, "margin": margin}]


def _shared_lead(lead_c: list[Message], lead_r: list[Message], problems: Problems) -> bool:
    at = first_difference(lead_c, lead_r)
    if at is None:
        return True
    problems.add(
        "rejected",
        f"chosen and rejected must be the same conversation up to their final assistant message; "
        f"they differ at message {at} ({len(lead_c) + 1} vs {len(lead_r) + 1} messages)",
    )
    return False


def _pairs(rec: Record, problems: Problems) -> list[Row]:
    prompt = check_prompt(rec["prompt"], "prompt", problems)
    chosen = check_reply(rec["chosen"], "chosen", problems)
    rejected = check_reply(rec["rejected"], "rejected", problems)
    margin = check_margin(rec.get("margin"), problems)
    if prompt is None or chosen is None or rejected is None or problems:
        return []
    if not _shared_lead(chosen[0], rejected[0], problems):
        return []
    lead = chosen[0]
    # Replies given as whole conversations often repeat the prompt: join only the turns it lacks.
    full = lead if lead[: len(prompt)] == prompt else prompt + lead
    return _pair_row(full, chosen[1], rejected[1], margin, problems)


def _pairs_implicit(rec: Record, problems: Problems) -> list[Row]:
    for name in ("chosen", "rejected"):
        if not isinstance(rec[name], list):
            problems.add(
                name,
                f"{name} must be a list of messages (pairs-implicit holds whole conversations); "
                f"got {describe(rec[name])}",
            )
    if problems:
        return []
    chosen = check_reply(rec["chosen"], "chosen", problems)
    rejected = check_reply(rec["rejected"], "rejected", problems)
    margin = check_margin(rec.get("margin"), problems)
    if chosen is None or rejected is None or problems or not _shared_lead(chosen[0], rejected[0], problems):
        return []
    if not chosen[0]:
        problems.add("chosen", "chosen holds only the assistant's reply; pairs-implicit needs the prompt turns too")
        return []
    return _pair_row(chosen[0], chosen[1], rejected[1], margin, problems)


def _hh(rec: Record, problems: Problems) -> list[Row]:
    split = split_pair(rec["chosen"], rec["rejected"], problems)
    margin = check_margin(rec.get("margin"), problems)
    if split is None or problems:
        return []
    return _pair_row(split[0], split[1], split[2], margin, problems)


def _messages(rec: Record, problems: Problems) -> list[Row]:
    messages = check_messages(rec["messages"], "messages", problems)
    if messages is None:
        return []
    last = len(messages) - 1
    if messages[last]["role"] != "assistant":
        where = f"messages[{last}].role"
        problems.add(where, f'{where} must be assistant (the response to score); got "{messages[last]["role"]}"')
        return []
    if last == 0:
        problems.add("messages", "messages holds only the assistant's reply; it needs the prompt turns before it")
        return []
    prompt = messages[:last]
    if not check_prompt_ends_with_user(prompt, f"messages[{last - 1}].role", f"messages[{last - 1}]", problems):
        return []
    return [{"prompt": prompt, "response": messages[last]["content"]}]


def _corpus_row(prompt: list[Message], response: str, problems: Problems) -> list[Row]:
    if not check_prompt_ends_with_user(prompt, "prompt", "the prompt's last message", problems):
        return []
    return [{"prompt": prompt, "response": response}]


def _prompt_response(rec: Record, problems: Problems) -> list[Row]:
    prompt = check_prompt(rec["prompt"], "prompt", problems)
    response = check_text(rec["response"], "response", problems)
    if prompt is None or response is None:
        return []
    return _corpus_row(prompt, response, problems)


def _alpaca(rec: Record, problems: Problems) -> list[Row]:
    instruction = check_text(rec["instruction"], "instruction", problems)
    extra = rec.get("input")
    if extra is not None and not isinstance(extra, str):
        problems.add("input", f"input must be a string; got {describe(extra)}")
    output = check_text(rec["output"], "output", problems)
    if instruction is None or output is None or problems:
        return []
    text = f"{instruction}\n\n{extra}" if extra and extra.strip() else instruction
    return [{"prompt": [{"role": "user", "content": text}], "response": output}]


def _multi_response(rec: Record, problems: Problems) -> list[Row]:
    prompt = check_prompt(rec["prompt"], "prompt", problems)
    responses = rec["responses"]
    if not isinstance(responses, list) or not responses:
        problems.add("responses", f"responses must be a non-empty list of strings; got {describe(responses)}")
        return []
    if prompt is None or not check_prompt_ends_with_user(prompt, "prompt", "the prompt's last message", problems):
        return []
    rows = []
    for i, value in enumerate(responses):
        text = check_text(value, f"responses[{i}]", problems)
        if text is not None:
            rows.append({"prompt": prompt, "response": text, RESPONSE_INDEX: i})
    return rows


def _texts(values: list[Any]) -> bool:
    """Whether every value passes :func:`check_text` (C-level passes over the column, no call per value)."""
    return set(map(type, values)) == {str} and "" not in values and not any(map(str.isspace, values))


def _column(records: list[Record], key: str) -> list[Any]:
    """The values of a key every record holds; a record without it raises KeyError (``all_valid``: False)."""
    return list(map(itemgetter(key), records))


def _optional(records: list[Record], key: str) -> list[Any]:
    return [record.get(key) for record in records]


def _margins(records: list[Record]) -> bool:
    """Whether every margin passes :func:`check_margin` (missing, null, NaN or a finite number)."""
    margins = _optional(records, "margin")
    kinds = set(map(type, margins))
    if kinds <= {type(None)}:
        return True
    if not kinds <= {type(None), float, int}:
        return False
    return all(-_FINITE <= m <= _FINITE or m != m for m in margins if m is not None)


_FINITE = 1.7976931348623157e308  # the largest float


def _pairs_all_valid(records: list[Record]) -> bool:
    """Pairs given as three strings: each non-blank, chosen unlike rejected, a valid margin."""
    chosen, rejected = _column(records, "chosen"), _column(records, "rejected")
    if not (_texts(_column(records, "prompt")) and _texts(chosen) and _texts(rejected)):
        return False
    return not any(map(str.__eq__, chosen, rejected)) and _margins(records)


def _prompt_response_all_valid(records: list[Record]) -> bool:
    """A string prompt and a response, each non-blank."""
    return _texts(_column(records, "prompt")) and _texts(_column(records, "response"))


def _alpaca_all_valid(records: list[Record]) -> bool:
    """Instruction and output non-blank, input a string or absent."""
    if not (_texts(_column(records, "instruction")) and _texts(_column(records, "output"))):
        return False
    return set(map(type, _optional(records, "input"))) <= {str, type(None)}


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("pairs", "pairs", ("prompt", "chosen", "rejected"), ("margin",),
               "prompt, chosen, rejected: strings or message lists", _pairs, _pairs_all_valid),
        Format("pairs-implicit", "pairs", ("chosen", "rejected"), ("margin",),
               "chosen, rejected: whole conversations sharing the prompt turns (TRL implicit prompt)",
               _pairs_implicit),
        Format("hh", "pairs", ("chosen", "rejected"), ("margin",),
               'chosen, rejected: Anthropic HH-RLHF "\\n\\nHuman: ...\\n\\nAssistant: ..." transcripts', _hh),
        Format("messages", "corpus", ("messages",), (),
               "messages: a conversation ending with the assistant's response", _messages),
        Format("prompt-response", "corpus", ("prompt", "response"), (),
               "prompt (string or messages), response (string)", _prompt_response, _prompt_response_all_valid),
        Format("alpaca", "corpus", ("instruction", "output"), ("input",),
               "instruction, optional input, output (AlpacaEval outputs too)", _alpaca, _alpaca_all_valid),
        Format("multi-response", "corpus", ("prompt", "responses"), (),
               "prompt and a list of responses, one row per response (response_index)", _multi_response),
    )
}  # fmt: skip


def guess_format(record: Record) -> str | None:
    """The format a record's keys point to (keys holding null do not count, except a ``prompt`` beside
    chosen and rejected: a pair whose prompt is null is a broken pair, not an HH transcript), or None."""
    has = {key for key, value in record.items() if value is not None}
    if {"chosen", "rejected"} <= has:
        if "prompt" in record:
            return "pairs"
        return "pairs-implicit" if isinstance(record["chosen"], list) else "hh"
    if "messages" in has:
        return "messages"
    if "prompt" in has and "responses" in has:
        return "multi-response"
    if "prompt" in has and "response" in has:
        return "prompt-response"
    if "instruction" in has and "output" in has:
        return "alpaca"
    return None
