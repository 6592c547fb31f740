"""Step-level DPO pairs: a shared correct prefix, then a step at or over the threshold vs one under it."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from rmdata.cli import app
from rmdata.curate.step_pairs import step_pairs
from rmdata.data.drops import NO_PAIR, TOO_FEW_RESPONSES, UNPAIRED
from rmdata.errors import RmdataError


def _scored() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "prompt": ["p", "p", "p", "q", "q", "r"],
            "completions": [["a", "b", "c"], ["a", "x"], ["a", "b", "y"], ["s", "t"], ["s", "u"], ["z"]],
            "step_rewards": [[0.9, 0.8, 0.7], [0.9, 0.2], [0.9, 0.8, 0.1], [0.3, 0.9], [0.3, 0.1], [0.9]],
            "id": [0, 1, 2, 3, 4, 5],
        }
    )


def test_pairs_share_a_correct_prefix_and_split_at_the_threshold() -> None:
    """Prompt p: (0, 1) split at step 1 (0.8 vs 0.2, gap 0.6); (0, 2) at step 2 (0.7 vs 0.1, gap 0.6);
    (2, 1) at step 1 (0.8 vs 0.2) is the same prefix/chosen/rejected as (0, 1), so it is not a second pair.
    Prompt q shares the prefix "s" but it scores 0.3 < 0.5: no pair. Prompt r has one solution.
    """
    pairs, dropped = step_pairs(_scored(), threshold=0.5)
    got = sorted(zip(pairs["prompt"], pairs["chosen"], pairs["rejected"], pairs["step_index"], strict=True))
    assert got == [("p\na", "b", "x", 1), ("p\na\nb", "c", "y", 2)]
    assert pairs["gap"].to_list() == pytest.approx([0.6, 0.6])
    assert dict(zip(dropped["id"], dropped["reason"], strict=True)) == {3: NO_PAIR, 4: NO_PAIR, 5: TOO_FEW_RESPONSES}


def test_the_cap_keeps_the_largest_gap_and_counts_the_rest_unpaired() -> None:
    scored = _scored().with_columns(
        pl.when(pl.col("id") == 2).then(pl.lit([0.9, 0.8, 0.4])).otherwise(pl.col("step_rewards")).alias("step_rewards")
    )
    pairs, dropped = step_pairs(scored, threshold=0.5, max_pairs_per_prompt=1)
    assert pairs["chosen"].to_list() == ["b"] and pairs["rejected"].to_list() == ["x"]  # gap 0.6 beats 0.3
    assert dropped.filter(pl.col("id") == 2)["reason"].item() == UNPAIRED


def test_build_step_dpo_writes_pairs_and_rejects(tmp_path: Path) -> None:
    scores = tmp_path / "scores.parquet"
    _scored().write_parquet(scores)
    out = tmp_path / "dpo"
    result = CliRunner().invoke(app, ["build-step-dpo", str(scores), "--output", str(out)])
    assert result.exit_code == 0, result.output
    written = pl.read_parquet(out / "data" / "*.parquet")
    assert written.columns[:3] == ["prompt", "chosen", "rejected"] and written.height == 2
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["pairs"] == 2 and manifest["dropped"] == {NO_PAIR: 2, TOO_FEW_RESPONSES: 1}
    assert len((out / "rejects.jsonl").read_text().splitlines()) == 3
    nothing = CliRunner().invoke(app, ["build-step-dpo", str(scores), "--threshold", "0.95", "-o", str(tmp_path / "x")])
    assert isinstance(nothing.exception, RmdataError) and "no step pair" in str(nothing.exception)
