"""JSON lines and JSON array files -> raw records, read to the end of their (compressed) stream.

``.jsonl``/``.ndjson`` (also ``.gz`` and ``.zst``, any case; opened by :mod:`rmdata.data.bytestreams`) are
read in blocks of whole lines, with LF, CRLF or CR-only line ends, and decoded by orjson; a line orjson
refuses, or reads differently (integers beyond 64 bits), is read by Python's json, which names the problem.
A ``.json`` file whose first non-blank byte is ``[`` is parsed as one array, else read as JSON lines.
Locations: ``file:line`` (1-based) for lines, ``file:row`` (0-based) for array items.

What is refused, and how: a compressed stream must reach its end marker (a zstd file cut at a block
boundary too) and UTF-16/32 text is refused up front, each one RmdataError naming the file; a line (or an
array item) is an unreadable record, kept with its error and named by line, for the reasons
:mod:`rmdata.data.json_values` gives.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import zstandard

from rmdata.data.batch import Batch, RawRecord
from rmdata.data.bytestreams import check_text_encoding, open_binary
from rmdata.data.json_values import (
    FLAT_VALUES,
    SURROGATE_ESCAPE,
    orjson_check,
    parse_line,
    raw_text,
    unparsable,
    value_problem,
)
from rmdata.data.rules import describe
from rmdata.errors import RmdataError

BLOCK_BYTES = 1 << 20  # JSON lines are read about this many bytes at a time


def json_batches(path: str, kind: str, batch_size: int) -> Iterator[Batch]:
    """The records of a JSON lines or JSON array file, ``batch_size`` at a time (none for an empty file)."""
    lines = _Lines(path, batch_size)
    for item in _json_items(path, kind, BLOCK_BYTES):
        if isinstance(item, LineBlock):
            lines.parse_block(item)
            yield from lines.full()
        else:
            yield from _json_array(path, item, batch_size)
    yield from lines.full(flush=True)


def line_spans(path: str, span_bytes: int) -> tuple[int, bytes, list[tuple[int, int]]]:
    """A plain (uncompressed) JSON lines file cut between lines: the first line's number (blank lines and a
    BOM before it skipped), the line end (LF, or CR alone), and byte spans ``[start, stop)`` of about
    ``span_bytes`` each, every one but the file's last ending with a line end. Reads only around the cuts."""
    with open(path, "rb") as stream:
        head = stream.peek(4096)
        check_text_encoding(path, head)
        skipped, _ = _skip_blank(stream)
        end = b"\r" if b"\n" not in head and b"\r" in head.rstrip(b"\r") else b"\n"
        start, size = stream.tell(), os.fstat(stream.fileno()).st_size
        spans = []
        while start < size:
            stop = _line_end_after(stream, start + span_bytes, end, size)
            spans.append((start, stop))
            start = stop
    return skipped + 1, end, spans


def _line_end_after(stream: io.BufferedReader, at: int, end: bytes, size: int) -> int:
    """The position just after the first line end at or after ``at`` (the file's size when there is none)."""
    stream.seek(at)
    while at < size:
        chunk = stream.read(1 << 16)
        if not chunk:
            break
        found = chunk.find(end)
        if found >= 0:
            return at + found + 1
        at += len(chunk)
    return size


def read_span(path: str, start: int, stop: int, end: bytes, batch_size: int) -> tuple[list[Batch], int]:
    """The records of one span of :func:`line_spans`, its lines numbered from 1, in batches of
    ``batch_size``; and the number of line ends in it."""
    with open(path, "rb") as stream:
        stream.seek(start)
        data = stream.read(stop - start)
    return parse_block(path, data, end, 1, batch_size), data.count(end)


