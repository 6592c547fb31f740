"""The streaming data layer: two passes over the inputs, memory bounded whatever their size.

``scan(paths)`` (pass 1) reads every record once, detects each input's format, validates, and keeps only
counts, the first errors and the carried-column schema (:mod:`rmdata.data.carried`). ``stream(report)``
(pass 2) reads the inputs again and yields the valid rows, normalized, in input order, in batches that all
have the same columns and dtypes: those of :func:`rmdata.data.load.load_dataset_records`, which is built
on these two passes. Bad records are handled in pass 1 (``on_error="fail"`` raises, ``"skip"`` hands each
one to ``on_drop`` as a :class:`~rmdata.data.drops.Drop`); pass 2 leaves the same records out silently.

Pass 1's state is :class:`rmdata.data.pass1.Pass1`; a large plain JSON lines input is validated on worker
processes (:mod:`rmdata.data.workers`) with the same result. Repeated inputs (the same file given twice)
are read once, with a note. With ``dedup=True`` a row whose
normalized content (prompt and response(s)) repeats an earlier row's is dropped as ``duplicate``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, Literal

import polars as pl

from rmdata.data.batch import Batch
from rmdata.data.carried import CarriedSchema, carried_frame
from rmdata.data.detect import DETECT_SAMPLE, choose_format, normalize
from rmdata.data.drops import Drop
from rmdata.data.formats import FORMATS, Format, Row
from rmdata.data.inputs import InputInfo, resolve_input
from rmdata.data.pass1 import MAX_KEPT_ERRORS, Pass1, content_digest, drop_errors
from rmdata.data.readers import iter_batches
from rmdata.data.rules import Problems, RecordError
from rmdata.data.schema import core_frame, core_schema
from rmdata.data.workers import head_spans, scan_spans, scan_workers
from rmdata.errors import RmdataError

__all__ = ["ScanReport", "content_digest", "drop_errors", "format_errors", "open_inputs", "reading", "scan", "stream"]

MAX_SHOWN = 20  # errors listed in a raised RmdataError
DEBUG_ENV = "RMDATA_DEBUG"  # set to 1: unexpected errors while reading show their traceback


@dataclass
class ScanReport:
    """Result of pass 1: counts and errors only, no records kept."""

    kind: str  # "pairs" | "corpus"
    inputs: list[InputInfo]
    formats: dict[str, str]  # input path -> format name
    records: int  # raw records read, valid or not
    valid_rows: int  # normalized rows pass 2 yields (multi-response: one per response)
    invalid: int  # records left out because they break a rule (or could not be read)
    errors: list[RecordError]  # the first MAX_KEPT_ERRORS, for display
    carried: dict[str, pl.DataType]  # the carried-column schema every batch has
    notes: list[str]
    detected: bool = True  # formats detected (False: given by the caller)
    drops: dict[str, int] = field(default_factory=dict)  # rows left out, by reason
    duplicates: int = 0  # rows repeating an earlier row's content (dropped with dedup=True)
    dedup: bool = False
    batch_size: int = 4096
    multi_response: bool = False  # some input is multi-response: the rows have response_index
    schema: CarriedSchema | None = field(default=None, repr=False)

    @property
    def format(self) -> str:
        """The inputs' formats, joined by "+" when they differ (e.g. ``pairs+hh``)."""
        return "+".join(dict.fromkeys(self.formats.values()))

    @property
    def columns(self) -> dict[str, pl.DataType]:
        """Every column of the streamed batches, in order."""
        return {**core_schema(self.kind, self.multi_response), **self.carried}


