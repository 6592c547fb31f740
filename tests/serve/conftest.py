"""Fixtures for the server tests: tiny reward models and the rows ``rmdata score`` gave them, built offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from typer.testing import CliRunner

from rmdata.cli import app
from rmdata.model.loading import load_scoring_model
from rmdata.serve.scorer import Scorer
from tests.score.conftest import corpus_rows, write_corpus
from tests.score.models import save_hf_reward_model

torch.set_num_threads(1)


@pytest.fixture(scope="session", params=["llama", "qwen2-reward-token"])
def model_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Llama reward model read at its last template token, and a Qwen2 one with an appended reward token."""
    out = tmp_path_factory.mktemp("models") / request.param
    if request.param == "llama":
        return save_hf_reward_model(out)
    return save_hf_reward_model(out, arch="qwen2", reward_token=True)


@pytest.fixture(scope="session")
def scorer(model_dir: Path) -> Scorer:
    return Scorer.of(load_scoring_model(model_dir, device="cpu"))


@pytest.fixture(scope="session")
def rows() -> list[dict[str, object]]:
    return corpus_rows(24, seed=3)


@pytest.fixture(scope="session")
def offline_rewards(
    model_dir: Path, rows: list[dict[str, object]], tmp_path_factory: pytest.TempPathFactory
) -> np.ndarray:
    """What ``rmdata score`` writes for :func:`rows` (float32, row order)."""
    tmp = tmp_path_factory.mktemp("offline")
    source = write_corpus(tmp / "in.jsonl", rows)
    out = tmp / "scores"
    result = CliRunner().invoke(
        app, ["score", str(source), "--model", str(model_dir), "-o", str(out), "--device", "cpu"]
    )
    assert result.exit_code == 0, result.output
    return pl.scan_parquet(out / "data" / "*.parquet").collect()["reward"].to_numpy()
