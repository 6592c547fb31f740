"""``rmdata score`` on 2 gloo ranks gives the single process's rows, resumes across world sizes, fails together.

The corpus has duplicates inside blocks and across blocks on both ranks (``shard_rows=8``: block k on rank
k % 2), so the copies a rank writes come from shards the other rank committed.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest
import torch
import torch.multiprocessing as mp

from rmdata.score.config import ScoreConfig
from rmdata.score.run import score
from rmdata.score.shards import PARTS_DIR
from tests.distributed.spawn import run_ranks
from tests.distributed.workers import score_failures, score_rows
from tests.score.conftest import dup_rows, write_corpus
from tests.score.models import save_hf_reward_model

SHARD_ROWS = 8


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_hf_reward_model(tmp_path_factory.mktemp("models") / "llama-rm")


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("data") / "in.jsonl", dup_rows())


@pytest.fixture(scope="module")
def reference(model_dir: Path, source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("single") / "scores"
    cfg = ScoreConfig(inputs=[str(source)], model=str(model_dir), output=str(out), shard_rows=SHARD_ROWS)
    score(cfg, "test", show_progress=False)
    return out


def group_dir(tmp_path: Path, name: str) -> Path:
    """A fresh directory for one process group's rendezvous file (a killed group leaves its file behind)."""
    (tmp_path / name).mkdir()
    return tmp_path / name


def frame(out: Path) -> pl.DataFrame:
    return pl.read_parquet(sorted((out / "data").glob("*.parquet")))


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def test_two_ranks_equal_one_process_row_for_row(
    model_dir: Path, source: Path, reference: Path, tmp_path: Path
) -> None:
    """6 shards over 2 ranks (0, 2, 4 on rank 0; 1, 3, 5 on rank 1): the same files, bit for bit."""
    out = tmp_path / "scores"
    run_ranks(score_rows, tmp_path, str(source), str(model_dir), str(out), SHARD_ROWS)
    assert sorted(p.name for p in (out / "data").glob("*")) == sorted(p.name for p in (reference / "data").glob("*"))
    assert frame(out).equals(frame(reference))  # every column, rewards bit for bit, in input order
    got, expected = manifest(out), manifest(reference)
    assert got["totals"] == expected["totals"] and got["ranks"] == 2 and got["complete"]
    assert not (out / PARTS_DIR).exists()  # the parts are merged into manifest.json and removed
    ranks = [torch.load(out.with_suffix(f".{r}.pt")) for r in (0, 1)]
    assert ranks[0] == ranks[1]  # every rank reports the run's totals
    assert ranks[0]["scored"] == expected["totals"]["scored"] and ranks[0]["resumed"] == 0
    assert (out / "README.md").read_text() == (reference / "README.md").read_text()


def test_killed_under_2_ranks_resumes_under_1_and_the_reverse(
    model_dir: Path, source: Path, reference: Path, tmp_path: Path
) -> None:
    """Rank 1 dies after its 2nd shard (the group is torn down, as torchrun does); one process finishes the
    run. Then a single process stopped after 3 shards is finished by 2 ranks. Both equal the reference."""
    out = tmp_path / "killed-2"
    with pytest.raises(mp.ProcessExitedException, match="exit code 3"):
        run_ranks(score_rows, group_dir(tmp_path, "first"), str(source), str(model_dir), str(out), SHARD_ROWS, 2)
    assert (out / PARTS_DIR / "rank-1-of-2.json").is_file()  # the killed run's manifest parts
    cfg = ScoreConfig(inputs=[str(source)], model=str(model_dir), output=str(out), shard_rows=SHARD_ROWS)
    resumed = score(cfg, "test", show_progress=False).resumed_rows
    assert resumed >= 2 * SHARD_ROWS  # at least rank 1's two shards were kept
    assert frame(out).equals(frame(reference))
    assert manifest(out)["totals"] == manifest(reference)["totals"] and not (out / PARTS_DIR).exists()

    out = tmp_path / "killed-1"
    stop_after_commits(replace(cfg, output=str(out)), 3)
    run_ranks(score_rows, group_dir(tmp_path, "second"), str(source), str(model_dir), str(out), SHARD_ROWS)
    assert [torch.load(out.with_suffix(f".{r}.pt"))["resumed"] for r in (0, 1)] == [3 * SHARD_ROWS] * 2
    assert frame(out).equals(frame(reference))
    assert manifest(out)["resumed_rows"] == 3 * SHARD_ROWS


class Stopped(BaseException):
    """Stands in for a kill: not an Exception, so nothing on the way catches it."""


def stop_after_commits(cfg: ScoreConfig, n: int) -> None:
    from rmdata.score.shards import Manifest

    real_commit = Manifest.commit
    calls = {"n": 0}

    def commit(self: Manifest, *args: object, **kwargs: object) -> None:
        real_commit(self, *args, **kwargs)  # type: ignore[arg-type]
        calls["n"] += 1
        if calls["n"] == n:
            raise Stopped

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Manifest, "commit", commit)
        with pytest.raises(Stopped):
            score(cfg, "test", show_progress=False)


def test_a_rank_that_fails_stops_every_rank(model_dir: Path, source: Path, tmp_path: Path) -> None:
    """Rank 1 alone refuses its options: both ranks raise and nothing is written. Rank 1 then fails on its
    first block, which rank 0 needs (block 2 copies row 9 of block 1): rank 0 stops waiting and raises too."""
    run_ranks(score_failures, tmp_path, str(source), str(model_dir), str(tmp_path), SHARD_ROWS)
    rank0, rank1 = (torch.load(tmp_path / f"messages.{r}.pt") for r in (0, 1))
    assert rank1[0].startswith("--on-error 'bogus'")
    assert rank0[0] == f"rank 1 of 2 stopped: {rank1[0]}"
    assert not (tmp_path / "refused").exists()
    assert rank1[1] == "simulated failure on rank 1"
    assert rank0[1] == "rank 1 stopped: simulated failure on rank 1"
