"""The InternLM2 reward-model loss with XTuner semantics, and metrics kept as sums.

With Δ = s_chosen − s_rejected (minus the pair's ``margin`` when margins are used) and σ the sigmoid:

- ``ranking``: −log σ(Δ), the Bradley-Terry negative log-likelihood.
- ``focal``: −(1 − 2·max(0, σ(Δ) − ½))^γ · log σ(Δ). Pairs the model already ranks confidently weigh less.
  As in XTuner the weight is *not* detached: its own derivative flows, so the gradient at Δ > 0 is
  smaller than the weighted ranking gradient alone (``test_focal_gradient_includes_weight`` pins this).
- penalty on every chosen and rejected score s: ``log_barrier`` φ(s) = −log(b − s) − log(s + b), which
  keeps scores inside (−b, b) (b = ``penalty_bound``, 5 in InternLM2); ``l2`` φ(s) = s²; or ``none``.

Reduction: ``(Σ_pairs ranking + w · Σ_scores φ) / num_pairs``, where ``num_pairs`` is the number of pairs
in the whole optimizer step (every pack, accumulation micro-step and rank), so a pair weighs the same
whatever it was packed with; sum the per-pack losses' gradients, never average them again. A pair thus
contributes ``w · (φ(s_chosen) + φ(s_rejected))``: ``penalty_weight`` w is the InternLM2 report's λ,
the coefficient of the per-score barrier −(log(s + 5) + log(5 − s)), with XTuner's default 0.01.

Outside the barrier's domain: XTuner clamps s to [−b + 10⁻³, b − 10⁻³], so a score beyond that gets a
constant penalty and *no* gradient from it. Here the barrier is exact for |s| ≤ t = b·(1 − 10⁻³) and
continues beyond t along its tangent: finite everywhere, with a constant slope φ'(t) ≈ 1/(b·10⁻³)
(≈ 200 at b = 5) that keeps pushing the score back inside.

All arithmetic is float32 whatever the scores' dtype (bf16 scores near ±b would lose the barrier).
The knobs are the recipe's ``loss`` section, :class:`rmdata.config.LossConfig` (its fields, defaults and
range checks are the only ones).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from rmdata.config import LossConfig

BARRIER_EPS = 1e-3  # the barrier is exact up to |s| = b * (1 - BARRIER_EPS), linear beyond
METRIC_SUMS = ("pairs", "correct", "chosen_sum", "rejected_sum", "margin_sum")  # what reward_metric_sums adds


def ranking_terms(delta: torch.Tensor) -> torch.Tensor:
    """Per-pair −log σ(Δ) ``[n]``, computed as −logsigmoid (stable for any Δ)."""
    return -F.logsigmoid(delta)


def focal_terms(delta: torch.Tensor, gamma: float) -> torch.Tensor:
    """Per-pair −(1 − 2·max(0, σ(Δ) − ½))^γ · log σ(Δ) ``[n]``; the weight is not detached."""
    weight = (1 - 2 * torch.relu(torch.sigmoid(delta) - 0.5)) ** gamma
    return weight * -F.logsigmoid(delta)


def log_barrier(scores: torch.Tensor, bound: float) -> torch.Tensor:
    """Per-score −log(b − s) − log(s + b), continued linearly beyond |s| = b·(1 − ε) ``[m]``."""
    t = bound * (1 - BARRIER_EPS)
    inside = scores.clamp(-t, t)
    exact = -torch.log(bound - inside) - torch.log(inside + bound)
    slope = 1 / (bound - inside) - 1 / (inside + bound)  # φ'(clamped s): ±φ'(t) at the edges
    return exact + slope * (scores - inside)


def penalty_terms(scores: torch.Tensor, spec: LossConfig) -> torch.Tensor:
    """Per-score penalty φ(s) ``[m]`` for ``spec.penalty`` (zeros for ``none``)."""
    if spec.penalty == "log_barrier":
        return log_barrier(scores, spec.penalty_bound)
    if spec.penalty == "l2":
        return scores**2
    return torch.zeros_like(scores)


def reward_loss(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    *,
    num_pairs: int | float,
    spec: LossConfig,
    margin: torch.Tensor | None = None,
) -> torch.Tensor:
    """This pack's share of the step loss: ``(Σ ranking + w·Σ φ) / num_pairs``, a float32 scalar.

    ``chosen``, ``rejected``: ``[n]`` scores of this pack's pairs; ``margin``: ``[n]`` or None, used only
    when ``spec.use_margin`` (NaN, a missing margin, counts as 0); ``num_pairs``: pairs in the whole
    optimizer step across packs, accumulation and ranks (> 0).
    """
    if chosen.shape != rejected.shape:
        raise ValueError(f"chosen {tuple(chosen.shape)} and rejected {tuple(rejected.shape)} differ in shape")
    if num_pairs <= 0:
        raise ValueError(f"num_pairs must be positive, got {num_pairs}")
    chosen, rejected = chosen.float().reshape(-1), rejected.float().reshape(-1)
    delta = chosen - rejected
    if spec.use_margin and margin is not None:
        delta = delta - torch.nan_to_num(margin.float().reshape(-1), nan=0.0)
    terms = focal_terms(delta, spec.focal_gamma) if spec.kind == "focal" else ranking_terms(delta)
    loss = terms.sum()
    if spec.penalty != "none" and spec.penalty_weight > 0:
        loss = loss + spec.penalty_weight * penalty_terms(torch.cat([chosen, rejected]), spec).sum()
    return loss / num_pairs


def reward_metric_sums(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """Detached float64 ``[5]`` sums, in the order of ``METRIC_SUMS``, to add across packs and ranks.

    ``correct`` counts Δ > 0 strictly: a tie (e.g. every score 0 at initialization) is not correct, as in
    XTuner. ``margin_sum`` sums the model's Δ (no data margin subtracted).
    """
    chosen = chosen.detach().double().reshape(-1)
    rejected = rejected.detach().double().reshape(-1)
    delta = chosen - rejected
    return torch.stack(
        [
            torch.tensor(float(chosen.numel()), dtype=torch.float64, device=chosen.device),
            (delta > 0).double().sum(),
            chosen.sum(),
            rejected.sum(),
            delta.sum(),
        ]
    )


def zero_metric_sums(device: torch.device | str = "cpu") -> torch.Tensor:
    """Float64 zeros, one per name in ``METRIC_SUMS``: the start of a step's (or a split's) running sums."""
    return torch.zeros(len(METRIC_SUMS), dtype=torch.float64, device=device)


def metric_means(sums: torch.Tensor | Sequence[float]) -> dict[str, float]:
    """Sums from :func:`reward_metric_sums` (added up) -> pairs, accuracy, chosen/rejected/margin means."""
    values = dict(zip(METRIC_SUMS, (float(v) for v in sums), strict=True))
    pairs = values["pairs"]
    if pairs == 0:
        nan = float("nan")
        return {"pairs": 0.0, "accuracy": nan, "chosen_mean": nan, "rejected_mean": nan, "margin_mean": nan}
    return {
        "pairs": pairs,
        "accuracy": values["correct"] / pairs,
        "chosen_mean": values["chosen_sum"] / pairs,
        "rejected_mean": values["rejected_sum"] / pairs,
        "margin_mean": values["margin_sum"] / pairs,
    }
