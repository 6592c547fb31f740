"""torch_varlen on CPU: the call built for each varlen_attn signature, wired through a real tiny model.

torch's varlen_attn runs on CUDA only, so these tests stand in a reference implementation with each of the
three signatures torch has shipped (per-segment SDPA underneath) and check that rmdata calls it right:
causal masking, sliding windows, GQA, layouts. tests/gpu/test_torch_varlen.py runs the real kernel.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

from rmdata.errors import RmdataError
from rmdata.model import torch_varlen
from rmdata.model.attention import HF_NAMES, choose_attention, register_varlen_attention
from rmdata.tokens.batching import pack_sequences
from tests.core_helpers import build_tiny, random_sequences, randomize_head


def _reference(q: Any, k: Any, v: Any, cu: Any, causal: bool, left: int, gqa: bool, scale: Any) -> torch.Tensor:
    """varlen_attn's contract on [T, H, D] tensors, one SDPA call per segment."""
    if k.shape[1] != q.shape[1]:
        assert gqa, "keys with fewer heads than queries need enable_gqa=True"
        k, v = (x.repeat_interleave(q.shape[1] // x.shape[1], dim=1) for x in (k, v))
    bounds = cu.tolist()
    out = []
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        qs, ks, vs = (x[start:end].transpose(0, 1) for x in (q, k, v))
        n = end - start
        i = torch.arange(n)
        allowed = (i[None, :] <= i[:, None]) if causal else torch.ones(n, n, dtype=torch.bool)
        if left >= 0:
            allowed &= (i[:, None] - i[None, :]) <= left
        out.append(F.scaled_dot_product_attention(qs, ks, vs, attn_mask=allowed, scale=scale).transpose(0, 1))
    return torch.cat(out)


def first_release(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, *, return_aux=None, scale=None, is_causal=False):
    return _reference(query, key, value, cu_seq_q, is_causal, -1, False, scale)


def window_release(
    query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, *, return_aux=None, scale=None, window_size=(-1, -1)
):
    return _reference(query, key, value, cu_seq_q, window_size[1] == 0, window_size[0], False, scale)


def gqa_release(
    query,
    key,
    value,
    cu_seq_q,
    cu_seq_k,
    max_q,
    max_k,
    *,
    return_aux=None,
    scale=None,
    window_size=(-1, -1),
    enable_gqa=False,
):
    return _reference(query, key, value, cu_seq_q, window_size[1] == 0, window_size[0], enable_gqa, scale)


RELEASES = {"2.10 is_causal": first_release, "2.11 window_size": window_release, "2.12 enable_gqa": gqa_release}


def test_call_options_follow_the_signature() -> None:
    assert torch_varlen.call_options({"is_causal"}, True, None, gqa=True) == {"is_causal": True}
    assert torch_varlen.call_options({"window_size"}, True, None, gqa=False) == {"window_size": (-1, 0)}
    assert torch_varlen.call_options({"window_size"}, True, 8, gqa=False) == {"window_size": (7, 0)}
    assert torch_varlen.call_options({"window_size"}, False, None, gqa=False) == {"window_size": (-1, -1)}
    both = torch_varlen.call_options({"window_size", "enable_gqa"}, True, None, gqa=True)
    assert both == {"window_size": (-1, 0), "enable_gqa": True}
    assert torch_varlen.needs_repeat({"window_size"}, gqa=True)
    assert not torch_varlen.needs_repeat({"window_size", "enable_gqa"}, gqa=True)
    with pytest.raises(RmdataError, match="no sliding window"):
        torch_varlen.call_options({"is_causal"}, True, 8, gqa=False)


def test_the_installed_signature_is_one_rmdata_knows() -> None:
    import inspect

    fn = torch_varlen.load_varlen_attn()
    if fn is None:
        pytest.skip(f"torch {torch.__version__} has no varlen_attn")
    torch_varlen.call_options(set(inspect.signature(fn).parameters), True, None, gqa=True)


@pytest.mark.parametrize("release", list(RELEASES))
@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_tiny_model_scores_match_sdpa_varlen(monkeypatch: pytest.MonkeyPatch, release: str, arch: str) -> None:
    """bf16 trunk, GQA (4 query, 2 KV heads): torch_varlen through transformers equals per-segment SDPA.

    The trunk is 32 wide (no 4-bit layer here, so the 64-multiple rule does not apply): the width the tolerance
    below was set for; bf16 rounding through a wider trunk spreads further (a 64-wide Qwen2 differs by 1.2%).
    """
    from rmdata.config import TinyModelConfig

    monkeypatch.setattr(torch_varlen, "load_varlen_attn", lambda: RELEASES[release])
    sizes = TinyModelConfig(arch=arch, hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=64)
    built = build_tiny(arch, dtype="bfloat16", tiny=sizes)
    model = built.model.eval()
    randomize_head(model)
    batch = pack_sequences(random_sequences((23, 9, 40, 17), built.reward_token.id))
    with torch.no_grad():
        expected = model(batch)
        register_varlen_attention()
        model.trunk.set_attn_implementation(HF_NAMES["torch_varlen"])
        got = model(batch)
    assert model.trunk.config._attn_implementation == HF_NAMES["torch_varlen"]
    assert torch.allclose(got, expected, atol=1e-2 * float(expected.abs().max()), rtol=0)


def test_auto_takes_torch_varlen_on_cuda_without_flash_attn() -> None:
    if torch_varlen.load_varlen_attn() is None:
        pytest.skip(f"torch {torch.__version__} has no varlen_attn")
    choice = choose_attention("auto", "cuda", torch.bfloat16)
    if choice.name == "flash_varlen":
        pytest.skip("flash-attn is installed here")
    assert choice.name == "torch_varlen"
    assert "flash-attn" in choice.reason and "varlen_attn" in choice.reason
    assert choose_attention("auto", "cpu", torch.float32).name == "sdpa_varlen"
    assert choose_attention("auto", "cuda", torch.float32).name == "sdpa_varlen"  # fp32 compute: no varlen_attn


def test_explicit_torch_varlen_off_cuda_is_a_clear_error() -> None:
    with pytest.raises(RmdataError, match="torch_varlen cannot run: .*(CUDA|varlen_attn)"):
        choose_attention("torch_varlen", "cpu", torch.bfloat16)
