"""Input files -> raw records, each with its location, streamed in batches.

Readers: JSON lines (``.jsonl``/``.ndjson``, also ``.gz`` and ``.zst`` in any case, read line by line; LF,
CRLF or CR-only line ends), JSON arrays (``.json``; a ``.json`` file whose first non-blank byte is not ``[`` is
read as JSON lines), Parquet and CSV (polars lazy scans, streamed in batches; CSV cells are read as text), the
Arrow files of a ``datasets`` ``save_to_disk`` directory (memory-mapped), and a Hub dataset opened by
:mod:`rmdata.data.hub`. Which files to read: :mod:`rmdata.data.inputs`.

JSON files and what their reader refuses: :mod:`rmdata.data.jsonl`.

Locations: ``file:line`` (1-based) for JSON lines; ``file:row`` (0-based, as in ``frame[row]`` or
``dataset[row]``) for every other reader. A line that cannot be read becomes a record with an error, so
the loader can report it beside the records that break a format rule; a file that cannot be opened, or
that holds no records at all, raises :class:`RmdataError`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

import polars as pl

from rmdata.data.batch import Batch, RawRecord
from rmdata.data.inputs import InputInfo, file_kind
from rmdata.data.jsonl import json_batches
from rmdata.errors import RmdataError

__all__ = ["Batch", "RawRecord", "iter_batches"]


def iter_batches(info: InputInfo, batch_size: int = 2048) -> Iterator[Batch]:
    """Every record of one input, in file order, ``batch_size`` records at a time."""
    if info.layout == "save_to_disk":
        yield from _arrow_batches(info.path, info.files, batch_size)
        return
    if info.layout == "hub-id":
        yield from _frame_batches(info.path, _hub_frames(info, batch_size))
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
            yield from _nonempty(json_batches(path, kind, batch_size), path)


def _guard(path: str, what: str, scan: pl.LazyFrame, batch_size: int) -> Iterator[pl.DataFrame]:
    """Stream a lazy scan in batches; a file polars cannot read becomes one RmdataError."""
    try:
        yield from scan.collect_batches(chunk_size=batch_size)
    except (pl.exceptions.PolarsError, OSError) as err:
        size = os.path.getsize(path) if os.path.exists(path) else 0
        raise RmdataError(
            f"{path}: cannot read {what} ({size:,} bytes): {str(err).splitlines()[0]}; is the file truncated "
            "or damaged (was it cut off while being written)?"
        ) from err


def _nonempty(batches: Iterator[Batch], path: str) -> Iterator[Batch]:
    seen = False
    for batch in batches:
        seen = True
        yield batch
    if not seen:
        raise RmdataError(f"{path}: empty file, no records in it; remove it from the inputs")


def _frame_batches(path: str, frames: Iterator[pl.DataFrame], csv: bool = False) -> Iterator[Batch]:
    row = 0
    for frame in frames:
        values: list[dict[str, Any] | None] = list(frame.iter_rows(named=True))
        if csv:
            for value in values:
                _numeric_margin(value)  # type: ignore[arg-type]
        yield Batch(values, path, range(row, row + len(values)), frame=frame)
        row += len(values)
    if row == 0:
        raise RmdataError(f"{path}: empty file, no records in it; remove it from the inputs")


def _numeric_margin(value: dict[str, Any]) -> None:
    """CSV cells are text: read a numeric margin as the number it spells (anything else stays and fails)."""
    margin = value.get("margin")
    if isinstance(margin, str):
        with suppress(ValueError):
            value["margin"] = float(margin)


def _hub_frames(info: InputInfo, batch_size: int) -> Iterator[pl.DataFrame]:
    """The rows of a dataset opened by :mod:`rmdata.data.hub`, as frames, from its memory-mapped Arrow cache."""
    for table in info.dataset.with_format("arrow").iter(batch_size=batch_size):
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        yield frame


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
