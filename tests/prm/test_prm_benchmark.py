"""benchmarks/prm_scoring.py on a tiny model: one JSON line, and the per-prefix baseline agrees with one forward."""

from __future__ import annotations

import json

import pytest

from benchmarks.prm_scoring import main


def test_prints_one_json_line_whose_methods_agree(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--steps", "3", "--solutions", "2", "--hidden-size", "32", "--layers", "1", "--prompt-chars", "20"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    row = report["by_steps"]["3"]
    assert row["solutions"] == 2
    assert row["max_abs_diff_one_forward"] <= 1e-5 and row["max_abs_diff_packed"] <= 1e-5
    assert report["targets"]["scores_agree_1e-5"] is True
    assert report["targets"]["ratio_at_16_steps>=8"] is None  # 16 steps not measured
