"""Run a function on 2 gloo ranks inside pytest: torch.multiprocessing spawn with a ``file://`` rendezvous."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def run_ranks(fn: Callable[..., None], tmp_path: Path, *args: Any, world_size: int = 2) -> None:
    """Call ``fn(rank, *args)`` in ``world_size`` fresh processes that share a gloo process group."""
    init_file = tmp_path / "process-group"
    mp.spawn(_entry, args=(fn, world_size, str(init_file), args), nprocs=world_size, join=True)


def _entry(rank: int, fn: Callable[..., None], world_size: int, init_file: str, args: tuple[Any, ...]) -> None:
    os.environ.update(HF_HUB_OFFLINE="1", RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        fn(rank, *args)
    finally:
        dist.destroy_process_group()
