"""Load input files as normalized, validated records: the data layer's one entry point.

``load_dataset_records(paths)`` reads every record (see :mod:`rmdata.data.readers`), detects each input's
format from its records' keys unless one is given (see :mod:`rmdata.data.formats`), validates every record,
and returns the valid rows in the normalized schema (see :mod:`rmdata.data.schema`). Input columns a format
does not read are carried through untouched; one whose name a normalized column takes is renamed
``<name>_input``.

Policy for bad records: ``on_error="raise"`` validates everything, then raises one RmdataError listing
them (capped); ``on_error="skip"`` returns them as ``rejects`` (with their reasons) next to the valid rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain
from os import PathLike
from typing import Any, Literal

import polars as pl

from rmdata.data.formats import FORMATS, Format, Row, guess_format
from rmdata.data.inputs import InputInfo, resolve_input
from rmdata.data.readers import Batch, iter_batches
from rmdata.data.rules import Problems, RecordError
from rmdata.data.schema import carried_column, core_frame, core_schema, unify_carried
from rmdata.errors import RmdataError

DETECT_SAMPLE = 1000  # records looked at to detect the format
MAX_SHOWN = 20  # errors listed in a raised RmdataError


@dataclass
class LoadedData:
    format: str  # the inputs' formats, joined by "+" when they differ (e.g. "pairs+hh")
    kind: str  # "pairs" or "corpus"
    frame: pl.DataFrame  # valid rows, normalized schema + carried columns
    records: int  # raw records read (valid or not)
    errors: list[RecordError] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)  # one per invalid record, JSON-ready
    inputs: list[InputInfo] = field(default_factory=list)
    detected: bool = True  # formats detected from the records (False: given by the caller)
    notes: list[str] = field(default_factory=list)  # decisions worth telling the user

    @property
    def invalid(self) -> int:
        return len(self.rejects)

    @property
    def valid(self) -> int:
        return self.records - self.invalid


def load_dataset_records(
    paths: Sequence[str | PathLike[str]],
    format: str | None = None,
    on_error: Literal["raise", "skip"] = "raise",
    *,
    batch_size: int = 2048,
) -> LoadedData:
    """Read, detect, validate and normalize every record of ``paths``.

    Each path's format is detected on its own (``format`` forces one for all); their kinds must agree, so
    ``pairs.jsonl`` and ``hh.jsonl`` load together, but preference pairs and corpus rows do not.
    """
    if on_error not in ("raise", "skip"):
        raise RmdataError(f"on_error={on_error!r}: must be raise or skip")
    if format is not None and format not in FORMATS:
        raise RmdataError(f"format {format!r} is not one rmdata reads; choose one of {', '.join(FORMATS)}")
    if not paths:
        raise RmdataError("no input files given")
    inputs = [resolve_input(str(p)) for p in paths]
    loader: _Loader | None = None
    for info in inputs:
        head, rest = _head(_batches(info, batch_size), DETECT_SAMPLE)
        fmt = _choose_format(format, head, info)
        if loader is None:
            loader = _Loader(fmt.kind)
        elif fmt.kind != loader.kind:
            first = inputs[0]
            raise RmdataError(
                f"{info.path} holds {fmt.kind} records ({fmt.name}) but {first.path} holds {loader.kind} records "
                f"({first.format}); preference pairs and corpus rows cannot be read as one input, load them separately"
            )
        for batch in chain(head, rest):
            loader.add(batch, fmt, info, detected=format is None)
    assert loader is not None
    loaded = loader.finish(inputs, detected=format is None)
    if loaded.errors and on_error == "raise":
        raise RmdataError(format_errors(loaded))
    return loaded


def format_errors(loaded: LoadedData, limit: int = MAX_SHOWN) -> str:
    """The invalid records as one message: a headline, the first ``limit`` errors, and what to do."""
    lines = [f"{loaded.invalid} of {loaded.records} records are invalid ({loaded.format} format):"]
    lines += [f"  {error}" for error in loaded.errors[:limit]]
    if len(loaded.errors) > limit:
        lines.append(f"  ... and {len(loaded.errors) - limit} more")
    lines.append(
        "fix them, or drop them with --on-error skip (recipes: data.on_error=skip), which writes them "
        "with their reasons to a rejects file"
    )
    return "\n".join(lines)


def _batches(info: InputInfo, batch_size: int) -> Iterator[Batch]:
    for batch in iter_batches(info, batch_size):
        info.records += len(batch.records)
        yield batch


def _head(batches: Iterator[Batch], sample: int) -> tuple[list[Batch], Iterator[Batch]]:
    head: list[Batch] = []
    seen = 0
    for batch in batches:
        head.append(batch)
        seen += len(batch.records)
        if seen >= sample:
            break
    return head, batches


def _choose_format(given: str | None, head: list[Batch], info: InputInfo) -> Format:
    """The given format, or the one most of the input's first records point to (recorded on ``info``)."""
    if given is not None:
        info.format, info.detection = given, "given"
        return FORMATS[given]
    values = [r.value for batch in head for r in batch.records if r.value is not None][:DETECT_SAMPLE]
    votes = Counter(name for name in map(guess_format, values) if name is not None)
    if not votes:
        keys = sorted({key for value in values for key in value})
        known = "; ".join(f"{f.name} ({', '.join(f.required)})" for f in FORMATS.values())
        raise RmdataError(
            f"{info.path}: cannot tell the format: records have keys {', '.join(keys) or '(none readable)'}; "
            f"rmdata reads {known}; rename the columns or choose a format (--format / data.format)"
        )
    name, count = votes.most_common(1)[0]
    info.format, info.detection = name, f"detected from the keys of {count} of the first {len(values)} records"
    return FORMATS[name]


