"""Carried columns: input columns a format does not read, passed through with every row.

Pass 1 (:class:`CarriedSchema`) looks at every valid record and settles one schema that every batch of
pass 2 is built to (:func:`carried_frame`), so a stream's batches all have the same columns and types:

- a column whose batches infer different types takes their common type when they are all numbers, all
  structs (fields unioned) or all lists; else it is carried as JSON text (every value its ``json.dumps``),
  with a note;
- an input column named like a normalized column is carried as ``<name>_input``, with a note;
- past ``MAX_CARRIED_COLUMNS`` distinct keys (records that each bring their own keys), only the keys every
  record holds stay columns; the others go into one JSON-object column, ``extra``, with a note. Memory per
  record then stays bounded by the record's own size, not by the number of keys in the whole input.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pyarrow as pa

from rmdata.data.batch import Batch
from rmdata.data.schema import carried_column

MAX_CARRIED_COLUMNS = 256  # distinct carried keys before per-record keys go into one JSON column
EXTRA = "extra"  # that column's name (``extra_input`` etc. when an input column is already called extra)
JSON_TEXT = pl.String()  # the dtype of a column carried as JSON text


@dataclass
class CarriedSchema:
    """What pass 1 learns about carried columns; ``finish()`` gives the schema pass 2 builds."""

    core: set[str]  # names carried columns may not take (the normalized columns)
    keys: dict[str, int] = field(default_factory=dict)  # key -> valid records holding it (first-seen order)
    types: dict[str, set[pl.DataType]] = field(default_factory=dict)
    records: int = 0  # valid records seen
    overflow: bool = False  # more than MAX_CARRIED_COLUMNS keys: per-record keys go to EXTRA
    renamed: dict[str, str] = field(default_factory=dict)
    columns: dict[str, pl.DataType] = field(default_factory=dict)  # set by finish(): output name -> dtype
    sources: dict[str, str] = field(default_factory=dict)  # output name -> input key
    json_text: set[str] = field(default_factory=set)  # output names carried as JSON text
    extra: str | None = None  # the JSON column of per-record keys, when overflow

    def add(self, batch: Batch, take: list[int], consumed: set[str]) -> None:
        """Count the keys and infer the types of the batch's valid records (``take``: their indices)."""
        self.merge(observe(batch, take, consumed))

    def merge(self, seen: Observed) -> None:
        """Take in one batch's :func:`observe` (batches in input order)."""
        taken, present, dtypes = seen
        if not taken:
            return
        before = self.records
        self.records += taken
        for key, count in present.items():
            if key not in self.keys:
                if len(self.keys) >= MAX_CARRIED_COLUMNS:
                    self.overflow = True
                if self.overflow and before > 0:
                    continue  # a key missing from earlier records cannot be one every record holds
                self.keys[key] = 0
            self.keys[key] += count
        if self.overflow:  # keep tracking only the keys every record so far holds
            self.keys = {k: c for k, c in self.keys.items() if c == self.records}
            self.types = {k: t for k, t in self.types.items() if k in self.keys}
        for key in present:
            if key in self.keys and key in dtypes and dtypes[key] != pl.Null:
                self.types.setdefault(key, set()).add(dtypes[key])

    def finish(self, notes: list[str]) -> dict[str, pl.DataType]:
        """Settle the output columns (name -> dtype, in first-seen order), adding notes for decisions."""
        kept = [k for k, c in self.keys.items() if not self.overflow or c == self.records]
        for key in kept:
            name = self._rename(key, notes)
            dtypes = self.types.get(key, set())
            self.sources[name] = key
            if not dtypes:
                self.columns[name] = pl.Null()
            elif len(dtypes) == 1 and pl.Object not in dtypes:
                self.columns[name] = next(iter(dtypes))
            elif (common := _common_type(dtypes)) is not None:
                self.columns[name] = common
            else:
                self.columns[name] = JSON_TEXT
                self.json_text.add(name)
                notes.append(f"column {key} mixes value types; it is carried as JSON text")
        if self.overflow:
            name = EXTRA
            while name in self.columns or name in self.core:
                name += "_input"
            self.extra = name
            self.columns[name] = JSON_TEXT
            notes.append(
                f"records carry more than {MAX_CARRIED_COLUMNS} different keys; the keys not every record holds "
                f"are carried as one JSON object per row in column {name}"
            )
        return self.columns

    def _rename(self, key: str, notes: list[str]) -> str:
        if key not in self.core:
            return key
        new = f"{key}_input"
        while new in self.core or new in self.keys:
            new += "_input"
        self.renamed[key] = new
        notes.append(f"input column {key} is carried as {new} ({key} is a normalized column)")
        return new


Observed = tuple[int, dict[str, int], dict[str, pl.DataType]]  # valid records, key -> records holding it, dtypes


