"""best-vs-random's seeded draw: a 64-bit hash of (seed, prompt_id, response_id) that rmdata defines itself.

``draw(seed, p, r) = fmix64(fnv1a64(f"{seed}\\n{p}\\n{r}".encode()))``: FNV-1a (64-bit: offset basis
0xcbf29ce484222325, prime 0x100000001b3) over the UTF-8 bytes, then MurmurHash3's 64-bit finalizer
(``h ^= h >> 33; h *= 0xff51afd7ed558ccd; h ^= h >> 33; h *= 0xc4ceb9fe1a85ec53; h ^= h >> 33``), all
modulo 2**64. Unlike polars' ``hash``, which may change between polars versions, this gives the same draw
with any library version, on any machine, for any row order or file split. The finalizer spreads FNV's
weak high bits, so the smallest draw (the one best-vs-random picks) is close to uniform over candidates.
A null id hashes as the empty string.

Vectorized with numpy over the Arrow buffers: one xor-multiply step per byte position, over the rows still
that long (rows sorted by length, so each step is a prefix).
"""

from __future__ import annotations

import numpy as np
import polars as pl

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK = (1 << 64) - 1


def fnv1a64(data: bytes, start: int = FNV_OFFSET) -> int:
    """FNV-1a, 64-bit, of ``data`` (continuing from ``start``): the reference the vectorized form matches."""
    h = start
    for byte in data:
        h = ((h ^ byte) * FNV_PRIME) & MASK
    return h


def fmix64(h: int) -> int:
    """MurmurHash3's 64-bit finalizer."""
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & MASK
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & MASK
    return h ^ (h >> 33)


def draw_one(seed: int, prompt_id: str, response_id: str) -> int:
    """The draw of one response, computed byte by byte in Python (for tests and for reproducing a choice)."""
    return fmix64(fnv1a64(f"{seed}\n{prompt_id}\n{response_id}".encode()))


def _fmix64_array(h: np.ndarray) -> np.ndarray:
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return h


def draws(seed: int, prompt_ids: pl.Series, response_ids: pl.Series) -> pl.Series:
    """``draw(seed, prompt_id, response_id)`` of every row, as UInt64 (equal to :func:`draw_one` row by row)."""
    ids = pl.DataFrame({"p": prompt_ids.cast(pl.String), "r": response_ids.cast(pl.String)})
    keys = ids.select(pl.concat_str([pl.col("p").fill_null(""), pl.col("r").fill_null("")], separator="\n"))
    arrow = (
        keys.to_series().rechunk().to_arrow(compat_level=pl.CompatLevel.oldest())
    )  # large_string: int64 offsets + bytes
    n = len(arrow)
    _, offset_buffer, data_buffer = arrow.buffers()
    offsets = np.frombuffer(offset_buffer, dtype=np.int64)[arrow.offset : arrow.offset + n + 1]
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    order = np.argsort(-lengths, kind="stable")
    starts, longest_first = offsets[:-1][order], lengths[order]
    h = np.full(n, fnv1a64(f"{seed}\n".encode()), dtype=np.uint64)
    prime = np.uint64(FNV_PRIME)
    for position in range(int(longest_first[0]) if n else 0):
        count = int(np.searchsorted(-longest_first, -position, side="left"))  # rows longer than position
        head = h[:count]
        head ^= data[starts[:count] + position].astype(np.uint64)
        head *= prime
    out = np.empty(n, dtype=np.uint64)
    out[order] = _fmix64_array(h)
    return pl.Series("_draw", out, dtype=pl.UInt64)