class _Loader:
    """Validates and normalizes batches, collecting valid rows as frames and invalid records as rejects."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.multi = False  # some input is multi-response: the frame has response_index
        self.core = set(core_schema(kind, multi_response=True))  # names a carried column may not take
        self.frames: list[pl.DataFrame] = []
        self.errors: list[RecordError] = []
        self.rejects: list[dict[str, Any]] = []
        self.records = 0
        self.notes: list[str] = []
        self.renamed: dict[str, str] = {}

    def add(self, batch: Batch, fmt: Format, info: InputInfo, detected: bool) -> None:
        multi = fmt.name == "multi-response"
        self.multi |= multi
        rows: list[Row] = []
        sources: list[str] = []
        take: list[int] = []
        for i, raw in enumerate(batch.records):
            self.records += 1
            if raw.value is None:
                self._reject(raw.location, [(None, raw.error or "unreadable")], "unreadable_record", None, raw.text)
                continue
            problems = Problems()
            kept = _normalize(raw.value, fmt, problems, info if detected else None)
            if problems:
                reason = "invalid_response" if kept else "invalid_record"
                self._reject(raw.location, problems.items, reason, raw.value, None, kept=len(kept))
            rows += kept
            sources += [raw.location] * len(kept)
            take += [i] * len(kept)
        if rows:
            core = core_frame(fmt.kind, rows, sources, multi)
            extras = self._extras(batch, take, set(fmt.consumed))
            self.frames.append(core.hstack(extras.get_columns()) if extras.width else core)

    def _reject(
        self,
        location: str,
        problems: list[tuple[str | None, str]],
        reason: str,
        record: dict[str, Any] | None,
        text: str | None,
        kept: int = 0,
    ) -> None:
        errors = [RecordError(location, name, message) for name, message in problems]
        self.errors += errors
        message = "; ".join(e.message for e in errors)
        if kept:
            message += f" (the record's other {kept} response(s) are kept)"
        entry: dict[str, Any] = {"source": location, "reason": reason, "message": message}
        entry["errors"] = [{"field": e.field, "message": e.message} for e in errors]
        entry["record"] = record
        if text is not None:
            entry["raw"] = text  # the line (or item) that could not be read as a record
        self.rejects.append(entry)

    def _extras(self, batch: Batch, take: list[int], consumed: set[str]) -> pl.DataFrame:
        if batch.frame is not None:
            names = [c for c in batch.frame.columns if c not in consumed]
            frame = batch.frame.select(names)[take] if names else pl.DataFrame()
        else:
            values = [batch.records[i].value or {} for i in take]
            names = list(dict.fromkeys(k for v in values for k in v if k not in consumed))
            frame = pl.DataFrame([carried_column(name, [v.get(name) for v in values]) for name in names])
        return frame.rename({name: self._rename(name) for name in names})

    def _rename(self, name: str) -> str:
        if name not in self.core:
            return name
        if name not in self.renamed:
            new = f"{name}_input"
            while new in self.core:
                new += "_input"
            self.renamed[name] = new
            self.notes.append(f"input column {name} is carried as {new} ({name} is a normalized column)")
        return self.renamed[name]

    def finish(self, inputs: list[InputInfo], detected: bool) -> LoadedData:
        if not self.frames:
            frame = pl.DataFrame(schema=core_schema(self.kind, self.multi))
        else:
            frame = unify_carried(self.frames, self.notes)
        names = "+".join(dict.fromkeys(info.format or "" for info in inputs))
        return LoadedData(
            names, self.kind, frame, self.records, self.errors, self.rejects, inputs, detected, self.notes
        )


def _normalize(record: dict[str, Any], fmt: Format, problems: Problems, detected_in: InputInfo | None) -> list[Row]:
    """Normalize one record; a record missing the format's keys is named as another format when it is one."""
    missing = [key for key in fmt.required if record.get(key) is None]
    if not missing:
        return fmt.normalize(record, problems)
    guess = guess_format(record)
    if detected_in is not None and guess is not None and guess != fmt.name:
        problems.add(
            missing[0],
            f"record is in the {guess} format (keys {', '.join(FORMATS[guess].required)}), not {fmt.name} like "
            f"the rest of {detected_in.path}; one input holds one format",
        )
        return []
    for key in missing:
        problems.add(key, f'missing key "{key}" ({fmt.name} records need {", ".join(fmt.required)})')
    return []
