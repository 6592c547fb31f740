"""Identical (prompt, response) rows are scored once per run: ``response_id`` is a hash of exactly that pair.

Two levels, one rule. Inside a block (``rmdata.score.shards``) :func:`unique_rows` folds copies of a row onto
its first occurrence. Across blocks, :class:`SeenIds` holds every content id met so far in the run with its
*home*: the block of its first occurrence. The home block scores the id (in its own batches, like any of its
rows); every later block copies the home's reward, ``num_tokens`` and ``truncated`` bit for bit instead of
scoring the row again.

The ids are collected while the blocks stream by, from the ``response_id`` column the scoring pass builds
anyway, so the validating first pass over the input computes no ids (at 3M rows that was ~15 s before the
first shard). A block's ids are only ever looked up among earlier blocks', which is all a copy needs.

Memory: 22 bytes per distinct row (the id as a 64-bit integer, which is the id itself, not a lossy hash; its
home; its values), in sorted runs merged as they grow (a log-structured merge: each id is moved O(log n)
times, a lookup is one binary search per run). Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def id_keys(ids: Sequence[str]) -> np.ndarray:
    """``response_id`` strings (16 hex characters) as ``[n]`` uint64 keys."""
    return np.fromiter((int(i, 16) for i in ids), dtype=np.uint64, count=len(ids))


def unique_rows(keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(first, inverse)``: indices of each key's first row (in row order) and, per row, its unique's index.

    ``values_of_rows = values_of_uniques[inverse]`` writes one score back to every copy.
    """
    index: dict[str, int] = {}
    first: list[int] = []
    inverse = np.empty(len(keys), dtype=np.int64)
    for row, key in enumerate(keys):
        slot = index.get(key)
        if slot is None:
            slot = index[key] = len(first)
            first.append(row)
        inverse[row] = slot
    return np.asarray(first, dtype=np.int64), inverse


@dataclass
class Values:
    """What a scored row contributes, per id: ``[n]`` float32 reward, int32 ``num_tokens``, bool ``truncated``."""

    reward: np.ndarray
    num_tokens: np.ndarray
    truncated: np.ndarray

    @classmethod
    def empty(cls, n: int) -> Values:
        return cls(np.zeros(n, np.float32), np.zeros(n, np.int32), np.zeros(n, bool))

    def take(self, index: np.ndarray) -> Values:
        return Values(self.reward[index], self.num_tokens[index], self.truncated[index])

    def put(self, index: np.ndarray, other: Values) -> None:
        self.reward[index] = other.reward
        self.num_tokens[index] = other.num_tokens
        self.truncated[index] = other.truncated


@dataclass
class _Run:
    """One sorted run of ids, their homes, their values, and whether the values are known yet."""

    keys: np.ndarray  # uint64 [m], sorted, unique
    home: np.ndarray  # int32 [m]
    values: Values
    known: np.ndarray  # bool [m]

    def __len__(self) -> int:
        return len(self.keys)


class SeenIds:
    """Every content id seen so far in a run, its home block, and its values once scored or read.

    Example: blocks ``[7, 5]``, ``[7, 9]``: after :meth:`add` of block 0, :meth:`homes` of block 1's keys is
    ``[0, -1]``: 7 is a copy (home 0), 9 is new and block 1 adds it.
    """

    def __init__(self) -> None:
        self._runs: list[_Run] = []

    def __len__(self) -> int:
        return sum(len(run) for run in self._runs)

    def homes(self, keys: np.ndarray) -> np.ndarray:
        """``[n]`` int64: each key's home block, -1 for a key not seen yet."""
        which, where = self._locate(keys)
        homes = np.full(len(keys), -1, dtype=np.int64)
        for n, run in enumerate(self._runs):
            hit = which == n
            homes[hit] = run.home[where[hit]]
        return homes

    def add(self, keys: np.ndarray, block: int, values: Values | None = None) -> None:
        """Record ids not seen before (unique among themselves) as homed in ``block``; ``values``: their scores,
        or None when this process did not score them (another rank's block, or one a killed run committed)."""
        if not len(keys):
            return
        order = np.argsort(keys, kind="stable")
        known = np.full(len(keys), values is not None)
        vals = values.take(order) if values is not None else Values.empty(len(keys))
        self._runs.append(_Run(keys[order], np.full(len(keys), block, dtype=np.int32), vals, known))
        while len(self._runs) > 1 and len(self._runs[-2]) <= 2 * len(self._runs[-1]):
            self._runs[-2:] = [_merge(self._runs[-2], self._runs[-1])]

    def fill(self, keys: np.ndarray, values: Values, block: int) -> None:
        """Set the values of those ``keys`` whose home is ``block`` (read back from its committed shard)."""
        which, where = self._locate(keys)
        for n, run in enumerate(self._runs):
            rows = np.flatnonzero(which == n)
            rows = rows[run.home[where[rows]] == block]
            run.values.put(where[rows], values.take(rows))
            run.known[where[rows]] = True

    def values(self, keys: np.ndarray) -> tuple[np.ndarray, Values]:
        """``(known, values)``: per key, whether it was seen with its values known, and those values (zeros where
        not known)."""
        which, where = self._locate(keys)
        known = np.zeros(len(keys), dtype=bool)
        out = Values.empty(len(keys))
        for n, run in enumerate(self._runs):
            hit = np.flatnonzero(which == n)
            known[hit] = run.known[where[hit]]
            out.put(hit, run.values.take(where[hit]))
        return known, out

    def _locate(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per key, ``(run, position)`` of its entry; run -1 for a key not seen (an id is in one run at most)."""
        which = np.full(len(keys), -1, dtype=np.int64)
        where = np.zeros(len(keys), dtype=np.int64)
        for n, run in enumerate(self._runs):
            at = np.minimum(np.searchsorted(run.keys, keys), len(run) - 1)
            hit = run.keys[at] == keys
            which[hit], where[hit] = n, at[hit]
        return which, where


def _merge(a: _Run, b: _Run) -> _Run:
    """Two runs with disjoint ids -> one sorted run (a stable sort of two sorted runs is a linear merge)."""
    order = np.argsort(np.concatenate([a.keys, b.keys]), kind="stable")

    def joined(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.concatenate([x, y])[order]

    values = Values(
        joined(a.values.reward, b.values.reward),
        joined(a.values.num_tokens, b.values.num_tokens),
        joined(a.values.truncated, b.values.truncated),
    )
    return _Run(joined(a.keys, b.keys), joined(a.home, b.home), values, joined(a.known, b.known))
