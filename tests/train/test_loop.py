"""`rmdata train` end to end on a tiny model: it learns, its outputs hold the right numbers, resume after a
crash, kill -9 or Ctrl-C replays the same run, and bad input or a broken run fails with one line."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from rmdata.config import Recipe, load_recipe
from rmdata.errors import RmdataError
from rmdata.model.export import load_reward_model
from rmdata.model.reward_model import build_reward_model, load_tokenizer
from rmdata.tokens.reward_token import resolve_reward_token
from rmdata.train.loop import train
from rmdata.train.optim import lr_factor
from rmdata.train.runs import RunDir
from tests.helpers import write_pairs

REPO = Path(__file__).resolve().parents[2]
TIMING_KEYS = {"tokens_per_s"}
UNTRAINED_LOSS = math.log(2) + 0.01 * 2 * (-2 * math.log(5))  # see test_training_learns


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


def crash_at_step(recipe: Recipe, run: RunDir, step: int) -> None:
    """Train ``recipe`` into ``run`` until an exception raised at optimizer step ``step`` stops it."""

    def crash(at: int, metrics: dict[str, float]) -> None:
        if at == step:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        train(recipe, run, on_step=crash, show_progress=False)


def metrics_lines(run: RunDir) -> list[dict]:
    lines = [json.loads(line) for line in run.metrics.read_text().splitlines()]
    return [{k: v for k, v in line.items() if k not in TIMING_KEYS} for line in lines]


@pytest.fixture
def pairs_file(tmp_path: Path) -> Path:
    return write_pairs(tmp_path / "pairs.jsonl")


def test_training_learns_and_changes_every_trainable_parameter(tmp_path: Path, pairs_file: Path) -> None:
    """Untrained, the value head is zero, so every score is 0: each held-out pair costs focal(Δ=0) = log 2
    plus the barrier on two zero scores, 0.01 · 2 · (−2 log 5): 0.693147 − 0.064378 = 0.628769. Eight steps
    must bring the held-out loss below that and move every weight (a loop that skips optimizer.step, or
    steps only the head, fails)."""
    recipe = tiny_recipe(pairs_file, "train.eval_steps=0", "train.save_steps=0")
    tokenizer = load_tokenizer(recipe.model)
    token = resolve_reward_token(tokenizer, recipe.model.reward_token)
    torch.manual_seed(recipe.train.seed)  # what train() does before building, so this is its initial model
    initial = build_reward_model(recipe.model, tokenizer, token).model

    run = RunDir(tmp_path / "run")
    result = train(recipe, run, show_progress=False)
    assert result.eval is not None
    assert pytest.approx(0.628769, abs=1e-6) == UNTRAINED_LOSS
    assert result.eval["loss"] < UNTRAINED_LOSS - 0.01  # measured: 0.6133 after 8 steps
    trained = dict(load_reward_model(run.final).model.named_parameters())
    unchanged = [n for n, p in initial.named_parameters() if torch.equal(p.detach(), trained[n].detach())]
    assert unchanged == []


def test_run_directory_holds_the_run_and_the_schedule_is_followed(tmp_path: Path, pairs_file: Path) -> None:
    """8 steps, warmup_ratio 0.05 of the recipe: ceil(0.4) = 1 warmup step, then cosine to 0 over 6 steps."""
    run = RunDir(tmp_path / "run")
    recipe = tiny_recipe(pairs_file)
    result = train(recipe, run, show_progress=False)
    assert result.steps == 8 and not result.interrupted
    info = json.loads(run.run_json.read_text())
    assert info["resumed_from"] is None and info["completed_steps"] == 8
    assert info["steps"] == {"total": 8, "warmup": 1, "grad_accum": 1}
    assert info["data"]["train"]["pairs"] + info["data"]["eval"]["pairs"] == 48
    assert info["data"]["dropped"] == {}
    lines = metrics_lines(run)
    train_lines = [m for m in lines if m["split"] == "train"]
    assert [m["step"] for m in train_lines] == list(range(1, 9))
    peak = recipe.train.lr
    expected = [peak * lr_factor(s, 8, 1, 0.0) for s in range(8)]
    assert [m["lr"] for m in train_lines] == pytest.approx(expected, abs=1e-6)  # logged rounded to 6 places
    assert train_lines[0]["lr"] == pytest.approx(peak) and train_lines[-1]["lr"] == 0.0
    assert [m["step"] for m in lines if m["split"] == "eval"] == [4, 8]
    evaluation = json.loads(run.eval_json.read_text())
    assert evaluation["pairs"] == info["data"]["eval"]["pairs"]
    assert {k: round(v, 6) for k, v in evaluation.items()} == {k: v for k, v in lines[-1].items() if k in evaluation}
    assert [p.name for p in sorted(run.checkpoints.iterdir())] == ["step-2", "step-4", "step-6"]
    state = json.loads((run.checkpoints / "step-6" / "state.json").read_text())
    assert state["step"] == 6 and state["total_steps"] == 8 and state["recipe"]["train"]["max_steps"] == 8
    assert (tmp_path / "latest").resolve() == run.path.resolve()
    assert load_recipe(run.recipe) == recipe


def test_resume_after_a_crash_reproduces_the_uninterrupted_run(tmp_path: Path, pairs_file: Path) -> None:
    recipe = tiny_recipe(pairs_file)
    straight = RunDir(tmp_path / "straight")
    train(recipe, straight, show_progress=False)

    crashed = RunDir(tmp_path / "crashed")
    crash_at_step(recipe, crashed, 5)
    assert not crashed.eval_json.exists()
    result = train(recipe, crashed, resume=True, show_progress=False)
    assert json.loads(crashed.run_json.read_text())["resumed_from"] == 4
    assert result.eval == json.loads(straight.eval_json.read_text())
    assert metrics_lines(crashed) == metrics_lines(straight)


def test_resume_after_kill_9_reproduces_the_uninterrupted_run(tmp_path: Path, pairs_file: Path) -> None:
    """A real SIGKILL of the training process after step 5 (checkpoint step-4 on disk): no cleanup runs."""
    killed = tmp_path / "killed"
    script = textwrap.dedent(
        f"""
        import os, signal, torch
        torch.set_num_threads(1)
        from tests.train.test_loop import tiny_recipe
        from pathlib import Path
        from rmdata.train.loop import train
        from rmdata.train.runs import RunDir
        def kill(step, metrics):
            if step == 5:
                os.kill(os.getpid(), signal.SIGKILL)
        train(tiny_recipe(Path({str(pairs_file)!r})), RunDir(Path({str(killed)!r})), on_step=kill, show_progress=False)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert [p.name for p in sorted((killed / "checkpoints").iterdir())] == ["step-2", "step-4"]

    recipe = tiny_recipe(pairs_file)
    straight = RunDir(tmp_path / "straight")
    train(recipe, straight, show_progress=False)
    resumed = train(recipe, RunDir(killed), resume=True, show_progress=False)
    assert resumed.steps == 8
    assert resumed.eval == json.loads(straight.eval_json.read_text())
    assert metrics_lines(RunDir(killed)) == metrics_lines(straight)


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
    assert json.loads(run.run_json.read_text())["interrupted_at"] == 3
    second = train(recipe, run, resume=True, show_progress=False)
    assert second.steps == 8
    assert second.eval == json.loads(straight.eval_json.read_text())


