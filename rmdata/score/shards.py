"""Shards and the manifest: how a scoring run is cut into units that commit atomically and resume exactly.

Shard rule (fixed, independent of how many processes score): the valid input rows, in input order, are cut
into consecutive blocks of ``shard_rows`` rows (``SHARD_ROWS`` by default, recorded in the manifest). Block
``k`` is written to ``data/train-{k:05d}.parquet``; its identity is ``(k, digest)`` where ``digest`` is a
sha256 over the block's content ids (``response_id`` of each row, in order). Batches are planned inside the
block only (the bounded sort window), so a shard is a pure function of its rows and of the run-wide
duplicate rule below: the same input gives the same bytes whatever the number of processes.

Run-wide dedup (``rmdata.score.dedup``): a content id's *home* is the block of its first row in the run. The
home block scores it; a later block holding the same (prompt, response) copies the home's reward,
``num_tokens`` and ``truncated`` bit for bit, from memory when this process scored the home, else from the
home's committed shard file. A block's copies always come from strictly earlier blocks.

Sharded scoring (``torchrun``): block ``k`` is scored and committed by rank ``k % world_size``; each rank takes
its blocks in increasing order and first scores everything of a block that it does not copy, then waits
for the homes of its copies to be committed (by polling their owner's manifest part). No deadlock: the
lowest uncommitted block's homes are all lower, hence committed, so its rank never waits. Because neither
the blocks nor their bytes depend on ``world_size``, a run killed with N processes resumes with any other N.

Commit: a shard is written to a temporary file beside it, fsynced and renamed into place
(``rmdata.io.atomic_path``); then the manifest, which lists every committed shard with its digest and row
counts, is rewritten the same way. One process writes ``manifest.json`` itself; under torchrun each rank
writes only its own part ``.manifest-parts/rank-R-of-N.json`` (same identity, its shards), and rank 0 merges
every part into ``manifest.json`` once all ranks are done. Opening a manifest merges ``manifest.json`` with
every part left by a killed run of any size. A kill at any moment leaves each shard either listed and whole,
or not listed (a renamed-but-unlisted shard is simply written again). Resume skips listed shards whose digest
matches the block the input gives now; a different digest means the input changed, and is refused. A rank
that fails while others may wait on it leaves ``.manifest-parts/stopped-rank-R.txt`` so they stop too.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from rmdata.dataset_dir import DATA_DIR, shard_path
from rmdata.errors import RmdataError
from rmdata.io import write_text_atomic

SHARD_ROWS = 4096
MANIFEST = "manifest.json"
PARTS_DIR = ".manifest-parts"  # per-rank manifest parts of a sharded run, merged by rank 0 at the end


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
    """``manifest.json``: what the run is (model, input, settings), and which shards are committed.

    ``rank`` and ``world_size`` name this process in a sharded run; with ``world_size > 1`` commits go to
    this rank's part file (see the module docstring) and :meth:`merge_parts` folds every part in at the end.
    """

    def __init__(
        self,
        directory: Path,
        identity: dict[str, Any],
        data: dict[str, Any] | None = None,
        *,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.directory = directory
        self.path = directory / MANIFEST
        self.data: dict[str, Any] = data or {**identity, "shards": {}, "resumed_rows": 0, "complete": False}
        self.rank, self.world_size = rank, world_size
        self.own: dict[str, Any] = {}  # the shards this rank's part lists (world_size > 1)

    @property
    def parts(self) -> Path:
        return self.directory / PARTS_DIR

    def part_path(self, rank: int) -> Path:
        return self.parts / f"rank-{rank}-of-{self.world_size}.json"

    @classmethod
    def open(
        cls, directory: Path, identity: dict[str, Any], *, resume: bool, rank: int = 0, world_size: int = 1
    ) -> Manifest:
        """The manifest to continue (same identity; every part of a killed run merged in), or a fresh one; a
        different run's is refused."""
        fresh = cls(directory, identity, rank=rank, world_size=world_size)
        if not resume:
            return fresh
        sources = [directory / MANIFEST, *sorted(fresh.parts.glob("rank-*.json"))]
        base: dict[str, Any] | None = None
        shards: dict[str, Any] = {}
        for source in sources:
            old = _read_json(source)
            if old is None:
                continue
            for key in ("model", "input", "settings"):
                if old.get(key, {}).get("fingerprint") != identity[key]["fingerprint"]:
                    raise RmdataError(
                        f"{directory} holds scores of another {key} ({_describe(old.get(key))}, not "
                        f"{_describe(identity[key])}); choose another --output, or pass --no-resume to replace them"
                    )
            base = base or old
            shards.update(old.get("shards", {}))
        if base is None:
            return fresh
        base.update({k: identity[k] for k in identity if k not in ("model", "input", "settings")})
        base.update(shards=shards, complete=False)
        manifest = cls(directory, identity, base, rank=rank, world_size=world_size)
        if world_size > 1:
            manifest.own = dict((_read_json(manifest.part_path(rank)) or {}).get("shards", {}))
        return manifest

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
        """Write shard ``index`` atomically, then list it in the manifest (or this rank's part; also atomically)."""
        path = shard_path(self.directory, index)
        from rmdata.io import write_parquet

        write_parquet(frame, path)
        listed = {"file": f"{DATA_DIR}/{path.name}", **entry}
        self.data["shards"][str(index)] = listed
        if self.world_size == 1:
            self.save()
            return
        self.own[str(index)] = listed
        part = {k: self.data[k] for k in ("kind", "model", "input", "settings")}
        write_text_atomic(self.part_path(self.rank), json.dumps({**part, "shards": self.own}, indent=1) + "\n")

    def wait_committed(self, index: int, digest: str, *, poll_s: float = 0.02) -> dict[str, Any]:
        """The entry of shard ``index``, waiting for its owner rank to commit it (see the module docstring).

        Raises when a rank left a stopped note, so no rank waits on one that failed.
        """
        owner = self.part_path(rank_of(index, self.world_size))
        while True:
            entry = self.committed(index, digest)
            if entry is not None:
                return entry
            if self.world_size == 1 or owner == self.part_path(self.rank):
                raise RmdataError(f"{self.directory}: shard {index} is not committed; this is a bug in rmdata")
            stopped = sorted(self.parts.glob("stopped-rank-*.txt"))
            if stopped:
                raise RmdataError(stopped[0].read_text(encoding="utf-8").strip())
            self.data["shards"].update((_read_json(owner) or {}).get("shards", {}))
            time.sleep(poll_s)

    def note_stopped(self, message: str) -> None:
        """Tell ranks waiting on this one's shards that it stopped (read by :meth:`wait_committed`)."""
        write_text_atomic(self.parts / f"stopped-rank-{self.rank}.txt", f"rank {self.rank} stopped: {message}\n")

    def merge_parts(self) -> None:
        """Rank 0, once every rank is done: list every part's shards in ``manifest.json``, then drop the parts."""
        for part in sorted(self.parts.glob("rank-*.json")):
            self.data["shards"].update((_read_json(part) or {}).get("shards", {}))
        self.save()
        shutil.rmtree(self.parts, ignore_errors=True)

    def save(self) -> None:
        write_text_atomic(self.path, json.dumps(self.data, indent=2, ensure_ascii=False) + "\n")

    def remove_stale(self, shards: int) -> None:
        """Delete temporary files and stopped notes of a killed run, and shard files beyond ``shards`` blocks."""
        data = self.directory / DATA_DIR
        for stray in [*data.glob(".*.tmp"), *self.parts.glob(".*.tmp"), *self.parts.glob("stopped-rank-*.txt")]:
            stray.unlink(missing_ok=True)
        expected = {shard_path(self.directory, k).name for k in range(shards)}
        for file in data.glob("*.parquet"):
            if file.name not in expected:
                file.unlink()


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _describe(part: dict[str, Any] | None) -> str:
    if not part:
        return "unknown"
    name = part.get("path") or part.get("paths") or ""
    return f"{name} {part.get('fingerprint', '')}".strip()
