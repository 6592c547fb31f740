"""Training a process reward model: a loss at every step token of packed solutions.

A PRM here is an rmdata :class:`~rmdata.model.reward_model.RewardModel` whose reward token is the step
separator, written after every step (``rmdata.tokens.steps``, ``separator`` style). Solutions are packed into
rows of at most ``max_packed_length`` tokens exactly as pairs are (``rmdata.tokens.packing``, varlen
attention), and the value head is read at every separator, not only the last.

Loss. With ``y`` a step's label in [0, 1] and ``z`` the head's logits at its separator:

- ``[m, 1]`` logits (the value head): binary cross-entropy, ``-(y log σ(z) + (1 - y) log(1 - σ(z)))``;
- ``[m, 2]`` logits (a two-class head, columns wrong, correct): cross-entropy against ``(1 - y, y)``.

Reduction: the sum over the steps of a row divided by ``num_labelled``, the number of labelled steps of the
whole optimizer step (every row, accumulation micro-step and rank: :func:`global_step_count` all-reduces it),
so a step weighs the same whatever it was packed with, and the per-row gradients are summed, never averaged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from rmdata.distributed import World, all_reduce_sum
from rmdata.model.attention import varlen_kwargs
from rmdata.model.reward_model import RewardModel
from rmdata.tokens.batching import PackedBatch, pack_sequences
from rmdata.tokens.packing import plan_singles, rows_for_epoch


@dataclass(frozen=True)
class StepExample:
    """One labelled solution: token ids ``[T]``, its separator positions ``[n]`` and step labels ``[n]``."""

    input_ids: np.ndarray  # int64
    step_positions: np.ndarray  # int64
    labels: np.ndarray  # float32 in [0, 1]


def pack_step_examples(examples: Sequence[StepExample]) -> tuple[PackedBatch, torch.Tensor, torch.Tensor]:
    """One packed row of ``examples``: the batch, the row positions of every step ``[m]`` and their labels ``[m]``."""
    batch = pack_sequences([e.input_ids for e in examples])
    starts = batch.cu_seqlens[:-1].tolist()
    index = np.concatenate([e.step_positions + start for e, start in zip(examples, starts, strict=True)])
    labels = np.concatenate([e.labels for e in examples]).astype(np.float32)
    return batch, torch.from_numpy(index), torch.from_numpy(labels)


def step_values(model: RewardModel, batch: PackedBatch, index: torch.Tensor) -> torch.Tensor:
    """The value head at every step position of a packed row ``[1, T]`` -> logits ``[m, 1]`` (float32)."""
    out = model.trunk(
        input_ids=batch.input_ids,
        position_ids=batch.position_ids,
        use_cache=False,
        **varlen_kwargs(batch.cu_seqlens, batch.max_seqlen),
    )
    return model.score_hidden(out.last_hidden_state[0, index]).unsqueeze(-1)


def step_loss(logits: torch.Tensor, labels: torch.Tensor, num_labelled: int) -> torch.Tensor:
    """Summed per-step loss over ``num_labelled`` (see the module docstring); ``logits`` ``[m, 1]`` or ``[m, 2]``."""
    if num_labelled < 1:
        raise ValueError(f"num_labelled must be positive, got {num_labelled}")
    logits, labels = logits.float(), labels.float()
    if logits.shape[-1] == 1:
        terms = F.binary_cross_entropy_with_logits(logits[:, 0], labels, reduction="none")
    elif logits.shape[-1] == 2:
        terms = -(torch.stack([1 - labels, labels], dim=-1) * F.log_softmax(logits, dim=-1)).sum(-1)
    else:
        raise ValueError(f"step logits must be [m, 1] or [m, 2], got {tuple(logits.shape)}")
    return terms.sum() / num_labelled


def global_step_count(local: int, world: World, device: torch.device) -> int:
    """Labelled steps of one optimizer step over every rank (``local`` in one process)."""
    count = torch.tensor([local], dtype=torch.int64, device=device)
    return int(all_reduce_sum(count, world).item())


def train_prm(
    model: RewardModel,
    examples: Sequence[StepExample],
    *,
    max_packed_length: int,
    rows_per_step: int = 1,
    epochs: int = 1,
    lr: float = 1e-3,
    seed: int = 0,
    world: World | None = None,
) -> list[float]:
    """Train on packed rows of ``examples`` with AdamW; returns each optimizer step's loss.

    Each optimizer step takes ``rows_per_step`` rows of the seeded epoch order (``rows_for_epoch``); a solution
    longer than ``max_packed_length`` raises (drop it when tokenizing, ``steps_too_long``).
    """
    world = world or World()
    lengths = [len(e.input_ids) for e in examples]
    plan = plan_singles(lengths, max_packed_length)
    if plan.dropped:
        raise ValueError(f"{len(plan.dropped)} solutions are longer than max_packed_length={max_packed_length}")
    device = model.value_head.weight.device
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    losses: list[float] = []
    for epoch in range(epochs):
        rows = rows_for_epoch(plan, epoch, seed)
        for start in range(0, len(rows), rows_per_step):
            step_rows = [[examples[u] for u in row.units] for row in rows[start : start + rows_per_step]]
            total = global_step_count(sum(len(e.labels) for r in step_rows for e in r), world, device)
            optimizer.zero_grad(set_to_none=True)
            step = 0.0
            for members in step_rows:
                batch, index, labels = pack_step_examples(members)
                loss = step_loss(step_values(model, batch.to(device), index.to(device)), labels.to(device), total)
                loss.backward()
                step += float(loss.detach())
            for param in model.parameters():  # data parallel: the summed gradient of the global step
                if param.grad is not None:
                    all_reduce_sum(param.grad, world)
            optimizer.step()
            losses.append(float(all_reduce_sum(torch.tensor([step], device=device), world).item()))
    return losses
