"""The memory study at toy size: one config through rmdata's loop, its figures, and the script's JSON line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import memory_study as study

REPO = Path(__file__).resolve().parents[1]
TOY = "--hidden-size 64 --layers 1 --intermediate-size 128 --pairs 16 --steps 1 --max-length 128"
TOY += " --max-packed-length 256 --eval-fraction 0.25"


def test_synthetic_pairs_follow_the_length_budget(tmp_path: Path) -> None:
    path = study.write_synthetic_pairs(tmp_path / "pairs.jsonl", n=40, max_length=128, seed=0)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 40 and len({r["prompt"] for r in rows}) == 40  # distinct prompts: a held-out split exists
    for row in rows:
        prompt = len(row["prompt"]) - len(row["prompt"].split(" ")[0]) - 1
        assert prompt + max(len(row["chosen"]), len(row["rejected"])) <= 128 - 32


def test_every_config_shares_data_rows_and_schedule() -> None:
    args = study.parse_args(TOY.split())
    plain = study.recipe_overrides(args, "lora", "p.jsonl", "out")
    qlora_gc = study.recipe_overrides(args, "qlora+gc", "p.jsonl", "out")
    differ = sorted(set(plain) ^ set(qlora_gc))
    assert differ == [
        "model.finetune=lora",
        "model.finetune=qlora",
        "model.gradient_checkpointing=false",
        "model.gradient_checkpointing=true",
    ]
    assert "train.max_steps=2" in plain and "model.tiny.hidden_size=64" in plain  # one untimed step + --steps


def test_one_config_trains_through_the_loop_and_reports_consistent_figures(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    args = study.parse_args([*TOY.split(), "--pairs-file", str(tmp_path / "pairs.jsonl")])
    study.write_synthetic_pairs(tmp_path / "pairs.jsonl", n=16, max_length=128, seed=0)
    figures = study.run_config(args, "lora+gc")
    assert figures["finetune"] == "lora" and figures["gradient_checkpointing"] is True
    assert 0 < figures["parameters"]["trainable"] < figures["parameters"]["total"]
    assert figures["steps"] == 1 and figures["real_tokens"] > 0 and figures["eval_pairs"] > 0
    assert figures["tokens_per_s"] == pytest.approx(figures["real_tokens"] / figures["wall_s"], rel=0.01)
    phases = figures["peak_mib_by_phase"]
    assert list(phases) == ["start", "setup", "first_step", "train_steps", "eval", "export"]
    assert figures["peak_mib"] >= max(phases.values()) * 0.99  # ru_maxrss covers every phase
    assert figures["training_over_setup_mib"] == pytest.approx(
        max(phases["first_step"], phases["train_steps"]) - phases["setup"], abs=0.2
    )


def test_ratios_compare_to_full_and_to_the_plain_config() -> None:
    configs = {
        "full": {"peak_mib": 1000.0, "tokens_per_cpu_s": 100.0},
        "lora": {"peak_mib": 600.0, "tokens_per_cpu_s": 120.0},
        "lora+gc": {"peak_mib": 300.0, "tokens_per_cpu_s": 90.0},
    }
    assert study.ratios(configs) == {
        "lora/full.peak": 0.6,
        "lora/full.tokens_per_cpu_s": 1.2,
        "lora+gc/lora.peak": 0.5,
        "lora+gc/lora.tokens_per_cpu_s": 0.75,
    }


def test_script_prints_one_json_line() -> None:
    command = [sys.executable, "benchmarks/memory_study.py", *TOY.split(), "--parts", "configs", "--configs", "lora"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert summary["benchmark"] == "memory_study" and list(summary["configs"]) == ["lora"]
    assert summary["configs"]["lora"]["peak_mib"] > 0


def test_unknown_configs_are_refused() -> None:
    with pytest.raises(SystemExit, match="--configs: bogus not among"):
        study.main(["--configs", "lora,bogus"])
