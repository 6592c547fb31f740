"""InternLM2 / XTuner reward losses. Expected numbers are worked out by hand in each docstring."""

from __future__ import annotations

import math

import pytest
import torch

from rmdata.config import LossConfig
from rmdata.errors import RmdataError
from rmdata.train.losses import (
    METRIC_SUMS,
    focal_terms,
    log_barrier,
    metric_means,
    ranking_terms,
    reward_loss,
    reward_metric_sums,
)

LN3 = math.log(3.0)
RANKING = LossConfig(kind="ranking")  # the recipe default is focal; these hand numbers are for ranking
NO_PENALTY = LossConfig(kind="ranking", penalty="none")


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32, requires_grad=True)


def test_ranking_values() -> None:
    """Δ = 0: σ = 1/2, −log(1/2) = log 2 = 0.693147. Δ = ln 3: σ = 3/4, −log 0.75 = 0.287682.
    Δ = −ln 3: σ = 1/4, −log 0.25 = 1.386294. Δ = −100: −log σ ≈ 100 (logsigmoid stays finite)."""
    out = ranking_terms(torch.tensor([0.0, LN3, -LN3, -100.0]))
    assert out.tolist() == pytest.approx([0.693147, 0.287682, 1.386294, 100.0], abs=1e-5)


def test_focal_values() -> None:
    """Δ = 0: σ = ½, weight (1 − 2·0)² = 1, focal = log 2 = 0.693147.
    Δ = ln 3: σ = 0.75, weight (1 − 2·0.25)² = 0.25, focal = 0.25 · 0.287682 = 0.071921.
    Δ = −ln 3: σ = 0.25 < ½, max(0, ·) = 0, weight 1, focal = ranking = 1.386294.
    γ = 0 makes the weight 1 everywhere: focal == ranking."""
    deltas = torch.tensor([0.0, LN3, -LN3])
    assert focal_terms(deltas, 2.0).tolist() == pytest.approx([0.693147, 0.071921, 1.386294], abs=1e-6)
    assert torch.allclose(focal_terms(deltas, 0.0), ranking_terms(deltas))


def test_log_barrier_values() -> None:
    """b = 5. s = 0: −log 5 − log 5 = −2 log 5 = −3.218876. s = 3: −log 2 − log 8 = −log 16 = −2.772589.
    s = −3 gives the same (the barrier is symmetric)."""
    out = log_barrier(torch.tensor([0.0, 3.0, -3.0]), 5.0)
    assert out.tolist() == pytest.approx([-3.218876, -2.772589, -2.772589], abs=1e-5)


def test_full_loss_by_hand() -> None:
    """chosen (ln 3, 0), rejected (0, 0), num_pairs 2, ranking + log barrier, w = 0.01, b = 5.
    Ranking: 0.287682 + 0.693147 = 0.980829.
    Barrier: φ(ln 3) = −log(5 − 1.098612) − log(6.098612) = −1.361332 − 1.808063 = −3.169394;
    three zero scores 3 · (−3.218876) = −9.656627; sum −12.826021, times 0.01 = −0.128260.
    Loss = (0.980829 − 0.128260) / 2 = 0.426285.
    With l2 instead: penalty 0.01 · ln²3 = 0.012069, loss (0.980829 + 0.012069) / 2 = 0.496449."""
    chosen, rejected = torch.tensor([LN3, 0.0]), torch.tensor([0.0, 0.0])
    loss = reward_loss(chosen, rejected, num_pairs=2, spec=RANKING)
    assert loss.item() == pytest.approx(0.426285, abs=1e-5)
    l2 = reward_loss(chosen, rejected, num_pairs=2, spec=LossConfig(kind="ranking", penalty="l2"))
    assert l2.item() == pytest.approx(0.496449, abs=1e-5)
    none = reward_loss(chosen, rejected, num_pairs=2, spec=NO_PENALTY)
    assert none.item() == pytest.approx(0.980829 / 2, abs=1e-6)


def test_margin_enters_the_ranking_term() -> None:
    """chosen 1, rejected 0, margin 1: Δ − margin = 0, loss = log 2 = 0.693147. A NaN margin (missing)
    counts as 0: Δ = 1, −log σ(1) = log(1 + e⁻¹) = 0.313262. use_margin=False ignores the margin."""
    chosen, rejected = torch.tensor([1.0, 1.0]), torch.tensor([0.0, 0.0])
    margin = torch.tensor([1.0, float("nan")])
    loss = reward_loss(chosen, rejected, num_pairs=1, spec=NO_PENALTY, margin=margin)
    assert loss.item() == pytest.approx(0.693147 + 0.313262, abs=1e-5)
    off = LossConfig(kind="ranking", penalty="none", use_margin=False)
    assert reward_loss(chosen, rejected, num_pairs=1, spec=off, margin=margin).item() == pytest.approx(
        2 * 0.313262, abs=1e-5
    )


