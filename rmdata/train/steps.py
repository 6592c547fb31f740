"""Training a process reward model: a loss at every step token of packed solutions.

A PRM here is an rmdata :class:`~rmdata.model.reward_model.RewardModel` whose reward token is the step
separator, written after every step (``rmdata.tokens.steps``, ``separator`` style). Solutions are packed into
rows of at most ``max_packed_length`` tokens exactly as pairs are (``rmdata.tokens.packing``, varlen
attention), and the value head is read at every separator, not only the last.

Loss. With ``y`` a step's label in [0, 1] and ``z`` the head's logits at its separator:

- ``[m, 1]`` logits (the value head): binary cross-entropy, ``-(y log σ(z) + (1 - y) log(1 - σ(z)))``;
- ``[m, 2]`` logits (a two-class head, columns wrong, correct): cross-entropy against ``(1 - y, y)``.

Reduction: the sum over the steps of a row divided by ``num_labelled``, the number of labelled steps of the
whole optimizer step (every row of every rank: each rank knows the step's rows, see :func:`train_prm`), so a
step weighs the same whatever it was packed with, and the per-row gradients are summed, never averaged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from rmdata.distributed import World, all_reduce_sum, share_of_step
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
    """Train on packed rows of ``examples`` with AdamW; returns each optimizer step's loss (global).

    Each optimizer step takes ``rows_per_step`` rows of the seeded epoch order (``rows_for_epoch``). Under
    data parallelism every rank passes the same ``examples`` and takes its share of each step's rows
    (``share_of_step``, balanced by tokens); the labelled-step count, the gradients and the loss are summed over
    the ranks, so N ranks give the steps of one process. A solution longer than ``max_packed_length`` raises
    (drop it when tokenizing, ``steps_too_long``).
    """
    world = world or World()
    lengths = [len(e.input_ids) for e in examples]
    plan = plan_singles(lengths, max_packed_length)
    if plan.dropped:
        raise ValueError(f"{len(plan.dropped)} solutions are longer than max_packed_length={max_packed_length}")
    device = model.value_head.weight.device
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr)
    model.train()
    losses: list[float] = []
    for epoch in range(epochs):
        rows = rows_for_epoch(plan, epoch, seed)
        for start in range(0, len(rows), rows_per_step):
            step_rows = [[examples[u] for u in row.units] for row in rows[start : start + rows_per_step]]
            total = sum(len(e.labels) for r in step_rows for e in r)  # the same on every rank: all rows of the step
            mine = share_of_step([sum(len(e.input_ids) for e in r) for r in step_rows], world.dp_rank, world.dp_size)
            optimizer.zero_grad(set_to_none=False)
            step = torch.zeros(1, device=device)
            for index in mine:
                batch, positions, labels = pack_step_examples(step_rows[index])
                logits = step_values(model, batch.to(device), positions.to(device))
                loss = step_loss(logits, labels.to(device), total)
                loss.backward()
                step += loss.detach()
            for param in params:  # a rank that sat the step out adds zeros
                if param.grad is None:
                    param.grad = torch.zeros_like(param)
                all_reduce_sum(param.grad, world)
            optimizer.step()
            losses.append(float(all_reduce_sum(step, world).item()))
    return losses