def scan(
    paths: Sequence[str | os.PathLike[str]],
    *,
    format: str | None = None,
    kind: str | None = None,
    on_error: Literal["fail", "skip"] = "fail",
    on_drop: Callable[[Drop], None] | None = None,
    batch_size: int = 4096,
    dedup: bool = False,
    count_duplicates: bool = False,
    on_rows: Callable[[list[Row]], None] | None = None,
) -> ScanReport:
    """Pass 1: read and validate every record once, keeping counts, the first errors and the carried schema.

    ``kind`` ("pairs" or "corpus") refuses inputs of the other kind. ``on_error="fail"`` raises one
    RmdataError listing the first errors when any record is invalid; ``"skip"`` hands each to ``on_drop``.
    ``count_duplicates`` counts repeated rows without dropping them (``dedup`` drops them); either keeps
    an 8-byte digest per row. ``on_rows`` sees each batch's valid normalized rows (for summaries).
    """
    if on_error not in ("fail", "skip"):
        raise RmdataError(f"on_error={on_error!r}: must be fail or skip")
    if format is not None and format not in FORMATS:
        raise RmdataError(f"format {format!r} is not one rmdata reads; choose one of {', '.join(FORMATS)}")
    notes: list[str] = []
    inputs = open_inputs(paths, notes)
    state = Pass1(kind, on_drop, dedup, count_duplicates)
    formats: dict[str, str] = {}
    for info in inputs:
        with reading(info.path):
            workers = scan_workers(info, per_row=on_rows is not None or state.digests is not None)
            if workers:
                spans = head_spans(info.files[0], batch_size, DETECT_SAMPLE)
                head, rest = spans.head, iter(list[Batch]())
                info.records += sum(len(batch) for batch in head)
            else:
                head, rest = _head(_counted(info, batch_size), DETECT_SAMPLE)
            fmt = choose_format(format, [r for batch in head for r in batch.records], info)
            state.check_kind(fmt, info, inputs[0])
            formats[info.path] = fmt.name
            for batch in chain(head, rest):
                state.add(batch, fmt, info, detected=format is None, on_rows=on_rows)
            if workers:
                info.records += scan_spans(state, spans, info, fmt.name, format is None, batch_size, workers)
    assert state.kind is not None
    state.schema.core = set(core_schema(state.kind, multi_response=True))
    carried = state.schema.finish(notes)
    report = ScanReport(
        state.kind, inputs, formats, state.records, state.valid_rows, state.invalid, state.errors, carried, notes,
        format is None, dict(sorted(state.drop_counts.items())), state.duplicates, dedup, batch_size,
        state.multi, state.schema,
    )  # fmt: skip
    if report.invalid and on_error == "fail":
        raise RmdataError(format_errors(report))
    return report


def stream(report: ScanReport, *, batch_rows: int = 4096) -> Iterator[pl.DataFrame]:
    """Pass 2: the valid rows, normalized, in input order, ``batch_rows`` at a time (the last may be shorter).

    Every batch has exactly ``report.columns``. The inputs must not change between the passes.
    """
    assert report.schema is not None
    seen: set[int] | None = set() if report.dedup else None
    pending: list[pl.DataFrame] = []
    held = 0
    for info in report.inputs:
        fmt = FORMATS[report.formats[info.path]]
        consumed = set(fmt.consumed)
        records = 0
        with reading(info.path):
            for batch in iter_batches(info, report.batch_size):
                records += len(batch)
                rows, take = _valid_rows(batch, fmt, info if report.detected else None)
                if seen is not None:
                    rows, take = _first_seen(report.kind, rows, take, seen)
                if not rows:
                    continue
                sources = [batch.location(i) for i in take]
                frame = core_frame(report.kind, rows, sources, fmt.name == "multi-response")
                if fmt.name != "multi-response" and report.multi_response:
                    frame = frame.with_columns(pl.lit(None, dtype=pl.Int64).alias("response_index"))
                extras = carried_frame(report.schema, batch, take, consumed)
                if extras.width:
                    frame = frame.hstack(extras.get_columns())
                pending.append(frame)
                held += frame.height
                while held >= batch_rows:
                    out, pending, held = _split_rows(pending, batch_rows)
                    yield out
        if records != info.records:
            raise RmdataError(
                f"{info.path}: held {info.records} records when first read and {records} now; "
                "it changed while rmdata read it: run again once it is complete"
            )
    if held:
        yield pl.concat(pending)


