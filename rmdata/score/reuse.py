"""Rewards reused from earlier ``rmdata score`` outputs (``--reuse DIR``): only new or changed rows are scored.

A reward is reusable when it was computed for the same ``response_id`` (a hash of exactly the prompt and the
response) under the same *score key*: the model fingerprint (weights, tokenizer files with the chat template,
score rule), ``max_length``, dtype and device. The key is read from each directory's ``manifest.json``; a
directory written by a several-model run (``models/<name>/``) offers each of its models. A directory with no
model of this run's key is refused, naming what differs, so scores of another model are never mixed in.

Reused values (reward, ``num_tokens``, ``truncated``) are copied bit for bit from the committed shards the
manifest lists (a killed run's shards count too). Memory: 22 bytes per distinct reused row
(``rmdata.score.dedup.SeenIds``). Nothing here imports torch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from rmdata.errors import RmdataError
from rmdata.score.dedup import SeenIds, Values, id_keys
from rmdata.score.shards import MANIFEST

MODELS_DIR = "models"  # a several-model output keeps each model's own score directory here
VALUE_COLUMNS = ["response_id", "reward", "num_tokens", "truncated"]


def score_key(manifest: dict[str, Any]) -> dict[str, Any]:
    """What must match for a stored reward to equal a fresh one: fingerprint, max_length, dtype, device."""
    model, settings = manifest.get("model", {}), manifest.get("settings", {})
    return {
        "fingerprint": model.get("fingerprint"),
        "max_length": settings.get("max_length"),
        "dtype": model.get("dtype"),
        "device": model.get("device"),
    }


@dataclass
class ReuseStore:
    """Rewards of earlier runs by content id; ``sources`` names the directories they came from."""

    seen: SeenIds = field(default_factory=SeenIds)
    sources: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.seen)

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, Values]:
        """``(found, values)`` per ``[n]`` uint64 key (zeros where not found)."""
        if not len(self.seen):
            return np.zeros(len(keys), dtype=bool), Values.empty(len(keys))
        return self.seen.values(keys)

    def add_directory(self, directory: Path, manifest: dict[str, Any]) -> None:
        """Every committed shard's values (ids already held keep their first value)."""
        for entry in manifest.get("shards", {}).values():
            path = directory / entry["file"]
            if not path.is_file():
                continue
            frame = pl.read_parquet(path, columns=VALUE_COLUMNS).unique(
                "response_id", keep="first", maintain_order=True
            )
            keys = id_keys(frame["response_id"].to_list())
            new = self.seen.homes(keys) < 0
            values = Values(frame["reward"].to_numpy(), frame["num_tokens"].to_numpy(), frame["truncated"].to_numpy())
            self.seen.add(keys[new], 0, values.take(np.flatnonzero(new)))
        self.sources.append(str(directory))


def candidates(directory: Path) -> list[tuple[Path, dict[str, Any]]]:
    """``(score directory, manifest)`` of ``directory`` itself and of each model of a several-model output."""
    found = []
    for place in [directory, *sorted((directory / MODELS_DIR).glob("*"))]:
        manifest = _read_manifest(place)
        if manifest is not None and manifest.get("kind") == "scores" and "model" in manifest:
            found.append((place, manifest))
    return found


def check_reuse_dirs(dirs: Sequence[str], keys: Sequence[dict[str, Any]]) -> None:
    """Refuse a ``--reuse`` directory that holds scores of none of ``keys`` (this run's models), saying why."""
    for name in dirs:
        directory = Path(name)
        offered = candidates(directory)
        if not offered:
            raise RmdataError(
                f"--reuse {directory}: not an rmdata score output (no manifest.json of kind scores); "
                "name a directory `rmdata score` wrote"
            )
        if not any(score_key(m) == key for _, m in offered for key in keys):
            have = score_key(offered[0][1])
            want = keys[0]
            diff = ", ".join(f"{k} {have[k]} (this run: {want[k]})" for k in want if have[k] != want[k])
            raise RmdataError(
                f"--reuse {directory}: its scores were computed under another score key ({diff}); they would "
                "differ from a fresh score: drop it from --reuse, or score with the same model and settings"
            )


def load_store(dirs: Sequence[str], key: dict[str, Any]) -> ReuseStore:
    """The rewards under ``key`` from every ``--reuse`` directory (first directory first)."""
    store = ReuseStore()
    for name in dirs:
        for place, manifest in candidates(Path(name)):
            if score_key(manifest) == key:
                store.add_directory(place, manifest)
    return store


def _read_manifest(directory: Path) -> dict[str, Any] | None:
    try:
        value = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
