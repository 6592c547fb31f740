"""Step scores: every step of every solution from one forward per packed row, and the rules read from them.

``score_steps`` packs whole solutions into rows of at most ``batch_tokens`` tokens (best-fit decreasing,
``rmdata.tokens.packing``), runs the trunk once per row with varlen attention (solutions never attend to
each other), and reads the head at every step token: a solution of ``n`` steps costs one forward, not ``n``.
``score_steps_per_prefix`` is the loop common in scripts (one forward per prefix ending at a step token),
kept as the baseline the benchmark and the tests compare against: causal attention makes both equal.

A solution's ``reward`` is one aggregate of its step scores (``AGGREGATES``: min, last, mean, product;
min by default, the weakest step), and its ``first_error_step`` the first step scoring under ``threshold``
(-1 when none does).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from rmdata.errors import RmdataError
from rmdata.model.attention import varlen_kwargs
from rmdata.model.step_model import StepModel
from rmdata.score.step_config import AGGREGATES
from rmdata.tokens.batching import pack_sequences
from rmdata.tokens.packing import plan_singles
from rmdata.tokens.steps import StepTokens


def score_steps(model: StepModel, solutions: Sequence[StepTokens], *, batch_tokens: int = 8192) -> list[np.ndarray]:
    """Each solution's step scores ``[n_steps]`` (float32 probabilities), index-aligned with ``solutions``."""
    if not solutions:
        return []
    lengths = np.fromiter((len(s.input_ids) for s in solutions), dtype=np.int64, count=len(solutions))
    plan = plan_singles(lengths, max(int(batch_tokens), int(lengths.max())))
    out: list[np.ndarray] = [np.empty(0, dtype=np.float32)] * len(solutions)
    with torch.inference_mode():
        for row in plan.rows:
            members = [solutions[i] for i in row.units]
            batch = pack_sequences([s.input_ids for s in members]).to(model.device)
            starts = row.cu_seqlens[:-1]
            index = np.concatenate([s.step_positions + start for s, start in zip(members, starts, strict=True)])
            hidden = model.trunk(
                input_ids=batch.input_ids,
                position_ids=batch.position_ids,
                use_cache=False,
                **varlen_kwargs(batch.cu_seqlens, batch.max_seqlen),
            ).last_hidden_state[0, torch.from_numpy(index).to(model.device)]
            scores = model.step_scores(hidden).cpu().numpy()
            splits = np.cumsum([len(s.step_positions) for s in members])[:-1]
            for unit, values in zip(row.units, np.split(scores, splits), strict=True):
                out[unit] = values
    return out


def score_steps_per_prefix(model: StepModel, solution: StepTokens) -> np.ndarray:
    """The baseline: one forward per step, over the prefix that ends at the step's token ``[n_steps]``."""
    scores = []
    with torch.inference_mode():
        for position in solution.step_positions.tolist():
            ids = torch.from_numpy(solution.input_ids[: position + 1]).unsqueeze(0).to(model.device)
            hidden = model.trunk(input_ids=ids, use_cache=False).last_hidden_state[0, -1:]
            scores.append(model.step_scores(hidden))
    return torch.cat(scores).cpu().numpy()


def aggregate(step_scores: np.ndarray, how: str = "min") -> float:
    """One reward for a solution from its step scores: min, last, mean or product."""
    if how not in AGGREGATES:
        raise RmdataError(f"--aggregate {how!r} is not one of {', '.join(AGGREGATES)}")
    if len(step_scores) == 0:
        raise ValueError("a solution without steps has no aggregate")
    values = np.asarray(step_scores, dtype=np.float64)
    if how == "min":
        return float(values.min())
    if how == "last":
        return float(values[-1])
    if how == "mean":
        return float(values.mean())
    return float(values.prod())


def first_error_step(step_scores: Sequence[float] | np.ndarray, threshold: float) -> int:
    """Index of the first step scoring under ``threshold``; -1 when every step reaches it."""
    below = np.flatnonzero(np.asarray(step_scores, dtype=np.float64) < threshold)
    return int(below[0]) if len(below) else -1