def format_errors(report: Any, limit: int = MAX_SHOWN) -> str:
    """The invalid records as one message: a headline, the first ``limit`` errors, and what to do."""
    lines = [f"{report.invalid} of {report.records} records are invalid ({report.format} format):"]
    lines += [f"  {error}" for error in report.errors[:limit]]
    if len(report.errors) > limit:
        capped = " (at least)" if isinstance(report, ScanReport) and len(report.errors) >= MAX_KEPT_ERRORS else ""
        lines.append(f"  ... and {len(report.errors) - limit} more{capped}")
    lines.append(
        "fix them, or drop them with --on-error skip (recipes: data.on_error=skip), which writes them "
        "with their reasons to a rejects file"
    )
    return "\n".join(lines)


def open_inputs(paths: Sequence[str | os.PathLike[str]], notes: list[str]) -> list[InputInfo]:
    """Resolve every path; an input given more than once is read once, with a note."""
    if not paths:
        raise RmdataError("no input files given")
    inputs: list[InputInfo] = []
    seen: dict[tuple[str, ...], InputInfo] = {}
    repeats: dict[str, int] = {}
    for p in paths:
        info = resolve_input(str(p))
        key = tuple(os.path.realpath(f) for f in info.files) or (info.path,)
        if key in seen:
            first = seen[key].path
            repeats[first] = repeats.get(first, 1) + 1
            continue
        seen[key] = info
        inputs.append(info)
    for path, times in repeats.items():
        notes.append(f"{path} is given {times} times; it is read once")
    return inputs


@contextmanager
def reading(path: str) -> Iterator[None]:
    """Turn an unexpected error while reading ``path`` into one RmdataError naming it (``RMDATA_DEBUG=1``:
    let it through with its traceback)."""
    try:
        yield
    except RmdataError:
        raise
    except Exception as err:
        if os.environ.get(DEBUG_ENV):
            raise
        first = (str(err).splitlines() or [""])[0][:300]
        raise RmdataError(
            f"{path}: cannot be read ({type(err).__name__}: {first}); if the file looks valid, this is a bug in "
            f"rmdata: rerun with {DEBUG_ENV}=1 for the traceback and report it"
        ) from err


def _valid_rows(batch: Batch, fmt: Format, detected_in: InputInfo | None) -> tuple[list[Row], list[int]]:
    """The batch's valid rows and the index of the record each comes from (pass 1 reported the rest)."""
    rows: list[Row] = []
    take: list[int] = []
    problems = Problems()
    for i, value in enumerate(batch.values):
        if value is None:
            continue
        found = normalize(value, fmt, problems, detected_in)
        if problems:
            problems = Problems()
        rows += found
        take += [i] * len(found)
    return rows, take


def _first_seen(kind: str, rows: list[Row], take: list[int], seen: set[int]) -> tuple[list[Row], list[int]]:
    """The rows whose content no earlier row had (``seen``: the digests so far, updated)."""
    kept_rows: list[Row] = []
    kept: list[int] = []
    for row, i in zip(rows, take, strict=True):
        digest = content_digest(kind, row)
        if digest not in seen:
            seen.add(digest)
            kept_rows.append(row)
            kept.append(i)
    return kept_rows, kept


def _split_rows(frames: list[pl.DataFrame], n: int) -> tuple[pl.DataFrame, list[pl.DataFrame], int]:
    whole = pl.concat(frames) if len(frames) > 1 else frames[0]
    rest = whole.slice(n)
    return whole.slice(0, n), [rest] if rest.height else [], rest.height


def _counted(info: InputInfo, batch_size: int) -> Iterator[Batch]:
    for batch in iter_batches(info, batch_size):
        info.records += len(batch)
        yield batch


def _head(batches: Iterator[Batch], sample: int) -> tuple[list[Batch], Iterator[Batch]]:
    head: list[Batch] = []
    seen = 0
    for batch in batches:
        head.append(batch)
        seen += len(batch)
        if seen >= sample:
            break
    return head, batches
