"""Full fine-tuning: every trainable parameter moves after a few steps on packed rows."""

from __future__ import annotations

import pytest
import torch

from tests.core_helpers import build_tiny, random_sequences, train_steps


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_every_trainable_parameter_changes(arch: str) -> None:
    """The head starts at zero, so the trunk gets no gradient on step 1: a few steps are needed."""
    built = build_tiny(arch, finetune="full")
    model = built.model
    params = dict(model.named_parameters())
    assert all(p.requires_grad for p in params.values())
    assert built.trainable_params == built.total_params == sum(p.numel() for p in params.values())
    before = {name: p.detach().clone() for name, p in params.items()}
    rows = [random_sequences((9, 5, 12, 6), built.reward_token.id, seed=s) for s in range(3)]
    losses = train_steps(model, rows, steps=5)
    assert losses[0] == pytest.approx(2 * torch.log(torch.tensor(2.0)).item())  # zero head: 2 pairs at -log(1/2)
    unchanged = [name for name, p in params.items() if torch.equal(p, before[name])]
    assert unchanged == []