@pytest.mark.parametrize("spec", [RANKING, LossConfig(kind="focal"), LossConfig(kind="focal", penalty="l2")])
def test_split_packs_sum_to_the_whole(spec: LossConfig) -> None:
    """Normalizing by the step's pair count (not per pack): 6 pairs as one pack, or as packs of 2 and 4,
    give the same loss and the same gradients."""
    gen = torch.Generator().manual_seed(0)
    chosen = torch.randn(6, generator=gen, requires_grad=True)
    rejected = torch.randn(6, generator=gen, requires_grad=True)
    margin = torch.rand(6, generator=gen)
    whole = reward_loss(chosen, rejected, num_pairs=6, spec=spec, margin=margin)
    grads_whole = torch.autograd.grad(whole, [chosen, rejected])
    parts = reward_loss(chosen[:2], rejected[:2], num_pairs=6, spec=spec, margin=margin[:2]) + reward_loss(
        chosen[2:], rejected[2:], num_pairs=6, spec=spec, margin=margin[2:]
    )
    grads_parts = torch.autograd.grad(parts, [chosen, rejected])
    assert parts.item() == pytest.approx(whole.item(), abs=1e-6)
    for a, b in zip(grads_whole, grads_parts, strict=True):
        assert torch.allclose(a, b, atol=1e-7)
    per_pack_mean = (
        reward_loss(chosen[:2], rejected[:2], num_pairs=2, spec=spec, margin=margin[:2])
        + reward_loss(chosen[2:], rejected[2:], num_pairs=4, spec=spec, margin=margin[2:])
    ) / 2
    assert per_pack_mean.item() != pytest.approx(whole.item(), abs=1e-4)  # averaging per pack would differ


def test_ranking_gradient_by_hand() -> None:
    """d/dΔ −log σ(Δ) = −(1 − σ(Δ)); at Δ = ln 3: −0.25. With num_pairs 4 and no penalty:
    ∂L/∂s_chosen = −0.25 / 4 = −0.0625, ∂L/∂s_rejected = +0.0625."""
    chosen, rejected = t(LN3), t(0.0)
    reward_loss(chosen, rejected, num_pairs=4, spec=NO_PENALTY).backward()
    assert chosen.grad is not None and rejected.grad is not None
    assert chosen.grad.item() == pytest.approx(-0.0625, abs=1e-6)
    assert rejected.grad.item() == pytest.approx(0.0625, abs=1e-6)


def test_focal_gradient_includes_weight() -> None:
    """L = −w(Δ)·log σ, w = (2(1 − σ))^γ for Δ > 0, weight not detached (XTuner). At Δ = ln 3, γ = 2:
    σ = 0.75, w = 0.25, dw/dΔ = γ·(2(1 − σ))^(γ−1)·(−2σ(1 − σ)) = 2·0.5·(−0.375) = −0.375,
    dL/dΔ = −[dw/dΔ·log σ + w·(1 − σ)] = −[(−0.375)(−0.287682) + 0.25·0.25] = −0.170381.
    (A detached weight would give −w·(1 − σ) = −0.0625.)"""
    chosen, rejected = t(LN3), t(0.0)
    reward_loss(chosen, rejected, num_pairs=1, spec=LossConfig(kind="focal", penalty="none")).backward()
    assert chosen.grad is not None
    assert chosen.grad.item() == pytest.approx(-0.170381, abs=1e-5)


def test_barrier_gradient_by_hand() -> None:
    """φ'(s) = 1/(b − s) − 1/(s + b); at s = 3, b = 5: 1/2 − 1/8 = 0.375. With w = 0.01, num_pairs 1 and
    rejected = chosen (Δ = 0, ranking gradient ∓½ on each): ∂L/∂s_chosen = −0.5 + 0.01·0.375 = −0.49625."""
    chosen, rejected = t(3.0), t(3.0)
    reward_loss(chosen, rejected, num_pairs=1, spec=RANKING).backward()
    assert chosen.grad is not None and rejected.grad is not None
    assert chosen.grad.item() == pytest.approx(-0.49625, abs=1e-5)
    assert rejected.grad.item() == pytest.approx(0.50375, abs=1e-5)


