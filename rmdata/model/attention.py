"""Varlen attention backends: attention stays inside each packed sequence, never across.

A packed row ``[1, T]`` holds several sequences back to back. The backends here are registered with
transformers' ``AttentionInterface`` (the attention function every layer calls) and ``AttentionMaskInterface``
(the function that would otherwise build a dense ``T x T`` block mask), under the names in ``HF_NAMES``:

- ``flash_varlen``: flash-attn's ``flash_attn_varlen_func`` (CUDA, fp16/bf16), one kernel for the whole row;
- ``torch_varlen``: torch's own ``torch.nn.attention.varlen.varlen_attn`` (CUDA, fp16/bf16), the same without
  the flash-attn package (``rmdata.model.torch_varlen``);
- ``sdpa_varlen``: ``torch.nn.functional.scaled_dot_product_attention`` once per sequence (CPU and GPU);
- ``eager_varlen``: the same loop with an explicit matmul-softmax, the reference for parity tests.

How the sequence boundaries arrive. ``model(input_ids, position_ids=..., cu_seq_lens_q=cu, cu_seq_lens_k=cu,
max_length_q=m, max_length_k=m, use_cache=False)``: Llama, Qwen2 and every model written against
``TransformersKwargs`` forward these keyword arguments untouched, model -> decoder layer -> attention module ->
attention function (checked in transformers 5.23, ``modeling_llama.py`` / ``modeling_qwen2.py``). The mask
function registered here returns ``None`` or the 2D padding mask, so no ``T x T`` mask is ever built for a
packed row.

Calls without ``cu_seq_lens_q`` stay correct:
- no padding mask and ``position_ids`` that restart at 0 inside a row: the segments are read from the
  restarts (what transformers' own flash path does), so a caller that forgets ``cu_seq_lens`` is still exact;
- otherwise (one sequence per row, or a padded batch with ``attention_mask``): plain causal attention with the
  padding mask, one kernel call over ``[b, h, q, kv]``, as transformers' own sdpa/eager would compute it. A
  padded batch builds a ``[b, 1, q, kv]`` mask there, as transformers does; packed rows never take this path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rmdata.config import AttentionName
from rmdata.errors import RmdataError
from rmdata.options import choices

if TYPE_CHECKING:
    import torch


BACKENDS = tuple(name for name in choices(AttentionName) if name != "auto")  # model.attention's backends
HF_NAMES = {name: f"rmdata_{name}" for name in BACKENDS}  # names in transformers' AttentionInterface
FLASH_INSTALL = "pip install 'rmdata[flash]' (builds flash-attn against your CUDA toolkit)"


@dataclass(frozen=True)
class AttentionChoice:
    """The backend used for the whole run, and why it was picked."""

    name: str  # one of BACKENDS
    reason: str

    @property
    def hf_name(self) -> str:
        """The name registered in transformers' ``AttentionInterface`` (``config._attn_implementation``)."""
        return HF_NAMES[self.name]


def flash_attn_problem() -> str | None:
    """Why flash-attn cannot be used here, or ``None`` when ``flash_attn_varlen_func`` imports."""
    try:
        from flash_attn import flash_attn_varlen_func  # noqa: F401
    except Exception as err:  # ImportError, or a broken build raising OSError/RuntimeError on import
        return f"flash-attn is not importable ({type(err).__name__}: {err})"
    return None


