"""LoRA and QLoRA on the trunk, and the plain (merged, dequantized) weights that an export writes.

- LoRA: peft adapters on every ``nn.Linear`` of the trunk, found by type, not by Llama module names (the trunk
  has no LM head, so "every linear layer" is exactly the attention and MLP projections of any architecture).
- QLoRA: the trunk is loaded with bitsandbytes 4-bit nf4 weights and double quantization, computing in
  bfloat16 on CUDA and float32 on CPU; ``prepare_model_for_kbit_training`` then freezes it and keeps the
  remaining (norm, embedding) weights in float32; then LoRA as above.
- CPU paths of a 4-bit layer (bitsandbytes 0.50): on a CPU with AVX512-BF16, ``Linear4bit.forward`` in eval
  mode without gradients (evaluation, scoring) repacks its weight once into a CPU layout and runs a bf16
  kernel; every other call (training, and any call on a CPU without AVX512-BF16) dequantizes and runs a
  float32 matmul. The repacking needs in-features divisible by the quantization block (64) and out-features
  by 32, which every real checkpoint has; :func:`check_quantizable` refuses other widths when the model is
  built, so a recipe that trains on one machine does not fail at evaluation on the next. The training model
  turns the packed path off (:func:`set_packed_cpu_path`): its kernel has no backward, and the repacking
  rounds the quantization scales to bf16, so an evaluation during training would change the weights that
  training then continues from (and a resumed run would no longer replay the same steps).
- Export: each adapted weight is rebuilt in float32 as ``W + scale * B @ A``, where a 4-bit ``W`` is first
  dequantized to float32, then written in the export dtype (the compute dtype: float32 on CPU, bfloat16 on
  CUDA). The adapters themselves are never touched, so the
  training model is unchanged by a save.

peft and bitsandbytes are imported here only, inside the functions that need them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rmdata.errors import RmdataError

if TYPE_CHECKING:
    import torch
    from transformers import BitsAndBytesConfig

BNB_INSTALL = "pip install 'bitsandbytes>=0.45'"
PACKED_BLOCK_N = 32  # out-features block of bitsandbytes' packed CPU layout (_convert_weight_packed_for_cpu)


def require_bitsandbytes() -> Any:
    """The bitsandbytes module, or an RmdataError naming the install command."""
    try:
        import bitsandbytes
    except Exception as err:  # missing, or a broken build that fails on import
        raise RmdataError(
            f"model.finetune=qlora needs bitsandbytes, which did not import ({type(err).__name__}: {err}); "
            f"install it with `{BNB_INSTALL}`, or set model.finetune=lora"
        ) from err
    return bitsandbytes


def quantization_config(compute_dtype: torch.dtype) -> BitsAndBytesConfig:
    """4-bit nf4 with double quantization; matmuls run in ``compute_dtype``."""
    require_bitsandbytes()
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )


def prepare_quantized(trunk: torch.nn.Module) -> None:
    """peft's k-bit preparation: freeze everything, float32 for the non-quantized weights.

    Gradient checkpointing is left to the caller (non-reentrant, which needs no input-gradient hook).
    """
    from peft import prepare_model_for_kbit_training

    prepare_model_for_kbit_training(trunk, use_gradient_checkpointing=False)


def check_quantizable(trunk: torch.nn.Module) -> None:
    """Refuse a 4-bit trunk whose linear layers bitsandbytes' packed CPU path cannot run (see module doc)."""
    bnb = require_bitsandbytes()
    for name, module in trunk.named_modules():
        if not isinstance(module, bnb.nn.Linear4bit):
            continue
        block = module.weight.quant_state.blocksize
        if module.in_features % block or module.out_features % PACKED_BLOCK_N:
            raise RmdataError(
                f"model.finetune=qlora cannot use layer {name} ({module.in_features} -> {module.out_features} "
                f"features): 4-bit layers need in-features divisible by {block} and out-features by "
                f"{PACKED_BLOCK_N} (bitsandbytes' CPU evaluation path); use widths that are multiples of 64 (for a "
                "tiny model: model.tiny.hidden_size and model.tiny.intermediate_size), or model.finetune=lora"
            )


