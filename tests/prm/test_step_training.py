"""PRM training: the per-step loss by hand, packed rows equal to solutions trained one by one, and the export."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from rmdata.data.stepwise import StepRow
from rmdata.model.export import save_reward_model
from rmdata.model.step_model import RMDATA, load_step_model
from rmdata.score.steps import score_steps
from rmdata.tokens.steps import StepTokens, tokenize_steps
from rmdata.train.steps import StepExample, pack_step_examples, step_loss, step_values, train_prm
from tests.core_helpers import build_tiny, randomize_head
from tests.prm.models import SOLUTIONS, step_examples


def test_step_loss_by_hand() -> None:
    """Value head, logits 0 and log 3, labels 1 and 0, over 4 labelled steps in the global batch:
    BCE(0, 1) = log 2; BCE(log 3, 0) = -log(1 - 3/4) = log 4; (log 2 + log 4) / 4 = 3 log 2 / 4.
    Two-class head with logits (0, 0) and label 0.5: -(0.5 log 0.5 + 0.5 log 0.5) = log 2; over 2 steps: log 2 / 2.
    """
    value = step_loss(torch.tensor([[0.0], [math.log(3)]]), torch.tensor([1.0, 0.0]), num_labelled=4)
    assert value.item() == pytest.approx(3 * math.log(2) / 4, rel=1e-6)
    two = step_loss(torch.zeros(1, 2), torch.tensor([0.5]), num_labelled=2)
    assert two.item() == pytest.approx(math.log(2) / 2, rel=1e-6)


def test_a_packed_row_gives_the_loss_and_gradients_of_its_solutions_one_by_one() -> None:
    built = build_tiny()
    model = built.model
    randomize_head(model)
    examples = step_examples(built)
    total = sum(len(e.labels) for e in examples)

    def loss_and_grads(groups: list[list[StepExample]]) -> tuple[float, list[torch.Tensor]]:
        model.zero_grad(set_to_none=True)
        value = 0.0
        for members in groups:
            batch, index, labels = pack_step_examples(members)
            loss = step_loss(step_values(model, batch, index), labels, total)
            loss.backward()
            value += loss.item()
        return value, [p.grad.clone() for p in model.parameters() if p.grad is not None]

    packed_loss, packed_grads = loss_and_grads([examples])
    alone_loss, alone_grads = loss_and_grads([[e] for e in examples])
    assert packed_loss == pytest.approx(alone_loss, rel=1e-5)
    assert len(packed_grads) == len(alone_grads) == len(list(model.parameters()))
    for packed, alone in zip(packed_grads, alone_grads, strict=True):
        torch.testing.assert_close(packed, alone, atol=1e-5, rtol=1e-4)
    assert any(float(g.abs().max()) > 0 for g in packed_grads)


@pytest.mark.parametrize("finetune", ["full", "lora"])
def test_training_changes_every_trainable_weight_and_the_export_scores_the_same_in_plain_transformers(
    finetune: str, tmp_path: Path
) -> None:
    built = build_tiny(seed=3, finetune=finetune)
    model = built.model
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    if finetune == "lora":  # the trunk is frozen: only adapters and the head train
        assert 0 < len(before) < len(list(model.parameters()))
    losses = train_prm(model, step_examples(built), max_packed_length=256, rows_per_step=1, epochs=8, lr=3e-3)
    assert losses[-1] < losses[0]
    unchanged = [n for n, p in model.named_parameters() if n in before and torch.equal(p.detach(), before[n])]
    assert unchanged == []

    model.eval()
    path = save_reward_model(built, tmp_path / "prm")
    loaded = load_step_model(path)  # auto: an rmdata export
    assert loaded.layout == RMDATA
    rows = [StepRow(p, s, None, f"x:{i}") for i, (p, s, _) in enumerate(SOLUTIONS)]
    tokens = [tokenize_steps(loaded.tokenizer, loaded.template, row) for row in rows]
    scores = score_steps(loaded, tokens, batch_tokens=4096)  # type: ignore[arg-type]

    from transformers import AutoModelForSequenceClassification

    plain = AutoModelForSequenceClassification.from_pretrained(path).eval()
    for solution, got in zip(tokens, scores, strict=True):
        assert isinstance(solution, StepTokens)
        ids = torch.from_numpy(solution.input_ids).unsqueeze(0)
        with torch.no_grad():
            hidden = plain.base_model(input_ids=ids).last_hidden_state[0, torch.from_numpy(solution.step_positions)]
            expected = torch.sigmoid(plain.score(hidden)[:, 0]).numpy()
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_two_ranks_train_like_one_process(tmp_path: Path) -> None:
    """4 rows, 2 per optimizer step, each rank training one: losses and final weights equal one process's."""
    from tests.distributed.spawn import run_ranks
    from tests.prm.dp_workers import ROW_TOKENS, train_on_rank, train_run

    lengths = sorted(len(e.input_ids) for e in step_examples(build_tiny()))
    assert lengths[-1] <= ROW_TOKENS < lengths[0] + lengths[1]  # one solution per row
    run_ranks(train_on_rank, tmp_path, tmp_path / "prm")
    single = train_run(None)
    assert len(single["losses"]) == 4
    for rank in (0, 1):
        result = torch.load(tmp_path / f"prm.{rank}.pt")
        assert result["losses"] == pytest.approx(single["losses"], abs=1e-5)
        for name, expected in single["weights"].items():
            torch.testing.assert_close(result["weights"][name], expected, atol=1e-5, rtol=1e-4)
