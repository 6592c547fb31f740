"""TEMPORARY stand-in for the streaming data layer (branch ``hardening`` builds the real one).

It implements the agreed API (``scan`` -> ``ScanReport``, ``stream(report)`` -> frames) on top of
``load_dataset_records``, so memory is not bounded: ``scan`` loads every valid row and ``stream`` slices it.
The lead replaces this file with the real module at merge.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from os import PathLike
from typing import Any, Literal

import polars as pl

from rmdata.config import resolve_data_path
from rmdata.data.drops import INVALID_RECORD, REASONS, Drop
from rmdata.data.inputs import InputInfo
from rmdata.data.load import load_dataset_records
from rmdata.data.rules import RecordError
from rmdata.data.schema import core_schema


@dataclass
class ScanReport:
    """What pass 1 saw: counts and first errors (the shim also holds the rows, in ``_frame``)."""

    kind: str
    inputs: list[InputInfo]
    formats: list[str]
    records: int
    valid_rows: int
    invalid: int
    errors: list[RecordError]
    carried: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    _frame: pl.DataFrame | None = None


def scan(
    paths: Sequence[str | PathLike[str]],
    *,
    format: str | None = None,
    kind: str | None = None,
    on_error: Literal["fail", "skip"] = "fail",
    on_drop: Callable[[Drop], None] | None = None,
    batch_size: int = 4096,
) -> ScanReport:
    """Read every record; ``on_error="fail"`` raises on bad records, ``"skip"`` hands each to ``on_drop``."""
    from rmdata.errors import RmdataError

    if on_error not in ("fail", "skip"):
        raise RmdataError(f"on_error={on_error!r}: must be fail or skip")
    resolved = [resolve_data_path(str(p)) for p in paths]
    loaded = load_dataset_records(resolved, format, "raise" if on_error == "fail" else "skip", batch_size=batch_size)
    if kind is not None and loaded.kind != kind:
        raise RmdataError(f"{', '.join(resolved)} holds {loaded.kind} records, this command reads {kind} records")
    if on_drop is not None:
        for reject in loaded.rejects:
            reason = reject["reason"] if reject["reason"] in REASONS else INVALID_RECORD
            fields = tuple({"field": str(e["field"]), "message": str(e["message"])} for e in reject["errors"])
            on_drop(Drop(reason, reject["message"], reject["source"], reject.get("record"), fields, reject.get("raw")))
    core = set(core_schema(loaded.kind, multi_response=True))
    carried = {name: dtype for name, dtype in loaded.frame.schema.items() if name not in core}
    return ScanReport(
        kind=loaded.kind,
        inputs=loaded.inputs,
        formats=[info.format or "" for info in loaded.inputs],
        records=loaded.records,
        valid_rows=loaded.frame.height,
        invalid=loaded.invalid,
        errors=loaded.errors,
        carried=carried,
        notes=loaded.notes,
        _frame=loaded.frame,
    )


def stream(report: ScanReport, *, batch_rows: int = 4096) -> Iterator[pl.DataFrame]:
    """The valid rows of ``report`` in input order, ``batch_rows`` at a time."""
    assert report._frame is not None
    for start in range(0, report._frame.height, batch_rows):
        yield report._frame.slice(start, batch_rows)