def test_resume_refuses_a_finished_run_and_a_run_without_checkpoint(tmp_path: Path, pairs_file: Path) -> None:
    recipe = tiny_recipe(pairs_file, "train.max_steps=2")
    finished = RunDir(tmp_path / "finished")
    train(recipe, finished, show_progress=False)
    before = finished.run_json.read_text()
    with pytest.raises(RmdataError, match=r"is a finished run \(2 steps, model in .*final\); nothing to resume"):
        train(recipe, finished, resume=True, show_progress=False)
    assert finished.run_json.read_text() == before  # completed_steps kept, nothing retrained

    missing = RunDir(tmp_path / "missing")
    with pytest.raises(RmdataError, match="holds no checkpoint to resume from"):
        train(recipe, missing, resume=True, show_progress=False)
    assert not missing.path.exists()


def test_resume_refuses_a_checkpoint_planned_for_other_data(tmp_path: Path, pairs_file: Path) -> None:
    """Same recipe text, but the data file grew: the plan no longer has the checkpoint's step count."""
    recipe = tiny_recipe(pairs_file, "train.max_steps=null", "train.epochs=2")
    run = RunDir(tmp_path / "run")

    def crash(step: int, metrics: dict[str, float]) -> None:
        if step == 3:
            raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        train(recipe, run, on_step=crash, show_progress=False)
    write_pairs(pairs_file, n=200)
    with pytest.raises(RmdataError, match=r"step-2 was saved by a run of \d+ steps, but this recipe and data plan"):
        train(recipe, run, resume=True, show_progress=False)


def test_a_second_run_into_the_same_directory_is_refused(tmp_path: Path, pairs_file: Path) -> None:
    run = RunDir(tmp_path / "run")
    recipe = tiny_recipe(pairs_file, "train.max_steps=1")
    train(recipe, run, show_progress=False)
    with pytest.raises(RmdataError, match="already holds a run"):
        train(recipe, run, show_progress=False)
    with pytest.raises(RmdataError, match="the recipe differs"):
        train(tiny_recipe(pairs_file, "train.max_steps=2"), run, resume=True, show_progress=False)


def test_a_diverging_run_fails_with_the_step_and_writes_no_model(tmp_path: Path, pairs_file: Path) -> None:
    """Margins of 3e38 fit float32, so the data is valid, but the pairs' ranking terms (each ~3e38) overflow
    float32 when a step sums them: the step's loss is inf, and the run must stop there."""
    rows = [json.loads(line) for line in pairs_file.read_text().splitlines()]
    pairs_file.write_text("".join(json.dumps({**r, "margin": 3e38}) + "\n" for r in rows))
    run = RunDir(tmp_path / "run")
    with pytest.raises(RmdataError, match=r"^step 1: the training loss is (nan|inf) \(not finite\)") as err:
        train(tiny_recipe(pairs_file), run, show_progress=False)
    assert "\n" not in str(err.value)
    assert not run.eval_json.exists() and not run.final.exists() and not run.checkpoints.exists()


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


