"""``--agree`` and the agreement report: do the models a ``--reward`` expression names rank alike?

Each named model ``i`` has its own score ``_s{i}`` (its reward column, normalized like the combined score;
``ranking.add_score``). ``--agree`` keeps, with ``build-dpo``, a pair only when every model scores chosen
strictly above rejected (a tie for one model is a disagreement), and, with ``filter``, a row only when it
is among the ``--top-k`` of its prompt for every model (each model's own order: its score descending, then
``response_id``, ``_row``). Everything else is dropped as ``models_disagree``.

The report (card, ``manifest.json``, terminal): per-model statistics of the raw reward columns (kept rows),
for every pair of models the mean over prompts (with 3 or more distinct responses) of the Spearman rank
correlation of their scores, and, with ``build-dpo``, the share of candidate pairs all models order alike
(every model's gap of one sign, either way).
"""

from __future__ import annotations

from typing import Any

import polars as pl

from rmdata.curate.expression import RewardExpression
from rmdata.curate.ranking import PROMPT, RESPONSE, drop_where, model_column, model_score
from rmdata.curate.source import ROW
from rmdata.data.drops import MODELS_DISAGREE


def _rank_column(i: int) -> str:
    return f"_rank{i}"


def pairs_disagree(models: int) -> pl.Expr:
    """True for a candidate pair (``chosen_`` / ``rejected_`` sides of each ``_s{i}``) some model does not
    order chosen above rejected."""
    return pl.any_horizontal(
        [pl.col(f"chosen{model_score(i)}") <= pl.col(f"rejected{model_score(i)}") for i in range(models)]
    )


def drop_pairs_disagreeing(pairs: pl.LazyFrame, models: int) -> pl.LazyFrame:
    return pairs.with_columns(drop_where(pairs_disagree(models), MODELS_DISAGREE))


def with_model_ranks(ranked: pl.DataFrame, models: int) -> pl.DataFrame:
    """``_rank{i}``: each row's 1-based rank within its prompt by model ``i`` alone; row order unchanged."""
    out = ranked.with_row_index("_at")
    for i in range(models):
        order = [PROMPT, model_score(i), RESPONSE, ROW]
        ranks = (
            out.select("_at", *order)
            .sort(order, descending=[False, True, False, False])
            .with_columns((pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over(PROMPT)).alias(_rank_column(i)))
            .sort("_at")
        )
        out = out.with_columns(ranks.get_column(_rank_column(i)))
    return out.drop("_at")


def drop_outside_some_top_k(frame: pl.LazyFrame, models: int, top_k: int) -> pl.LazyFrame:
    """``models_disagree`` for rows outside some model's top-k (needs :func:`with_model_ranks`)."""
    outside = pl.any_horizontal([pl.col(_rank_column(i)) > top_k for i in range(models)])
    return frame.with_columns(drop_where(outside, MODELS_DISAGREE)).drop(_rank_column(i) for i in range(models))


def report(
    expression: RewardExpression, ranked: pl.DataFrame, kept: pl.DataFrame, candidates: pl.DataFrame | None = None
) -> dict[str, Any]:
    """Per-model statistics, pairwise per-prompt rank correlation and (with ``candidates``) the share of
    candidate pairs every model orders alike."""
    from rmdata.curate.summary import stats

    names = expression.columns
    out: dict[str, Any] = {
        "expression": expression.text,
        "stats": {name: stats(kept.get_column(model_column(i))) for i, name in enumerate(names)},
        "spearman_per_prompt": {},
    }
    for i, a in enumerate(names):
        for j in range(i + 1, len(names)):
            rho = (
                ranked.group_by(PROMPT)
                .agg(pl.corr(model_score(i), model_score(j), method="spearman").alias("rho"), pl.len().alias("n"))
                .filter((pl.col("n") >= 3) & pl.col("rho").is_not_nan())
                .get_column("rho")
                .mean()
            )
            out["spearman_per_prompt"][f"{a} vs {names[j]}"] = rho
    if candidates is not None and candidates.height:
        gaps = [pl.col(f"chosen{model_score(i)}") - pl.col(f"rejected{model_score(i)}") for i in range(len(names))]
        same = pl.all_horizontal([g > 0 for g in gaps]) | pl.all_horizontal([g < 0 for g in gaps])
        alike = candidates.select(same.mean()).item()
        out["pairs_ordered_alike"] = alike
    return out
