"""The learning-rate schedule and the AdamW parameter groups, with hand-worked numbers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from rmdata.train.optim import build_optimizer, lr_factor, set_lr


def test_warmup_is_linear_and_reaches_the_peak_on_its_last_step() -> None:
    """warmup 4 of 10 steps: factors 1/4, 2/4, 3/4, 4/4 before steps 0..3."""
    assert [lr_factor(s, 10, 4, 0.0) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]


def test_cosine_falls_from_the_peak_to_min_ratio_at_the_last_step() -> None:
    """10 steps, warmup 4: the cosine spans steps 4..9, decay_steps = 10 - 4 - 1 = 5, progress (s - 4) / 5.
    s = 4: cos 0 = 1 -> 1.0. s = 6: progress 0.4, ½(1 + cos 0.4π) = ½(1 + 0.309017) = 0.654508.
    s = 7: ½(1 − 0.309017) = 0.345492. s = 9: progress 1, cos π = −1 -> 0 (the min)."""
    factors = [lr_factor(s, 10, 4, 0.0) for s in range(4, 10)]
    assert factors == pytest.approx([1.0, 0.904508, 0.654508, 0.345492, 0.095492, 0.0], abs=1e-6)


def test_min_lr_ratio_lifts_the_floor() -> None:
    """min 0.1: 0.1 + 0.9 · 0.654508 = 0.689058 at s = 6, exactly 0.1 at the last step and beyond."""
    assert lr_factor(6, 10, 4, 0.1) == pytest.approx(0.689058, abs=1e-6)
    assert lr_factor(9, 10, 4, 0.1) == pytest.approx(0.1)
    assert lr_factor(50, 10, 4, 0.1) == pytest.approx(0.1)


def test_no_warmup_and_single_step_runs() -> None:
    assert lr_factor(0, 10, 0, 0.0) == 1.0
    assert lr_factor(0, 1, 0, 0.0) == 1.0  # a one-step run trains at the peak
    assert lr_factor(1, 3, 1, 0.0) == 1.0 and lr_factor(2, 3, 1, 0.0) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(5, 11, 0, 0.0) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(3, 2)  # weight [2, 3] decays, bias [2] does not
        self.norm = nn.LayerNorm(2)  # 1-D: no decay
        self.value_head = nn.Linear(2, 1, bias=False)  # its own group and lr
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)


def test_parameter_groups_decay_only_matrices_and_give_the_head_its_lr() -> None:
    model = Tiny()
    optimizer = build_optimizer(model, lr=1e-3, head_lr=5e-2, weight_decay=0.1)
    groups = [{id(p) for p in g["params"]} for g in optimizer.param_groups]
    assert groups == [
        {id(model.proj.weight)},
        {id(model.proj.bias), id(model.norm.weight), id(model.norm.bias)},
        {id(model.value_head.weight)},
    ]
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.0, 0.0]
    assert [g["lr"] for g in optimizer.param_groups] == [1e-3, 1e-3, 5e-2]
    assert optimizer.defaults["betas"] == (0.9, 0.95)
    assert set_lr(optimizer, 0.5) == 5e-4
    assert [g["lr"] for g in optimizer.param_groups] == [5e-4, 5e-4, 2.5e-2]
    assert build_optimizer(model, 1e-3, None, 0.0).param_groups[2]["lr"] == 1e-3  # head_lr None = lr


def test_one_adamw_step_moves_each_weight_by_the_lr() -> None:
    """AdamW's first step is lr · g / (|g| + eps) ≈ lr · sign(g) per weight (bias-corrected moments)."""
    model = Tiny()
    optimizer = build_optimizer(model, lr=1e-2, head_lr=None, weight_decay=0.0)
    before = model.value_head.weight.detach().clone()
    model.value_head(torch.ones(1, 2)).sum().backward()  # gradient +1 on each head weight
    optimizer.step()
    assert (before - model.value_head.weight.detach())[0].tolist() == pytest.approx([1e-2, 1e-2], rel=1e-5)
