"""loss_study.py and vs_trl.py at toy size: the fixed split, buckets, calibration, batch choice, both scripts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks import loss_study, vs_trl
from benchmarks._claims import PairScores, calibration, id_digest, make_split, pair_ids, tokenize, tokenizer_and_reward
from rmdata.config import LossConfig
from rmdata.data.load import load_dataset_records
from rmdata.train.losses import reward_loss


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def test_split_holds_out_whole_prompts_and_is_the_same_every_time(tmp_path: Path) -> None:
    tokenizer, reward = tokenizer_and_reward(None)
    kwargs = dict(tokenizer=tokenizer, reward=reward, max_length=256, n_train=40, n_eval=12, seed=3)
    first = make_split(None, tmp_path / "a", **kwargs)
    again = make_split(None, tmp_path / "b", **kwargs)
    assert (len(first.train_ids), len(first.eval_ids)) == (40, 12)
    assert first.train_ids == again.train_ids and first.eval_ids == again.eval_ids
    prompts = {side: {i.split(":")[0] for i in ids} for side, ids in (("t", first.train_ids), ("e", first.eval_ids))}
    assert not prompts["t"] & prompts["e"]
    # the files hold exactly those pairs: rmdata reloads them with the same content ids
    for path, ids in ((first.train, first.train_ids), (first.eval, first.eval_ids)):
        reloaded = tokenize(load_dataset_records([str(path)]).frame, tokenizer, reward, 256)
        assert id_digest(pair_ids(reloaded)) == id_digest(ids)
    assert first.info["train_ids_digest"] == id_digest(first.train_ids)


def test_split_refuses_too_few_pairs(tmp_path: Path) -> None:
    tokenizer, reward = tokenizer_and_reward(None)
    with pytest.raises(Exception, match="too few"):
        make_split(None, tmp_path, tokenizer=tokenizer, reward=reward, max_length=256, n_train=5000, n_eval=10, seed=0)


def test_buckets_are_thirds_of_the_reference_margin() -> None:
    """Margins ranked -3 < -1 < 0 < 0.5 < 2 < 4: the lowest two are hard, the next two medium, the top two easy."""
    margin = np.array([2.0, -1.0, 0.5, 4.0, -3.0, 0.0])
    assert loss_study.buckets(margin).tolist() == [2, 0, 1, 2, 0, 1]
    held = PairScores(chosen=np.array([1.0, -1.0, 2.0, 0.0, 1.0, 0.0]), rejected=np.zeros(6))
    table = loss_study.by_difficulty(held, loss_study.buckets(margin))
    assert table["hard"] == {"pairs": 2, "accuracy": 0.5, "margin": 0.0}  # pairs 1 and 4: margins -1, 1
    assert table["easy"] == {"pairs": 2, "accuracy": 0.5, "margin": 0.5}  # pairs 0 and 3: margins 1, 0


def test_calibration_of_hand_worked_margins() -> None:
    """Margin 0: P = 1/2, log-loss ln 2 = 0.6931, Brier 1/4. Margins ln 3 and -ln 3: P = 3/4 and 1/4,
    log-loss (ln(4/3) + ln 4) / 2 = 0.8370, Brier (1/16 + 9/16) / 2 = 0.3125."""
    assert calibration(np.zeros(4)) == {"log_loss": 0.6931, "brier": 0.25}
    assert calibration(np.array([math.log(3), -math.log(3)])) == {"log_loss": 0.837, "brier": 0.3125}


def test_rmdata_ranking_loss_is_trls_loss() -> None:
    """vs_trl runs loss.kind=ranking loss.penalty=none: TRL's -logsigmoid(c - r).mean() over the step's pairs."""
    chosen, rejected = torch.tensor([1.0, -0.5, 2.0]), torch.tensor([0.0, 0.5, -1.0])
    spec = LossConfig(kind="ranking", penalty="none", use_margin=False)
    trl = -torch.nn.functional.logsigmoid(chosen - rejected).mean()
    assert float(reward_loss(chosen, rejected, num_pairs=3, spec=spec)) == pytest.approx(float(trl), rel=1e-6)


def test_trl_batch_matches_rmdata_steps_when_it_can() -> None:
    assert vs_trl.trl_batch(96, 24) == 4  # ceil(96 / 4) = 24 steps
    assert vs_trl.trl_batch(120, 14) == 9  # ceil(120 / 9) = 14 (B = 10 gives 12, B = 8 gives 15)
    assert math.ceil(100 / vs_trl.trl_batch(100, 30)) in (25, 34)  # no B gives 30: the closest count


def test_score_recorder_summarizes_training_forwards_only() -> None:
    recorder = loss_study.ScoreRecorder(every=2, total=3)
    module = torch.nn.Linear(1, 1)
    for step, scores in enumerate(([1.0, -1.0], [3.0, 4.0], [0.5, -2.0]), start=1):
        recorder.hook(module.train(), (), torch.tensor(scores))
        recorder.hook(module.eval(), (), torch.tensor([100.0, 100.0]))  # an eval forward: not recorded
        recorder.on_step(step, {"loss": 0.5})
    assert [p["step"] for p in recorder.points] == [1, 2, 3]
    assert recorder.points[0]["max_abs"] == 1.0 and recorder.points[0]["train_accuracy"] == 1.0
    assert recorder.points[1]["max_abs"] == 4.0 and recorder.points[1]["train_accuracy"] == 0.0


def test_loss_study_runs_every_loss_on_the_same_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = "--steps 3 --train-pairs 48 --eval-pairs 12 --seeds 0 --losses ranking,focal_log_barrier --log-every 2"
    record = loss_study.main([*argv.split(), "--reference-seed", "7", "--out", str(tmp_path)])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == record
    runs = record["runs"]
    assert [r["loss"] for r in runs] == ["ranking", "focal_log_barrier"]
    assert all(r["steps"] == 3 and [p["step"] for p in r["score_range"]] == [1, 2, 3] for r in runs)
    assert all(sum(b["pairs"] for b in r["by_difficulty"].values()) == 12 for r in runs)
    assert runs[0]["eval_scores"] != runs[1]["eval_scores"]  # the loss reached training
    for r in runs:
        assert r["gap"] == pytest.approx(r["train_accuracy"] - r["eval_accuracy"], abs=1e-4)
    assert record["by_loss"]["ranking"]["eval_accuracy"]["mean"] == runs[0]["eval_accuracy"]
    assert Path(record["plot"]).stat().st_size > 1000


def test_vs_trl_trains_both_tools_on_identical_pairs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("trl")
    argv = ["--train-pairs", "16", "--eval-pairs", "6", "--max-packed-length", "512", "--seeds", "0,1"]
    record = vs_trl.main([*argv, "--out", str(tmp_path)])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == record
    assert record["same_pairs"] and record["same_tokens"]
    runs = record["runs"]
    assert [run["seed"] for run in runs] == [0, 1]
    assert runs[0]["split"]["train_ids_digest"] != runs[1]["split"]["train_ids_digest"]  # each seed its own split
    for run in runs:
        rm, trl = run["rmdata"], run["trl"]
        assert rm["pairs_trained"] == trl["pairs_trained"] == 16 and rm["steps"] == trl["steps"]
        assert rm["real_tokens"] == trl["real_tokens"] == trl["trl_counted_tokens"]
        assert all(0.0 <= x["eval_accuracy"] <= 1.0 and x["peak_rss_mb"] > 0 for x in (rm, trl))
        assert run["accuracy_diff_points"] == pytest.approx(100 * (rm["eval_accuracy"] - trl["eval_accuracy"]))
    diffs = record["accuracy_diff_points"]
    assert diffs["per_seed"] == [run["accuracy_diff_points"] for run in runs]
    assert diffs["mean"] == pytest.approx(np.mean(diffs["per_seed"]), abs=1e-4)
    assert diffs["se"] == pytest.approx(np.std(diffs["per_seed"], ddof=1) / math.sqrt(2), abs=1e-4)
    accuracy = [run["rmdata"]["eval_accuracy"] for run in runs]
    assert record["accuracy"]["rmdata"]["mean"] == pytest.approx(np.mean(accuracy), abs=1e-4)


def test_vs_trl_mean_se_by_hand() -> None:
    """Values 1, 2, 6: mean 3; sample std sqrt(((-2)^2 + (-1)^2 + 3^2) / 2) = sqrt(7); SE sqrt(7) / sqrt(3)."""
    assert vs_trl.mean_se([1.0, 2.0, 6.0]) == {"mean": 3.0, "se": round(math.sqrt(7 / 3), 4)}
    assert vs_trl.mean_se([0.5]) == {"mean": 0.5, "se": None}
    with pytest.raises(SystemExit):
        vs_trl.parse_args(["--seeds", "1,1"])
