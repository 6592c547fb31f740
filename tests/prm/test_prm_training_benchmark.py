"""benchmarks/prm_training.py on a tiny model: one JSON line, and packed and padded compute the same loss."""

from __future__ import annotations

import json

import pytest

from benchmarks.prm_training import main


def test_prints_one_json_line_with_the_same_loss_both_ways(capsys: pytest.CaptureFixture[str]) -> None:
    main(
        ["--solutions", "6", "--max-steps", "4", "--hidden-size", "64", "--layers", "2", "--max-packed-length", "1024"]
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert report["solutions"] == 6 and report["steps_labelled"] > 6
    assert report["first_loss_diff"] <= 1e-5 and report["targets"]["same_loss_1e-5"] is True
    assert report["padded_computed_tokens"] >= report["real_tokens"]
    assert report["packed"]["optimizer_steps"] * 1024 >= report["real_tokens"]
