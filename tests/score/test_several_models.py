"""`rmdata score --model A --model B`: one table, a reward_<name> column per model, each equal to a separate
`rmdata score` run of that model; each model scores each distinct row once."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from rmdata.cli import app
from rmdata.errors import RmdataError
from rmdata.score.several import parse_models
from tests.score.conftest import corpus_rows, write_corpus
from tests.score.models import save_hf_reward_model
from tests.score.test_dedup import count_scored


@pytest.fixture(scope="module")
def tuned_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second Llama reward model with other weights (seed 1): the stand-in for a fine-tune."""
    return save_hf_reward_model(tmp_path_factory.mktemp("models") / "llama-rm-tuned", seed=1)


def _score(*args: str) -> str:
    result = CliRunner().invoke(app, ["score", *args])
    if isinstance(result.exception, RmdataError):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result.output


def _rows(directory: Path) -> pl.DataFrame:
    return pl.read_parquet(sorted((directory / "data").glob("*.parquet")))


def test_parse_models_names_and_refuses_a_repeated_name(tmp_path: Path) -> None:
    assert parse_models(["helpful=/m/a", "/m/safety-rm/", "x-y=/m/b"]) == [
        ("helpful", "/m/a"), ("safety_rm", "/m/safety-rm/"), ("b", "x-y=/m/b"),
    ]  # fmt: skip
    with pytest.raises(RmdataError, match=r"two models are named 'rm' \(column reward_rm\)"):
        parse_models(["/a/rm", "/b/rm"])


def test_the_table_has_one_column_per_model_equal_to_separate_runs(
    hf_model_dir: Path, tuned_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_corpus(tmp_path / "in.jsonl", corpus_rows(30, seed=3))
    common = ["--shard-rows", "8"]
    _score(str(source), "-m", str(hf_model_dir), "-o", str(tmp_path / "base"), *common)
    _score(str(source), "-m", str(tuned_model_dir), "-o", str(tmp_path / "tuned"), *common)
    calls = count_scored(monkeypatch)
    out = tmp_path / "both"
    printed = _score(
        str(source), "-m", f"base={hf_model_dir}", "-m", f"tuned={tuned_model_dir}", "-o", str(out), *common
    )
    base, tuned, both = _rows(tmp_path / "base"), _rows(tmp_path / "tuned"), _rows(out)
    unique = base["response_id"].n_unique()
    assert sum(calls) == 2 * unique  # each model scored each distinct row once
    assert both.columns[:10] == [
        "prompt_id", "response_id", "prompt", "response", "reward_base", "reward_tuned",
        "num_tokens_base", "num_tokens_tuned", "truncated_base", "truncated_tuned",
    ]  # fmt: skip
    assert "reward" not in both.columns and "model" not in both.columns
    for name, alone in (("base", base), ("tuned", tuned)):
        for column in ("reward", "num_tokens", "truncated"):
            assert both[f"{column}_{name}"].to_numpy().tobytes() == alone[column].to_numpy().tobytes()
    assert both.select("prompt_id", "response_id", "generator", "source").equals(
        base.select("prompt_id", "response_id", "generator", "source")
    )
    assert not both["reward_base"].equals(both["reward_tuned"])  # really two models
    manifest = json.loads((out / "manifest.json").read_text())
    fingerprints = {n: m["fingerprint"] for n, m in manifest["models"].items()}
    assert fingerprints == {
        "base": json.loads((tmp_path / "base" / "manifest.json").read_text())["model"]["fingerprint"],
        "tuned": json.loads((tmp_path / "tuned" / "manifest.json").read_text())["model"]["fingerprint"],
    }
    card = (out / "README.md").read_text()
    assert fingerprints["base"] in card and fingerprints["tuned"] in card and "| base vs tuned |" in card
    expected_rho = base.select(pl.corr(pl.col("reward"), tuned["reward"], method="spearman")).item()
    assert f"| base vs tuned | {expected_rho:.4g} |" in card
    assert "reward_base:" in printed and f"({both.height} rows;" in printed
    import datasets

    loaded = datasets.load_dataset(str(out), split="train", cache_dir=str(tmp_path / "hf-cache"))
    assert loaded.num_rows == 30 and loaded.column_names == both.columns  # the models/ folders are not read


def test_reuse_is_matched_per_model_and_a_foreign_directory_is_noted(
    hf_model_dir: Path, tuned_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = corpus_rows(20, seed=6)
    source = write_corpus(tmp_path / "in.jsonl", rows)
    _score(str(source), "-m", str(hf_model_dir), "-o", str(tmp_path / "base"))
    _score(str(source), "-m", str(tuned_model_dir), "-o", str(tmp_path / "short"), "--max-length", "64")
    calls = count_scored(monkeypatch)
    printed = _score(
        str(source), "-m", f"a={hf_model_dir}", "-m", f"b={tuned_model_dir}", "-o", str(tmp_path / "both"),
        "--reuse", str(tmp_path / "base"), "--reuse", str(tmp_path / "short"),
    )  # fmt: skip
    unique = _rows(tmp_path / "base")["response_id"].n_unique()
    assert sum(calls) == unique  # model a reused every row; model b (another max_length there) scored them all
    assert f"reward_a: {hf_model_dir}" in printed and f"0 sequences scored now, {unique} rewards reused" in printed
    assert f"note: --reuse {tmp_path / 'short'} holds none of these models' scores" in printed
    manifest = json.loads((tmp_path / "both" / "manifest.json").read_text())
    assert manifest["reuse_ignored"] == [str(tmp_path / "short")]
    # the several-model output offers its models to a later --reuse run
    calls.clear()
    _score(str(source), "-m", str(tuned_model_dir), "-o", str(tmp_path / "again"), "--reuse", str(tmp_path / "both"))
    assert sum(calls) == 0
    assert _rows(tmp_path / "again")["reward"].equals(_rows(tmp_path / "both")["reward_b"].alias("reward"))


def test_one_model_with_a_name_is_refused(hf_model_dir: Path, tmp_path: Path) -> None:
    source = write_corpus(tmp_path / "in.jsonl", corpus_rows(3))
    with pytest.raises(RmdataError, match=r"NAME=DIR names a reward_<name> column"):
        _score(str(source), "-m", f"a={hf_model_dir}", "-o", str(tmp_path / "out"))
