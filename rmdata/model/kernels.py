"""The attention functions behind the varlen backends (``rmdata.model.attention`` explains how they are wired in).

They follow transformers' attention-function signature: ``query`` ``[b, h, q, d]``, ``key``/``value``
``[b, h_kv, kv, d]`` (grouped-query attention when ``h_kv < h``), and return ``([b, q, h, d], None)``.
A packed call works on the flattened ``b * q`` tokens and ``cu_seq_lens_q`` offsets into them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from rmdata.errors import RmdataError
from rmdata.progress import logger

log = logger()

# kernel(q, k, v, mask, is_causal, scale, dropout_p, softcap) on [..., h, L, d] tensors with h == h_kv.
Kernel = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, bool, float | None, float, float | None],
    torch.Tensor,
]
_warned: set[str] = set()


def _sdpa_kernel(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    is_causal: bool,
    scale: float | None,
    dropout_p: float,
    softcap: float | None,
) -> torch.Tensor:
    if softcap:
        raise RmdataError(
            f"this model soft-caps attention logits (softcap={softcap}), which SDPA cannot do; set "
            "model.attention=eager_varlen (or flash_varlen on CUDA)"
        )
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale
    )


def _eager_kernel(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    is_causal: bool,
    scale: float | None,
    dropout_p: float,
    softcap: float | None,
) -> torch.Tensor:
    """matmul -> scale -> (softcap) -> mask -> softmax in float32 -> dropout -> matmul, as transformers' eager."""
    scores = torch.matmul(q, k.transpose(-1, -2)) * (q.shape[-1] ** -0.5 if scale is None else scale)
    if softcap:
        scores = torch.tanh(scores / softcap) * softcap
    if is_causal:
        mask = torch.ones(scores.shape[-2:], dtype=torch.bool, device=q.device).tril()
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
    if dropout_p:
        weights = F.dropout(weights, p=dropout_p)
    return torch.matmul(weights, v)


def segment_offsets(
    query: torch.Tensor,
    key: torch.Tensor,
    attention_mask: torch.Tensor | None,
    cu_seq_lens_q: torch.Tensor | None,
    cu_seq_lens_k: torch.Tensor | None,
    position_ids: torch.Tensor | None,
) -> torch.Tensor | None:
    """Offsets ``[n + 1]`` of the sequences in the flattened ``b * q`` tokens, or ``None`` for unpacked rows.

    Taken from ``cu_seq_lens_q`` when given; else, with no padding mask and no cache, from the places where
    ``position_ids`` do not go up by one (each row also starts a sequence).
    """
    b, _, q_len, _ = query.shape
    if cu_seq_lens_q is not None:
        if attention_mask is not None:
            raise ValueError("a packed call (cu_seq_lens_q) cannot also carry a padding mask: pack without padding")
        same_k = cu_seq_lens_k is None or cu_seq_lens_k is cu_seq_lens_q or torch.equal(cu_seq_lens_k, cu_seq_lens_q)
        if key.shape[2] != q_len or not same_k:
            raise ValueError("varlen backends compute self-attention of packed rows: keys must be the queries' tokens")
        return cu_seq_lens_q
    if attention_mask is not None or position_ids is None or key.shape[2] != q_len or q_len < 2:
        return None
    positions = position_ids.expand(b, -1) if position_ids.shape[0] != b else position_ids
    if positions.shape[-1] != q_len:
        return None
    starts = torch.ones_like(positions, dtype=torch.bool)
    starts[:, 1:] = positions[:, 1:] - positions[:, :-1] != 1
    if int(starts.sum()) == b:
        return None
    offsets = starts.flatten().nonzero().flatten()
    return torch.cat([offsets, offsets.new_tensor([b * q_len])]).to(torch.int32)


def _checked_bounds(offsets: torch.Tensor, total: int) -> list[int]:
    bounds = [int(x) for x in offsets.tolist()]
    if bounds[0] != 0 or bounds[-1] != total or any(b < a for a, b in zip(bounds, bounds[1:], strict=False)):
        shown = bounds if len(bounds) <= 8 else [*bounds[:4], "...", *bounds[-2:]]
        raise ValueError(f"cu_seq_lens_q={shown} must rise from 0 to the row's {total} tokens")
    return bounds


def _unpacked_mask(
    attention_mask: torch.Tensor | None,
    q_len: int,
    kv_len: int,
    causal: bool,
    sliding_window: int | None,
    device: torch.device,
) -> tuple[torch.Tensor | None, bool]:
    """(mask, is_causal) for ordinary rows: ``None`` when ``is_causal`` alone says it, else ``[b|1, 1, q, kv]``.

    The causal diagonal is aligned bottom-right (the queries are the last ``q_len`` of ``kv_len`` tokens).
    A query never gets an empty row: padding queries attend to themselves, so no NaN reaches real tokens.
    """
    if attention_mask is not None and attention_mask.ndim == 4:  # a caller's ready-made 4D mask, used as given
        return attention_mask, False
    window = sliding_window if sliding_window and sliding_window < kv_len else None
    if attention_mask is None and window is None:
        if not causal or q_len == 1:
            return None, False
        if q_len == kv_len:
            return None, True
    rows = torch.arange(q_len, device=device)[:, None] + (kv_len - q_len)
    cols = torch.arange(kv_len, device=device)[None, :]
    allowed = cols <= rows if causal else torch.ones(q_len, kv_len, dtype=torch.bool, device=device)
    if window is not None:
        allowed = allowed & ((rows - cols) < window if causal else (rows - cols).abs() < window)
    mask = allowed[None, None]
    if attention_mask is not None:
        mask = mask & attention_mask[:, None, None, -kv_len:].to(torch.bool)
    return mask | (cols == rows)[None, None], False