def set_packed_cpu_path(trunk: torch.nn.Module, enabled: bool) -> int:
    """Allow or forbid bitsandbytes' packed CPU path in every 4-bit layer; returns how many layers.

    ``Linear4bit.forward`` takes the path when ``support_avx512bf16_for_cpu`` is true (bitsandbytes sets it
    from ``has_avx512bf16()``), the input is on CPU, the layer is in eval mode and no gradient is needed.
    Forbidding it first unpacks a weight already packed (as bitsandbytes' own ``state_dict`` does).
    """
    count = 0
    for module in trunk.modules():
        if not hasattr(module, "support_avx512bf16_for_cpu"):
            continue
        layer: Any = module  # a bitsandbytes Linear4bit
        state: Any = getattr(layer.weight, "quant_state", None)
        if not enabled and getattr(state, "packing_format_for_cpu", False):
            from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse

            layer.weight.data, layer.weight.quant_state = _convert_weight_packed_for_cpu_inverse(
                layer.weight.data, state
            )
        layer.support_avx512bf16_for_cpu = enabled
        count += 1
    return count


def linear_module_names(trunk: torch.nn.Module) -> list[str]:
    """Full names of every ``nn.Linear`` in the trunk (bitsandbytes' 4-bit layers subclass it)."""
    import torch

    return [name for name, module in trunk.named_modules() if isinstance(module, torch.nn.Linear)]


def add_lora(trunk: torch.nn.Module, rank: int, alpha: int, dropout: float) -> list[str]:
    """Inject LoRA adapters into every linear layer of ``trunk`` in place; only adapters stay trainable.

    Returns the adapted module names.
    """
    from peft import LoraConfig, inject_adapter_in_model

    targets = linear_module_names(trunk)
    if not targets:
        raise RmdataError(f"{type(trunk).__name__} has no nn.Linear layers to put LoRA adapters on; use finetune=full")
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, bias="none")
    inject_adapter_in_model(config, trunk)
    for name, param in trunk.named_parameters():
        param.requires_grad = "lora_" in name
    return targets


def _dense_weight(layer: torch.nn.Module) -> torch.Tensor:
    """A linear layer's weight ``[out, in]`` in float32, dequantizing bitsandbytes 4-bit weights."""
    weight: Any = layer.weight
    if getattr(weight, "quant_state", None) is not None:
        bnb = require_bitsandbytes()
        return bnb.functional.dequantize_4bit(weight.data, weight.quant_state).float()
    return weight.detach().float()


def plain_state_dict(trunk: torch.nn.Module, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The trunk's weights under the plain architecture's names, LoRA merged and 4-bit dequantized, in ``dtype``.

    Floating tensors are cast to ``dtype``; integer buffers are kept as they are.
    """
    replaced: dict[str, torch.Tensor] = {}
    done: list[str] = []
    for name, module in trunk.named_modules():
        if any(name.startswith(prefix) for prefix in done):
            continue
        base = module.get_base_layer() if hasattr(module, "lora_A") else module
        is_lora = base is not module
        if not is_lora and getattr(getattr(module, "weight", None), "quant_state", None) is None:
            continue
        weight = _dense_weight(base)
        if is_lora and not getattr(module, "merged", False):
            for adapter in module.active_adapters:
                if adapter in module.lora_A:
                    weight = weight + module.get_delta_weight(adapter).detach().float()
        replaced[f"{name}.weight"] = weight
        if getattr(base, "bias", None) is not None:
            replaced[f"{name}.bias"] = base.bias.detach()
        done.append(f"{name}.")

    state = {key: value.detach() for key, value in trunk.state_dict().items() if not key.startswith(tuple(done))}
    state.update(replaced)
    return {key: value.to(dtype) if value.is_floating_point() else value for key, value in state.items()}
