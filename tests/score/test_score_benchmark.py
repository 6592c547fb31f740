"""benchmarks/score_throughput.py at toy size: it runs, its figures are consistent, rmdata matches HF."""

from __future__ import annotations

import pytest

from benchmarks import score_throughput as bench

TOY = "--sequences 6 --hidden-size 32 --layers 2 --heads 4 --kv-heads 2 --intermediate-size 64 --vocab-size 300"


def test_toy_run_reports_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    report = bench.main(f"{TOY} --max-length 96 --batch-tokens 256".split())
    assert capsys.readouterr().out.count("\n") == 1  # one JSON line
    for name in ("rmdata_packed", "rmdata_padded", "hf_padded16", "hf_batch1"):
        figures = report[name]
        assert figures["real_tokens"] == report["data"]["tokens"]
        assert figures["computed_tokens"] >= figures["real_tokens"]
        assert figures["max_abs_diff_vs_hf"] < 1e-4
    assert report["rmdata_packed"]["computed_tokens"] == report["data"]["tokens"]  # packing adds no padding
    assert report["ratio_vs_hf_padded16"] > 0 and report["matmul_ceiling_gflops_per_s"] > 0
    assert set(report["targets"]) == {"vs_hf_padded16>=2", "vs_hf_batch1>=5", "flops_fraction>=0.5"}


def test_synthetic_lengths_are_long_tailed_and_clipped() -> None:
    seqs = bench.synthetic_sequences(400, 1024, 300, seed=0)
    lengths = sorted(len(s) for s in seqs)
    assert lengths[-1] == 1024 and lengths[0] > bench.TEMPLATE_OVERHEAD
    assert lengths[len(lengths) // 2] < 0.6 * 1024  # median far below the clip: a long tail


def test_flops_count_by_hand() -> None:
    """Two sequences of 3 and 1 tokens, 10 weights, 1 layer of width 2: 2*10*4 + 2*1*2*(9+1) = 80 + 40."""
    import numpy as np

    assert bench.model_flops([np.zeros(3), np.zeros(1)], params=10, layers=1, hidden=2) == 120.0
