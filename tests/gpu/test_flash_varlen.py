"""CUDA checks: sdpa_varlen on the GPU, and flash_varlen (flash-attn) against it. Skipped without CUDA."""

from __future__ import annotations

import pytest
import torch

from rmdata.model.attention import choose_attention, flash_attn_problem
from rmdata.tokens.batching import pack_sequences
from tests.core_helpers import LENGTHS, build_tiny, pair_loss, random_sequences, randomize_head, reference_scores

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
needs_flash = pytest.mark.skipif(flash_attn_problem() is not None, reason=f"{flash_attn_problem()}")


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_sdpa_varlen_on_cuda_equals_each_sequence_alone(arch: str) -> None:
    built = build_tiny(arch, device="cuda", dtype="float32")
    model = built.model.eval()
    randomize_head(model)
    sequences = random_sequences(LENGTHS, built.reward_token.id)
    with torch.no_grad():
        packed = model(pack_sequences(sequences).to("cuda"))
        alone = reference_scores(model, sequences)
    assert (packed - alone).abs().max() < 1e-4


@needs_flash
def test_auto_takes_flash_varlen_on_cuda() -> None:
    assert choose_attention("auto", "cuda", torch.bfloat16).name == "flash_varlen"


@needs_flash
@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_flash_varlen_matches_sdpa_varlen(arch: str) -> None:
    """Same weights, bf16 trunk: scores and gradients of flash-attn's varlen kernel against per-segment SDPA."""
    flash = build_tiny(arch, device="cuda", dtype="bfloat16", attention="flash_varlen")
    sdpa = build_tiny(arch, device="cuda", dtype="bfloat16", attention="sdpa_varlen")
    randomize_head(flash.model)
    sdpa.model.load_state_dict(flash.model.state_dict())
    assert flash.attention.name == "flash_varlen" and sdpa.attention.name == "sdpa_varlen"
    batch = pack_sequences(random_sequences((33, 70, 9, 128, 17, 51), flash.reward_token.id)).to("cuda")

    results = []
    for built in (flash, sdpa):
        built.model.zero_grad()
        scores = built.model(batch)
        pair_loss(scores).backward()
        results.append((scores.detach(), {n: p.grad.float() for n, p in built.model.named_parameters()}))
    (flash_scores, flash_grads), (sdpa_scores, sdpa_grads) = results
    assert (flash_scores - sdpa_scores).abs().max() <= 2e-2 * sdpa_scores.abs().max()
    for name, expected in sdpa_grads.items():
        assert (flash_grads[name] - expected).abs().max() <= 5e-2 * expected.abs().max() + 1e-6, name
