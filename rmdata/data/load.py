"""Load input files as normalized, validated records in memory: the two streaming passes, collected.

``load_dataset_records(paths)`` runs :func:`rmdata.data.stream.scan` (read, detect each input's format
from its records' keys unless one is given, validate every record) and collects
:func:`rmdata.data.stream.stream` (the valid rows in the normalized schema, see :mod:`rmdata.data.schema`)
into one frame. Input columns a format does not read are carried through (see :mod:`rmdata.data.carried`);
one whose name a normalized column takes is renamed ``<name>_input``.

Policy for bad records: ``on_error="raise"`` validates everything, then raises one RmdataError listing
them (capped); ``on_error="skip"`` returns them as ``rejects`` (:class:`~rmdata.data.drops.Drop`, with
their reasons) next to the valid rows. ``dedup=True`` also drops rows that repeat an earlier row's
content (reason ``duplicate``); ``duplicates`` counts them either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from os import PathLike
from typing import Literal

import polars as pl

from rmdata.data import drops
from rmdata.data.drops import Drop
from rmdata.data.inputs import InputInfo
from rmdata.data.pass1 import drop_errors
from rmdata.data.rules import RecordError
from rmdata.data.stream import MAX_SHOWN, format_errors, scan, stream
from rmdata.errors import RmdataError

__all__ = ["LoadedData", "format_errors", "load_dataset_records", "MAX_SHOWN"]


@dataclass
class LoadedData:
    format: str  # the inputs' formats, joined by "+" when they differ (e.g. "pairs+hh")
    kind: str  # "pairs" or "corpus"
    frame: pl.DataFrame  # valid rows, normalized schema + carried columns
    records: int  # raw records read (valid or not)
    errors: list[RecordError] = field(default_factory=list)
    rejects: list[Drop] = field(default_factory=list)  # every row left out, with its reason
    inputs: list[InputInfo] = field(default_factory=list)
    detected: bool = True  # formats detected from the records (False: given by the caller)
    notes: list[str] = field(default_factory=list)  # decisions worth telling the user
    duplicates: int = 0  # rows repeating an earlier row's content (left out with dedup=True)

    @property
    def counts(self) -> dict[str, int]:
        """Rows left out, by reason (``invalid_record``, ``unreadable_record``, ``duplicate``, ...)."""
        return drops.count_by_reason(self.rejects)

    @property
    def invalid(self) -> int:
        """Records left out because they break a rule or could not be read (duplicates not counted)."""
        return sum(1 for d in self.rejects if d.reason != drops.DUPLICATE)

    @property
    def valid(self) -> int:
        return self.records - self.invalid


def load_dataset_records(
    paths: Sequence[str | PathLike[str]],
    format: str | None = None,
    on_error: Literal["raise", "skip"] = "raise",
    *,
    batch_size: int = 2048,
    dedup: bool = False,
) -> LoadedData:
    """Read, detect, validate and normalize every record of ``paths``.

    Each path's format is detected on its own (``format`` forces one for all); their kinds must agree, so
    ``pairs.jsonl`` and ``hh.jsonl`` load together, but preference pairs and corpus rows do not.
    """
    if on_error not in ("raise", "skip"):
        raise RmdataError(f"on_error={on_error!r}: must be raise or skip")
    rejects: list[Drop] = []
    report = scan(
        paths, format=format, on_error="skip", on_drop=rejects.append, batch_size=batch_size,
        dedup=dedup, count_duplicates=True,
    )  # fmt: skip
    errors = [e for d in rejects if d.reason != drops.DUPLICATE for e in drop_errors(d)]
    loaded = LoadedData(
        report.format, report.kind, pl.DataFrame(schema=report.columns), report.records, errors, rejects,
        report.inputs, report.detected, report.notes, report.duplicates,
    )  # fmt: skip
    if errors and on_error == "raise":
        raise RmdataError(format_errors(loaded))
    frames = list(stream(report, batch_rows=1 << 62))
    if frames:
        loaded.frame = frames[0] if len(frames) == 1 else pl.concat(frames)
    return loaded
