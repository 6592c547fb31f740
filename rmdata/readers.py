"""Input files -> raw records, each with its location, streamed in batches.

Readers: JSON lines (``.jsonl``/``.ndjson``, also ``.gz`` and ``.zst``), JSON arrays (``.json``; a ``.json``
file that does not start with ``[`` is read as JSON lines), Parquet, CSV (every cell read as text), a
``datasets`` ``save_to_disk`` directory, and a directory of data files in Hugging Face Hub layout
(``data/train-00000-of-00001.parquet``; the ``train`` split unless the directory has a single other split).

Locations: ``file:line`` (1-based) for JSON lines; ``file:row`` (0-based, as in ``frame[row]`` or
``dataset[row]``) for every other reader. A line that cannot be read becomes a record with an error, so
the loader can report it beside the records that break a format rule; a file that cannot be opened, or
that holds no records at all, raises :class:`RmdataError`.
"""

from __future__ import annotations

import gzip
import io
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import zstandard

from rmdata.errors import RmdataError
from rmdata.validation import describe

JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
COMPRESSIONS = (".gz", ".zst")
SPLIT_WORDS = {
    "train": ("train", "training"),
    "validation": ("validation", "valid", "val", "dev"),
    "test": ("test", "testing", "eval", "evaluation"),
}


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


@dataclass
class InputInfo:
    """One path the user gave, resolved to the files that are read."""

    path: str
    layout: str  # "file", "hub" or "save_to_disk"
    files: list[str]
    split: str | None = None
    splits: list[str] = field(default_factory=list)  # every split the directory holds
    records: int = 0  # filled in while reading
    format: str | None = None  # filled in by the loader
    detection: str = ""  # how the format was chosen: "given", or "detected from the keys of ..."

    def describe(self) -> str:
        if self.layout == "file":
            return self.path
        others = [s for s in self.splits if s != self.split]
        also = f"; also holds {', '.join(others)}" if others else ""
        return f"{self.path} ({self.layout}, split {self.split}: {len(self.files)} file(s){also})"


def file_kind(path: str) -> str:
    """``jsonl``, ``json``, ``parquet`` or ``csv`` from the file name; RmdataError for anything else."""
    name = path.lower()
    for comp in COMPRESSIONS:
        if name.endswith(comp):
            name = name[: -len(comp)]
            if not name.endswith(JSON_SUFFIXES):
                raise RmdataError(f"{path}: {comp} compression is read for JSON lines files only")
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if name.endswith(".json"):
        return "json"
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(".csv"):
        return "csv"
    raise RmdataError(
        f"{path}: unknown file type; rmdata reads .jsonl/.ndjson/.json (optionally .gz or .zst), .parquet, "
        ".csv, a datasets save_to_disk directory or a Hub-layout directory of those files"
    )


def resolve_input(path: str) -> InputInfo:
    """What to read for one user path: the file itself, or a directory's files of one split."""
    p = Path(path)
    if not p.exists():
        raise RmdataError(f"{path}: no such file or directory")
    if p.is_file():
        file_kind(path)
        return InputInfo(path, "file", [path])
    if (p / "dataset_dict.json").is_file():
        splits = json.loads((p / "dataset_dict.json").read_text(encoding="utf-8")).get("splits", [])
        split = pick_split(path, splits)
        info = resolve_input(str(p / split))
        return InputInfo(path, "save_to_disk", info.files, split, list(splits))
    if (p / "state.json").is_file():
        state = json.loads((p / "state.json").read_text(encoding="utf-8"))
        files = [str(p / f["filename"]) for f in state.get("_data_files", [])]
        return InputInfo(path, "save_to_disk", files, state.get("_split"), [])
    return _resolve_hub_dir(p)


def split_of(relative: Path) -> str:
    """The split a Hub file belongs to, from a split word in its name, else its folders; else train."""
    for part in [relative.name, *reversed(relative.parts[:-1])]:
        words = set(re.split(r"[^a-z0-9]+", part.lower()))
        for split, names in SPLIT_WORDS.items():
            if words & set(names):
                return split
    return "train"


def pick_split(path: str, splits: list[str]) -> str:
    """``train`` when present, else the only split; several splits without train is an error."""
    if "train" in splits:
        return "train"
    if len(splits) == 1:
        return splits[0]
    raise RmdataError(
        f"{path}: holds splits {', '.join(sorted(splits)) or '(none)'} and no train split; "
        "pass the files of the split you want instead of the directory"
    )


def _resolve_hub_dir(p: Path) -> InputInfo:
    by_split: dict[str, list[str]] = {}
    for f in sorted(p.rglob("*")):
        rel = f.relative_to(p)
        if not f.is_file() or any(part.startswith(".") for part in rel.parts):
            continue
        try:
            file_kind(str(f))
        except RmdataError:
            continue  # README.md, .gitattributes and other non-data files
        by_split.setdefault(split_of(rel), []).append(str(f))
    if not by_split:
        raise RmdataError(f"{p}: directory holds no data files (.jsonl, .json, .parquet, .csv) and no saved dataset")
    split = pick_split(str(p), list(by_split))
    return InputInfo(str(p), "hub", by_split[split], split, sorted(by_split))


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
