"""What each rank runs in the distributed tests (module level, so spawned processes can import it)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from rmdata.config import LossConfig
from rmdata.distributed import init_distributed
from rmdata.model.sequence_parallel import enable_sequence_parallel
from rmdata.tokens.batching import pack_sequences
from rmdata.train.losses import reward_loss
from rmdata.train.parallel import Parallel
from tests.core_helpers import build_tiny, random_sequences, randomize_head

SPEC = LossConfig(kind="focal", penalty="log_barrier", penalty_weight=0.01)


def row_loss_and_grads(lengths: Sequence[int], sequence_parallel: int, **model: Any) -> dict[str, Any]:
    """Scores, loss and summed gradients of one packed row; SP across the process group when > 1.

    ``model``: ``arch`` and sizes of ``tests.core_helpers.tiny_config`` (``num_kv_heads``).
    """
    arch = model.pop("arch", "llama")
    built = build_tiny(arch, **_sizes(arch, model))
    randomize_head(built.model)
    par = None
    if sequence_parallel > 1:
        world = init_distributed("cpu", sequence_parallel)
        enable_sequence_parallel(built.model, sequence_parallel, world.sp_rank, world.sp_group)
        par = Parallel(world, fsdp=False, device=torch.device("cpu"))
    batch = pack_sequences(random_sequences(lengths, built.reward_token.id))
    scores = built.model(batch)
    loss = reward_loss(scores[0::2], scores[1::2], num_pairs=len(lengths) // 2, spec=SPEC)
    loss.backward()
    params = [p for p in built.model.parameters() if p.requires_grad]
    if par is not None:
        par.sync_grads(params)
    grads = {n: p.grad.clone() for n, p in built.model.named_parameters() if p.grad is not None}
    return {"scores": scores.detach(), "loss": loss.detach(), "grads": grads}


def _sizes(arch: str, sizes: dict[str, Any]) -> dict[str, Any]:
    if not sizes:
        return {}
    from dataclasses import replace

    from tests.core_helpers import tiny_config

    return {"tiny": replace(tiny_config(arch).tiny, **sizes)}


def sequence_parallel_rows(rank: int, out: Path, cases: list[dict[str, Any]]) -> None:
    results = [row_loss_and_grads(c["lengths"], 2, **c["model"]) for c in cases]
    if rank == 0:
        torch.save(results, out)


def step_rows(built: Any, num_rows: int = 5) -> list[list[list[int]]]:
    """One optimizer step of ``num_rows`` packed rows of pairs with different lengths (seeded)."""
    lengths = [[9 + 3 * r + i, 7 + r + 2 * i] for r in range(num_rows) for i in range(r % 3 + 1)]
    rows, start = [], 0
    for r in range(num_rows):
        count = r % 3 + 1
        pairs = lengths[start : start + count]
        start += count
        rows.append(random_sequences([n for pair in pairs for n in pair], built.reward_token.id, seed=r))
    return rows


def data_parallel_step(sharded: bool) -> dict[str, Any]:
    """Loss, metric sums and gradients of one step of :func:`step_rows`, sharded over the group or not."""
    from rmdata.tokens.packing import PackRow
    from rmdata.train.losses import reward_metric_sums

    built = build_tiny()
    randomize_head(built.model)
    world = init_distributed("cpu") if sharded else None
    par = Parallel(world, fsdp=False, device=torch.device("cpu")) if world is not None else None
    seqs = step_rows(built)
    rows = [PackRow(tuple(range(len(s) // 2)), tuple(len(x) for x in s)) for s in seqs]
    micro = par.micro_steps(rows) if par is not None else [(row, 1.0) for row in rows]
    pairs = par.total_pairs(micro) if par is not None else sum(len(r.units) for r in rows)
    step_loss, sums = 0.0, torch.zeros(5, dtype=torch.float64)
    by_row = {id(row): seq for row, seq in zip(rows, seqs, strict=True)}
    for row, _ in micro:
        scores = built.model(pack_sequences(by_row[id(row)]))
        loss = reward_loss(scores[0::2], scores[1::2], num_pairs=pairs, spec=SPEC)
        loss.backward()
        step_loss += float(loss.detach())
        sums += reward_metric_sums(scores[0::2], scores[1::2])
    params = [p for p in built.model.parameters() if p.requires_grad]
    if par is not None:
        par.sync_grads(params)
        step_loss, sums, _ = par.reduce_metrics(step_loss, sums, 0)
    grads = {n: p.grad.clone() for n, p in built.model.named_parameters()}
    return {"loss": step_loss, "sums": sums, "grads": grads, "pairs": pairs, "rows": len(micro)}


def data_parallel_rows(rank: int, out: Path) -> None:
    result = data_parallel_step(sharded=True)
    torch.save(result, out.with_suffix(f".{rank}.pt"))


def train_runs(rank: int, recipe_args: list[str], root: Path, crash_at: int) -> None:
    """A straight run, then a run that crashes after ``crash_at`` steps and is resumed, on every rank."""
    from rmdata.config import load_recipe
    from rmdata.train.loop import train
    from rmdata.train.runs import RunDir

    recipe = load_recipe(None, recipe_args)
    train(recipe, RunDir(root / "straight"), show_progress=False)

    def crash(step: int, metrics: dict[str, float]) -> None:
        if step == crash_at:
            raise RuntimeError("simulated crash")

    with contextlib.suppress(RuntimeError):
        train(recipe, RunDir(root / "crashed"), on_step=crash, show_progress=False)
    train(recipe, RunDir(root / "crashed"), resume=True, show_progress=False)


def score_rows(rank: int, source: str, model: str, out: str, shard_rows: int, exit_after: int | None = None) -> None:
    """``rmdata score`` on this rank; ``exit_after``: rank 1 dies (exit code 3) right after its n-th commit."""
    import os

    from rmdata.score.config import ScoreConfig
    from rmdata.score.run import score
    from rmdata.score.shards import Manifest

    if exit_after is not None and rank == 1:
        real_commit = Manifest.commit
        commits = {"n": 0}

        def commit(self: Manifest, *args: Any, **kwargs: Any) -> None:
            real_commit(self, *args, **kwargs)
            commits["n"] += 1
            if commits["n"] == exit_after:
                os._exit(3)

        Manifest.commit = commit  # type: ignore[method-assign]
    cfg = ScoreConfig(inputs=[source], model=model, output=out, shard_rows=shard_rows)
    result = score(cfg, "test", show_progress=False)
    torch.save({"scored": result.scored, "resumed": result.resumed_rows}, Path(out).with_suffix(f".{rank}.pt"))


def score_failures(rank: int, source: str, model: str, root: str, shard_rows: int) -> None:
    """Two runs where only rank 1 fails: a refusal in the checks, then an error while scoring its first
    block (rank 0 waits on that block for a copied score); each rank records the message it raised."""
    from rmdata.errors import RmdataError
    from rmdata.score.blocks import BlockScorer
    from rmdata.score.config import ScoreConfig
    from rmdata.score.run import score

    messages = []
    on_error = "bogus" if rank == 1 else "fail"
    cfg = ScoreConfig(inputs=[source], model=model, output=f"{root}/refused", shard_rows=shard_rows, on_error=on_error)
    try:
        score(cfg, "test", show_progress=False)
    except RmdataError as err:
        messages.append(str(err))
    if rank == 1:

        def broken(self: BlockScorer, *args: Any) -> Any:
            raise RmdataError("simulated failure on rank 1")

        BlockScorer.score = broken  # type: ignore[method-assign]
    cfg = ScoreConfig(inputs=[source], model=model, output=f"{root}/failed", shard_rows=shard_rows)
    try:
        score(cfg, "test", show_progress=False)
    except RmdataError as err:
        messages.append(str(err))
    torch.save(messages, Path(root) / f"messages.{rank}.pt")
