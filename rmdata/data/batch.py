"""What every reader yields: a batch of raw records, held column-wise so a pass over millions stays cheap.

A :class:`Batch` keeps each record's parsed value (None when it could not be read), where it came from
(``file:line`` for JSON lines, ``file:row`` for every other reader) and why an unreadable record could not
be read. Passes over the data read ``values`` and ask ``location(i)`` only for the records they report;
:attr:`Batch.records` gives the same records one object each (:class:`RawRecord`), built on first use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl


@dataclass
class RawRecord:
    location: str
    value: dict[str, Any] | None  # None when the record could not be read
    error: str | None = None  # why it could not be read
    text: str | None = None  # the unreadable line, for the rejects file


@dataclass
class Batch:
    values: list[dict[str, Any] | None]  # each record's value; None: unreadable (see ``unreadable``)
    source: str  # the file (or dataset) the records come from
    numbers: Sequence[int]  # each record's line (JSON lines, 1-based) or row (0-based)
    unreadable: dict[int, tuple[str, str | None]] = field(default_factory=dict)  # index -> (error, text)
    frame: pl.DataFrame | None = None  # columnar readers: the rows as read, aligned with values
    _records: list[RawRecord] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.values)

    def location(self, i: int) -> str:
        """``file:line`` or ``file:row`` of record ``i``."""
        return f"{self.source}:{self.numbers[i]}"

    def record(self, i: int) -> RawRecord:
        error, text = self.unreadable.get(i, (None, None))
        return RawRecord(self.location(i), self.values[i], error, text)

    @property
    def records(self) -> list[RawRecord]:
        """Every record as a :class:`RawRecord` (built once, on first use)."""
        if self._records is None:
            self._records = [self.record(i) for i in range(len(self.values))]
        return self._records
