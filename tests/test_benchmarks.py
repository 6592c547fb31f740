"""The packing benchmark at toy size: its lengths, its steps, a fair baseline and consistent figures."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from benchmarks import train_packing as bench
from benchmarks._lengths import ALPACA_EVAL_PREFS, LogNormal, fit_pairs_file, synthetic_pair_lengths, template_overhead
from benchmarks._pairs import Pairs, load_pairs, load_tokenizer
from rmdata.tokens.batching import pack_sequences

TOY = "--pairs 12 --hidden-size 32 --layers 2 --intermediate-size 64 --max-length 192 --max-packed-length 512"


def toy_args(extra: str = "") -> argparse.Namespace:
    return bench.parse_args(f"{TOY} --device cpu --warmup-steps 1 {extra}".split())


def toy_pairs(n: int = 12, seed: int = 0, max_length: int = 192) -> Pairs:
    tokenizer, reward_id = load_tokenizer(None)
    return load_pairs(tokenizer, reward_id, n=n, max_length=max_length, seed=seed)


def test_lognormal_samples_follow_their_parameters() -> None:
    lengths = LogNormal(5.0, 0.8).sample(np.random.default_rng(0), 50_000)
    logs = np.log(lengths)
    assert logs.mean() == pytest.approx(5.0, abs=0.02) and logs.std() == pytest.approx(0.8, abs=0.02)
    assert LogNormal(5.0, 0.8).quantile(0.5) == pytest.approx(np.exp(5.0))


def test_fit_recovers_the_parameters_of_a_file(tmp_path: Path) -> None:
    """Texts of 4 x n characters are n tokens at chars / 4, so the fit must give back the drawn mu, sigma."""
    rng = np.random.default_rng(0)
    n = {
        part: LogNormal(mu, 0.5).sample(rng, 4000) for part, mu in [("prompt", 3.0), ("chosen", 6.0), ("rejected", 4.5)]
    }
    path = tmp_path / "pairs.jsonl"
    records = [{part: "x" * (4 * int(n[part][i])) for part in n} for i in range(4000)]
    path.write_text("\n".join(json.dumps(r) for r in records))
    table = fit_pairs_file(path)
    for part, mu in [("prompt", 3.0), ("chosen", 6.0), ("rejected", 4.5)]:
        assert table[part]["mu"] == pytest.approx(mu, abs=0.03)
        assert table[part]["sigma"] == pytest.approx(0.5, abs=0.03)


def test_template_overhead_of_the_tiny_tokenizer() -> None:
    """ChatML, one byte per token: '<|im_start|>' 'user\\n' '<|im_end|>' '\\n' = 1 + 5 + 1 + 1, then
    '<|im_start|>' 'assistant\\n' '<|im_end|>' '\\n' = 1 + 10 + 1 + 1, plus the reward token: 22."""
    assert template_overhead(load_tokenizer(None)[0]) == 22


def test_synthetic_pairs_share_a_prompt_carry_the_overhead_and_are_clipped() -> None:
    chosen, rejected = synthetic_pair_lengths(20_000, overhead=22, max_length=2048, seed=0)
    assert chosen.min() >= 24 and rejected.min() >= 24 and max(chosen.max(), rejected.max()) == 2048
    # chosen replies are longer than rejected ones in the fitted data: median 380 vs 103 tokens
    assert np.median(chosen) > 2 * np.median(rejected)
    unclipped = chosen < 2048
    prompt_median = np.exp(ALPACA_EVAL_PREFS["prompt"].mu)
    reply_median = np.exp(ALPACA_EVAL_PREFS["chosen"].mu)
    assert np.median(chosen[unclipped]) == pytest.approx(prompt_median + reply_median + 22, rel=0.15)


def test_synthetic_sequences_end_with_the_reward_token() -> None:
    pairs = toy_pairs()
    assert len(pairs.chosen) == len(pairs.rejected) == 12
    assert all(seq[-1] == pairs.reward_id and (seq[:-1] < 256).all() for seq in pairs.chosen + pairs.rejected)
    assert pairs.pad_id != pairs.reward_id


def test_real_pairs_are_tokenized_by_rmdata(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    records = [
        {"prompt": "Say hi", "chosen": "Hi there!", "rejected": "no"},
        {"prompt": [{"role": "user", "content": "Count"}], "chosen": "1 2 3", "rejected": "x" * 500},
    ]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    tokenizer, reward_id = load_tokenizer(None)
    pairs = load_pairs(tokenizer, reward_id, n=5, max_length=100, seed=0, data=path)
    assert len(pairs.chosen) == 1 and pairs.info["dropped"] == {"response_too_long": 1}
    text = tokenizer.decode(pairs.chosen[0].tolist())
    assert text.startswith("<|im_start|>user\nSay hi") and text.endswith("Hi there!<|im_end|>\n<|reward|>")


@pytest.mark.parametrize("order", ["shuffled", "length_grouped"])
def test_both_modes_step_over_the_same_pairs(order: str) -> None:
    args = toy_args(f"--padded-order {order} --max-packed-length 1024")
    pairs = toy_pairs()
    steps = bench.make_steps(pairs, args)
    packed = sorted(u for rows in steps["packed"] for row in rows for u in row.units)
    padded = sorted(u for batch in steps["padded"] for u in batch)
    assert packed == padded == list(range(12))
    per_packed_step = 12 / len(steps["packed"])
    assert {len(b) for b in steps["padded"][:-1]} == {max(1, round(per_packed_step))}
    if order == "length_grouped":  # one megabatch here: the whole order is sorted, longest first
        longest = [max(len(pairs.chosen[u]), len(pairs.rejected[u])) for b in steps["padded"] for u in b]
        assert longest == sorted(longest, reverse=True)


def test_padded_batch_is_chosen_rows_then_rejected_rows_right_padded() -> None:
    pairs = Pairs([np.array([5, 6, 9]), np.array([7, 9])], [np.array([8, 9]), np.array([1, 2, 3, 4, 9])], 9, 0)
    input_ids, mask = bench.padded_batch([1, 0], pairs)
    assert input_ids.tolist() == [[7, 9, 0, 0, 0], [5, 6, 9, 0, 0], [1, 2, 3, 4, 9], [8, 9, 0, 0, 0]]
    assert mask.sum(dim=1).tolist() == [2, 3, 5, 2]


def test_the_baseline_computes_the_same_scores_as_rmdata() -> None:
    """Same weights, same pairs: the padded sdpa baseline and rmdata's packed model agree, so the benchmark
    compares two ways of computing one function."""
    torch.set_num_threads(1)
    args, pairs = toy_args(), toy_pairs(n=3)
    tokenizer, reward_id = load_tokenizer(None)
    packed: Any = bench.build_model(args, tokenizer, reward_id, "packed")[0]
    padded: Any
    padded, attention = bench.build_model(args, tokenizer, reward_id, "padded")
    assert "sdpa" in attention and not isinstance(padded, type(packed))
    with torch.no_grad():  # rmdata's head starts at zero: give both the same non-zero head
        packed.value_head.weight.normal_(generator=torch.Generator().manual_seed(1))
        padded.head.weight.copy_(packed.value_head.weight)
        units = [0, 1, 2]
        scores_packed = packed(pack_sequences([s for u in units for s in (pairs.chosen[u], pairs.rejected[u])]))
        scores_padded = padded(*bench.padded_batch(units, pairs))
    assert scores_packed.abs().min() > 1e-3
    torch.testing.assert_close(scores_packed[0::2], scores_padded[:3], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(scores_packed[1::2], scores_padded[3:], atol=1e-4, rtol=1e-4)


def test_run_mode_figures_are_consistent() -> None:
    torch.set_num_threads(1)
    args = toy_args()
    packed, padded = bench.run_mode(args, "packed"), bench.run_mode(args, "padded")
    lengths = toy_pairs()
    real = sum(len(s) for s in lengths.chosen + lengths.rejected)
    assert packed["real_tokens"] == padded["real_tokens"] == real
    assert packed["computed_tokens"] == real and packed["real_token_fraction"] == 1.0
    assert padded["computed_tokens"] > real and padded["real_token_fraction"] == round(
        real / padded["computed_tokens"], 4
    )
    assert packed["pairs"] == padded["pairs"] == 12 and 0 < packed["row_fill"] <= 1
    assert packed["tokens_per_s"] > 0 and padded["peak_memory_mb"] > 0
    summary = bench.summarize(args, packed, padded)
    assert summary["tokens_per_s_ratio"] == pytest.approx(packed["tokens_per_s"] / padded["tokens_per_s"], rel=1e-3)
    assert summary["targets"]["packed_real_token_fraction>=0.95"] is True
    assert summary["targets_met"] == all(summary["targets"].values())
    assert "data" not in summary["packed"] and summary["data"]["template_overhead"] == 22


@pytest.mark.slow
def test_script_prints_one_json_line() -> None:
    """End to end as a user runs it: two worker subprocesses, one JSON line on stdout (~15 s, more under load)."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "train_packing.py"
    done = subprocess.run(
        [sys.executable, str(script), *TOY.split(), "--device", "cpu"], capture_output=True, text=True, check=True
    )
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert summary["packed"]["real_tokens"] == summary["padded"]["real_tokens"] > 0
    assert summary["packed"]["memory_measure"] == "ru_maxrss of the subprocess"
    assert any("ratio" in key for key in summary)


