"""`rmdata train` end to end on a tiny model: outputs, resume after a crash or Ctrl-C, bad input."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from rmdata.config import Recipe, load_recipe
from rmdata.errors import RmdataError
from rmdata.train.loop import train
from rmdata.train.runs import RunDir
from tests.helpers import write_pairs

TIMING_KEYS = {"tokens_per_s"}


def tiny_recipe(data: Path, *extra: str) -> Recipe:
    return load_recipe(
        None,
        [
            f"data.train={data}",
            "data.eval_fraction=0.25",
            "data.max_packed_length=256",
            "model.tiny.hidden_size=32",
            "model.tiny.intermediate_size=64",
            "train.max_steps=8",
            "train.log_steps=1",
            "train.save_steps=2",
            "train.eval_steps=4",
            "train.keep_checkpoints=10",
            *extra,
        ],
    )


def metrics_lines(run: RunDir) -> list[dict]:
    lines = [json.loads(line) for line in run.metrics.read_text().splitlines()]
    return [{k: v for k, v in line.items() if k not in TIMING_KEYS} for line in lines]


@pytest.fixture
def pairs_file(tmp_path: Path) -> Path:
    return write_pairs(tmp_path / "pairs.jsonl")


def test_run_directory_holds_every_output(tmp_path: Path, pairs_file: Path) -> None:
    run = RunDir(tmp_path / "run")
    result = train(tiny_recipe(pairs_file), run, show_progress=False)
    assert result.steps == 8 and not result.interrupted
    info = json.loads(run.run_json.read_text())
    assert info["resumed_from"] is None
    assert info["attention"]["backend"] and info["attention"]["reason"]
    assert info["dtype"]["compute"] == "float32"
    assert 0 < info["data"]["train"]["packing"]["efficiency"] <= 1
    assert info["data"]["train"]["pairs"] + info["data"]["eval"]["pairs"] == 48
    evaluation = json.loads(run.eval_json.read_text())
    for key in ("accuracy", "pairs", "chosen_mean", "rejected_mean", "score_mean", "score_std"):
        assert key in evaluation
    assert evaluation["pairs"] == info["data"]["eval"]["pairs"]
    train_lines = [m for m in metrics_lines(run) if m["split"] == "train"]
    assert [m["step"] for m in train_lines] == list(range(1, 9))
    assert all(m["loss"] > 0 for m in train_lines)
    assert [p.name for p in sorted(run.checkpoints.iterdir())] == ["step-2", "step-4", "step-6"]
    assert (run.final / "config.json").exists()
    assert (tmp_path / "latest").resolve() == run.path.resolve()
    assert load_recipe(run.recipe) == tiny_recipe(pairs_file)


def test_resume_after_a_crash_reproduces_the_uninterrupted_run(tmp_path: Path, pairs_file: Path) -> None:
    recipe = tiny_recipe(pairs_file)
    straight = RunDir(tmp_path / "straight")
    train(recipe, straight, show_progress=False)

    crashed = RunDir(tmp_path / "crashed")

    def crash_at_step_5(step: int, metrics: dict[str, float]) -> None:
        if step == 5:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        train(recipe, crashed, on_step=crash_at_step_5, show_progress=False)
    assert not crashed.eval_json.exists()
    result = train(recipe, crashed, resume=True, show_progress=False)
    assert json.loads(crashed.run_json.read_text())["resumed_from"] == 4
    assert result.eval == json.loads(straight.eval_json.read_text())
    assert metrics_lines(crashed) == metrics_lines(straight)


def test_ctrl_c_checkpoints_and_resume_finishes_the_same_run(tmp_path: Path, pairs_file: Path) -> None:
    recipe = tiny_recipe(pairs_file, "train.save_steps=0")
    straight = RunDir(tmp_path / "straight")
    train(recipe, straight, show_progress=False)

    run = RunDir(tmp_path / "interrupted")

    def press_ctrl_c(step: int, metrics: dict[str, float]) -> None:
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)

    first = train(recipe, run, on_step=press_ctrl_c, show_progress=False)
    assert first.interrupted and first.steps == 3
    assert [p.name for p in run.checkpoints.iterdir()] == ["step-3"]
    second = train(recipe, run, resume=True, show_progress=False)
    assert second.steps == 8
    assert second.eval == json.loads(straight.eval_json.read_text())


def test_a_second_run_into_the_same_directory_is_refused(tmp_path: Path, pairs_file: Path) -> None:
    run = RunDir(tmp_path / "run")
    recipe = tiny_recipe(pairs_file, "train.max_steps=1")
    train(recipe, run, show_progress=False)
    with pytest.raises(RmdataError, match="already holds a run"):
        train(recipe, run, show_progress=False)
    with pytest.raises(RmdataError, match="the recipe differs"):
        train(tiny_recipe(pairs_file, "train.max_steps=2"), run, resume=True, show_progress=False)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.train=missing.jsonl"], "missing.jsonl"),
        (["model.reward_token_id=5000"], "model.reward_token_id=5000 is outside the tokenizer's vocabulary"),
        (["data.max_length=4"], "no training pairs left after filtering"),
    ],
)
def test_bad_input_fails_before_anything_is_written(
    tmp_path: Path, pairs_file: Path, overrides: list[str], message: str
) -> None:
    run = RunDir(tmp_path / "run")
    with pytest.raises(RmdataError, match=message.replace(".", r"\.")):
        train(tiny_recipe(pairs_file, *overrides), run, show_progress=False)
    assert not run.path.exists()


def test_bad_records_are_listed_with_their_line(tmp_path: Path, pairs_file: Path) -> None:
    lines = pairs_file.read_text().splitlines()
    lines[2] = '{"prompt": "hi", "chosen": "a"}'
    pairs_file.write_text("\n".join(lines) + "\n")
    run = RunDir(tmp_path / "run")
    with pytest.raises(RmdataError, match=r"pairs\.jsonl:3"):
        train(tiny_recipe(pairs_file), run, show_progress=False)
    assert not run.path.exists()
