"""Writing files safely: every output appears whole or not at all.

Each writer writes to a temporary file in the destination's directory, flushes it to disk, then renames
it over the destination (``os.replace`` is atomic within one filesystem). A crash or Ctrl-C mid-write
leaves the old file, or none, never half of one.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

    from rmdata.data.drops import Drop


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


def json_line(row: Mapping[str, Any]) -> str:
    """One JSON line (no newline), UTF-8 text kept as is; values JSON cannot hold are written as their ``str``.

    A string that is not valid Unicode (a lone surrogate such as ``"\\ud800"``, which JSON can spell) is
    written as its ``\\u`` escape, so the line is valid UTF-8 and parses back to the same value.
    """
    line = json.dumps(row, ensure_ascii=False, default=str)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(row, ensure_ascii=True, default=str)
    return line


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]]) -> int:
    """Write one JSON object per line (see :func:`json_line`), atomically; returns the number of rows."""
    count = 0
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json_line(row) + "\n")
            count += 1
    return count


def write_rejects(path: str | os.PathLike[str], rejects: Iterable[Drop | Mapping[str, Any]]) -> int:
    """Write rejected records, one JSON object per line, atomically; returns how many.

    A :class:`~rmdata.data.drops.Drop` is written as its ``to_json()``: ``source`` (``file:line`` or
    ``file:row``), ``reason``, ``message``, and when known ``errors`` (field and message of each broken rule),
    ``record`` (the raw record) and ``raw`` (the line that could not be parsed). Mappings are written as given.
    """
    from rmdata.data.drops import Drop

    return write_jsonl(path, (r.to_json() if isinstance(r, Drop) else r for r in rejects))


def write_parquet(frame: pl.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write a polars DataFrame to Parquet (zstd) atomically."""
    with atomic_path(path) as tmp:
        frame.write_parquet(tmp, compression="zstd")
