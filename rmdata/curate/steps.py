"""Curating step-scored solutions by their first error: LazyFrame -> LazyFrame, every drop with a reason.

Input rows are ``rmdata score-steps`` output: ``prompt``, ``completions`` (the steps), ``step_rewards`` (one
probability per step) and any carried columns. ``first_error_step`` is recomputed at the threshold given
here (the first step under it, -1 when none), so one scored file serves any threshold.

- ``keep``: solutions with no predicted error are kept; the others are dropped as ``step_error``.
- ``cut``: every solution is kept up to (not including) its first error, as SFT data whose steps the PRM
  trusts; a solution whose first step is already wrong has no such prefix and is dropped as ``step_error``.

Rows without step rewards (null, or a NaN among them) are dropped as ``missing_reward`` first. The kept rows
gain ``messages`` (the prompt as the user turn, the kept steps joined by a newline as the assistant turn),
ready for SFT.
"""

from __future__ import annotations

import polars as pl

from rmdata.curate.ranking import REASON, drop_where, no_reason
from rmdata.data.drops import MISSING_REWARD, STEP_ERROR
from rmdata.errors import RmdataError

KEEP = "keep"
CUT = "cut"
MODES = (KEEP, CUT)
STEP_REWARDS = "step_rewards"
FIRST_ERROR = "first_error_step"


def first_error_expr(threshold: float) -> pl.Expr:
    """``first_error_step``: the index of the first step reward under ``threshold``, -1 when none is."""
    first = pl.int_range(pl.len()).filter(pl.element() < threshold).first()
    return pl.col(STEP_REWARDS).list.eval(first).list.first().fill_null(-1).cast(pl.Int64).alias(FIRST_ERROR)


def curate_by_first_error(frame: pl.LazyFrame, *, threshold: float, mode: str = KEEP) -> pl.LazyFrame:
    """Every input row once, with ``reason`` null when kept (see the module docstring for the modes)."""
    if mode not in MODES:
        raise RmdataError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    rewards = pl.col(STEP_REWARDS)
    missing = (
        rewards.is_null() | (rewards.list.len() == 0) | rewards.list.eval(pl.element().is_nan().any()).list.first()
    )
    marked = frame.with_columns(no_reason(), first_error_expr(threshold)).with_columns(
        drop_where(missing.fill_null(True), MISSING_REWARD)
    )
    error = pl.col(FIRST_ERROR)
    if mode == KEEP:
        return marked.with_columns(drop_where(error != -1, STEP_ERROR))
    cut = marked.with_columns(drop_where(error == 0, STEP_ERROR))
    cuts = pl.col(REASON).is_null() & (error > 0)  # a dropped row keeps every step, for its rejects line
    keep_steps = pl.when(cuts).then(error).otherwise(pl.col("completions").list.len())
    return cut.with_columns(
        pl.col("completions").list.head(keep_steps),
        rewards.list.head(keep_steps),
        keep_steps.alias("kept_steps"),
    )


def with_messages(kept: pl.LazyFrame) -> pl.LazyFrame:
    """Add ``messages``: the prompt as the user turn, the steps joined by a newline as the assistant turn."""
    user = pl.struct(role=pl.lit("user"), content=pl.col("prompt"))
    assistant = pl.struct(role=pl.lit("assistant"), content=pl.col("completions").list.join("\n"))
    return kept.with_columns(pl.concat_list([user, assistant]).alias("messages"))


def split_by_reason(marked: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(kept rows with ``messages``, without ``reason``; dropped rows with their ``reason`` as text)."""
    kept = with_messages(marked.lazy().filter(pl.col(REASON).is_null()).drop(REASON)).collect()
    dropped = marked.filter(pl.col(REASON).is_not_null()).with_columns(pl.col(REASON).cast(pl.String))
    return kept, dropped
