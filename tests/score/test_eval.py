"""`rmdata eval`: pair metrics on hand-worked numbers, and the command on pairs, RewardBench and RewardBench 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rmdata.cli import app
from rmdata.errors import RmdataError
from rmdata.score.evaluate import length_warning, pair_metrics


def test_pair_metrics_by_hand() -> None:
    """chosen 3, 1, 2 vs rejected 1, 1, 4: right, tie, wrong -> accuracy 1/3, 1 tie; margins 2, 0, -2 -> 0.
    Scores 3, 1, 2, 1, 1, 4: mean 2, squared deviations
    1+1+0+1+1+4 = 8, std sqrt(8/6). Lengths equal to the scores: r = 1 (a length warning)."""
    chosen, rejected = np.array([3.0, 1.0, 2.0]), np.array([1.0, 1.0, 4.0])
    out = pair_metrics(chosen, rejected, np.array([3, 1, 2]), np.array([1, 1, 4]))
    assert out["pairs"] == 3 and out["ties"] == 1
    assert out["accuracy"] == pytest.approx(1 / 3, abs=1e-6)
    assert (out["chosen_mean"], out["rejected_mean"], out["margin_mean"], out["score_mean"]) == pytest.approx(
        (2.0, 2.0, 0.0, 2.0)
    )
    assert out["score_std"] == pytest.approx((8 / 6) ** 0.5, abs=1e-6)
    assert out["length_correlation"] == pytest.approx(1.0)
    assert "longer" in (length_warning(out) or "")
    flat = pair_metrics(chosen, rejected, np.array([5, 5, 5]), np.array([5, 5, 5]))
    assert flat["length_correlation"] is None and length_warning(flat) is None


def _eval(*args: str) -> dict:
    result = CliRunner().invoke(app, ["eval", *args, "--json"])
    if isinstance(result.exception, RmdataError):
        raise result.exception
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _pairs(n: int) -> list[dict[str, object]]:
    return [
        {"prompt": f"q{i}", "chosen": "good " * (i % 5 + 1), "rejected": "bad " * (i % 3 + 1), "group": f"g{i % 2}"}
        for i in range(n)
    ]


def test_eval_json_has_the_keys_and_groups(hf_model_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _pairs(12)))
    out = _eval(str(path), "--model", str(hf_model_dir), "--by", "group")
    for key in ("accuracy", "pairs", "ties", "chosen_mean", "rejected_mean", "margin_mean", "length_correlation"):
        assert key in out
    assert out["pairs"] == 12 and set(out["by"]["groups"]) == {"g0", "g1"}
    assert sum(g["pairs"] for g in out["by"]["groups"].values()) == 12
    assert "rewardbench" not in out
    with pytest.raises(RmdataError, match="no column 'nope'"):
        _eval(str(path), "--model", str(hf_model_dir), "--by", "nope")


def test_rewardbench_data_gets_sections(hf_model_dir: Path, tmp_path: Path) -> None:
    rows = [
        {**r, "subset": s, "id": i}
        for i, (r, s) in enumerate(zip(_pairs(4), ["alpacaeval-easy", "math-prm"] * 2, strict=True))
    ]
    path = tmp_path / "rb.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = _eval(str(path), "--model", str(hf_model_dir))
    bench = out["rewardbench"]
    assert set(bench["sections"]) == {"Chat", "Reasoning"}
    assert bench["overall"] == pytest.approx((bench["sections"]["Chat"] + bench["sections"]["Reasoning"]) / 2)


def test_rewardbench2_rows(hf_model_dir: Path, tmp_path: Path) -> None:
    rows = [
        {"prompt": "p1", "chosen": ["a good one"], "rejected": ["x", "yy", "zzz"], "num_correct": 1,
         "subset": "Math", "id": "1"},
        {"prompt": "p2", "chosen": ["four", "4"], "rejected": ["five"], "num_correct": 2, "subset": "Ties",
         "id": "tied:1"},
        {"prompt": "p2", "chosen": ["four"], "rejected": ["five", "six"], "num_correct": 1, "subset": "Ties",
         "id": "ref:1"},
    ]  # fmt: skip
    path = tmp_path / "rb2.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = _eval(str(path), "--model", str(hf_model_dir))
    assert set(out["rewardbench2"]["subsets"]) == {"Math", "Ties"}
    assert out["pairs"] == 3 + 2 + 2  # every (chosen, rejected) combination
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({**rows[0], "num_correct": 5}) + "\n")
    with pytest.raises(RmdataError, match=rf"{bad}:1: num_correct"):
        _eval(str(bad), "--model", str(hf_model_dir))
