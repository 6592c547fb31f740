"""Writing files safely: every output appears whole or not at all.

Each writer writes to a temporary file in the destination's directory, flushes it to disk, then renames
it over the destination (``os.replace`` is atomic within one filesystem). A crash or Ctrl-C mid-write
leaves the old file, or none, never half of one.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmdata.errors import RmdataError

if TYPE_CHECKING:
    import polars as pl


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds it replaces ``path``, else it is removed.

    Example: ``with atomic_path("out/scores.parquet") as tmp: frame.write_parquet(tmp)``
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_directory(out: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a fresh directory beside ``out``; on success it replaces ``out``, on error it is removed."""
    if out.exists() and not overwrite:
        raise RmdataError(f"{out} already exists; choose another directory or remove it first")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old)
        else:
            tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]]) -> int:
    """Write one JSON object per line, atomically; returns the number of rows.

    Values JSON cannot hold (dates, decimals, bytes from Parquet columns) are written as their ``str``.
    """
    count = 0
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            count += 1
    return count


def write_rejects(path: str | os.PathLike[str], rejects: Iterable[Mapping[str, Any]]) -> int:
    """Write rejected records, one JSON object per line, atomically; returns how many.

    Each reject carries at least ``source`` (``file:line`` or ``file:row``), ``reason`` and ``message``;
    rejects from :func:`rmdata.data.load.load_dataset_records` also hold ``errors`` (field and message of
    each broken rule) and ``record`` (the raw record, or the raw line when it could not be parsed).
    """
    return write_jsonl(path, rejects)


def write_parquet(frame: pl.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write a polars DataFrame to Parquet (zstd) atomically."""
    with atomic_path(path) as tmp:
        frame.write_parquet(tmp, compression="zstd")
