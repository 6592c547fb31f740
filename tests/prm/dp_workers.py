"""What each rank runs in the PRM data-parallel test (module level, so spawned processes can import it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from rmdata.distributed import World, init_distributed
from rmdata.train.steps import train_prm
from tests.core_helpers import build_tiny
from tests.prm.models import step_examples

ROW_TOKENS = 64  # one solution per packed row: 4 rows, 2 per step, so each of 2 ranks trains one row a step


def train_run(world: World | None) -> dict[str, Any]:
    built = build_tiny(seed=3)
    examples = step_examples(built)
    losses = train_prm(
        built.model, examples, max_packed_length=ROW_TOKENS, rows_per_step=2, epochs=2, lr=3e-3, world=world
    )
    return {"losses": losses, "weights": {n: p.detach().clone() for n, p in built.model.named_parameters()}}


def train_on_rank(rank: int, out: Path) -> None:
    torch.save(train_run(init_distributed("cpu")), f"{out}.{rank}.pt")
