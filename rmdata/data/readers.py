"""Input files -> raw records, each with its location, streamed in batches.

Readers: JSON lines (``.jsonl``/``.ndjson``, also ``.gz`` and ``.zst``, read line by line), JSON arrays
(``.json``; a ``.json`` file that does not start with ``[`` is read as JSON lines), Parquet and CSV
(polars lazy scans, streamed in batches; CSV cells are read as text), and the Arrow files of a
``datasets`` ``save_to_disk`` directory (memory-mapped). Which files to read: :mod:`rmdata.data.inputs`.

Locations: ``file:line`` (1-based) for JSON lines; ``file:row`` (0-based, as in ``frame[row]`` or
``dataset[row]``) for every other reader. A line that cannot be read becomes a record with an error, so
the loader can report it beside the records that break a format rule; a file that cannot be opened, or
that holds no records at all, raises :class:`RmdataError`.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import polars as pl
import zstandard

from rmdata.data.inputs import InputInfo, file_kind
from rmdata.data.rules import describe
from rmdata.errors import RmdataError


@dataclass
class RawRecord:
    location: str
    value: dict[str, Any] | None  # None when the record could not be read
    error: str | None = None  # why it could not be read
    text: str | None = None  # the unreadable line, for the rejects file


@dataclass
class Batch:
    records: list[RawRecord]
    frame: pl.DataFrame | None = None  # columnar readers: the rows as read, aligned with records


def iter_batches(info: InputInfo, batch_size: int = 2048) -> Iterator[Batch]:
    """Every record of one input, in file order, ``batch_size`` records at a time."""
    if info.layout == "save_to_disk":
        yield from _arrow_batches(info.path, info.files, batch_size)
        return
    for path in info.files:
        kind = file_kind(path)
        if kind == "parquet":
            scan = pl.scan_parquet(path)
            yield from _frame_batches(path, _guard(path, "Parquet", scan, batch_size))
        elif kind == "csv":
            scan = pl.scan_csv(path, infer_schema=False)  # CSV has no types: every cell stays text
            yield from _frame_batches(path, _guard(path, "CSV", scan, batch_size), csv=True)
        else:
            yield from _chunks(_json_records(path, kind), batch_size, path)


def _guard(path: str, what: str, scan: pl.LazyFrame, batch_size: int) -> Iterator[pl.DataFrame]:
    """Stream a lazy scan in batches; a file polars cannot read becomes one RmdataError."""
    try:
        yield from scan.collect_batches(chunk_size=batch_size)
    except (pl.exceptions.PolarsError, OSError) as err:
        raise RmdataError(f"{path}: cannot read {what}: {str(err).splitlines()[0]}") from err


def _chunks(records: Iterator[RawRecord], size: int, path: str) -> Iterator[Batch]:
    batch: list[RawRecord] = []
    seen = False
    for record in records:
        batch.append(record)
        seen = True
        if len(batch) == size:
            yield Batch(batch)
            batch = []
    if batch:
        yield Batch(batch)
    if not seen:
        raise RmdataError(f"{path}: empty file, no records in it; remove it from the inputs")


def _frame_batches(path: str, frames: Iterator[pl.DataFrame], csv: bool = False) -> Iterator[Batch]:
    row = 0
    for frame in frames:
        records = []
        for value in frame.iter_rows(named=True):
            if csv:
                _numeric_margin(value)
            records.append(RawRecord(f"{path}:{row}", value))
            row += 1
        yield Batch(records, frame)
    if row == 0:
        raise RmdataError(f"{path}: empty file, no records in it; remove it from the inputs")


def _numeric_margin(value: dict[str, Any]) -> None:
    """CSV cells are text: read a numeric margin as the number it spells (anything else stays and fails)."""
    margin = value.get("margin")
    if isinstance(margin, str):
        with suppress(ValueError):
            value["margin"] = float(margin)


def _arrow_batches(path: str, files: list[str], batch_size: int) -> Iterator[Batch]:
    import pyarrow as pa

    def frames() -> Iterator[pl.DataFrame]:
        for name in files:
            try:
                with pa.memory_map(name) as source:
                    for batch in pa.ipc.open_stream(source):
                        for start in range(0, batch.num_rows, batch_size):
                            frame = pl.from_arrow(batch.slice(start, batch_size))
                            assert isinstance(frame, pl.DataFrame)
                            yield frame
            except (pa.ArrowInvalid, OSError) as err:
                raise RmdataError(f"{name}: cannot read the saved dataset's Arrow file: {err}") from err

    yield from _frame_batches(path, frames())


@contextmanager
def _open_binary(path: str) -> Iterator[io.BufferedIOBase]:
    """A buffered binary stream (with ``peek``) over the file, decompressed when it ends in .gz or .zst."""
    with open(path, "rb") as raw:
        if path.endswith(".gz"):
            with gzip.GzipFile(fileobj=raw) as unzipped:
                yield unzipped
        elif path.endswith(".zst"):
            with zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True) as reader:
                yield io.BufferedReader(reader)
        else:
            yield raw


def _json_records(path: str, kind: str) -> Iterator[RawRecord]:
    try:
        with _open_binary(path) as stream:
            if kind == "json":
                head = stream.peek(64)  # type: ignore[attr-defined]
                if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"["):
                    yield from _json_array(path, stream.read())
                    return
            yield from _json_lines(path, stream)
    except (EOFError, OSError, zstandard.ZstdError) as err:
        raise RmdataError(f"{path}: cannot read the compressed stream ({err}); is the file complete?") from err


def _json_lines(path: str, stream: io.BufferedIOBase) -> Iterator[RawRecord]:
    pending: tuple[int, bytes] | None = None
    for lineno, line in enumerate(stream, 1):
        if pending is not None:
            record = _parse_line(path, *pending, last=False)
            if record is not None:
                yield record
        pending = (lineno, line.removeprefix(b"\xef\xbb\xbf") if lineno == 1 else line)
    if pending is not None:
        record = _parse_line(path, *pending, last=True)
        if record is not None:
            yield record


def _parse_line(path: str, lineno: int, line: bytes, last: bool) -> RawRecord | None:
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
        if last and not line.endswith(b"\n"):
            message = (
                f"truncated last line: {what}, and the file does not end with a newline "
                "(was it cut off while being written?)"
            )
        else:
            message = f"malformed JSON: {what}"
        return RawRecord(location, None, message, text.rstrip("\r\n"))
    if not isinstance(value, dict):
        return RawRecord(location, None, f"a record must be a JSON object; got {describe(value)}", text.rstrip("\r\n"))
    return RawRecord(location, value)


def _json_array(path: str, data: bytes) -> Iterator[RawRecord]:
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
    del data
    for row, value in enumerate(values):
        location = f"{path}:{row}"
        if isinstance(value, dict):
            yield RawRecord(location, value)
        else:
            yield RawRecord(location, None, f"a record must be a JSON object; got {describe(value)}", json.dumps(value))
