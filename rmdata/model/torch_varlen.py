"""``torch_varlen``: packed attention on CUDA with ``torch.nn.attention.varlen.varlen_attn``, no flash-attn package.

Recent PyTorch ships FlashAttention's varlen kernels itself (CUDA, fp16/bf16). Its signature moved between
releases, so the call is built from ``inspect.signature`` of the installed function (:func:`call_options`):

- causal masking: ``is_causal=True`` in the first release (torch 2.10); ``window_size=(-1, 0)`` later (2.11+),
  where a sliding window ``w`` is ``(w - 1, 0)``. The first release has no sliding window: such models are
  refused with the alternative named.
- grouped-query attention: ``enable_gqa=True`` where it exists (2.12+); before, keys and values are repeated
  to one per query head (exact, more memory).

It follows transformers' attention-function contract like the other backends (``rmdata.model.kernels``):
``query`` ``[b, h, t, d]``, ``key``/``value`` ``[b, h_kv, t, d]`` -> ``([b, t, h, d], None)``. Calls that are
not packed rows (no segment boundaries) take the exact per-sequence SDPA path.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection
from typing import Any

import torch

from rmdata.errors import RmdataError

VarlenFn = Callable[..., Any]


def load_varlen_attn() -> VarlenFn | None:
    """``torch.nn.attention.varlen.varlen_attn``, or ``None`` when this torch has none."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    return varlen_attn


def torch_varlen_problem(device_type: str, compute_dtype: torch.dtype) -> str | None:
    """Why ``torch_varlen`` cannot run here, or ``None``."""
    if load_varlen_attn() is None:
        return f"torch {torch.__version__} has no torch.nn.attention.varlen.varlen_attn (added in 2.10)"
    if device_type != "cuda":
        return f"torch's varlen_attn needs a CUDA device, the model is on {device_type}"
    if compute_dtype not in (torch.float16, torch.bfloat16):
        return f"torch's varlen_attn needs fp16/bf16 compute, the model computes in {compute_dtype}"
    return None


def call_options(parameters: Collection[str], causal: bool, sliding_window: int | None, gqa: bool) -> dict[str, Any]:
    """Keyword arguments for ``varlen_attn`` with these ``parameters`` (its signature's names).

    ``gqa``: keys/values have fewer heads than queries; ``enable_gqa`` is passed when the signature has it,
    else the caller repeats them (see :func:`needs_repeat`).
    """
    options: dict[str, Any] = {}
    if "window_size" in parameters:
        left = sliding_window - 1 if sliding_window else -1
        options["window_size"] = (left, 0 if causal else (left if sliding_window else -1))
    elif "is_causal" in parameters:
        if sliding_window:
            raise RmdataError(
                f"this torch's varlen_attn has no sliding window (the model uses {sliding_window}); set "
                "model.attention=sdpa_varlen, or install torch >= 2.11"
            )
        options["is_causal"] = causal
    elif causal:
        raise RmdataError("this torch's varlen_attn takes neither window_size nor is_causal; use sdpa_varlen")
    if gqa and "enable_gqa" in parameters:
        options["enable_gqa"] = True
    return options


def needs_repeat(parameters: Collection[str], gqa: bool) -> bool:
    """Whether keys/values must be repeated to the query heads (GQA on a signature without ``enable_gqa``)."""
    return gqa and "enable_gqa" not in parameters


def torch_varlen_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    sliding_window: int | None = None,
    softcap: float | None = None,
    is_causal: bool | None = None,
    cu_seq_lens_q: torch.Tensor | None = None,
    cu_seq_lens_k: torch.Tensor | None = None,
    max_length_q: int | None = None,
    max_length_k: int | None = None,
    position_ids: torch.Tensor | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """One ``varlen_attn`` call over the whole packed row (fp16/bf16, CUDA)."""
    from rmdata.model.kernels import sdpa_varlen_attention, segment_offsets

    offsets = segment_offsets(query, key, attention_mask, cu_seq_lens_q, cu_seq_lens_k, position_ids)
    varlen_attn = load_varlen_attn()
    if offsets is None or varlen_attn is None:
        return sdpa_varlen_attention(
            module,
            query,
            key,
            value,
            attention_mask,
            dropout=dropout,
            scaling=scaling,
            sliding_window=sliding_window,
            softcap=softcap,
            is_causal=is_causal,
            **kwargs,
        )
    if softcap:
        raise RmdataError(f"torch's varlen_attn cannot soft-cap logits (softcap={softcap}); use eager_varlen")
    if dropout and module.training:
        raise RmdataError(
            f"torch's varlen_attn has no attention dropout (the model uses {dropout}); set model.attention=sdpa_varlen"
        )
    if kwargs.get("s_aux") is not None:
        raise RmdataError("this model uses attention sinks (s_aux), which torch's varlen_attn does not implement")
    parameters = set(inspect.signature(varlen_attn).parameters)
    b, h, t, _ = query.shape
    gqa = key.shape[1] != h
    causal = getattr(module, "is_causal", True) if is_causal is None else bool(is_causal)
    options = call_options(parameters, causal, sliding_window, gqa)
    if needs_repeat(parameters, gqa):
        key, value = key.repeat_interleave(h // key.shape[1], dim=1), value.repeat_interleave(h // key.shape[1], dim=1)
    half = query.dtype if query.dtype in (torch.float16, torch.bfloat16) else torch.bfloat16

    def tokens(x: torch.Tensor) -> torch.Tensor:  # [b, heads, t, d] -> [b * t, heads, d]
        return x.transpose(1, 2).reshape(b * t, x.shape[1], x.shape[-1]).to(half)

    cu = offsets.to(torch.int32)
    max_len = int(max_length_q) if cu_seq_lens_q is not None and max_length_q else int((cu[1:] - cu[:-1]).max())
    if "scale" in parameters:
        options["scale"] = scaling
    out = varlen_attn(tokens(query), tokens(key), tokens(value), cu, cu, max_len, max_len, **options)
    return out.view(b, t, h, -1).to(query.dtype), None
