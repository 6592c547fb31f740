"""Varlen attention: backend choice, and the attention functions against a float64 per-segment reference."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rmdata.model.attention as attention
from rmdata.errors import RmdataError
from rmdata.model.attention import choose_attention, padding_mask_only, register_varlen_attention
from rmdata.model.kernels import eager_varlen_attention, sdpa_varlen_attention

KERNELS = {"sdpa_varlen": sdpa_varlen_attention, "eager_varlen": eager_varlen_attention}
CU = [0, 5, 12, 12, 20]  # segments of 5, 7, 0 and 8 tokens in a row of 20


class Attn(nn.Module):
    """Stands in for a transformers attention module: the functions read only these attributes."""

    is_causal = True
    num_key_value_groups = 2


def qkv(t: int, batch: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """query [b, 4, t, 8]; key/value [b, 2, t, 8] (grouped-query attention)."""
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(batch, 4, t, 8, generator=g),
        torch.randn(batch, 2, t, 8, generator=g),
        torch.randn(batch, 2, t, 8, generator=g),
    )


def reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, window: int | None = None
) -> torch.Tensor:
    """One sequence [h, L, d] in float64, written out: causal (and sliding-window) softmax attention."""
    q, k, v = q.double(), k.repeat_interleave(2, dim=0).double(), v.repeat_interleave(2, dim=0).double()
    i = torch.arange(q.shape[1])[:, None]
    j = torch.arange(q.shape[1])[None, :]
    allowed = (j <= i) & ((i - j < window) if window else True)
    scores = (q @ k.transpose(-1, -2) * scale).masked_fill(~allowed, float("-inf"))
    return torch.softmax(scores, -1) @ v  # [h, L, d]


def per_segment_reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, window: int | None = None
) -> torch.Tensor:
    """[1, T, h, d]: each segment of CU attended alone."""
    parts = [
        reference(q[0, :, a:b], k[0, :, a:b], v[0, :, a:b], scale, window)
        for a, b in zip(CU, CU[1:], strict=False)
        if b > a
    ]
    return torch.cat(parts, dim=1).permute(1, 0, 2).unsqueeze(0)


def test_auto_takes_sdpa_varlen_on_cpu_and_says_why() -> None:
    choice = choose_attention("auto", "cpu", torch.float32)
    assert choice.name == "sdpa_varlen" and choice.hf_name == "rmdata_sdpa_varlen"
    assert choice.reason.startswith("auto: ") and "flash-attn" in choice.reason


def test_auto_takes_flash_only_on_cuda_in_half_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(attention, "flash_attn_problem", lambda: None)  # as if flash-attn imported
    assert choose_attention("auto", "cuda", torch.bfloat16).name == "flash_varlen"
    fp32 = choose_attention("auto", "cuda", torch.float32)
    assert fp32.name == "sdpa_varlen" and "fp16/bf16" in fp32.reason
    assert "CUDA" in choose_attention("auto", "cpu", torch.bfloat16).reason


def test_explicit_choices() -> None:
    assert choose_attention("eager_varlen", "cpu", torch.float32).reason == "model.attention=eager_varlen"
    with pytest.raises(RmdataError, match=r"flash_varlen cannot run: .*pip install 'rmdata\[flash\]'.*sdpa_varlen"):
        choose_attention("flash_varlen", "cpu", torch.float32)
    with pytest.raises(RmdataError, match="model.attention='dense' is not a backend"):
        choose_attention("dense", "cpu", torch.float32)


@pytest.mark.parametrize("name", KERNELS)
@pytest.mark.parametrize(("scaling", "window"), [(8**-0.5, None), (0.3, None), (8**-0.5, 3)])
def test_packed_row_matches_each_segment_alone(name: str, scaling: float, window: int | None) -> None:
    q, k, v = qkv(CU[-1])
    cu = torch.tensor(CU, dtype=torch.int32)
    out, weights = KERNELS[name](
        Attn().eval(),
        q,
        k,
        v,
        None,
        scaling=scaling,
        sliding_window=window,
        cu_seq_lens_q=cu,
        cu_seq_lens_k=cu,
        max_length_q=8,
        max_length_k=8,
    )
    assert weights is None and out.shape == (1, CU[-1], 4, 8)
    torch.testing.assert_close(out.double(), per_segment_reference(q, k, v, scaling, window), atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", KERNELS)
def test_segments_are_read_from_position_ids_without_cu_seqlens(name: str) -> None:
    q, k, v = qkv(CU[-1])
    positions = torch.cat([torch.arange(b - a) for a, b in zip(CU, CU[1:], strict=False)]).unsqueeze(0)
    out, _ = KERNELS[name](Attn().eval(), q, k, v, None, scaling=8**-0.5, position_ids=positions)
    torch.testing.assert_close(out.double(), per_segment_reference(q, k, v, 8**-0.5), atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", KERNELS)
def test_padded_batch_matches_each_row_alone(name: str) -> None:
    """Right and left padding: real tokens see exactly the real tokens before them; nothing is NaN."""
    q, k, v = qkv(10, batch=3)
    mask = torch.tensor([[1] * 10, [1] * 7 + [0] * 3, [0] * 4 + [1] * 6], dtype=torch.bool)
    out, _ = KERNELS[name](Attn().eval(), q, k, v, mask, scaling=0.5)
    assert not out.isnan().any()
    for row in range(3):
        real = mask[row].nonzero().flatten()
        expected = reference(q[row][:, real], k[row][:, real], v[row][:, real], 0.5).permute(1, 0, 2)
        torch.testing.assert_close(out[row, real].double(), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", KERNELS)
def test_dropout_is_off_in_eval_and_on_in_training(name: str) -> None:
    q, k, v = qkv(CU[-1])
    cu = torch.tensor(CU, dtype=torch.int32)
    module = Attn()
    plain, _ = KERNELS[name](module.eval(), q, k, v, None, dropout=0.0, cu_seq_lens_q=cu)
    evaluated, _ = KERNELS[name](module.eval(), q, k, v, None, dropout=0.5, cu_seq_lens_q=cu)
    trained, _ = KERNELS[name](module.train(), q, k, v, None, dropout=0.5, cu_seq_lens_q=cu)
    assert torch.equal(plain, evaluated) and not torch.allclose(plain, trained)


def test_inconsistent_calls_are_refused() -> None:
    q, k, v = qkv(CU[-1])
    with pytest.raises(ValueError, match="must rise from 0 to the row's 20 tokens"):
        sdpa_varlen_attention(Attn(), q, k, v, None, cu_seq_lens_q=torch.tensor([0, 5, 19], dtype=torch.int32))
    with pytest.raises(ValueError, match="cannot also carry a padding mask"):
        sdpa_varlen_attention(
            Attn(), q, k, v, torch.ones(1, 20, dtype=torch.bool), cu_seq_lens_q=torch.tensor(CU, dtype=torch.int32)
        )
    with pytest.raises(RmdataError, match="eager_varlen"):
        sdpa_varlen_attention(Attn(), q, k, v, None, softcap=30.0)


def test_transformers_never_builds_a_block_mask_for_packed_rows() -> None:
    """transformers' own sdpa turns packed position_ids into a [1, 1, T, T] mask; the varlen backends get None."""
    from transformers import LlamaConfig
    from transformers.masking_utils import create_causal_mask

    register_varlen_attention()
    config = LlamaConfig(hidden_size=32, num_attention_heads=4, num_hidden_layers=1, intermediate_size=64)
    embeds = torch.zeros(1, 20, 32)
    positions = torch.cat([torch.arange(b - a) for a, b in zip(CU, CU[1:], strict=False)]).unsqueeze(0)
    config._attn_implementation = "sdpa"
    dense = create_causal_mask(config, embeds, None, None, position_ids=positions)
    assert dense is not None and dense.shape == (1, 1, 20, 20)
    config._attn_implementation = "rmdata_sdpa_varlen"
    assert create_causal_mask(config, embeds, None, None, position_ids=positions) is None
    assert create_causal_mask(config, embeds, torch.ones(1, 20, dtype=torch.long), None, position_ids=positions) is None
    padded = torch.tensor([[1] * 17 + [0] * 3])
    assert torch.equal(padding_mask_only(1, 20, 20, attention_mask=padded.bool()), padded.bool())