def parse_block(path: str, data: bytes, end: bytes, first_line: int, batch_size: int) -> list[Batch]:
    """The records of whole lines ``data`` (the last one may lack its line end only at the file's end)."""
    lines = _Lines(path, batch_size)
    cut = data.rfind(end)
    if cut >= 0:
        lines.parse_block(LineBlock(path, first_line, data[:cut], end, last=False))
    if data[cut + 1 :]:
        lines.parse_block(LineBlock(path, first_line + data.count(end), data[cut + 1 :], end, last=True))
    return list(lines.full(flush=True))


@dataclass
class LineBlock:
    """Complete lines of a JSON lines file as read: ``data`` holds them joined by ``end``, without a final one."""

    path: str
    first_line: int  # the line number of the block's first line
    data: bytes
    end: bytes  # the line end: LF (CRLF lines keep their CR, JSON whitespace) or CR alone
    last: bool  # the block is the file's last line, which ends without a line end


def _json_items(path: str, kind: str, block_bytes: int) -> Iterator[LineBlock | bytes]:
    """A JSON lines file as blocks of lines, or a JSON array file as its bytes; reading errors as RmdataError."""
    where = _Where()
    try:
        with open_binary(path) as stream:
            head = stream.peek(4096)  # type: ignore[attr-defined]
            check_text_encoding(path, head)
            skipped, first = _skip_blank(stream)
            if kind == "json" and first == b"[":
                yield stream.read()
                return
            cr_only = b"\n" not in head and b"\r" in head.rstrip(b"\r")  # classic Mac line ends
            end = b"\r" if cr_only else b"\n"
            yield from _json_lines(path, stream, where, block_bytes, first_line=skipped + 1, end=end)
    except EOFError as err:
        raise RmdataError(
            f"{path}: the compressed stream ends before its end marker, {_ended(where)} ({err}); the file is "
            "truncated (was it cut off while being written?)"
        ) from err
    except (gzip.BadGzipFile, zstandard.ZstdError) as err:
        what = "gzip" if isinstance(err, gzip.BadGzipFile) else "zstd"
        raise RmdataError(
            f"{path}: not a valid {what} stream, {_ended(where)} ({err}); is the file damaged, or not {what} at all?"
        ) from err
    except OSError as err:
        raise RmdataError(f"{path}: cannot be read, {_ended(where)}: {err}") from err


def _ended(where: _Where) -> str:
    return f"after line {where.line}" if where.line else "before the first line"


@dataclass
class _Where:
    line: int = 0  # the last line read completely


def _skip_blank(stream: io.BufferedIOBase) -> tuple[int, bytes]:
    """Consume the whitespace (and BOM) before the first value; returns (newlines consumed, next bytes)."""
    newlines = 0
    while True:
        head = stream.peek(1 << 16)  # type: ignore[attr-defined]
        if not head:
            return newlines, b""
        stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
        if stripped:
            skip = len(head) - len(stripped)
            newlines += head.count(b"\n", 0, skip)
            stream.read(skip)
            return newlines, stripped[:1]
        newlines += head.count(b"\n")
        stream.read(len(head))


def _json_lines(
    path: str, stream: io.BufferedIOBase, where: _Where, block_bytes: int, first_line: int, end: bytes
) -> Iterator[LineBlock]:
    """Cut a stream into blocks of complete lines ending with ``end``.

    Read in large pieces and split, which is several times cheaper than reading line by line; ``read1``
    hands over what a compressed stream gave before it broke, so its error names the last line read.
    """
    lineno = first_line  # the number of the first line in parts
    parts: list[bytes] = []  # read but not handed over yet
    size = ends = 0  # their bytes and line ends
    while piece := stream.read1(block_bytes):
        parts.append(piece)
        size += len(piece)
        found = piece.count(end)
        ends += found
        where.line = lineno + ends - 1
        if size < block_bytes or not found:
            continue
        data = b"".join(parts) if len(parts) > 1 else piece
        cut = data.rindex(end)
        yield LineBlock(path, lineno, data[:cut], end, last=False)
        lineno += ends
        rest = data[cut + 1 :]
        parts, size, ends = [rest] if rest else [], len(rest), 0
    data = b"".join(parts)
    cut = data.rfind(end)
    if cut >= 0:
        yield LineBlock(path, lineno, data[:cut], end, last=False)
        lineno += ends
    if data[cut + 1 :]:
        yield LineBlock(path, lineno, data[cut + 1 :], end, last=True)


