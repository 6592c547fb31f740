"""CUDA: torch_varlen (torch's own varlen_attn) against the per-sequence SDPA path, train and score in bf16.

Skipped without CUDA, or when this torch has no torch.nn.attention.varlen.
"""

from __future__ import annotations

import inspect

import pytest
import torch

from rmdata.model import torch_varlen
from rmdata.model.attention import choose_attention, flash_attn_problem
from rmdata.tokens.batching import pack_sequences
from tests.core_helpers import build_tiny, pair_loss, random_sequences, randomize_head

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    pytest.mark.skipif(torch_varlen.load_varlen_attn() is None, reason="this torch has no varlen_attn"),
]
LENGTHS = (33, 70, 9, 128, 17, 51, 300, 12)


def test_installed_signature_is_handled() -> None:
    parameters = set(inspect.signature(torch_varlen.load_varlen_attn()).parameters)  # type: ignore[arg-type]
    options = torch_varlen.call_options(parameters, True, None, gqa=True)
    assert ("is_causal" in options) or options.get("window_size") == (-1, 0)


@pytest.mark.skipif(flash_attn_problem() is None, reason="flash-attn is installed: auto takes flash_varlen")
def test_auto_takes_torch_varlen_without_flash_attn() -> None:
    choice = choose_attention("auto", "cuda", torch.bfloat16)
    assert choice.name == "torch_varlen", choice.reason


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_train_scores_and_gradients_match_sdpa_varlen(arch: str) -> None:
    """bf16 trunk, GQA: scores and every gradient of one packed row, torch_varlen vs per-segment SDPA."""
    fast = build_tiny(arch, device="cuda", dtype="bfloat16", attention="torch_varlen")
    sdpa = build_tiny(arch, device="cuda", dtype="bfloat16", attention="sdpa_varlen")
    assert fast.attention.name == "torch_varlen"
    randomize_head(fast.model)
    sdpa.model.load_state_dict(fast.model.state_dict())
    batch = pack_sequences(random_sequences(LENGTHS, fast.reward_token.id)).to("cuda")
    results = []
    for built in (fast, sdpa):
        built.model.train().zero_grad()
        scores = built.model(batch)
        pair_loss(scores).backward()
        results.append((scores.detach().float(), {n: p.grad.float() for n, p in built.model.named_parameters()}))
    (fast_scores, fast_grads), (sdpa_scores, sdpa_grads) = results
    assert (fast_scores - sdpa_scores).abs().max() <= 2e-2 * sdpa_scores.abs().max()
    for name, expected in sdpa_grads.items():
        assert (fast_grads[name] - expected).abs().max() <= 5e-2 * expected.abs().max() + 1e-6, name


def test_scoring_under_autocast_matches_sdpa_varlen() -> None:
    """fp32 weights + bf16 autocast (model.dtype=auto on CUDA), no grad: the scoring path."""
    fast = build_tiny(device="cuda", attention="torch_varlen", dtype="auto")
    sdpa = build_tiny(device="cuda", attention="sdpa_varlen", dtype="auto")
    randomize_head(fast.model)
    sdpa.model.load_state_dict(fast.model.state_dict())
    batch = pack_sequences(random_sequences(LENGTHS, fast.reward_token.id)).to("cuda")
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        got, expected = fast.model.eval()(batch), sdpa.model.eval()(batch)
    assert got.dtype == torch.float32
    assert (got - expected).abs().max() <= 2e-2 * expected.abs().max()
