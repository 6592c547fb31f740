"""rmdata filter / build-dpo as a user runs them: defaults, messages, and one-line errors for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from rmdata.cli import app
from rmdata.dataset_dir import write_marker
from tests.curate.scores import read_dir, row, write_scores

RUNNER = CliRunner()
ROWS = [row("p1", "a", 2.0, generator="g1"), row("p1", "b", 0.5, generator="g2"), row("p2", "c", 1.0, generator="g1")]
ROWS.append(row("p2", "d", -1.0, generator="g2"))


def scores_dir(root: Path) -> Path:
    """A score output directory as `rmdata score` leaves it: marker, data/ shards."""
    out = root / "rmdata-out" / "scores"
    write_scores(out / "data" / "train-00000.parquet", ROWS)
    write_marker(out, "scores")
    return out


def run(args: list[str], cwd: Path) -> tuple[int, str]:
    """The console entry point in a subprocess (main() turns RmdataError into one line and exit 2)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "rmdata", *args], cwd=cwd, env=env, capture_output=True, text=True)
    return done.returncode, done.stdout + done.stderr


def test_defaults_read_rmdata_out_scores_and_print_how_to_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scores_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    result = RUNNER.invoke(app, ["filter", "--top-k", "1"])
    assert result.exit_code == 0, result.output
    assert "sft: rmdata-out/sft  (2 rows" in result.stdout
    assert "datasets.load_dataset('rmdata-out/sft', split='train')" in result.stdout
    assert read_dir(tmp_path / "rmdata-out" / "sft")["response_id"].to_list() == ["a", "c"]
    result = RUNNER.invoke(app, ["build-dpo", "--margin", "1.0", "--rejects", "dropped.jsonl"])
    assert result.exit_code == 0, result.output
    assert "dpo: rmdata-out/dpo  (2 pairs" in result.stdout and "trl.DPOTrainer" in result.stdout
    assert "rejects: dropped.jsonl  (0 rows)" in result.stdout
    # run again: rmdata's own outputs are replaced
    assert RUNNER.invoke(app, ["build-dpo", "--margin", "1.6"]).exit_code == 0
    # p1: a - b = 1.5 < 1.6; p2: c - d = 2.0
    assert read_dir(tmp_path / "rmdata-out" / "dpo")["chosen_id"].to_list() == ["c"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["filter", "--top-k", "0"], "--top-k 0: must be >= 1"),
        (["filter", "--top-p", "1.5"], "--top-p 1.5: must be a fraction in (0, 1]"),
        (["filter", "--normalize", "zscore", "--by", "genre"],
         "--by genre: no such column in the score table; columns: prompt_id, response_id, prompt, response, reward"),
        (["filter", "--by", "generator"], "--by generator groups rewards for --normalize"),
        (["filter", "--normalize", "minmax"], "--normalize minmax: choose one of none, zscore, rank"),
        (["build-dpo", "--margin", "-0.5"], "--margin -0.5: must be >= 0"),
        (["build-dpo", "--margin", "100"], "no pairs left (2 candidate pairs dropped as below_margin): lower --margin"),
        (["filter", "--min-score", "50"], "no rows left (4 rows dropped as below_min_score): lower --min-score"),
        (["filter", "--rejects", "out.csv"], "--rejects out.csv: name a .parquet, .jsonl or .ndjson file"),
        (["filter", "--rejects", "rmdata-out/sft/r.jsonl"], "is inside --output rmdata-out/sft"),
    ],
)  # fmt: skip
def test_bad_options_fail_in_one_line_and_leave_no_output(tmp_path: Path, args: list[str], message: str) -> None:
    scores_dir(tmp_path)
    code, output = run(args, tmp_path)
    error = [line for line in output.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(error) == 1 and message in error[0], output
    assert sorted(p.name for p in (tmp_path / "rmdata-out").iterdir()) == ["scores"]


def test_inputs_that_are_not_score_outputs(tmp_path: Path) -> None:
    (tmp_path / "corpus.jsonl").write_text(json.dumps({"prompt": "hi", "response": "yo"}) + "\n")
    pl.DataFrame([{k: v for k, v in ROWS[0].items() if k != "reward"}]).write_parquet(tmp_path / "unscored.parquet")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_marker(run_dir, "run")
    cases = {
        "rmdata-out/scores": "rmdata-out/scores does not exist; make one with `rmdata score CORPUS`",
        "corpus.jsonl": "corpus.jsonl is not a score output (a Parquet file or directory); make one with `rmdata score",
        "unscored.parquet": "unscored.parquet is not a score output: it has no reward column(s)",
        "run": "run is an rmdata run directory, not a score output",
    }
    for path, message in cases.items():
        code, output = run(["build-dpo", *([] if path == "rmdata-out/scores" else [path])], tmp_path)
        assert code == 2 and output.count("\n") == 1 and message in output, output


def test_an_output_directory_rmdata_did_not_make_is_refused(tmp_path: Path) -> None:
    scores_dir(tmp_path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    code, output = run(["filter", "--output", "mine"], tmp_path)
    assert code == 2 and "holds files rmdata did not make" in output
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_length_penalty_needs_num_tokens(tmp_path: Path) -> None:
    write_scores(tmp_path / "s.parquet", [{k: v for k, v in r.items() if k != "num_tokens"} for r in ROWS])
    code, output = run(["filter", "s.parquet", "--length-penalty", "0.01"], tmp_path)
    assert code == 2 and "--length-penalty needs a num_tokens column" in output