def observe(batch: Batch, take: list[int], consumed: set[str]) -> Observed:
    """What :meth:`CarriedSchema.merge` needs of one batch: its valid records' count, how many of them hold each
    carried key (first-seen order) and each key's type over the batch. A pure function of the batch, so pass 1
    can run it in worker processes. A batch of more than MAX_CARRIED_COLUMNS keys types only the keys each of
    its records holds: the merge keeps no other (past that many keys, only keys every record holds stay)."""
    taken = sorted(set(take))
    if not taken:
        return 0, {}, {}
    if batch.frame is not None:
        present = {name: len(taken) for name in batch.frame.columns if name not in consumed}
        return len(taken), present, {name: batch.frame.schema[name] for name in present}
    values = _values(batch, taken)
    present = {}
    # Records mostly share one key order: count each order once (first-seen key order is kept).
    for keys, count in Counter(map(tuple, values)).items():
        for key in keys:
            if key not in consumed:
                present[key] = present.get(key, 0) + count
    typed = present if len(present) <= MAX_CARRIED_COLUMNS else [k for k, c in present.items() if c == len(taken)]
    # The type is inferred over the batch's values, as pass 2 builds the column.
    dtypes = {key: carried_column(key, [v.get(key) for v in values]).dtype for key in typed}
    return len(taken), present, dtypes


def carried_frame(schema: CarriedSchema, batch: Batch, take: list[int], consumed: set[str]) -> pl.DataFrame:
    """The carried columns of the rows ``take`` (indices into the batch, repeated for multi-response records),
    built to the settled schema; ``consumed``: the keys the batch's format reads."""
    n = len(take)
    columns: list[pl.Series] = []
    if batch.frame is not None:
        frame = batch.frame[take]
        for name, dtype in schema.columns.items():
            key = schema.sources.get(name)
            values = frame[key] if key is not None and key in frame.columns else None  # extra: nulls
            columns.append(_conform(name, dtype, name in schema.json_text, values, n))
    else:
        records = _values(batch, take)
        for name, dtype in schema.columns.items():
            key = schema.sources.get(name)
            if key is None:
                continue
            raw = [r.get(key) for r in records]
            if name in schema.json_text:
                columns.append(pl.Series(name, _json_texts(raw), dtype=pl.String))
            elif dtype == pl.Null:
                columns.append(pl.Series(name, [None] * n, dtype=pl.Null))
            else:
                columns.append(_conform(name, dtype, False, _typed(name, raw, dtype), n))
        if schema.extra is not None:
            known = set(schema.sources.values())
            extras = [{k: v for k, v in r.items() if k not in known and k not in consumed} for r in records]
            columns.append(pl.Series(schema.extra, [_json(e) if e else None for e in extras], dtype=pl.String))
    return pl.DataFrame(columns) if columns else pl.DataFrame()


def _values(batch: Batch, take: list[int]) -> list[dict[str, Any]]:
    """The values of records ``take`` (every record of a batch with none unreadable: the list itself)."""
    if len(take) == len(batch.values) and not batch.unreadable and take == list(range(len(take))):
        return batch.values  # type: ignore[return-value]
    return [batch.values[i] or {} for i in take]


def _common_type(dtypes: set[pl.DataType]) -> pl.DataType | None:
    """One type for batches that inferred several: numbers -> the wider number; structs (fields unioned)
    and lists -> their common type; anything else (a string here, a number there) -> None (JSON text)."""
    if pl.Object in dtypes:
        return None
    families = {"number" if d.is_numeric() else type(d).__name__ for d in dtypes}
    if len(families) != 1 or not families <= {"number", "Struct", "List"}:
        return None
    try:
        frames = [pl.DataFrame(schema={"c": d}) for d in dtypes]
        return pl.concat(frames, how="vertical_relaxed").schema["c"]
    except (pl.exceptions.PolarsError, ValueError):
        return None


def _conform(name: str, dtype: pl.DataType, as_json: bool, values: pl.Series | None, n: int) -> pl.Series:
    if values is None:
        return pl.Series(name, [None] * n, dtype=dtype)
    if as_json:
        return pl.Series(name, _json_texts(values.to_list()), dtype=pl.String)
    if values.dtype == dtype:
        return values.alias(name)
    if values.dtype.is_numeric() and dtype.is_numeric():
        return values.alias(name).cast(dtype)
    return _typed(name, values.to_list(), dtype)  # structs and lists: built by field name, not position


def _typed(name: str, values: list[Any], dtype: pl.DataType) -> pl.Series:
    """A column of Python values built to ``dtype`` (missing struct fields are null)."""
    arrow_type = pl.Series(dtype=dtype).to_arrow().type
    series = pl.from_arrow(pa.array(values, type=arrow_type))
    assert isinstance(series, pl.Series)
    return series.alias(name).cast(dtype)


def _json_texts(values: Iterable[Any]) -> list[str | None]:
    return [None if v is None else _json(v) for v in values]


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
