"""The scale benchmark at toy size: its table, its pandas baseline and rmdata keep the same ids."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl

from benchmarks import curate_scale

REPO = Path(__file__).resolve().parents[2]


def test_generated_table_has_the_score_columns_ties_and_duplicates(tmp_path: Path) -> None:
    curate_scale.generate(tmp_path, 5000, 5, seed=0)
    frame = pl.read_parquet(tmp_path / "*.parquet")
    assert frame.height == 5000 and frame["prompt_id"].n_unique() == 1000
    assert {"prompt_id", "response_id", "prompt", "response", "reward", "num_tokens"} <= set(frame.columns)
    assert frame["reward"].dtype == pl.Float32
    assert frame.select("prompt_id", "response").is_duplicated().sum() > 0  # identical texts, other ids
    assert frame.select("prompt_id", "reward").is_duplicated().sum() > 0  # ties within a prompt
    assert frame["response_id"].n_unique() == 5000


def test_script_prints_one_json_line_with_matching_ids() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "curate_scale.py"), "--rows", "2000"],
        capture_output=True, text=True, check=True, cwd=REPO,
    )  # fmt: skip
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["all_same_kept_ids"] is True and result["rows"] == 2000
    for name in ("filter", "build_dpo"):
        assert result[name]["rows_out"] > 0 and result[name]["rmdata"]["peak_rss_mb"] > 0
        assert result[name]["speedup"] > 0 and result[name]["cpu_ratio"] > 0