def test_first_shard_scan_measure_counts_every_record(tmp_path: Path) -> None:
    """benchmarks/first_shard.py: the scan and its json.loads baseline each read every record, in a subprocess."""
    from benchmarks import first_shard
    from benchmarks.stream_memory import alpaca_records, write_file

    path = tmp_path / "in.jsonl"
    write_file(path, alpaca_records(None, 0), 300)
    for kind in ("json_loads", "scan"):
        figures = first_shard.measure(kind, path)
        assert figures["records"] == 300 and figures["peak_rss_mb"] > 0
        assert figures["records_per_cpu_s"] >= figures["records_per_s"] / 2 > 0  # one process: cpu <= ~wall


@pytest.mark.slow
def test_first_shard_script_reports_the_first_shard(tmp_path: Path) -> None:
    """End to end: a tiny input, rmdata score started and stopped at its first shard (~30 s, more under load)."""
    from benchmarks import first_shard

    summary = first_shard.main(["--rows", "500", "--tmp", str(tmp_path)])
    assert summary["scan"]["records"] == summary["json_loads"]["records"] == 500
    assert 0 < summary["score"]["first_shard_s"] < 600 and summary["targets_met"] == all(summary["targets"].values())
    assert list(tmp_path.iterdir()) == []  # the generated input and model are gone
