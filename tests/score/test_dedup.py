"""Run-wide dedup: identical (prompt, response) rows anywhere in a run are scored once, in their first block,
and every copy gets that score bit for bit, also when the run is resumed after the first block committed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import rmdata.score.blocks
from rmdata.data.row_keys import id_keys
from rmdata.score.config import ScoreConfig
from rmdata.score.dedup import SharedScores
from rmdata.score.run import score
from rmdata.score.shards import Manifest
from tests.score.conftest import CROSS_BLOCK_COPIES, dup_rows, write_corpus

SHARD_ROWS = 8


class Stopped(BaseException):
    """Stands in for a kill: not an Exception, so nothing on the way catches it."""


def test_shared_scores_find_the_docstring_example() -> None:
    """keys 7 5 7 5 9 7 in blocks 0 0 1 1 2 2: 5 (home 0) and 7 (home 0) are shared; 9 stays in block 2."""
    shared = SharedScores.find(np.array([7, 5, 7, 5, 9, 7], dtype=np.uint64), 2)
    assert shared.ids.tolist() == [5, 7] and shared.home.tolist() == [0, 0] and shared.unique == 3
    assert shared.slots(np.array([9, 7, 5, 4, 10], dtype=np.uint64)).tolist() == [-1, 1, 0, -1, -1]
    later = SharedScores.find(np.array([1, 2, 3, 1, 4, 3, 3], dtype=np.uint64), 3)  # blocks 0 0 0 1 1 1 2
    assert later.ids.tolist() == [1, 3] and later.home.tolist() == [0, 0]
    assert SharedScores.find(np.array([1, 2, 2, 3], dtype=np.uint64), 4).ids.tolist() == []  # one block
    assert id_keys(["ffffffffffffffff", "0000000000000001"]).tolist() == [2**64 - 1, 1]


def expected_counts(rows: list[dict[str, object]]) -> dict[str, int]:
    """Duplicates and cross-block copies counted straight from the rows."""
    first: dict[tuple[str, str], int] = {}
    copied = 0
    for i, row in enumerate(rows):
        key = (str(row["prompt"]), str(row["response"]))
        home = first.setdefault(key, i)
        copied += home // SHARD_ROWS < i // SHARD_ROWS
    return {"rows": len(rows), "unique": len(first), "copied": copied}


def run(source: Path, model: Path, out: Path) -> tuple[dict, pl.DataFrame]:
    cfg = ScoreConfig(inputs=[str(source)], model=str(model), output=str(out), shard_rows=SHARD_ROWS)
    score(cfg, "test", show_progress=False)
    frame = pl.read_parquet(sorted((out / "data").glob("*.parquet")))
    return json.loads((out / "manifest.json").read_text()), frame


def count_scored(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record how many sequences each engine call scores."""
    calls: list[int] = []
    real = rmdata.score.blocks.score_sequences

    def counted(model: object, sequences: list, **kwargs: object) -> np.ndarray:
        calls.append(len(sequences))
        return real(model, sequences, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(rmdata.score.blocks, "score_sequences", counted)
    return calls


def test_copies_across_blocks_get_the_first_score_and_are_counted(
    hf_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = dup_rows()
    counts = expected_counts(rows)
    # copies inside blocks: 10 <- 9, 20 <- 19, 30 <- 29; across: the 6 of CROSS_BLOCK_COPIES and 40 <- 39
    assert counts == {"rows": 44, "unique": 34, "copied": 7}
    calls = count_scored(monkeypatch)
    manifest, frame = run(write_corpus(tmp_path / "in.jsonl", rows), hf_model_dir, tmp_path / "out")
    assert sum(calls) == counts["unique"]  # each distinct (prompt, response) went through the model once
    totals = manifest["totals"]
    assert totals["rows"] == 44 and totals["scored"] == 34 and totals["duplicates"] == 44 - 34
    assert totals["copied"] == 7
    assert [manifest["shards"][str(k)]["copied"] for k in range(6)] == [0, 0, 2, 1, 3, 1]
    reward = frame["reward"].to_numpy()
    for copy, original in [*CROSS_BLOCK_COPIES, (40, 39)]:
        assert reward[copy].tobytes() == reward[original].tobytes()
        assert frame["num_tokens"][copy] == frame["num_tokens"][original]
        assert frame["response_id"][copy] == frame["response_id"][original]
        assert frame["generator"][copy] == rows[copy]["generator"]  # the row's own carried columns stay
    by_id = frame.group_by("response_id").agg(pl.col("reward").n_unique().alias("values"))
    assert by_id["values"].max() == 1 and by_id.height == 34
    card = (tmp_path / "out" / "README.md").read_text()
    assert "10 duplicates reused run-wide (7 from earlier shards)" in card


def test_a_resumed_run_with_cross_block_copies_equals_an_uninterrupted_one(
    hf_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped after blocks 0 and 1 committed: blocks 2-4 copy rows of blocks 0 and 1, which the resumed
    process never scored: it reads them from the committed shards (and scores only what is new)."""
    source = write_corpus(tmp_path / "in.jsonl", dup_rows())
    _, reference = run(source, hf_model_dir, tmp_path / "reference")
    real_commit = Manifest.commit
    commits = {"n": 0}

    def commit(self: Manifest, *args: object, **kwargs: object) -> None:
        real_commit(self, *args, **kwargs)  # type: ignore[arg-type]
        commits["n"] += 1
        if commits["n"] == 2:
            raise Stopped

    out = tmp_path / "stopped"
    with monkeypatch.context() as patch:
        patch.setattr(Manifest, "commit", commit)
        with pytest.raises(Stopped):
            run(source, hf_model_dir, out)
    calls = count_scored(monkeypatch)
    manifest, resumed = run(source, hf_model_dir, out)
    assert manifest["resumed_rows"] == 2 * SHARD_ROWS
    new_after_block_1 = len(
        {r["response_id"] for r in reference.slice(16).to_dicts()} - set(reference["response_id"][:16])
    )
    assert sum(calls) == new_after_block_1
    assert resumed.equals(reference)  # every column, rewards bit for bit
