"""Data parallel on 2 gloo ranks equals one process on the same global batch; resume under DP is exact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rmdata.distributed import launch_ranks, share_of_step
from tests.distributed.spawn import run_ranks
from tests.distributed.workers import data_parallel_rows, data_parallel_step, train_runs
from tests.helpers import write_pairs

TOL = 1e-5


def test_share_of_step_balances_tokens_and_covers_every_pack() -> None:
    """Tokens 50, 40, 30, 20, 10 on 2 ranks, longest first to the lighter rank (ties: lower rank):
    50 -> r0 (50), 40 -> r1 (40), 30 -> r1 (70), 20 -> r0 (70), 10 -> r0 (80)."""
    tokens = [30, 50, 10, 40, 20]
    assert share_of_step(tokens, 0, 2) == [1, 2, 4]
    assert share_of_step(tokens, 1, 2) == [0, 3]
    assert sorted(i for r in range(3) for i in share_of_step(tokens, r, 3)) == [0, 1, 2, 3, 4]
    assert share_of_step([7], 1, 2) == []  # fewer packs than ranks: a rank may sit a step out
    with pytest.raises(ValueError):
        share_of_step(tokens, 2, 2)


def test_launch_ranks_reads_torchrun_then_slurm() -> None:
    assert launch_ranks({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1"}) == (3, 8, 1)
    assert launch_ranks({"SLURM_PROCID": "5", "SLURM_NTASKS": "16", "SLURM_LOCALID": "1"}) == (5, 16, 1)
    assert launch_ranks({}) is None


def test_dp2_step_equals_single_process(tmp_path: Path) -> None:
    """5 packs of 1, 2, 3, 1, 2 pairs split over 2 ranks: loss, metric sums and every gradient match one process."""
    run_ranks(data_parallel_rows, tmp_path, tmp_path / "dp")
    single = data_parallel_step(sharded=False)
    ranks = [torch.load(tmp_path / f"dp.{r}.pt") for r in (0, 1)]
    assert sorted(r["rows"] for r in ranks) == [2, 3]  # each rank really took a share
    for result in ranks:
        assert result["pairs"] == single["pairs"] == 9
        assert abs(result["loss"] - single["loss"]) < TOL
        assert torch.allclose(result["sums"], single["sums"], atol=TOL)
        for name, expected in single["grads"].items():
            assert (result["grads"][name] - expected).abs().max() < TOL, name
    assert any(g.abs().max() > 1e-3 for g in single["grads"].values())  # the comparison is not of zeros


def recipe_args(data: Path, *extra: str) -> list[str]:
    return [
        f"data.train={data}",
        "data.eval_fraction=0.25",
        "data.max_packed_length=256",
        "model.tiny.hidden_size=32",
        "model.tiny.intermediate_size=64",
        "train.max_steps=5",
        "train.grad_accum=3",
        "train.log_steps=1",
        "train.save_steps=2",
        "train.eval_steps=0",
        "train.keep_checkpoints=5",
        "train.lr=1e-3",
        *extra,
    ]


def train_lines(run: Path) -> list[dict]:
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in line.items() if k != "tokens_per_s"} for line in lines]


def final_params(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run / "final" / "model.safetensors"))


def assert_same_run(got: Path, expected: Path, tol: float) -> None:
    got_lines, expected_lines = train_lines(got), train_lines(expected)
    assert [line["step"] for line in got_lines] == [line["step"] for line in expected_lines]
    for a, b in zip(got_lines, expected_lines, strict=True):
        for key, value in b.items():
            assert a[key] == pytest.approx(value, abs=tol), (a["step"], key)
    expected_params = final_params(expected)
    for name, value in final_params(got).items():
        assert (value - expected_params[name]).abs().max() <= tol, name


@pytest.mark.parametrize("mode", ["dp", "fsdp"])
def test_training_on_2_ranks_matches_one_process_and_resumes_exactly(tmp_path: Path, mode: str) -> None:
    """train() on 2 ranks (3 packs per step, split 2 + 1) against one process: the same loss, accuracy and
    lr at every step and the same final weights; a run crashed at step 3 and resumed from its step-2
    checkpoint equals the straight run (bit for bit under DP)."""
    from rmdata.config import load_recipe
    from rmdata.train.loop import train
    from rmdata.train.runs import RunDir

    data = write_pairs(tmp_path / "pairs.jsonl")
    args = recipe_args(data, f"parallel.fsdp={'true' if mode == 'fsdp' else 'false'}")
    run_ranks(train_runs, tmp_path, args, tmp_path / mode, 3)
    single = RunDir(tmp_path / "single")
    train(load_recipe(None, recipe_args(data)), single, show_progress=False)

    straight, resumed = tmp_path / mode / "straight", tmp_path / mode / "crashed"
    assert_same_run(straight, single.path, TOL)
    assert json.loads((resumed / "run.json").read_text())["resumed_from"] == 2
    assert_same_run(resumed, straight, 0.0 if mode == "dp" else 1e-6)
    info = json.loads((straight / "run.json").read_text())
    assert info["parallel"].startswith("2 ranks: data parallel 2")
