"""InternLM2 and InternLM2-Reward checkpoints read without remote code, as a transformers Llama trunk.

A directory is InternLM2 when its ``config.json`` says ``model_type: internlm2`` or names
``InternLM2ForRewardModel`` / ``InternLM2ForCausalLM`` / ``InternLM2Model``. Its ``auto_map`` is ignored: no file
of the directory is imported or executed, only ``config.json``, ``*.safetensors``, ``tokenizer.model`` and
``tokenizer_config.json`` are read as data. Pickled weights (``*.bin``) are refused, since unpickling can run code.

The architecture is Llama's with other names, so the config maps onto ``LlamaConfig`` (``bias`` ->
``attention_bias``, no MLP bias; ``rope_theta``; ``rope_scaling`` ``{"type": "linear"|"dynamic", "factor": f}`` ->
``rope_parameters``) and the weights are renamed to the Llama layout on load (``rmdata.model.internlm2_weights``
has the table of names and the fused ``wqkv`` layout); the tokenizer is ``rmdata.model.internlm2_tokenizer``.

Known difference: InternLM2's remote ``dynamic`` RoPE keeps the largest rescaled table it has seen, so once it
scored a sequence longer than ``max_position_embeddings`` it scores shorter ones with the stretched base;
transformers (and so rmdata) rescales per forward pass from the longest position. Both agree for every
sequence up to ``max_position_embeddings`` and on a fresh model.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from rmdata.errors import RmdataError
from rmdata.model.internlm2_weights import load_state

if TYPE_CHECKING:
    from transformers import LlamaConfig, PreTrainedModel, PreTrainedTokenizerFast

ARCHITECTURES = ("InternLM2ForRewardModel", "InternLM2ForCausalLM", "InternLM2Model")


def local_dir(name_or_path: str | Path) -> Path | None:
    """The directory holding ``name_or_path``: itself if it is one, else a hub id's snapshot in the HF cache."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    if str(name_or_path).count("/") != 1:
        return None
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(str(name_or_path), "config.json")
    except ValueError:  # not a valid hub id
        return None
    return Path(cached).parent if isinstance(cached, str) else None


def read_config(path: str | Path) -> dict[str, Any] | None:
    """``config.json`` of the directory (or cached hub id) ``path`` when it is InternLM2's, else None."""
    directory = local_dir(path)
    config = directory / "config.json" if directory is not None else None
    if config is None or not config.is_file():
        return None
    raw = json.loads(config.read_text(encoding="utf-8"))
    named = raw.get("model_type") == "internlm2" or any(a in ARCHITECTURES for a in raw.get("architectures") or [])
    return raw if named else None


def is_internlm2(path: str | Path) -> bool:
    return read_config(path) is not None


def llama_config(raw: dict[str, Any], where: str = "config.json") -> LlamaConfig:
    """The transformers ``LlamaConfig`` of an InternLM2 ``config.json`` (see the module docstring)."""
    from transformers import LlamaConfig

    heads = int(raw["num_attention_heads"])
    kv_heads = int(raw.get("num_key_value_heads") or heads)
    hidden = int(raw["hidden_size"])
    if hidden % heads or heads % kv_heads:
        raise RmdataError(
            f"{where}: hidden_size={hidden}, num_attention_heads={heads}, num_key_value_heads={kv_heads}; InternLM2 "
            "needs hidden_size divisible by num_attention_heads and num_attention_heads by num_key_value_heads"
        )
    theta = float(raw.get("rope_theta", 10000.0))
    rope: dict[str, Any] = {"rope_type": "default", "rope_theta": theta}
    scaling = raw.get("rope_scaling")
    if scaling:
        kind = scaling.get("type") or scaling.get("rope_type")
        if kind not in ("linear", "dynamic"):
            raise RmdataError(
                f"{where}: rope_scaling={scaling} has type {kind!r}; InternLM2 defines only 'linear' and 'dynamic'"
            )
        rope = {"rope_type": kind, "factor": float(scaling["factor"]), "rope_theta": theta}
    return LlamaConfig(
        vocab_size=int(raw["vocab_size"]),
        hidden_size=hidden,
        intermediate_size=int(raw["intermediate_size"]),
        num_hidden_layers=int(raw["num_hidden_layers"]),
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        hidden_act=raw.get("hidden_act", "silu"),
        max_position_embeddings=int(raw.get("max_position_embeddings", 2048)),
        initializer_range=float(raw.get("initializer_range", 0.02)),
        rms_norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
        pad_token_id=raw.get("pad_token_id", 0),
        bos_token_id=raw.get("bos_token_id", 1),
        eos_token_id=raw.get("eos_token_id", 2),
        tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
        attention_bias=bool(raw.get("bias", True)),
        mlp_bias=False,
        rope_parameters=rope,
        use_cache=False,
    )


def load_trunk(
    path: str | Path, *, dtype: torch.dtype, device: torch.device | str = "cpu", quantization: Any = None
) -> tuple[PreTrainedModel, torch.Tensor | None]:
    """A transformers ``LlamaModel`` holding the InternLM2 weights at ``path``, and the ``v_head`` if any.

    With ``quantization`` (QLoRA) the mapped weights go through a Llama-layout copy in a temporary directory
    (``$TMPDIR``, the size of the checkpoint), since bitsandbytes quantizes while transformers loads.
    """
    from transformers import AutoModel, LlamaModel
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    raw, directory = read_config(path), local_dir(path)
    if raw is None or directory is None:
        raise RmdataError(f"{path}/config.json does not describe an InternLM2 model (model_type internlm2)")
    path = directory
    config = llama_config(raw, f"{path}/config.json")
    device = torch.device(device)
    if quantization is not None:
        from safetensors.torch import save_file

        state, v_head = load_state(path, config, dtype)
        with tempfile.TemporaryDirectory(prefix="rmdata-internlm2-") as tmp:
            config.save_pretrained(tmp)
            save_file(state, f"{tmp}/model.safetensors", metadata={"format": "pt"})
            del state
            trunk = AutoModel.from_pretrained(
                tmp, dtype=dtype, quantization_config=quantization, device_map={"": str(device)}
            )
        return trunk, None if v_head is None else v_head.to(device)
    state, v_head = load_state(path, config, dtype, device)
    with torch.device("meta"):  # no random init of weights that are replaced right away
        trunk = LlamaModel(config)
    trunk.load_state_dict(state, strict=True, assign=True)
    trunk.rotary_emb = LlamaRotaryEmbedding(config).to(device)  # its buffers are not in the state dict
    return trunk.eval(), v_head


def internlm2_tokenizer(name_or_path: str) -> PreTrainedTokenizerFast | None:
    """The tokenizer of a directory (or cached hub id) with InternLM2's tokenizer, built without remote code;
    None for any other model."""
    from rmdata.model.internlm2_tokenizer import load_internlm2_tokenizer, names_internlm2_tokenizer

    path = local_dir(name_or_path)
    if path is None or not (is_internlm2(path) or names_internlm2_tokenizer(path)):
        return None
    return load_internlm2_tokenizer(path)
