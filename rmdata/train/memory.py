"""Giving freed memory back to the OS between packed rows, and reading the process's memory figures.

Why. On CPU, torch allocates tensors with the C library's ``malloc``. glibc serves allocations under its
mmap threshold (which rises, after the first large free, up to 32 MiB: every activation of a 135M model at
2,048 tokens) from its heap, and a heap only shrinks from its top. A forward pass keeps some tensors (saved
activations, checkpointed layer inputs) between many it frees, so the freed space is fragmented and stays
resident: measured on SmolLM2-135M LoRA with gradient checkpointing, a 2,048-token row left 3.3 GB resident
for ~1.2 GB live (benchmarks/RESULTS.md, 2026-12-02). ``malloc_trim(0)`` returns the free pages inside the
heap; called after each row's backward it costs ~0.2 CPU s (under 1% of a row) and keeps the next row from
stacking on the last one's fragments.

Forcing every large tensor onto its own mmap (``MALLOC_MMAP_THRESHOLD_=1048576`` in the environment) keeps
resident memory at the live figure (1.4 GB in the same run) but page-faults every new tensor: 70% more CPU
time per row there, so rmdata does not set it; it is a user's choice for a machine short of memory.

Nothing here changes a number the training computes; off glibc (macOS, musl) :func:`release_freed_memory`
does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import resource
import sys
from functools import cache
from pathlib import Path


@cache
def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018  (glibc only: musl has no such symbol)
        return libc
    except (OSError, AttributeError):
        return None


def release_freed_memory() -> bool:
    """Return the C heap's free pages to the OS (glibc ``malloc_trim(0)``); False where there is no glibc."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def rss_mib() -> float:
    """Resident memory of this process now, in MiB (Linux ``/proc``; 0.0 elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return pages * resource.getpagesize() / 2**20


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024
