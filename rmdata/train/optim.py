"""AdamW parameter groups and the warmup-then-cosine learning-rate schedule."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def lr_factor(step: int, total_steps: int, warmup_steps: int, min_ratio: float) -> float:
    """Multiplier of the peak lr before optimizer step ``step`` (0-based): linear warmup, then cosine.

    Warmup ramps 1/w, 2/w, ..., 1 over ``warmup_steps``; the cosine then falls from 1 to ``min_ratio`` at the
    last step.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps - 1)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_optimizer(model: torch.nn.Module, lr: float, head_lr: float | None, weight_decay: float) -> torch.optim.AdamW:
    """AdamW over the trainable parameters: decay on matrices only, the value head in its own group."""
    import torch

    decay, no_decay, head = [], [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if name.startswith("value_head."):
            head.append(param)
        elif param.ndim < 2:
            no_decay.append(param)
        else:
            decay.append(param)
    groups = [
        {"params": decay, "weight_decay": weight_decay, "lr": lr},
        {"params": no_decay, "weight_decay": 0.0, "lr": lr},
        {"params": head, "weight_decay": 0.0, "lr": head_lr if head_lr is not None else lr},
    ]
    for group in groups:
        group["initial_lr"] = group["lr"]
    return torch.optim.AdamW([g for g in groups if g["params"]], betas=(0.9, 0.95), eps=1e-8)


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> float:
    """Scale every group's peak lr by ``factor``; returns the first group's lr (for logging)."""
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * factor
    return float(optimizer.param_groups[0]["lr"])