def test_every_drop_is_counted_in_run_json_and_written_to_rejects(tmp_path: Path, pairs_file: Path) -> None:
    """One record breaks its format (skipped), one pair is longer than a packed row, one pair's chosen reply
    cannot fit max_length: all three land in rejects/train.jsonl with reason, source and record."""
    rows = [json.loads(line) for line in pairs_file.read_text().splitlines()]
    rows[0]["chosen"] = "x" * 120  # 120 + <|im_end|> + "\n" + reward = 123 > max_length=100: response_too_long
    rows[1]["prompt"] = "p" * 60  # both sequences ~80 tokens: ~160 > max_packed_length=128
    lines = [json.dumps(r) for r in rows]
    lines[2] = '{"prompt": "hi", "chosen": "a"}'
    pairs_file.write_text("\n".join(lines) + "\n")
    recipe = tiny_recipe(pairs_file, "data.on_error=skip", "data.max_length=100", "data.max_packed_length=128")
    run = RunDir(tmp_path / "run")
    train(recipe, run, show_progress=False)
    rejects = [json.loads(line) for line in (run.rejects / "train.jsonl").read_text().splitlines()]
    by_reason = {r["reason"]: r for r in rejects}
    assert sorted(by_reason) == ["invalid_record", "over_max_packed_length", "response_too_long"]
    assert len(rejects) == 3
    assert by_reason["invalid_record"]["source"].endswith("pairs.jsonl:3")
    assert by_reason["response_too_long"]["source"].endswith("pairs.jsonl:1")
    packed = by_reason["over_max_packed_length"]
    assert packed["source"].endswith("pairs.jsonl:2") and packed["record"]["chosen"] == rows[1]["chosen"]
    assert "over max_packed_length=128" in packed["message"]
    info = json.loads(run.run_json.read_text())
    assert info["data"]["dropped"] == {"invalid_record": 1, "over_max_packed_length": 1, "response_too_long": 1}
    split_drops = info["data"]["train"]["dropped"] | info["data"]["eval"]["dropped"]
    assert sum(split_drops.values()) == 2


def test_a_margin_float32_cannot_hold_is_refused_by_field(tmp_path: Path, pairs_file: Path) -> None:
    rows = [json.loads(line) for line in pairs_file.read_text().splitlines()]
    rows[4]["margin"] = 1e39
    pairs_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = RunDir(tmp_path / "run")
    with pytest.raises(
        RmdataError, match=r"1 margin\(s\) over float32's largest value .*pairs\.jsonl:5: margin 1e\+39"
    ):
        train(tiny_recipe(pairs_file), run, show_progress=False)
    assert not run.path.exists()
    train(tiny_recipe(pairs_file, "data.on_error=skip", "train.max_steps=1"), run, show_progress=False)
    (reject,) = [json.loads(line) for line in (run.rejects / "train.jsonl").read_text().splitlines()]
    assert reject["reason"] == "invalid_record" and reject["errors"][0]["field"] == "margin"


def test_identical_pairs_leave_the_held_out_split_empty_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    row = {"prompt": "same prompt", "chosen": "good", "rejected": "bad"}
    data = tmp_path / "same.jsonl"
    data.write_text((json.dumps(row) + "\n") * 40, encoding="utf-8")
    recipe = tiny_recipe(data, "data.eval_fraction=0.01", "train.max_steps=1", "train.eval_steps=0")
    result = train(recipe, RunDir(tmp_path / "run"), show_progress=False)
    assert result.eval is None
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: data.eval_fraction=0.01 held out no pairs: the split is by prompt and the 40 training pairs have "
        "1 distinct prompt(s); the run has no held-out evaluation (give data.eval files, or more varied prompts)"
    ]
    everything_held_out = tiny_recipe(data, "data.eval_fraction=0.99")  # the one prompt hashes under 0.99
    with pytest.raises(RmdataError, match=r"data.eval_fraction=0.99 held out all 40 pairs: .* 1 distinct prompt"):
        train(everything_held_out, RunDir(tmp_path / "run2"), show_progress=False)


@pytest.mark.parametrize(
    "setting", ["train.max_steps=1000000000000", "train.lr=inf", "train.device=tpu", "model.tiny.hidden_size=0"]
)
def test_cli_refuses_impossible_settings_in_one_line_before_creating_anything(tmp_path: Path, setting: str) -> None:
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "rmdata", "train", "--set", setting, "-o", str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    key = setting.split("=")[0]
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ") and f"{key}=" in proc.stderr
    assert not out.exists() and not (tmp_path / "rmdata-out").exists()
