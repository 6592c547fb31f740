"""A scoring run killed at any moment resumes to exactly the rows of an uninterrupted run.

The fast test stops a run in-process at every kind of moment (mid shard write, after the shard's rename but
before the manifest lists it, after the manifest); the slow one SIGKILLs real processes (each start imports
torch and transformers, ~30 s on a loaded 2-core machine, hence ``-m slow``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

import rmdata.io
from rmdata.score.config import ScoreConfig
from rmdata.score.run import score
from tests.score.conftest import corpus_rows, write_corpus

REPO = Path(__file__).resolve().parents[2]
SHARD_ROWS = 16
RUNNER = f"""
import sys, torch
torch.set_num_threads(1)
from rmdata.score.config import ScoreConfig
from rmdata.score.run import score
source, model, out = sys.argv[1:4]
score(ScoreConfig(inputs=[source], model=model, output=out, shard_rows={SHARD_ROWS}), "test", show_progress=False)
"""


class Killed(BaseException):
    """Stands in for a kill: not an Exception, so nothing on the way catches it."""


def _run(source: Path, model: Path, out: Path) -> int:
    cfg = ScoreConfig(inputs=[str(source)], model=str(model), output=str(out), shard_rows=SHARD_ROWS)
    return score(cfg, "test", show_progress=False).resumed_rows


def _committed(out: Path) -> int:
    try:
        return len(json.loads((out / "manifest.json").read_text())["shards"])
    except (OSError, ValueError, KeyError):
        return -1  # no manifest yet (still loading), or caught mid-replace: try again


def _frame(out: Path) -> pl.DataFrame:
    return pl.read_parquet(sorted((out / "data").glob("*.parquet")))


def test_stops_at_every_kind_of_moment_resume_exactly(
    hf_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_corpus(tmp_path / "in.jsonl", corpus_rows(160, seed=3))  # 10 shards of 16 rows
    reference = tmp_path / "reference"
    _run(source, hf_model_dir, reference)
    out = tmp_path / "stopped"
    real_replace = os.replace
    # (n-th atomic rename to stop at, before or after it): a shard's rename is followed by the manifest's
    for nth, after in [(1, False), (4, True), (7, False), (10, True), (1, True)]:
        calls = {"n": 0}

        def replace(
            src: str | os.PathLike[str],
            dst: str | os.PathLike[str],
            nth: int = nth,
            after: bool = after,
            calls: dict[str, int] = calls,
        ) -> None:
            calls["n"] += 1
            if calls["n"] == nth and not after:
                raise Killed
            real_replace(src, dst)
            if calls["n"] == nth:
                raise Killed

        monkeypatch.setattr(rmdata.io.os, "replace", replace)
        with pytest.raises(Killed):
            _run(source, hf_model_dir, out)
        monkeypatch.setattr(rmdata.io.os, "replace", real_replace)
    listed = _committed(out)
    assert listed == 9  # the last stop fell between shard 9's rename and the manifest
    assert _run(source, hf_model_dir, out) == 16 * listed
    assert not list((out / "data").glob(".*"))
    assert _frame(out).equals(_frame(reference))  # every column, rewards bit for bit


@pytest.mark.slow
def test_sigkilled_processes_resume_to_the_uninterrupted_rows(hf_model_dir: Path, tmp_path: Path) -> None:
    source = write_corpus(tmp_path / "in.jsonl", corpus_rows(480, seed=3))  # 30 shards of 16 rows
    reference = tmp_path / "reference"
    _run(source, hf_model_dir, reference)
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    alive = []
    for shards, delay in [(0, 0.0), (4, 0.013), (11, 0.004)]:  # kill once this many shards are listed, + delay
        proc = subprocess.Popen([sys.executable, "-c", RUNNER, str(source), str(hf_model_dir), str(out)], env=env)
        deadline = time.monotonic() + 300
        while proc.poll() is None and _committed(out) < shards and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(delay)
        alive.append(proc.poll() is None)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert any(alive)
    listed = _committed(out)
    assert 0 <= listed < 30
    assert _run(source, hf_model_dir, out) == 16 * listed
    assert not list((out / "data").glob(".*"))
    assert _frame(out).equals(_frame(reference))
