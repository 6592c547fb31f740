"""`rmdata score-steps`, `eval-steps` and `filter-steps` end to end on a tiny Qwen2.5-Math-PRM-layout model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from rmdata.cli import app
from rmdata.errors import RmdataError
from rmdata.score.step_eval import processbench_metrics
from rmdata.score.steps import first_error_step
from tests.conftest import WriteJsonl
from tests.prm.models import qwen_reference, save_qwen_prm

ROWS: list[dict | str] = [
    {"prompt": "What is 2+3?", "completions": ["2+3 = 5.", "So 5."], "labels": [True, True], "split": "a"},
    {"prompt": "Add 10 and 7.", "completions": ["10+7 = 18.", "So 18."], "labels": [False, False], "split": "b"},
    {
        "prompt": "Halve 8.",
        "completions": ["8/2 = 4.", "Then 5.", "So 5."],
        "labels": [True, False, False],
        "split": "a",
    },
    {"prompt": "Bad.", "completions": ["only one"], "labels": [True, False], "split": "a"},
    "{broken",
    {"prompt": "Sep.", "completions": ["x <extra_0> y"], "labels": [True], "split": "b"},
]


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    if isinstance(result.exception, RmdataError):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture
def scored(tmp_path: Path, write_jsonl: WriteJsonl) -> tuple[Path, Path, Path]:
    model = save_qwen_prm(tmp_path / "prm")
    data = write_jsonl("steps.jsonl", ROWS)
    out = tmp_path / "scores"
    _invoke("score-steps", str(data), "--model", str(model), "--output", str(out), "--threshold", "0.5")
    return model, data, out


def test_score_steps_writes_one_row_per_solution_and_rejects_the_rest(scored: tuple[Path, Path, Path]) -> None:
    model, _, out = scored
    rows = pl.read_parquet(out / "data" / "*.parquet")
    assert rows["prompt"].to_list() == ["What is 2+3?", "Add 10 and 7.", "Halve 8."]
    assert rows["split"].to_list() == ["a", "b", "a"]  # carried
    for row in rows.iter_rows(named=True):
        expected = qwen_reference(model, row["prompt"], row["completions"]).numpy()
        np.testing.assert_allclose(row["step_rewards"], expected, atol=1e-5, rtol=0)
        assert row["reward"] == pytest.approx(min(expected), abs=1e-5)
        assert row["first_error_step"] == first_error_step(expected, 0.5)
    assert rows["gold_first_error"].to_list() == [-1, 0, 1]
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert [(r["source"].rsplit(":", 1)[1], r["reason"]) for r in rejects] == [
        ("4", "invalid_record"),
        ("5", "unreadable_record"),
        ("6", "step_token_mismatch"),
    ]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rows"] == 3 and sum(manifest["dropped"].values()) == 3  # 6 lines: none lost


def test_eval_steps_equals_an_independent_computation(scored: tuple[Path, Path, Path], tmp_path: Path) -> None:
    model, data, out = scored
    threshold = float(np.median(np.concatenate(pl.read_parquet(out / "data" / "*.parquet")["step_rewards"].to_list())))
    report = json.loads(
        _invoke("eval-steps", str(data), "--model", str(model), "--threshold", str(threshold), "--subset", "split")
    )
    steps = {r["prompt"]: qwen_reference(model, r["prompt"], r["completions"]).numpy() for r in ROWS[:3]}  # type: ignore[index]
    gold = {"What is 2+3?": -1, "Add 10 and 7.": 0, "Halve 8.": 1}
    predicted = {p: int(next((i for i, s in enumerate(v) if s < threshold), -1)) for p, v in steps.items()}
    expected = processbench_metrics([predicted[p] for p in gold], list(gold.values()))
    for key in ("error_accuracy", "correct_accuracy", "f1"):
        assert report["all"][key] == expected[key]
    subset_a = processbench_metrics([predicted["What is 2+3?"], predicted["Halve 8."]], [-1, 1])
    assert report["split=a"]["error_accuracy"] == subset_a["error_accuracy"]
    assert report["dropped"] == {"invalid_record": 1, "step_token_mismatch": 1, "unreadable_record": 1}


def test_filter_steps_keeps_or_cuts_by_the_first_error(scored: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, _, out = scored
    rows = pl.read_parquet(out / "data" / "*.parquet")
    threshold = float(np.median(np.concatenate(rows["step_rewards"].to_list())))
    errors = [first_error_step(s, threshold) for s in rows["step_rewards"].to_list()]
    keep, cut = tmp_path / "keep", tmp_path / "cut"
    _invoke("filter-steps", str(out), "--threshold", str(threshold), "--output", str(keep))
    kept = pl.read_parquet(keep / "data" / "*.parquet")
    assert kept["prompt"].to_list() == [p for p, e in zip(rows["prompt"], errors, strict=True) if e == -1]
    _invoke("filter-steps", str(out), "--threshold", str(threshold), "--cut-at-first-error", "--output", str(cut))
    cut_rows = pl.read_parquet(cut / "data" / "*.parquet")
    expected = [c[: len(c) if e == -1 else e] for c, e in zip(rows["completions"].to_list(), errors, strict=True) if e]
    assert cut_rows["completions"].to_list() == expected
    manifest = json.loads((cut / "manifest.json").read_text())
    assert manifest["rows_kept"] + manifest["rows_dropped"] == rows.height


def test_help_lists_the_step_commands_without_importing_torch() -> None:
    code = "import sys\nfrom rmdata.cli import app\nimport rmdata.cli.prm\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert "score-steps" in _invoke("--help") and "filter-steps" in _invoke("--help")


def test_train_steps_then_score_steps_with_the_export(tmp_path: Path, write_jsonl: WriteJsonl) -> None:
    rows = [r for r in ROWS if isinstance(r, dict)] + [{"prompt": "No labels.", "completions": ["a"]}]
    data = write_jsonl("train.jsonl", rows)
    export = tmp_path / "prm"
    out = _invoke(
        "train-steps", str(data), "--separator", "<|reward|>", "--output", str(export), "--epochs", "4", "--lr", "3e-3"
    )
    assert "4 solutions, 8 steps" in out  # "Sep." trains: <extra_0> is plain text to the tiny tokenizer
    summary = json.loads((export / "train_steps.json").read_text())
    assert summary["dropped"] == {"invalid_record": 2}  # the bad label count, and the row without labels
    assert summary["last_loss"] < summary["first_loss"]
    assert summary["optimizer_steps"] == 4  # one packed row of 4 solutions per epoch
    scores = tmp_path / "scores"
    _invoke("score-steps", str(data), "--model", str(export), "--output", str(scores))
    scored = pl.read_parquet(scores / "data" / "*.parquet")
    assert scored.height == 5
    assert [len(s) for s in scored["step_rewards"]] == [len(c) for c in scored["completions"]]
    assert json.loads((scores / "manifest.json").read_text())["model_layout"] == "rmdata"


def test_score_steps_reads_math_shepherd_data_with_a_math_shepherd_model(
    tmp_path: Path, write_jsonl: WriteJsonl
) -> None:
    from tests.prm.models import save_math_shepherd, shepherd_reference

    model = save_math_shepherd(tmp_path / "shepherd")
    records = [
        {"input": "What is 1+1? Step 1: 1+1=2. ки\nStep 2: The answer is 2. ки", "label": "x"},  # bad label
        {"input": "What is 1+1? Step 1: 1+1=2. ки\nStep 2: The answer is 2. ки"},
        {"input": "Double 4. Step 1: 4*2=8. ки", "label": "Double 4. Step 1: 4*2=8. +", "task": "gsm8k"},
    ]
    data = write_jsonl("shepherd.jsonl", records)
    out = tmp_path / "scores"
    _invoke("score-steps", str(data), "--model", str(model), "--output", str(out))
    rows = pl.read_parquet(out / "data" / "*.parquet")
    assert rows["prompt"].to_list() == ["What is 1+1?", "Double 4."]
    assert rows["gold_first_error"].to_list() == [None, -1]
    for row in rows.iter_rows(named=True):
        expected = shepherd_reference(model, row["prompt"], row["completions"]).numpy()
        np.testing.assert_allclose(row["step_rewards"], expected, atol=1e-5, rtol=0)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model_layout"] == "math-shepherd" and manifest["dropped"] == {"invalid_record": 1}
