"""Curation by the first predicted error: keep error-free solutions, or cut each at its first error."""

from __future__ import annotations

import math

import polars as pl

from rmdata.curate.steps import CUT, KEEP, curate_by_first_error, split_by_reason
from rmdata.data.drops import MISSING_REWARD, STEP_ERROR


def _scored() -> pl.LazyFrame:
    return pl.LazyFrame(
        {
            "prompt": ["a", "b", "c", "d"],
            "completions": [["a1", "a2", "a3"], ["b1", "b2"], ["c1"], ["d1", "d2"]],
            "step_rewards": [[0.9, 0.4, 0.8], [0.9, 0.7], [0.2], [0.9, math.nan]],
            "id": [1, 2, 3, 4],
        }
    )


def test_keep_drops_every_solution_with_a_step_under_the_threshold() -> None:
    kept, dropped = split_by_reason(curate_by_first_error(_scored(), threshold=0.5, mode=KEEP).collect())
    assert kept["id"].to_list() == [2]
    assert kept["messages"].to_list() == [
        [{"role": "user", "content": "b"}, {"role": "assistant", "content": "b1\nb2"}]
    ]
    assert dict(zip(dropped["id"], dropped["reason"], strict=True)) == {1: STEP_ERROR, 3: STEP_ERROR, 4: MISSING_REWARD}
    assert dropped.filter(pl.col("id") == 1)["first_error_step"].item() == 1


def test_cut_keeps_the_correct_prefix_and_drops_a_wrong_first_step() -> None:
    kept, dropped = split_by_reason(curate_by_first_error(_scored(), threshold=0.5, mode=CUT).collect())
    assert kept["id"].to_list() == [1, 2]
    assert kept["completions"].to_list() == [["a1"], ["b1", "b2"]]
    assert kept["step_rewards"].to_list() == [[0.9], [0.9, 0.7]]
    assert kept["kept_steps"].to_list() == [1, 2]
    assert dict(zip(dropped["id"], dropped["reason"], strict=True)) == {3: STEP_ERROR, 4: MISSING_REWARD}
    assert dropped.filter(pl.col("id") == 3)["completions"].item().to_list() == ["c1"]  # rejects keep every step


def test_the_threshold_is_applied_here_not_read_from_the_input() -> None:
    kept, _ = split_by_reason(curate_by_first_error(_scored(), threshold=0.1, mode=KEEP).collect())
    assert kept["id"].to_list() == [1, 2, 3]
