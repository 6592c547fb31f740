"""Fixtures for scoring tests: tiny reward-model directories and corpus files, all built offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.score.models import save_hf_reward_model

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def hf_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A third-party-style Llama reward model: score read at the last template token."""
    return save_hf_reward_model(tmp_path_factory.mktemp("models") / "llama-rm")


@pytest.fixture(scope="session")
def reward_token_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Qwen2 reward model whose config names a reward token, like an rmdata export."""
    return save_hf_reward_model(tmp_path_factory.mktemp("models") / "qwen2-rm", arch="qwen2", reward_token=True)


def corpus_rows(n: int, *, seed: int = 0) -> list[dict[str, object]]:
    """``n`` prompt/response rows of varied lengths, with a generator column and a few exact duplicates."""
    rng = __import__("random").Random(seed)
    rows = []
    for i in range(n):
        words = " ".join(rng.choice(["alpha", "beta", "gamma", "delta"]) for _ in range(rng.randint(1, 30)))
        rows.append({"prompt": f"Question {i % 9}: {words[:40]}", "response": words, "generator": f"g{i % 3}"})
    for i in range(0, n, 10):  # every tenth row repeats the one before it exactly (not the generator)
        if i:
            rows[i] = {**rows[i - 1], "generator": rows[i]["generator"]}
    return rows


# (copy, original): the copy's row takes the original's prompt and response (its generator stays)
CROSS_BLOCK_COPIES = [(17, 9), (21, 3), (27, 12), (33, 9), (35, 30), (38, 17)]


def dup_rows(n: int = 44) -> list[dict[str, object]]:
    """:func:`corpus_rows` plus the copies of :data:`CROSS_BLOCK_COPIES`: with 8 rows a block (6 blocks, the
    last of 4), copies of rows of blocks 0, 1 and 3 in blocks 2, 3 and 4; corpus_rows' own repeats give copies
    inside blocks (10, 20, 30) and one across (40 <- 39)."""
    rows = corpus_rows(n, seed=5)
    for copy, original in CROSS_BLOCK_COPIES:
        rows[copy] = {**rows[original], "generator": rows[copy]["generator"]}
    return rows


def write_corpus(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