def test_barrier_outside_the_bound_is_finite_and_pushes_inward() -> None:
    """Beyond t = b(1 − 10⁻³) = 4.995 the barrier continues on its tangent: φ(t) = −log(0.005) − log(9.995)
    = 2.996232 and the slope is φ'(t) = 1/0.005 − 1/9.995 = 199.899950. So φ(7) = 2.996232 + 199.89995·2.005
    = 403.795632, with gradient +199.9 at s = 7 (descent lowers s) and −199.9 at s = −7 (descent raises s).
    At s = ±b exactly, where −log(0) would be inf, it is finite too. (float32: b − t = 0.005 carries a
    relative error ~1e-4, hence the tolerances.)"""
    scores = t(7.0, -7.0, 5.0, -5.0, 4.995)
    values = log_barrier(scores, 5.0)
    assert torch.isfinite(values).all()
    assert values[0].item() == pytest.approx(403.795632, rel=1e-4)
    assert values[4].item() == pytest.approx(2.996232, abs=1e-4)
    values.sum().backward()
    assert scores.grad is not None
    assert scores.grad[:4].tolist() == pytest.approx([199.89995, -199.89995, 199.89995, -199.89995], rel=1e-4)
    inside = t(4.9)  # the exact barrier just inside: φ'(4.9) = 1/0.1 − 1/9.9 = 9.898990
    log_barrier(inside, 5.0).backward()
    assert inside.grad is not None and inside.grad.item() == pytest.approx(9.898990, rel=1e-5)


def test_low_precision_scores_give_a_float32_loss() -> None:
    chosen = torch.tensor([1.0, 2.0], dtype=torch.bfloat16)
    rejected = torch.tensor([0.0, 0.5], dtype=torch.bfloat16)
    loss = reward_loss(chosen, rejected, num_pairs=2, spec=LossConfig(kind="focal"))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def test_empty_pack_contributes_zero() -> None:
    chosen, rejected = torch.zeros(0, requires_grad=True), torch.zeros(0, requires_grad=True)
    loss = reward_loss(chosen, rejected, num_pairs=8, spec=LossConfig())
    loss.backward()
    assert loss.item() == 0.0


def test_metric_sums_and_means() -> None:
    """chosen (1, 0, 2), rejected (0, 0, 3): Δ = (1, 0, −1); only Δ > 0 is correct (a tie is not), so
    correct = 1 of 3; chosen sum 3, rejected sum 3, Δ sum 0. A second pack chosen (4), rejected (2) adds
    1 pair, 1 correct, 4, 2, 2: accuracy 2/4, chosen mean 7/4, rejected mean 5/4, margin mean 2/4."""
    first = reward_metric_sums(torch.tensor([1.0, 0.0, 2.0]), torch.tensor([0.0, 0.0, 3.0]))
    assert dict(zip(METRIC_SUMS, first.tolist(), strict=True)) == {
        "pairs": 3.0,
        "correct": 1.0,
        "chosen_sum": 3.0,
        "rejected_sum": 3.0,
        "margin_sum": 0.0,
    }
    total = first + reward_metric_sums(torch.tensor([4.0]), torch.tensor([2.0]))
    assert metric_means(total) == {
        "pairs": 4.0,
        "accuracy": 0.5,
        "chosen_mean": 1.75,
        "rejected_mean": 1.25,
        "margin_mean": 0.5,
    }
    empty = metric_means([0.0] * 5)
    assert empty["pairs"] == 0.0 and math.isnan(empty["accuracy"])


def test_loss_config_is_the_one_place_the_loss_knobs_are_checked() -> None:
    with pytest.raises(RmdataError, match="loss.kind must be 'ranking' | 'focal'; got 'hinge'"):
        LossConfig(kind="hinge")  # type: ignore[arg-type]
    with pytest.raises(RmdataError, match="loss.penalty must be"):
        LossConfig(penalty="L2")  # type: ignore[arg-type]
    with pytest.raises(RmdataError, match=r"loss.penalty_bound=0.0 is out of range: it must be > 0"):
        LossConfig(penalty_bound=0.0)
    with pytest.raises(RmdataError, match=r"loss.focal_gamma=-1.0 is out of range: it must be >= 0"):
        LossConfig(focal_gamma=-1.0)
    with pytest.raises(ValueError, match="num_pairs"):
        reward_loss(torch.zeros(1), torch.zeros(1), num_pairs=0, spec=LossConfig())