def choose_attention(requested: str, device: torch.device | str, compute_dtype: torch.dtype) -> AttentionChoice:
    """Resolve ``model.attention`` (auto or a backend name) for a model computing in ``compute_dtype``.

    ``auto`` takes flash_varlen when flash-attn imports, the device is CUDA and compute is fp16/bf16
    (weights or autocast); else torch_varlen (torch's varlen_attn) on CUDA with fp16/bf16 compute; else
    sdpa_varlen. An explicit flash_varlen or torch_varlen that cannot run is an error.
    """
    import torch

    if requested not in choices(AttentionName):
        raise RmdataError(
            f"model.attention={requested!r} is not a backend; use one of {', '.join(choices(AttentionName))}"
        )
    if requested in ("sdpa_varlen", "eager_varlen"):
        return AttentionChoice(requested, f"model.attention={requested}")
    device_type = torch.device(device).type
    from rmdata.model.torch_varlen import torch_varlen_problem  # torch_varlen hook

    torch_problem = torch_varlen_problem(device_type, compute_dtype)  # torch_varlen hook
    if requested == "torch_varlen":  # torch_varlen hook
        if torch_problem is not None:
            raise RmdataError(f"model.attention=torch_varlen cannot run: {torch_problem}; use sdpa_varlen")
        return AttentionChoice("torch_varlen", "model.attention=torch_varlen")
    problem = flash_attn_problem()
    if problem is None and device_type != "cuda":
        problem = f"flash-attn needs a CUDA device, the model is on {device_type}"
    if problem is None and compute_dtype not in (torch.float16, torch.bfloat16):
        problem = f"flash-attn needs fp16/bf16 compute, the model computes in {compute_dtype}"
    if requested == "flash_varlen":
        if problem is not None:
            raise RmdataError(
                f"model.attention=flash_varlen cannot run: {problem}; install it with {FLASH_INSTALL}, "
                "or set model.attention=sdpa_varlen (exact, works everywhere)"
            )
        return AttentionChoice("flash_varlen", "model.attention=flash_varlen")
    if problem is None:
        return AttentionChoice("flash_varlen", "auto: flash-attn is installed, CUDA device, half-precision compute")
    if torch_problem is None:  # torch_varlen hook: CUDA without flash-attn
        return AttentionChoice("torch_varlen", f"auto: {problem}; torch's own varlen_attn runs packed rows on CUDA")
    return AttentionChoice("sdpa_varlen", f"auto: {problem}; per-sequence SDPA is exact on any device")


def register_varlen_attention() -> None:
    """Register the backends and their no-``T x T`` mask function with transformers (idempotent)."""
    from transformers import AttentionInterface, AttentionMaskInterface

    from rmdata.model.kernels import eager_varlen_attention, flash_varlen_attention, sdpa_varlen_attention
    from rmdata.model.torch_varlen import torch_varlen_attention  # torch_varlen hook

    functions = {
        "flash_varlen": flash_varlen_attention,
        "torch_varlen": torch_varlen_attention,  # torch_varlen hook
        "sdpa_varlen": sdpa_varlen_attention,
        "eager_varlen": eager_varlen_attention,
    }
    for name, function in functions.items():
        AttentionInterface.register(HF_NAMES[name], function)
        AttentionMaskInterface.register(HF_NAMES[name], padding_mask_only)


def padding_mask_only(
    batch_size: int,
    q_length: int,
    kv_length: int,
    q_offset: int = 0,
    kv_offset: int = 0,
    mask_function: Any = None,
    attention_mask: torch.Tensor | None = None,
    **kwargs: Any,
) -> torch.Tensor | None:
    """transformers' mask hook: ``None``, or the 2D ``[b, kv]`` bool padding mask when some key is padding.

    transformers would otherwise turn packed ``position_ids`` into a dense ``[1, 1, T, T]`` block mask; the
    varlen functions read segment boundaries instead, and build causal masks themselves.
    """
    if attention_mask is None:
        return None
    mask = attention_mask[:, -kv_length:]
    if mask.shape[-1] == kv_length and bool(mask.all()):
        return None
    return mask


def varlen_kwargs(cu_seqlens: torch.Tensor, max_seqlen: int) -> dict[str, Any]:
    """The keyword arguments that carry segment boundaries from ``model(...)`` to the attention function.

    ``cu_seqlens`` ``[n + 1]`` int32 on the model's device: offsets of each sequence in the flattened row.
    """
    return {
        "cu_seq_lens_q": cu_seqlens,
        "cu_seq_lens_k": cu_seqlens,
        "max_length_q": max_seqlen,
        "max_length_k": max_seqlen,
    }
