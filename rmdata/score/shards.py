"""Shards and the manifest: how a scoring run is cut into units that commit atomically and resume exactly.

Shard rule (fixed, independent of how many processes score): the valid input rows, in input order, are cut
into consecutive blocks of ``shard_rows`` rows (``SHARD_ROWS`` by default, recorded in the manifest). Block
``k`` is written to ``data/train-{k:05d}.parquet``; its identity is ``(k, digest)`` where ``digest`` is a
sha256 over the block's content ids (``response_id`` of each row, in order). A shard is a pure function of
its rows, so the same block always gives the same bytes: batches are planned inside the block only
(the bounded sort window) and duplicates are folded inside it (``rmdata.score.dedup``).

Sharded scoring (``torchrun``, issue 12) takes block ``k`` on rank ``k % world_size``. Because neither the
blocks nor their files depend on ``world_size``, a run killed with N processes resumes with any other N.

Commit: a shard is written to a temporary file beside it, fsynced and renamed into place
(``rmdata.io.atomic_path``); then the manifest, which lists every committed shard with its digest and row
count, is rewritten the same way. A kill at any moment leaves each shard either listed and whole, or not
listed (a renamed-but-unlisted shard is simply written again). Resume skips listed shards whose digest
matches the block the input gives now; a different digest means the input changed, and is refused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from rmdata.dataset_dir import DATA_DIR, shard_path
from rmdata.errors import RmdataError
from rmdata.io import write_text_atomic

SHARD_ROWS = 4096
MANIFEST = "manifest.json"


def content_digest(ids: Sequence[str]) -> str:
    """sha256 over the content ids of a block, in order (first 32 hex chars)."""
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:32]


def blocks(frames: Iterator[pl.DataFrame], shard_rows: int) -> Iterator[pl.DataFrame]:
    """Re-cut a stream of frames into consecutive blocks of exactly ``shard_rows`` rows (the last: fewer)."""
    pending: list[pl.DataFrame] = []
    held = 0
    for frame in frames:
        pending.append(frame)
        held += frame.height
        while held >= shard_rows:
            whole = pl.concat(pending, how="vertical_relaxed") if len(pending) > 1 else pending[0]
            yield whole.slice(0, shard_rows)
            rest = whole.slice(shard_rows)
            pending, held = ([rest] if rest.height else []), rest.height
    if held:
        yield pl.concat(pending, how="vertical_relaxed") if len(pending) > 1 else pending[0]


def rank_of(shard: int, world_size: int) -> int:
    """The rank that scores block ``shard`` in a run of ``world_size`` processes."""
    return shard % world_size


class Manifest:
    """``manifest.json``: what the run is (model, input, settings), and which shards are committed."""

    def __init__(self, directory: Path, identity: dict[str, Any], data: dict[str, Any] | None = None) -> None:
        self.directory = directory
        self.path = directory / MANIFEST
        self.data: dict[str, Any] = data or {**identity, "shards": {}, "resumed_rows": 0, "complete": False}

    @classmethod
    def open(cls, directory: Path, identity: dict[str, Any], *, resume: bool) -> Manifest:
        """The manifest to continue (same identity), or a fresh one; a different run's is refused."""
        try:
            old = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None
        if not resume or old is None:
            return cls(directory, identity)
        for key in ("model", "input", "settings"):
            if old.get(key, {}).get("fingerprint") != identity[key]["fingerprint"]:
                raise RmdataError(
                    f"{directory} holds scores of another {key} ({_describe(old.get(key))}, not "
                    f"{_describe(identity[key])}); choose another --output, or pass --no-resume to replace them"
                )
        old.update({k: identity[k] for k in identity if k not in ("model", "input", "settings")})
        old["complete"] = False
        return cls(directory, identity, old)

    def committed(self, index: int, digest: str) -> dict[str, Any] | None:
        """The entry of shard ``index`` when it is committed whole; refuses a block whose content changed."""
        entry: dict[str, Any] | None = self.data["shards"].get(str(index))
        if entry is None or not (self.directory / entry["file"]).is_file():
            return None
        if entry["digest"] != digest:
            raise RmdataError(
                f"{self.directory}: shard {index} was scored from other rows than the input gives now (content "
                "digest differs); the input changed: choose another --output, or pass --no-resume"
            )
        return entry

    def commit(self, index: int, frame: pl.DataFrame, entry: dict[str, Any]) -> None:
        """Write shard ``index`` atomically, then list it in the manifest (also atomically)."""
        path = shard_path(self.directory, index)
        from rmdata.io import write_parquet

        write_parquet(frame, path)
        self.data["shards"][str(index)] = {"file": f"{DATA_DIR}/{path.name}", **entry}
        self.save()

    def save(self) -> None:
        write_text_atomic(self.path, json.dumps(self.data, indent=2, ensure_ascii=False) + "\n")

    def remove_stale(self, shards: int) -> None:
        """Delete temporary files of a killed run and shard files beyond this run's ``shards`` blocks."""
        data = self.directory / DATA_DIR
        for stray in data.glob(".*.tmp"):
            stray.unlink(missing_ok=True)
        for file in data.glob("*.parquet"):
            if file.name not in {shard_path(self.directory, k).name for k in range(shards)}:
                file.unlink()


def _describe(part: dict[str, Any] | None) -> str:
    if not part:
        return "unknown"
    name = part.get("path") or part.get("paths") or ""
    return f"{name} {part.get('fingerprint', '')}".strip()
