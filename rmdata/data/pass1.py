"""Pass 1's state: counts, errors, drops and the carried schema, accumulated batch by batch in input order.

:class:`Pass1` validates each batch (a whole-batch check first, record by record when it fails, which names
every problem) and observes its carried columns. A worker process (:mod:`rmdata.data.workers`) runs one with
``observe_only=True`` over a part of an input and hands back a :class:`Part`, which the parent merges in
input order: the same counts, errors, drops (in the same order) and schema as one process reading it all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from rmdata.data import drops
from rmdata.data.batch import Batch, RawRecord
from rmdata.data.carried import CarriedSchema, Observed, observe
from rmdata.data.detect import normalize
from rmdata.data.drops import Drop
from rmdata.data.formats import Format, Row
from rmdata.data.inputs import InputInfo
from rmdata.data.rules import Problems, RecordError
from rmdata.errors import RmdataError

MAX_KEPT_ERRORS = 1000  # errors a ScanReport keeps for display


@dataclass
class Part:
    """What a worker's Pass1 found over one part of an input."""

    records: int
    valid_rows: int
    invalid: int
    drops: list[Drop]
    observed: list[Observed]
    lines: int  # lines in the part (blank ones too): the line numbers of the parts after it


def content_digest(kind: str, row: Row) -> int:
    """A 64-bit hash of a normalized row's content: prompt and response (pairs: chosen and rejected).

    Python's own hash: equal within one process (both passes run in one), salted across processes, so it
    is never stored. Two different rows share one with odds of about n^2 / 2^65 (3e-6 for 10M rows).
    """
    prompt = tuple((m["role"], m["content"]) for m in row["prompt"])
    if kind == "pairs":
        return hash((prompt, row["chosen"], row["rejected"]))
    return hash((prompt, row["response"]))


