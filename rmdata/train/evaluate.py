"""Held-out evaluation of a reward model on packed preference pairs."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING

import torch

from rmdata.config import LossConfig
from rmdata.train.losses import metric_means, reward_loss, reward_metric_sums
from rmdata.train.memory import release_freed_memory

if TYPE_CHECKING:
    from rmdata.train.data import PairSplit


@torch.no_grad()
def evaluate_pairs(
    model: torch.nn.Module,
    split: PairSplit,
    spec: LossConfig,
    device: torch.device,
    autocast: AbstractContextManager[object] | None = None,
) -> dict[str, float]:
    """Score every held-out pair (packed, as in training) and return the metrics of ``eval.json``.

    ``accuracy`` counts s_chosen > s_rejected; ``score_mean``/``score_std`` are over all 2n scores;
    ``loss`` is the recipe's loss averaged over pairs.
    """
    was_training = model.training
    model.eval()
    chosen_all, rejected_all, margins = [], [], []
    for row in split.plan.rows:
        with autocast or nullcontext():
            scores = model(split.batch(row).to(device)).float().cpu()
        chosen_all.append(scores[0::2])
        rejected_all.append(scores[1::2])
        margins.extend(split.margins(row))
    model.train(was_training)
    if device.type == "cpu":
        release_freed_memory()  # training resumes from what the evaluation freed (rmdata.train.memory)
    chosen, rejected = torch.cat(chosen_all), torch.cat(rejected_all)
    n = chosen.numel()
    margin = torch.tensor(margins, dtype=torch.float32)
    metrics = metric_means(reward_metric_sums(chosen, rejected))
    both = torch.cat([chosen, rejected]).double()
    metrics.update(
        pairs=n,
        loss=float(reward_loss(chosen, rejected, num_pairs=n, spec=spec, margin=margin)),
        score_mean=float(both.mean()),
        score_std=float(both.std(unbiased=False)),
    )
    return metrics
