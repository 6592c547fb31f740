"""One JSON text -> a raw record, or the reason it is not one, exactly as Python's ``json`` reads it.

orjson decodes first (several times faster); a value it reads differently from ``json`` (an integer beyond 64
bits) or refuses is read again by ``json``, so values and messages are the standard library's. A record is
refused when it is not JSON, not an object, not UTF-8, nests deeper than ``MAX_DEPTH`` (polars and Arrow crash
on such values), holds an integer Python will not parse, or holds a lone surrogate (``"\\ud800"``) in a string
or key. The files these texts come from are read by :mod:`rmdata.data.jsonl`.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from rmdata.data.batch import RawRecord
from rmdata.data.rules import describe

MAX_DEPTH = 64  # nesting levels a record may have
TOO_DEEP = f"the record nests arrays or objects more than {MAX_DEPTH} levels deep; rmdata reads up to {MAX_DEPTH}"
_INEXACT = "read again by json"
_BIG = float(2**63)  # orjson reads integers from here on (in magnitude) as floats
FLAT_VALUES = frozenset({str, int, bool, type(None)})  # a record of these values needs no orjson_check walk
SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def parse_line(path: str, lineno: int, line: bytes, last: bool) -> RawRecord | None:
    """One line as a record, or None for a blank line (the path for lines the batch loop does not take)."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        value = None
    if type(value) is dict:
        exact = orjson_check(value)
        if exact is None:
            return RawRecord(f"{path}:{lineno}", value)
        if exact is TOO_DEEP:
            return RawRecord(f"{path}:{lineno}", None, TOO_DEEP, line.decode("utf-8").rstrip("\r\n"))
    return parse_line_exactly(path, lineno, line, last)


def orjson_check(value: dict[str, Any]) -> str | None:
    """None when orjson's value is the one ``json.loads`` gives and nests at most MAX_DEPTH levels; else
    ``TOO_DEEP``, or ``_INEXACT`` when it holds an integral float of 2**63 or more (orjson reads an integer
    beyond 64 bits as a float; ``json`` keeps it exact)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            return TOO_DEEP
        for child in item.values() if type(item) is dict else item:
            kind = type(child)
            if kind is str or kind is int or child is None or kind is bool:
                continue
            if kind is float:
                if abs(child) >= _BIG and child.is_integer():
                    return _INEXACT
            else:
                stack.append((child, depth + 1))
    return None


def parse_line_exactly(path: str, lineno: int, line: bytes, last: bool) -> RawRecord | None:
    """The standard library's reading of a line orjson refused, with the message that says why."""
    if not line.strip():
        return None
    location = f"{path}:{lineno}"
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as err:
        bad = line[err.start : err.start + 1].hex()
        message = f"not valid UTF-8: byte 0x{bad} at byte {err.start + 1} of the line (re-encode the file as UTF-8)"
        return RawRecord(location, None, message, line.decode("utf-8", "replace").rstrip("\r\n"))
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        what = f"{err.msg.removesuffix(' at')} at column {err.colno}"  # "Invalid control character at"
        if last:  # the last line, ending without a line end
            message = (
                f"truncated last line: {what}, and the file does not end with a newline "
                "(was it cut off while being written?)"
            )
        else:
            message = f"malformed JSON: {what}"
        return RawRecord(location, None, message, text.rstrip("\r\n"))
    except (ValueError, RecursionError) as err:
        return RawRecord(location, None, unparsable(err), text.rstrip("\r\n"))
    problem = value_problem(value, line)
    if problem is not None:
        return RawRecord(location, None, problem, text.rstrip("\r\n"))
    return RawRecord(location, value)


def unparsable(err: ValueError | RecursionError) -> str:
    """JSON that parses by the grammar but not in Python: huge integers, nesting beyond the recursion limit."""
    if isinstance(err, RecursionError):
        return TOO_DEEP
    message = str(err).splitlines()[0]
    if "integer string conversion" in message:
        return "a number has more than 4,300 digits, more than Python reads; write it as a string"
    return f"unreadable JSON value: {message}"


def value_problem(value: Any, text: bytes | None) -> str | None:
    """Why a parsed value is not a record: not an object, nested deeper than MAX_DEPTH (polars and Arrow
    crash on such values), or holding a string that is not valid Unicode. ``text``: the raw line, when
    known, to skip the walks a line cannot need."""
    if not isinstance(value, dict):
        return f"a record must be a JSON object; got {describe(value)}"
    if (text is None or text.count(b"[") + text.count(b"{") > MAX_DEPTH) and _deeper_than(value, MAX_DEPTH):
        return TOO_DEEP
    if text is None or SURROGATE_ESCAPE.search(text):
        bad = _surrogate_field(value, "")
        if bad is not None:
            return (
                f"not valid Unicode: {bad} holds a lone surrogate (a \\ud800-\\udfff escape without its pair); "
                "fix the text that wrote it"
            )
    return None


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether lists/dicts nest more than ``limit`` levels (iterative: no recursion limit to hit)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _surrogate_field(value: Any, where: str, depth: int = 0) -> str | None:
    """The path (``prompt[0].content``) of the first string holding a lone surrogate, or None."""
    if isinstance(value, str):
        return None if _valid_unicode(value) else (where or "the value")
    if depth > 200:
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            name = f"{where}.{key}" if where else str(key)
            if not _valid_unicode(str(key)):
                return f"the key {name!a}"
            if (found := _surrogate_field(item, name, depth + 1)) is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if (found := _surrogate_field(item, f"{where}[{i}]", depth + 1)) is not None:
                return found
    return None


def _valid_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def raw_text(value: Any) -> str:
    try:
        return json.dumps(value)
    except (ValueError, RecursionError):
        return "(not shown: too deeply nested)"