class Pass1:
    """Counts, errors, drops and the carried schema, accumulated over every batch of every input."""

    def __init__(
        self,
        kind: str | None,
        on_drop: Callable[[Drop], None] | None,
        dedup: bool,
        count_duplicates: bool,
        observe_only: bool = False,
    ) -> None:
        self.observed: list[Observed] | None = [] if observe_only else None  # worker: observations, unmerged
        self.kept: list[Drop] | None = [] if observe_only else None  # worker: the drops, for the parent
        if observe_only:
            on_drop = self.kept.append  # type: ignore[union-attr]
        self.kind = kind
        self.kind_given = kind is not None
        self.on_drop = on_drop
        self.dedup = dedup
        self.digests: set[int] | None = set() if dedup or count_duplicates else None
        self.schema = CarriedSchema(set())
        self.records = self.valid_rows = self.invalid = self.duplicates = 0
        self.errors: list[RecordError] = []
        self.drop_counts: dict[str, int] = {}
        self.multi = False
        self.first_format = ""

    def check_kind(self, fmt: Format, info: InputInfo, first: InputInfo) -> None:
        if self.kind is None:
            self.kind, self.first_format = fmt.kind, fmt.name
        elif fmt.kind != self.kind:
            if self.kind_given:
                raise RmdataError(
                    f"{info.path} holds {fmt.kind} records ({fmt.name}); {self.kind} records are needed here"
                )
            raise RmdataError(
                f"{info.path} holds {fmt.kind} records ({fmt.name}) but {first.path} holds {self.kind} records "
                f"({self.first_format}); preference pairs and corpus rows cannot be read as one input, "
                "load them separately"
            )
        elif not self.first_format:
            self.first_format = fmt.name
        self.multi |= fmt.name == "multi-response"

    def add(
        self, batch: Batch, fmt: Format, info: InputInfo, detected: bool, on_rows: Callable[[list[Row]], None] | None
    ) -> None:
        values = batch.values
        self.records += len(values)
        if not batch.unreadable and fmt.all_valid(values):  # type: ignore[arg-type]
            # Every record is valid and gives one row: the rows are built only when their content is wanted.
            take = list(range(len(values)))
            rows: list[Row] = []
            if self.digests is not None or on_rows is not None:
                problems = Problems()
                rows = [fmt.normalize(value, problems)[0] for value in values]  # type: ignore[arg-type]
        else:
            rows, take = self._normalize(batch, fmt, info if detected else None)
        if self.digests is not None:
            rows, take = self._unique(batch, fmt.kind, rows, take)
        self.valid_rows += len(take)
        seen = observe(batch, take, set(fmt.consumed))
        if self.observed is not None:
            self.observed.append(seen)
        else:
            self.schema.merge(seen)
        if on_rows is not None and rows:
            on_rows(rows)

    def merge(self, part: Part, line_offset: int = 0) -> None:
        """Take in what a worker's Pass1 found over the next part of the input (parts in input order);
        ``line_offset``: the lines before the part, whose own lines the worker numbered from 1."""
        self.records += part.records
        self.valid_rows += part.valid_rows
        self.invalid += part.invalid
        for drop in part.drops:
            if line_offset:
                path, line = drop.location.rsplit(":", 1)
                drop = replace(drop, location=f"{path}:{int(line) + line_offset}")
            self._drop(drop)
        for seen in part.observed:
            self.schema.merge(seen)

    def part(self, lines: int) -> Part:
        """What this worker Pass1 found (made with ``observe_only=True``) over ``lines`` lines: for :meth:`merge`."""
        assert self.observed is not None and self.kept is not None
        return Part(self.records, self.valid_rows, self.invalid, self.kept, self.observed, lines)

    def _normalize(self, batch: Batch, fmt: Format, detected_in: InputInfo | None) -> tuple[list[Row], list[int]]:
        """Record by record: the valid rows and the index of the record each comes from; the rest dropped."""
        rows: list[Row] = []
        take: list[int] = []
        problems = Problems()
        for i, value in enumerate(batch.values):
            if value is None:
                error, text = batch.unreadable.get(i, ("unreadable", None))
                self._drop(Drop(drops.UNREADABLE_RECORD, error, batch.location(i),
                                fields=({"field": None, "message": error},), raw=text))  # fmt: skip
                self.invalid += 1
                continue
            for key in fmt.required:  # normalize(), inlined for the common record: every required key set
                if value.get(key) is None:
                    found = normalize(value, fmt, problems, detected_in)
                    break
            else:
                found = fmt.normalize(value, problems)
            if problems:
                self.invalid += 1
                self._reject(batch.record(i), problems, kept=len(found))
                problems = Problems()
            rows += found
            take += [i] * len(found)
        return rows, take

    def _unique(self, batch: Batch, kind: str, rows: list[Row], take: list[int]) -> tuple[list[Row], list[int]]:
        """Count rows repeating an earlier row's content; with dedup, drop them."""
        assert self.digests is not None
        kept_rows: list[Row] = []
        kept: list[int] = []
        for row, i in zip(rows, take, strict=True):
            digest = content_digest(kind, row)
            if digest in self.digests:
                self.duplicates += 1
                if self.dedup:
                    self._drop(Drop(drops.DUPLICATE, "the same prompt and response(s) as an earlier row",
                                    batch.location(i), row=dict(row)))  # fmt: skip
                    continue
            self.digests.add(digest)
            kept_rows.append(row)
            kept.append(i)
        return kept_rows, kept

    def _reject(self, raw: RawRecord, problems: Problems, kept: int) -> None:
        message = "; ".join(m for _, m in problems.items)
        if kept:
            message += f" (the record's other {kept} response(s) are kept)"
        fields = tuple({"field": f, "message": m} for f, m in problems.items)
        reason = drops.INVALID_RESPONSE if kept else drops.INVALID_RECORD
        self._drop(Drop(reason, message, raw.location, row=raw.value, fields=fields))

    def _drop(self, drop: Drop) -> None:
        self.drop_counts[drop.reason] = self.drop_counts.get(drop.reason, 0) + 1
        if drop.reason != drops.DUPLICATE:
            self.errors += drop_errors(drop)[: max(0, MAX_KEPT_ERRORS - len(self.errors))]
        if self.on_drop is not None:
            self.on_drop(drop)


def drop_errors(drop: Drop) -> list[RecordError]:
    """The rules a dropped record broke, one RecordError each (its message when no field was named)."""
    fields = drop.fields or ({"field": None, "message": drop.message},)
    return [RecordError(drop.location, f.get("field"), f.get("message") or drop.message) for f in fields]
