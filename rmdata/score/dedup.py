"""Identical (prompt, response) rows are scored once: ``response_id`` is a hash of exactly that pair."""

from __future__ import annotations

from collections.abc import Sequence

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