class _Lines:
    """Parsed lines gathered into batches of ``batch_size`` records."""

    def __init__(self, path: str, batch_size: int) -> None:
        self.path, self.batch_size = path, batch_size
        self.values: list[dict[str, Any] | None] = []
        self.numbers: list[int] = []
        self.unreadable: dict[int, tuple[str, str | None]] = {}

    def parse_block(self, block: LineBlock) -> None:
        if block.last:
            self.add(parse_line(self.path, block.first_line, block.data, last=True), block.first_line)
        else:
            self.parse(block.data.split(block.end), block.first_line)

    def parse(self, lines: list[bytes], first: int) -> None:
        """Parse complete lines (without their line ends), numbered from ``first``."""
        values, numbers, loads = self.values, self.numbers, orjson.loads
        for lineno, line in enumerate(lines, first):
            try:
                value = loads(line)
            except orjson.JSONDecodeError:
                value = None
            # orjson refuses what json reads differently (NaN, 1e400) and every lone surrogate: only the nesting
            # depth and integers beyond 64 bits are left to check.
            if type(value) is dict and (
                FLAT_VALUES.issuperset(map(type, value.values())) or orjson_check(value) is None
            ):
                values.append(value)
                numbers.append(lineno)
            else:
                self.add(parse_line(self.path, lineno, line, last=False), lineno)

    def add(self, record: RawRecord | None, lineno: int) -> None:
        if record is None:  # a blank line
            return
        if record.value is None:
            self.unreadable[len(self.values)] = (record.error or "unreadable", record.text)
        self.values.append(record.value)
        self.numbers.append(lineno)

    def full(self, flush: bool = False) -> Iterator[Batch]:
        """The complete batches gathered so far (``flush``: the rest too)."""
        n = self.batch_size
        start = 0
        while len(self.values) - start >= n or (flush and start < len(self.values)):
            stop = start + n
            bad = {i - start: v for i, v in self.unreadable.items() if start <= i < stop}
            yield Batch(self.values[start:stop], self.path, self.numbers[start:stop], bad)
            start = stop
        if start:
            del self.values[:start], self.numbers[:start]
            self.unreadable = {i - start: v for i, v in self.unreadable.items() if i >= start}


def _json_array(path: str, data: bytes, batch_size: int) -> Iterator[Batch]:
    """The records of a JSON array file (parsed whole), ``batch_size`` at a time."""
    try:
        values = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise RmdataError(f"{path}: not valid UTF-8 at line {line} (re-encode the file as UTF-8)") from err
    except json.JSONDecodeError as err:
        raise RmdataError(
            f"{path}: not valid JSON at line {err.lineno} column {err.colno} ({err.msg}); a JSON array file must "
            "parse as a whole (use JSON lines to keep the readable records of a damaged file)"
        ) from err
    except (ValueError, RecursionError) as err:
        raise RmdataError(f"{path}: {unparsable(err)}") from err
    check_surrogates = SURROGATE_ESCAPE.search(data) is not None
    del data
    if not isinstance(values, list):
        raise RmdataError(f"{path}: a JSON array file must hold a list of records; got {describe(values)}")
    for start in range(0, len(values), batch_size):
        chunk = values[start : start + batch_size]
        batch = Batch(chunk, path, range(start, start + len(chunk)))
        for i, value in enumerate(batch.values):
            problem = value_problem(value, None if check_surrogates else b"")
            if problem is not None:
                batch.values[i] = None
                batch.unreadable[i] = (problem, raw_text(value))
        yield batch
