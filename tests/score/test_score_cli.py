"""`rmdata score` end to end on tiny models: the dataset directory, dedup, bad input, resume and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from rmdata.cli import app
from rmdata.errors import RmdataError
from tests.score.conftest import corpus_rows, write_corpus


def _score(*args: str) -> object:
    result = CliRunner().invoke(app, ["score", *args])
    if isinstance(result.exception, RmdataError):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result


def _rows(directory: Path) -> pl.DataFrame:
    return pl.scan_parquet(directory / "data" / "*.parquet").collect()


def test_scores_one_row_per_input_row_in_order(hf_model_dir: Path, tmp_path: Path) -> None:
    rows = corpus_rows(25)
    source = write_corpus(tmp_path / "in.jsonl", rows)
    out = tmp_path / "scores"
    result = _score(str(source), "--model", str(hf_model_dir), "-o", str(out), "--save-to-disk", str(tmp_path / "a"))
    frame = _rows(out)
    assert frame.columns[:8] == [
        "prompt_id", "response_id", "prompt", "response", "reward", "num_tokens", "truncated", "model",
    ]  # fmt: skip
    assert {"source", "generator"} <= set(frame.columns)
    assert frame["response"].to_list() == [r["response"] for r in rows]
    assert frame["generator"].to_list() == [r["generator"] for r in rows]
    assert frame.schema["reward"] == pl.Float32 and frame.schema["truncated"] == pl.Boolean
    assert frame["model"].n_unique() == 1
    # duplicates (every tenth row repeats the one before) are scored once and written for each row
    assert frame["reward"][10] == frame["reward"][9] and frame["reward"][20] == frame["reward"][19]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["totals"] == {**manifest["totals"], "rows": 25, "scored": 23, "duplicates": 2}
    assert manifest["complete"] and manifest["resumed_rows"] == 0
    card = (out / "README.md").read_text()
    assert "### By `generator`" in card and "| g0 |" in card and manifest["model"]["rule"] in card
    assert str(hf_model_dir) in result.output  # the summary names the model

    import datasets

    loaded = datasets.load_dataset(str(out), split="train")
    assert loaded.num_rows == 25 and loaded["reward"][:3] == pytest.approx(frame["reward"][:3].to_list())
    assert datasets.load_from_disk(str(tmp_path / "a")).num_rows == 25


def test_rerun_resumes_everything_and_matches(hf_model_dir: Path, tmp_path: Path) -> None:
    source = write_corpus(tmp_path / "in.jsonl", corpus_rows(12))
    out = tmp_path / "scores"
    _score(str(source), "--model", str(hf_model_dir), "-o", str(out))
    before = (out / "data" / "train-00000.parquet").read_bytes()
    again = _score(str(source), "--model", str(hf_model_dir), "-o", str(out))
    assert "resumed 12 rows" in again.output  # type: ignore[attr-defined]
    assert (out / "data" / "train-00000.parquet").read_bytes() == before
    fresh = _score(str(source), "--model", str(hf_model_dir), "-o", str(out), "--no-resume")
    assert "resumed" not in fresh.output  # type: ignore[attr-defined]
    assert (out / "data" / "train-00000.parquet").read_bytes() == before  # bit-identical re-run


def test_other_model_or_input_into_the_same_directory_is_refused(
    hf_model_dir: Path, reward_token_model_dir: Path, tmp_path: Path
) -> None:
    source = write_corpus(tmp_path / "in.jsonl", corpus_rows(8))
    out = tmp_path / "scores"
    _score(str(source), "--model", str(hf_model_dir), "-o", str(out))
    with pytest.raises(RmdataError, match="another model .*--no-resume"):
        _score(str(source), "--model", str(reward_token_model_dir), "-o", str(out))
    other = write_corpus(tmp_path / "other.jsonl", corpus_rows(9))
    with pytest.raises(RmdataError, match="another input .*--no-resume"):
        _score(str(other), "--model", str(hf_model_dir), "-o", str(out))


def test_bad_record_stops_before_scoring_and_leaves_no_output(hf_model_dir: Path, tmp_path: Path) -> None:
    rows: list[dict[str, object]] = list(corpus_rows(5))
    rows[3] = {**rows[3], "response": ""}
    source = write_corpus(tmp_path / "in.jsonl", rows)
    out = tmp_path / "scores"
    with pytest.raises(RmdataError, match=rf"{source}:4"):
        _score(str(source), "--model", str(hf_model_dir), "-o", str(out))
    assert not out.exists()
    _score(str(source), "--model", str(hf_model_dir), "-o", str(out), "--on-error", "skip")
    frame = _rows(out)
    assert frame.height == 4 and frame["source"].to_list() == [f"{source}:{i}" for i in (1, 2, 3, 5)]
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert [r["source"] for r in rejects] == [f"{source}:4"] and rejects[0]["reason"] == "invalid_record"


def test_bad_model_leaves_no_output(hf_model_dir: Path, tmp_path: Path) -> None:
    source = write_corpus(tmp_path / "in.jsonl", corpus_rows(3))
    out = tmp_path / "scores"
    with pytest.raises(RmdataError, match="rmdata train"):
        _score(str(source), "--model", str(tmp_path / "nothing"), "-o", str(out))
    assert not out.exists()


def test_pairs_input_points_to_eval(hf_model_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "p.jsonl"
    source.write_text(json.dumps({"prompt": "a", "chosen": "b", "rejected": "c"}) + "\n")
    with pytest.raises(RmdataError, match="rmdata eval"):
        _score(str(source), "--model", str(hf_model_dir), "-o", str(tmp_path / "s"))


def test_truncated_rows_are_flagged_and_counted(hf_model_dir: Path, tmp_path: Path) -> None:
    source = write_corpus(tmp_path / "in.jsonl", corpus_rows(10))
    out = tmp_path / "scores"
    _score(str(source), "--model", str(hf_model_dir), "-o", str(out), "--max-length", "60")
    frame = _rows(out)
    assert frame["num_tokens"].max() == 60
    assert frame["truncated"].to_list() == (frame["num_tokens"] == 60).to_list()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["totals"]["truncated"] == int(frame["truncated"].sum()) > 0
    assert np.isfinite(frame["reward"].to_numpy()).all()
