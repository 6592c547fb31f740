"""``datasets.load_dataset(DIR)``, the line rmdata prints after every output, returns the rows on disk now.

``datasets`` 5.2 keys its cache of a local directory whose card has a ``configs:`` header on the directory's
name and that header only. Each case loads once (filling the cache, as an earlier run or the test suite
would), then writes other rows under the same name and loads again through the same cache.
"""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest

from tests.curate.scores import dpo_rows, filter_rows, row
from tests.hostile.cli import run_cli

ROWS = [row("p1", "a", 2.0), row("p1", "b", 0.0), row("p2", "c", 1.0), row("p2", "d", 3.0)]
OTHER = [row("q1", "x", 1.0), row("q1", "y", 0.5), row("q2", "z", 2.0), row("q2", "w", -1.0)]


def load_ids(directory: Path) -> list[str]:
    return sorted(datasets.load_dataset(str(directory), split="train")["response_id"])


def test_a_rerun_of_filter_into_the_same_directory_loads_the_new_rows(tmp_path: Path) -> None:
    filter_rows(tmp_path, ROWS, top_k=1)
    assert load_ids(tmp_path / "sft") == ["a", "d"]
    filter_rows(tmp_path, OTHER, top_k=1)
    assert load_ids(tmp_path / "sft") == ["x", "z"]


def test_two_directories_of_the_same_name_load_their_own_rows(tmp_path: Path) -> None:
    dpo_rows(tmp_path / "a", ROWS)
    dpo_rows(tmp_path / "b", OTHER)
    first, second = (datasets.load_dataset(str(tmp_path / d / "dpo"), split="train") for d in "ab")
    assert sorted(first["prompt_id"]) == ["p1", "p2"] and sorted(second["prompt_id"]) == ["q1", "q2"]


def test_the_card_header_carries_the_shards_fingerprint(tmp_path: Path) -> None:
    """Same rows: same header (the cache entry is shared, correctly); other rows: another fingerprint."""
    headers = []
    for rows in (ROWS, ROWS, OTHER):
        filter_rows(tmp_path, rows, top_k=1)
        card = (tmp_path / "sft" / "README.md").read_text()
        headers.append(card.split("\n---\n")[0])
    assert headers[0] == headers[1] != headers[2]
    assert 'description: "rmdata data/*.parquet sha256:' in headers[0]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.score.models import save_hf_reward_model

    return save_hf_reward_model(tmp_path_factory.mktemp("models") / "rm")


def corpus(path: Path, prefix: str, n: int) -> Path:
    rows = [{"prompt": f"{prefix} question {i}", "response": f"{prefix} answer {i}"} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_rescoring_into_the_same_directory_loads_the_new_rows(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "scores"
    for prefix, n in (("first", 5), ("second", 3)):
        args = ["score", str(corpus(tmp_path / f"{prefix}.jsonl", prefix, n)), "-m", str(model_dir), "-o", str(out)]
        result = run_cli([*args, "--no-resume"], monkeypatch, tmp_path)
        assert result.code == 0, result.err
        loaded = datasets.load_dataset(str(out), split="train")
        assert loaded.num_rows == n and all(r.startswith(prefix) for r in loaded["response"])
