"""Run-wide dedup: identical (prompt, response) rows anywhere in a run are scored once, in their first block,
and every copy gets that score bit for bit, also when the run is resumed after the first block committed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import rmdata.score.blocks
from rmdata.errors import RmdataError
from rmdata.score.config import ScoreConfig
from rmdata.score.dedup import SeenIds, Values, id_keys
from rmdata.score.run import score
from rmdata.score.shards import Manifest
from tests.score.conftest import CROSS_BLOCK_COPIES, dup_rows, write_corpus

SHARD_ROWS = 8


class Stopped(BaseException):
    """Stands in for a kill: not an Exception, so nothing on the way catches it."""


def test_seen_ids_the_docstring_example() -> None:
    """Blocks [7, 5] then [7, 9]: 7 is a copy homed in block 0, 9 is new."""
    seen = SeenIds()
    seen.add(np.array([7, 5], dtype=np.uint64), 0, Values(np.array([0.5, -1.0], np.float32), np.array([3, 4], np.int32),
                                                         np.array([False, True])))  # fmt: skip
    assert seen.homes(np.array([7, 9], dtype=np.uint64)).tolist() == [0, -1]
    seen.add(np.array([9], dtype=np.uint64), 1)  # scored elsewhere: values unknown
    assert seen.values(np.array([5, 9, 4], dtype=np.uint64))[0].tolist() == [True, False, False]
    known, got = seen.values(np.array([5, 7], dtype=np.uint64))
    assert known.all()
    assert got.reward.tolist() == [-1.0, 0.5] and got.num_tokens.tolist() == [4, 3]
    assert got.truncated.tolist() == [True, False]
    seen.fill(np.array([9, 7], dtype=np.uint64), Values(np.array([2.0, 9.0], np.float32), np.array([8, 9], np.int32),
                                                       np.array([False, False])), block=1)  # fmt: skip
    known, got = seen.values(np.array([9, 7], dtype=np.uint64))
    assert got.reward.tolist() == [2.0, 0.5]  # 7's home is 0: kept
    assert known.tolist() == [True, True]
    assert id_keys(["ffffffffffffffff", "0000000000000001"]).tolist() == [2**64 - 1, 1]


def test_seen_ids_against_a_dict_over_many_merges() -> None:
    """Random blocks of ids (with repeats across blocks) through the merged runs: every lookup agrees with a
    plain dict of first occurrences, and the runs stay few (merged as they grow)."""
    rng = np.random.default_rng(0)
    seen, reference = SeenIds(), {}
    for block in range(300):
        keys = np.unique(rng.integers(0, 20_000, size=int(rng.integers(1, 120)), dtype=np.uint64))
        rng.shuffle(keys)
        homes = seen.homes(keys)
        assert homes.tolist() == [reference.get(int(k), -1) for k in keys]
        new = keys[homes < 0]
        seen.add(new, block, Values(new.astype(np.float32), (new % 1000).astype(np.int32), new % 2 == 0))
        reference.update({int(k): block for k in new})
        assert len(seen._runs) <= 2 + int(np.log2(max(len(seen), 1)))
    probe = np.arange(20_000, dtype=np.uint64)
    assert seen.homes(probe).tolist() == [reference.get(k, -1) for k in range(20_000)]
    hit = probe[seen.homes(probe) >= 0]
    known, got = seen.values(hit)
    assert known.all() and np.array_equal(got.reward, hit.astype(np.float32)) and len(seen) == len(reference)


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


def test_an_input_changed_after_the_first_pass_stops_before_its_next_commit(
    hf_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A line appended once block 0 is committed: block 1 is not committed, block 0's shard stays, and the same
    command on the restored file resumes from it and gives the uninterrupted run's rows."""
    rows = dup_rows()
    source = write_corpus(tmp_path / "in.jsonl", rows)
    _, reference = run(source, hf_model_dir, tmp_path / "reference")
    real_commit = Manifest.commit

    def commit_then_append(self: Manifest, *args: object, **kwargs: object) -> None:
        real_commit(self, *args, **kwargs)  # type: ignore[arg-type]
        with source.open("a", encoding="utf-8") as extra:
            extra.write(json.dumps(rows[0]) + "\n")

    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        patch.setattr(Manifest, "commit", commit_then_append)
        with pytest.raises(RmdataError, match=r"in\.jsonl: changed while rmdata read it .*run the same command again"):
            run(source, hf_model_dir, out)
    assert len(list((out / "data").glob("*.parquet"))) == 1
    write_corpus(source, rows)
    manifest, resumed = run(source, hf_model_dir, out)
    assert manifest["resumed_rows"] == SHARD_ROWS and resumed.equals(reference)
