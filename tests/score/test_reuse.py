"""`rmdata score --reuse DIR`: rows whose (prompt, response) an earlier run scored with the same model and
settings are copied from it bit for bit; only new or changed rows go through the model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from rmdata.errors import RmdataError
from rmdata.score.config import ScoreConfig
from rmdata.score.run import score
from tests.score.conftest import corpus_rows, write_corpus
from tests.score.test_dedup import count_scored


def _run(source: Path, model: Path, out: Path, *reuse: Path, **options: object) -> tuple[dict, pl.DataFrame]:
    cfg = ScoreConfig(
        inputs=[str(source)], model=str(model), output=str(out), shard_rows=8, reuse=[str(r) for r in reuse],
        **options,  # type: ignore[arg-type]
    )  # fmt: skip
    score(cfg, "test", show_progress=False)
    frame = pl.read_parquet(sorted((out / "data").glob("*.parquet")))
    return json.loads((out / "manifest.json").read_text()), frame


def _grown(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """The next iteration's corpus: 3 replies edited, 10 new rows appended, the order of the first half reversed."""
    grown = [dict(r) for r in rows]
    for i in (2, 11, 25):
        grown[i]["response"] = f"{grown[i]['response']} (edited)"
    grown[:15] = grown[:15][::-1]
    return grown + corpus_rows(10, seed=9)


def test_only_new_and_changed_rows_are_scored_and_the_table_equals_a_fresh_run(
    hf_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = corpus_rows(30, seed=4)
    _, first = _run(write_corpus(tmp_path / "old.jsonl", rows), hf_model_dir, tmp_path / "old")
    source = write_corpus(tmp_path / "new.jsonl", _grown(rows))
    _, fresh = _run(source, hf_model_dir, tmp_path / "fresh")
    old_ids = set(first["response_id"])
    new_ids = set(fresh["response_id"]) - old_ids
    assert len(new_ids) == 3 + 10  # the edited replies and the appended rows (corpus_rows(10, seed=9) is new text)

    calls = count_scored(monkeypatch)
    manifest, reused = _run(source, hf_model_dir, tmp_path / "reused", tmp_path / "old")
    assert sum(calls) == len(new_ids)  # each new distinct row went through the model once, nothing else did
    totals = manifest["totals"]
    assert totals["scored"] == len(new_ids)
    assert totals["reused"] == len(set(fresh["response_id"]) & old_ids)
    assert manifest["reused_from"] == [str(tmp_path / "old")]
    assert "rewards copied from --reuse outputs" in (tmp_path / "reused" / "README.md").read_text()

    old_reward = dict(zip(first["response_id"], first["reward"].to_numpy(), strict=True))
    for rid, value in zip(reused["response_id"], reused["reward"].to_numpy(), strict=True):
        if rid in old_reward:
            assert value.tobytes() == old_reward[rid].tobytes()  # copied bit for bit
    # the same table as a fresh score: every column equal, rewards within the engine's batch invariance
    assert reused.drop("reward").equals(fresh.drop("reward"))
    assert np.abs(reused["reward"].to_numpy() - fresh["reward"].to_numpy()).max() < 1e-5


def test_a_reuse_directory_of_other_settings_is_refused(hf_model_dir: Path, tmp_path: Path) -> None:
    source = write_corpus(tmp_path / "in.jsonl", corpus_rows(12))
    _run(source, hf_model_dir, tmp_path / "short", max_length=64)
    with pytest.raises(RmdataError, match=r"--reuse .*short: .*another score key \(max_length 64 \(this run: 256\)"):
        _run(source, hf_model_dir, tmp_path / "out", tmp_path / "short", max_length=256)
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_a_reuse_directory_that_is_no_score_output_is_refused(hf_model_dir: Path, tmp_path: Path) -> None:
    source = write_corpus(tmp_path / "in.jsonl", corpus_rows(4))
    (tmp_path / "other").mkdir()
    with pytest.raises(RmdataError, match=r"--reuse .*other: not an rmdata score output"):
        _run(source, hf_model_dir, tmp_path / "out", tmp_path / "other")


def test_the_cli_flag_reports_reused_and_scored(hf_model_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from rmdata.cli import app

    rows = corpus_rows(12)
    old = write_corpus(tmp_path / "old.jsonl", rows[:8])
    new = write_corpus(tmp_path / "new.jsonl", rows)
    runner = CliRunner()
    first = runner.invoke(app, ["score", str(old), "-m", str(hf_model_dir), "-o", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    second = runner.invoke(
        app, ["score", str(new), "-m", str(hf_model_dir), "-o", str(tmp_path / "b"), "--reuse", str(tmp_path / "a")]
    )
    assert second.exit_code == 0, second.output
    # rows 8-11 are new; row 10 repeats row 9 (corpus_rows), so 3 are scored and 1 is a duplicate
    assert "12 rows: 3 sequences scored now, 8 rewards reused from --reuse, 1 duplicates reused" in second.output
