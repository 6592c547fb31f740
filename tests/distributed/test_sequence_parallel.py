"""Ulysses sequence parallel on 2 gloo ranks equals one process on the same long packed row."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rmdata.distributed import init_distributed
from rmdata.errors import RmdataError
from rmdata.model.sequence_parallel import check_heads, pad_to_multiple
from rmdata.tokens.batching import pack_sequences
from tests.core_helpers import build_tiny, random_sequences, randomize_head
from tests.distributed.spawn import run_ranks
from tests.distributed.workers import row_loss_and_grads, sequence_parallel_rows

TOL = 1e-5
CASES = [
    {"lengths": [97, 64, 33, 77, 18, 40]},  # 329 tokens: odd, so a 1-token pad segment; 2 KV heads, 1 per rank
    {"lengths": [120, 31, 52, 51], "model": {"num_kv_heads": 1}},  # 254 tokens; 1 KV head: repeated per query head
    {"lengths": [45, 60, 21, 30], "model": {"arch": "qwen2"}},  # 156 tokens, Qwen2 (q/k/v biases)
]


def test_sp2_loss_scores_and_gradients_equal_sp1(tmp_path: Path) -> None:
    run_ranks(sequence_parallel_rows, tmp_path, tmp_path / "sp.pt", [_case(c) for c in CASES])
    results = torch.load(tmp_path / "sp.pt")
    for case, got in zip(CASES, results, strict=True):
        expected = row_loss_and_grads(case["lengths"], 1, **_case(case)["model"])
        assert (got["scores"] - expected["scores"]).abs().max() < TOL
        assert abs(float(got["loss"] - expected["loss"])) < TOL
        assert set(got["grads"]) == set(expected["grads"])
        for name, grad in expected["grads"].items():  # 1e-5, relative where a gradient is above 1 (fp32 sums)
            assert (got["grads"][name] - grad).abs().max() < TOL * max(1.0, float(grad.abs().max())), (case, name)
        assert max(float(g.abs().max()) for g in expected["grads"].values()) > 1e-2


def _case(case: dict) -> dict:
    sizes = dict(case.get("model", {}))
    return {"lengths": case["lengths"], "model": sizes}


def test_pad_segment_adds_nothing() -> None:
    """The pad segment's tokens are their own sequence: every real score and gradient is unchanged, exactly."""
    built = build_tiny()
    model = built.model
    randomize_head(model)
    batch = pack_sequences(random_sequences([11, 6, 9], built.reward_token.id))
    padded = pad_to_multiple(batch, 4)
    assert padded.num_tokens == 28 and padded.cu_seqlens.tolist() == [0, 11, 17, 26, 28]
    assert padded.position_ids[0, -2:].tolist() == [0, 1] and torch.equal(padded.reward_index, batch.reward_index)
    assert pad_to_multiple(padded, 4) is padded

    results = []
    for b in (batch, padded):
        model.zero_grad()
        scores = model(b)
        (scores * torch.arange(1.0, 4.0)).sum().backward()
        results.append((scores.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (plain, plain_grads), (pad, pad_grads) = results
    assert torch.allclose(plain, pad, atol=1e-6, rtol=0)
    for name, grad in plain_grads.items():
        assert torch.allclose(pad_grads[name], grad, atol=1e-6, rtol=0), name


def test_heads_not_divisible_by_sp_is_a_clear_error() -> None:
    check_heads(4, 2)
    with pytest.raises(RmdataError, match=r"sequence_parallel=3 does not divide the model's 4 attention heads.*2, 4"):
        check_heads(4, 3)


def test_sequence_parallel_without_ranks_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("RANK", "WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(RmdataError, match="torchrun --nproc_per_node 2"):
        init_distributed("cpu", sequence_parallel=2)
    assert not init_distributed("cpu").distributed