def _segment_band(length: int, window: int, causal: bool, device: torch.device) -> torch.Tensor:
    idx = torch.arange(length, device=device)
    distance = idx[:, None] - idx[None, :]
    return (distance >= 0) & (distance < window) if causal else distance.abs() < window


def _varlen_attention(
    kernel: Kernel,
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
    position_ids: torch.Tensor | None = None,
    s_aux: torch.Tensor | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    if s_aux is not None:
        raise RmdataError("this model uses attention sinks (s_aux), which rmdata's varlen backends do not implement")
    causal = getattr(module, "is_causal", True) if is_causal is None else bool(is_causal)
    dropout_p = dropout if module.training else 0.0
    offsets = segment_offsets(query, key, attention_mask, cu_seq_lens_q, cu_seq_lens_k, position_ids)
    groups = query.shape[1] // key.shape[1]
    if groups > 1:  # grouped-query attention: query head i reads key/value head i // groups
        key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
    if offsets is None:
        mask, mask_causal = _unpacked_mask(
            attention_mask, query.shape[2], key.shape[2], causal, sliding_window, query.device
        )
        out = kernel(query, key, value, mask, mask_causal, scaling, dropout_p, softcap)
        return out.transpose(1, 2).contiguous(), None

    b, h, t, _ = query.shape
    bounds = _checked_bounds(offsets, b * t)

    def flat(x: torch.Tensor) -> torch.Tensor:  # [b, h, t, d] -> [1, h, b * t, d]; a view when b == 1
        return x.transpose(0, 1).reshape(1, h, b * t, x.shape[-1])

    q, k, v = flat(query), flat(key), flat(value)
    pieces = []
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        if end == start:
            continue
        band = None
        if sliding_window and sliding_window < end - start:
            band = _segment_band(end - start, sliding_window, causal, query.device)
        seq = slice(start, end)
        pieces.append(
            kernel(q[:, :, seq], k[:, :, seq], v[:, :, seq], band, causal and band is None, scaling, dropout_p, softcap)
        )
    out = torch.cat(pieces, dim=2)  # [1, h, b * t, d_v]
    return out.view(h, b, t, -1).permute(1, 2, 0, 3).contiguous(), None


def sdpa_varlen_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Exact per-sequence SDPA: one ``scaled_dot_product_attention`` call per packed sequence."""
    return _varlen_attention(_sdpa_kernel, module, query, key, value, attention_mask, **kwargs)


def eager_varlen_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Exact per-sequence matmul-softmax attention: the reference the other backends are checked against."""
    return _varlen_attention(_eager_kernel, module, query, key, value, attention_mask, **kwargs)


def flash_varlen_attention(
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
    s_aux: torch.Tensor | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """flash-attn's ``flash_attn_varlen_func`` over the whole packed row (fp16/bf16, CUDA).

    Unpacked rows (one sequence per row, or padded batches) take the exact SDPA path instead: rmdata only
    ever feeds packed rows, and SDPA on CUDA already uses flash kernels for plain causal rows.
    """
    options: dict[str, Any] = dict(
        dropout=dropout,
        scaling=scaling,
        sliding_window=sliding_window,
        softcap=softcap,
        is_causal=is_causal,
        s_aux=s_aux,
    )
    offsets = segment_offsets(query, key, attention_mask, cu_seq_lens_q, cu_seq_lens_k, position_ids)
    if offsets is None or s_aux is not None:
        return _varlen_attention(_sdpa_kernel, module, query, key, value, attention_mask, **options)
    from flash_attn import flash_attn_varlen_func

    b, h, t, d = query.shape
    in_dtype = query.dtype
    half = in_dtype if in_dtype in (torch.float16, torch.bfloat16) else _half_dtype()

    def tokens(x: torch.Tensor) -> torch.Tensor:  # [b, heads, t, d] -> [b * t, heads, d], as flash-attn wants
        return x.transpose(1, 2).reshape(b * t, x.shape[1], x.shape[-1]).to(half)

    cu = offsets.to(torch.int32)
    if cu_seq_lens_q is not None and max_length_q is not None:
        max_len = int(max_length_q)
    else:
        max_len = int((cu[1:] - cu[:-1]).max())
    window = (sliding_window - 1, sliding_window - 1) if sliding_window else (-1, -1)
    causal = getattr(module, "is_causal", True) if is_causal is None else bool(is_causal)
    out = flash_attn_varlen_func(
        tokens(query),
        tokens(key),
        tokens(value),
        cu_seqlens_q=cu,
        cu_seqlens_k=cu,
        max_seqlen_q=max_len,
        max_seqlen_k=max_len,
        dropout_p=dropout if module.training else 0.0,
        softmax_scale=scaling,
        causal=causal,
        window_size=window,
        softcap=softcap or 0.0,
    )  # [b * t, h, d_v]
    return out.view(b, t, h, -1).to(in_dtype), None


def _half_dtype() -> torch.dtype:
    """fp32 activations reached flash-attn (no autocast): run it in the autocast dtype, else bfloat16."""
    dtype = torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else torch.bfloat16
    if "flash_cast" not in _warned:
        _warned.add("flash_cast")
        log.warning("flash_varlen: float32 activations are cast to %s for flash-attn", dtype)
    return dtype
