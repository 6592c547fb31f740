"""Content ids as 64-bit keys: every valid corpus row's ``response_id``, collected by pass 1 in row order.

``response_id`` is 16 hex characters (``rmdata.data.schema``), so its ``uint64`` is the id itself, not a lossy
hash: 8 bytes a row, which lets a consumer such as ``rmdata score`` find run-wide duplicates of a
multi-million-row input with one sort. Pass 1 computes them wherever it runs, worker processes included.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from rmdata.data.formats import Row
from rmdata.data.schema import prompt_id


def id_keys(ids: Sequence[str]) -> np.ndarray:
    """``response_id`` strings (16 hex characters) as ``[n]`` uint64 keys."""
    return np.fromiter((int(i, 16) for i in ids), dtype=np.uint64, count=len(ids))


class RowKeys:
    """The content id of every row added, in order, as uint64 keys.

    Prompt ids are cached (up to ``PROMPT_CACHE`` prompts, then the cache starts over): corpora answer each
    prompt several times, and the prompt's canonical JSON is most of an id's cost.
    """

    PROMPT_CACHE = 65536

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []
        self.prompts: dict[tuple[tuple[str, str], ...], str] = {}

    def add(self, rows: list[Row]) -> None:
        """Key normalized corpus rows (rows of preference pairs have no single response and are skipped)."""
        if not rows or "response" not in rows[0]:
            return
        keys = np.empty(len(rows), dtype=np.uint64)
        sha256 = hashlib.sha256
        for i, row in enumerate(rows):
            key = tuple((m["role"], m["content"]) for m in row["prompt"])
            pid = self.prompts.get(key)
            if pid is None:
                if len(self.prompts) >= self.PROMPT_CACHE:
                    self.prompts.clear()
                pid = self.prompts[key] = prompt_id(row["prompt"])
            # = int(response_id(pid, response), 16), without the hex string and back
            keys[i] = int.from_bytes(sha256(f"{pid}\n{row['response']}".encode()).digest()[:8], "big")
        self.parts.append(keys)

    def extend(self, keys: np.ndarray) -> None:
        """Append keys computed elsewhere (a worker process's part), in row order."""
        if len(keys):
            self.parts.append(keys)

    def keys(self) -> np.ndarray:
        """``[rows]`` uint64, one key per row added."""
        return np.concatenate(self.parts) if self.parts else np.empty(0, dtype=np.uint64)
