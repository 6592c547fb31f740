"""Identical (prompt, response) rows are scored once per run: ``response_id`` is a hash of exactly that pair.

Two levels, one rule. Inside a block (``rmdata.score.shards``) :func:`unique_rows` folds copies of a row onto
its first occurrence. Across blocks, :class:`SharedScores` holds the content ids that occur in more than one
block, each with its *home*: the block of its first occurrence in the run. The home block scores the id (in
its own batches, like any of its rows); every later block copies the home's reward, ``num_tokens`` and
``truncated`` bit for bit instead of scoring the row again.

Memory stays bounded: the first (validating) pass records each valid row's content id as a 64-bit integer
(``rmdata.data.row_keys``: the id itself, not a lossy hash) in a numpy array, 8 bytes a row; one sort finds
the ids that occur in more than one block, and only those get a slot (26 bytes each) for their values. Nothing
here imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


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
class SharedScores:
    """Content ids found in more than one block, their home block, and their values once scored or read."""

    ids: np.ndarray  # uint64 [m], sorted
    home: np.ndarray  # int64 [m]: block of the id's first row
    unique: int  # distinct content ids in the whole run
    reward: np.ndarray  # float32 [m]
    num_tokens: np.ndarray  # int32 [m]
    truncated: np.ndarray  # bool [m]
    known: np.ndarray  # bool [m]: values filled in

    @classmethod
    def find(cls, keys: np.ndarray, shard_rows: int) -> SharedScores:
        """The ids of ``keys`` (one per row, in row order) whose rows fall in more than one block of ``shard_rows``.

        Example: keys ``[7, 5, 7, 5, 9, 7]`` with 2 rows a block (blocks 0 0 1 1 2 2): 7 occurs in blocks 0, 1
        and 2 (home 0); 5 in blocks 0 and 1 (home 0); 9 only in block 2 (not shared).
        """
        order = np.argsort(keys, kind="stable")  # a key's rows stay in row order: first and last are its ends
        ordered = keys[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if len(keys) else np.empty(0, np.int64)
        ends = np.r_[starts[1:], len(keys)] - 1
        first_block = order[starts] // shard_rows
        spread = first_block != order[ends] // shard_rows
        m = int(spread.sum())
        return cls(
            ids=ordered[starts[spread]],
            home=first_block[spread].astype(np.int64),
            unique=len(starts),
            reward=np.zeros(m, dtype=np.float32),
            num_tokens=np.zeros(m, dtype=np.int32),
            truncated=np.zeros(m, dtype=bool),
            known=np.zeros(m, dtype=bool),
        )

    def slots(self, keys: np.ndarray) -> np.ndarray:
        """Per key, its slot in :attr:`ids`, or -1 when the key is not shared."""
        where = np.searchsorted(self.ids, keys)
        inside = where < len(self.ids)
        hit = np.zeros(len(keys), dtype=bool)
        hit[inside] = self.ids[where[inside]] == keys[inside]
        return np.where(hit, where, -1)

    def home_of(self, slots: np.ndarray, default: int) -> np.ndarray:
        """Per slot (from :meth:`slots`), its home block; ``default`` for -1 (a key not shared)."""
        homes = np.full(len(slots), default, dtype=np.int64)
        hit = slots >= 0
        homes[hit] = self.home[slots[hit]]
        return homes

    def store(self, slots: np.ndarray, reward: np.ndarray, num_tokens: np.ndarray, truncated: np.ndarray) -> None:
        self.reward[slots] = reward
        self.num_tokens[slots] = num_tokens
        self.truncated[slots] = truncated
        self.known[slots] = True
