"""Record-level rules shared by every input format: texts, messages and prompts.

A check never raises on bad data: it adds ``(field, message)`` to a :class:`Problems` list and returns
``None``, so one pass over a record reports everything wrong with it. Messages name the field and the rule,
e.g. ``messages[2].role must be one of system, user, assistant; got "bot"``; the loader prefixes the
record's location (``corpus.jsonl:1832``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

ROLES = ("system", "user", "assistant")

Message = dict[str, str]  # {"role": ..., "content": ...}


@dataclass(frozen=True)
class RecordError:
    """One rule a record breaks. ``field`` is None when the record could not be read at all."""

    location: str  # file:line (JSON lines) or file:row (0-based, other formats)
    field: str | None
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"

    def to_dict(self) -> dict[str, str | None]:
        return {"location": self.location, "field": self.field, "message": self.message}


class Problems:
    """The problems found in one record, in the order they were found."""

    def __init__(self) -> None:
        self.items: list[tuple[str | None, str]] = []

    def add(self, field: str | None, message: str) -> None:
        self.items.append((field, message))

    def __bool__(self) -> bool:
        return bool(self.items)

    def __len__(self) -> int:
        return len(self.items)


def describe(value: Any, limit: int = 40) -> str:
    """A value as the JSON type name plus a short preview: ``number 3``, ``string "bot"``, ``null``."""
    if value is None:
        return "null"
    kind = {bool: "boolean", int: "number", float: "number", str: "string", list: "list", dict: "object"}
    name = kind.get(type(value), type(value).__name__)
    try:
        shown = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        shown = repr(value)
    except RecursionError:
        shown = "(nested too deeply to show)"
    if len(shown) > limit:
        shown = shown[: limit - 3] + "..."
    return f"{name} {shown}"


def check_text(value: Any, field: str, problems: Problems) -> str | None:
    """A non-blank string, returned untouched."""
    if not isinstance(value, str):
        problems.add(field, f"{field} must be a string; got {describe(value)}")
        return None
    if not value.strip():
        problems.add(field, f"{field} is empty")
        return None
    return value


def check_messages(value: Any, field: str, problems: Problems) -> list[Message] | None:
    """An OpenAI-style message list: ``[{"role": "user", "content": "..."}, ...]``.

    Roles must be system, user or assistant; contents non-blank strings (a system message may be empty).
    Keys other than role and content are dropped from the normalized message.
    """
    if not isinstance(value, list):
        problems.add(field, f"{field} must be a list of messages; got {describe(value)}")
        return None
    if not value:
        problems.add(field, f"{field} is an empty list; it needs at least one message")
        return None
    before = len(problems)
    out: list[Message] = []
    for i, msg in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(msg, dict):
            problems.add(where, f'{where} must be an object with "role" and "content"; got {describe(msg)}')
            continue
        role, content = msg.get("role"), msg.get("content")
        if role not in ROLES:
            got = "no role" if role is None else describe(role).split(" ", 1)[-1]
            problems.add(f"{where}.role", f"{where}.role must be one of {', '.join(ROLES)}; got {got}")
        if not isinstance(content, str):
            problems.add(f"{where}.content", f"{where}.content must be a string; got {describe(content)}")
        elif not content.strip() and role != "system":
            problems.add(f"{where}.content", f"{where}.content is empty")
        if isinstance(role, str) and isinstance(content, str):
            out.append({"role": role, "content": content})
    return out if len(problems) == before else None


def check_prompt(value: Any, field: str, problems: Problems) -> list[Message] | None:
    """A prompt given as a string (one user turn) or as a message list."""
    if isinstance(value, str):
        text = check_text(value, field, problems)
        return None if text is None else [{"role": "user", "content": text}]
    if isinstance(value, list):
        return check_messages(value, field, problems)
    problems.add(field, f"{field} must be a string or a list of messages; got {describe(value)}")
    return None


def check_prompt_ends_with_user(prompt: list[Message], field: str, where: str, problems: Problems) -> bool:
    """The turn a response answers is the user's: the prompt's last message must have role user.

    ``where`` names that message in the error, e.g. ``messages[2]`` or ``the prompt's last message``.
    """
    role = prompt[-1]["role"]
    if role == "user":
        return True
    problems.add(field, f'{where} must be from the user (the turn the response answers); got role "{role}"')
    return False


def check_reply(value: Any, field: str, problems: Problems) -> tuple[list[Message], str] | None:
    """A response given as a string, or as messages ending with the assistant's reply.

    Returns ``(leading messages, reply text)``; the leading messages (earlier turns carried in the reply)
    belong to the prompt.
    """
    if isinstance(value, str):
        text = check_text(value, field, problems)
        return None if text is None else ([], text)
    if not isinstance(value, list):
        problems.add(field, f"{field} must be a string or a list of messages; got {describe(value)}")
        return None
    messages = check_messages(value, field, problems)
    if messages is None:
        return None
    last = messages[-1]
    if last["role"] != "assistant":
        where = f"{field}[{len(messages) - 1}].role"
        problems.add(where, f'{where} must be assistant (the reply being judged); got "{last["role"]}"')
        return None
    return messages[:-1], last["content"]


def first_difference(a: list[Message], b: list[Message]) -> int | None:
    """Index of the first message where two lists differ (the shorter length if one is a prefix)."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def check_margin(value: Any, problems: Problems) -> float | None:
    """Optional numeric margin: null (or NaN, pandas' null) means none; anything else must be a finite number."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        problems.add("margin", f"margin must be a number or null; got {describe(value)}")
        return None
    try:
        margin = float(value)
    except OverflowError:
        margin = float("inf")
    if margin in (float("inf"), float("-inf")):
        problems.add("margin", f"margin must be a finite number; got {value}")
        return None
    return margin
