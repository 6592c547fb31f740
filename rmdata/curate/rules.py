"""``rmdata filter``'s keep rules over ranked rows: top-k per prompt, top-p of all rows, a score floor.

The three rules are checked independently on the same rows (those left after ``ranking.prepare``) and
must all hold; a row that fails several is dropped under the first of ``below_min_score``,
``outside_top_k``, ``outside_top_p``. ``--top-p F`` keeps the best ceil(F x N) of those N rows, ordered
by score descending, then ``response_id``, ``prompt_id`` and ``_row`` (so ties are deterministic).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl

from rmdata.curate.agreement import drop_outside_some_top_k
from rmdata.curate.ranking import PROMPT, RESPONSE, drop_where
from rmdata.curate.source import ROW
from rmdata.data.drops import BELOW_MIN_SCORE, OUTSIDE_TOP_K, OUTSIDE_TOP_P
from rmdata.errors import RmdataError


@dataclass(frozen=True)
class FilterRules:
    """Which ranked rows ``rmdata filter`` keeps; ``None`` turns a rule off."""

    top_k: int | None = None  # the best N responses of each prompt
    top_p: float | None = None  # the best fraction F of all rows, 0 < F <= 1
    min_score: float | None = None  # an absolute floor on the score
    min_responses: int = 1  # prompts with fewer distinct responses are dropped first

    def check(self) -> None:
        if self.top_k is not None and self.top_k < 1:
            raise RmdataError(f"--top-k {self.top_k}: must be >= 1 (leave it out to keep every response)")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise RmdataError(f"--top-p {self.top_p}: must be a fraction in (0, 1], e.g. 0.25 for the best quarter")
        if self.min_score is not None and not math.isfinite(self.min_score):
            raise RmdataError(f"--min-score {self.min_score}: must be a finite number")
        if self.min_responses < 1:
            raise RmdataError(f"--min-responses {self.min_responses}: must be >= 1")

    def describe(self) -> str:
        parts = [f"top-k {self.top_k}" if self.top_k else "", f"top-p {self.top_p}" if self.top_p else ""]
        parts.append(f"min-score {self.min_score}" if self.min_score is not None else "")
        parts.append(f"min-responses {self.min_responses}" if self.min_responses > 1 else "")
        return ", ".join(p for p in parts if p) or "no rule (every distinct response kept)"


def apply_rules(ranked: pl.LazyFrame, rules: FilterRules, agree_models: int = 0) -> pl.LazyFrame:
    """Set ``reason`` on ranked rows that a rule drops (needs ``score`` and ``rank``).

    ``agree_models``: with ``--agree``, rows in the combined top-k but outside some model's are
    ``models_disagree`` (needs ``agreement.with_model_ranks``; checked before ``--top-p``).
    """
    frame = ranked
    if rules.min_score is not None:
        frame = frame.with_columns(drop_where(pl.col("score") < rules.min_score, BELOW_MIN_SCORE))
    if rules.top_k is not None:
        frame = frame.with_columns(drop_where(pl.col("rank") > rules.top_k, OUTSIDE_TOP_K))
        if agree_models:
            frame = drop_outside_some_top_k(frame, agree_models, rules.top_k)
    if rules.top_p is not None:
        order = ["score", RESPONSE, PROMPT, ROW]
        position = pl.int_range(1, pl.len() + 1, dtype=pl.Int64)
        keep = (pl.len() * rules.top_p).round(9).ceil().cast(pl.Int64)  # round: 0.7 x 10 is 7.000000000000001
        frame = (
            frame.sort(order, descending=[True, False, False, False])
            .with_columns(drop_where(position > keep, OUTSIDE_TOP_P))
            .sort([PROMPT, "rank"])
        )
    return frame
