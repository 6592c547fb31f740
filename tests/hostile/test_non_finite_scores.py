"""A model whose scores are NaN: ``rmdata score`` and ``rmdata eval`` stop with one error line naming the model
and the row; ``--json`` output is always strict JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from rmdata.cli.app import strict_json
from tests.helpers import write_pairs
from tests.hostile.cli import run_cli


@pytest.fixture(scope="module")
def nan_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny reward model whose score head weights are NaN (a damaged export, or an fp16 overflow)."""
    from tests.score.models import save_hf_reward_model

    out = save_hf_reward_model(tmp_path_factory.mktemp("models") / "nan-rm")
    weights = load_file(out / "model.safetensors")
    weights["score.weight"] = torch.full_like(weights["score.weight"], math.nan)
    save_file(weights, out / "model.safetensors", metadata={"format": "pt"})
    return out


def test_eval_of_a_nan_model_is_an_error_not_nan_json(
    nan_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs = write_pairs(tmp_path / "pairs.jsonl", n=6)
    result = run_cli(["eval", str(pairs), "-m", str(nan_model), "--json"], monkeypatch, tmp_path)
    assert result.code == 2 and result.error_lines == 1, result.err
    assert f"model {nan_model} gave a non-finite score (nan)" in result.err and "pairs.jsonl:" in result.err
    assert result.out == "" and "length" not in result.err


def test_score_with_a_nan_model_is_refused_before_any_output(
    nan_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"prompt": f"q{i}", "response": f"a{i}"}) + "\n" for i in range(4)))
    result = run_cli(["score", str(corpus), "-m", str(nan_model), "-o", "out"], monkeypatch, tmp_path)
    assert result.code == 2 and result.error_lines == 1, result.err
    assert "a test conversation" in result.err and f"model {nan_model} gave a non-finite score (nan)" in result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.jsonl"]


def test_a_nan_score_mid_run_names_the_row_and_commits_no_shard(
    nan_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the probe (here: skipped), a NaN score names the input row and no shard holding it is written."""
    import rmdata.score.run

    monkeypatch.setattr(rmdata.score.run, "_probe", lambda *args: None)
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"prompt": f"q{i}", "response": f"a{i}"}) + "\n" for i in range(4)))
    result = run_cli(["score", str(corpus), "-m", str(nan_model), "-o", "out"], monkeypatch, tmp_path)
    assert result.code == 2 and result.error_lines == 1, result.err
    assert "c.jsonl:1: model" in result.err and "non-finite score (nan)" in result.err
    assert not list((tmp_path / "out" / "data").glob("*.parquet"))


def test_strict_json_writes_null_for_nan_and_infinities() -> None:
    line = strict_json({"a": math.nan, "b": [math.inf, -math.inf, 1.5], "c": {"d": (math.nan,)}, "e": "x"})
    assert line == '{"a": null, "b": [null, null, 1.5], "c": {"d": [null]}, "e": "x"}'
    assert json.loads(line, parse_constant=lambda token: pytest.fail(f"non-strict token {token}"))
