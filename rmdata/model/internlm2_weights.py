"""InternLM2 weights renamed to the Llama layout on load, each tensor checked against the config.

Names are those of InternLM2's published modeling code with the ``model.`` prefix dropped:

==============================================  ==========================================
InternLM2                                       Llama trunk
==============================================  ==========================================
``tok_embeddings``                              ``embed_tokens``
``layers.N.attention.wqkv`` [(h + 2 kv) d, D]   ``self_attn.q_proj``/``k_proj``/``v_proj``
``layers.N.attention.wo``                       ``self_attn.o_proj``
``layers.N.feed_forward.w1`` / ``w3`` / ``w2``  ``mlp.gate_proj`` / ``up_proj`` / ``down_proj``
``layers.N.attention_norm`` / ``ffn_norm``      ``input_layernorm`` / ``post_attention_layernorm``
``norm``                                        ``norm``
``output`` (LM head)                            dropped: the trunk has no LM head
``v_head`` [1, D], no bias (reward models)      rmdata's value head
==============================================  ==========================================

``wqkv`` rows come in ``kv`` groups of ``q_per_kv + 2`` heads of ``d`` rows: the group's ``q_per_kv =
h / kv`` query heads, then its key head, then its value head. Query head ``g * q_per_kv + j`` (group ``g``)
reads key/value head ``g``, which is Llama's grouped-query order, so the split is a reshape.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from rmdata.errors import RmdataError

if TYPE_CHECKING:
    from transformers import LlamaConfig

LAYER = re.compile(r"layers\.(\d+)\.(.+)")
RENAMES = {  # InternLM2 name inside a layer -> Llama name
    "attention.wo": "self_attn.o_proj",
    "feed_forward.w1": "mlp.gate_proj",
    "feed_forward.w3": "mlp.up_proj",
    "feed_forward.w2": "mlp.down_proj",
    "attention_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}
TO_SAFETENSORS = (
    'python -c "import torch; from safetensors.torch import save_file; '
    "save_file(torch.load('pytorch_model.bin', weights_only=True), 'model.safetensors', {'format': 'pt'})\""
)


def head_counts(config: LlamaConfig) -> tuple[int, int, int]:
    """(query heads, key/value heads, head width) of a Llama config."""
    return int(config.num_attention_heads), int(config.num_key_value_heads or 0), int(config.head_dim or 0)


def expected_shapes(config: LlamaConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor an InternLM2 trunk must have (``model.`` prefix dropped), with its shape."""
    hidden, inter = config.hidden_size, config.intermediate_size
    h, kv, d = head_counts(config)
    rows = (h + 2 * kv) * d
    shapes: dict[str, tuple[int, ...]] = {
        "tok_embeddings.weight": (config.vocab_size, hidden),
        "norm.weight": (hidden,),
    }
    for i in range(config.num_hidden_layers):
        layer = {
            "attention.wqkv.weight": (rows, hidden),
            "attention.wo.weight": (hidden, h * d),
            "feed_forward.w1.weight": (inter, hidden),
            "feed_forward.w3.weight": (inter, hidden),
            "feed_forward.w2.weight": (hidden, inter),
            "attention_norm.weight": (hidden,),
            "ffn_norm.weight": (hidden,),
        }
        if config.attention_bias:
            layer |= {"attention.wqkv.bias": (rows,), "attention.wo.bias": (hidden,)}
        shapes |= {f"layers.{i}.{name}": shape for name, shape in layer.items()}
    return shapes


def split_wqkv(wqkv: torch.Tensor, config: LlamaConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """InternLM2's fused ``wqkv`` ``[(h + 2 kv) d, ...]`` -> Llama's q ``[h d, ...]``, k and v ``[kv d, ...]``."""
    h, kv, d = head_counts(config)
    groups = wqkv.reshape(kv, h // kv + 2, d, *wqkv.shape[1:])
    q, k, v = groups[:, :-2], groups[:, -2], groups[:, -1]
    return (t.reshape(-1, *wqkv.shape[1:]).contiguous() for t in (q, k, v))  # type: ignore[return-value]


def _weight_files(path: Path) -> list[Path]:
    index = path / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        return [path / shard for shard in shards]
    files = sorted(path.glob("*.safetensors"))
    if files:
        return files
    if list(path.glob("*.bin")):
        raise RmdataError(
            f"{path} holds pickled weights (*.bin), which can run code when loaded, and rmdata reads safetensors "
            f"only; convert them once (per shard: {TO_SAFETENSORS}) and move the .bin files away"
        )
    raise RmdataError(f"{path} has no *.safetensors weights; give an InternLM2 checkpoint directory")


def _tensors(files: list[Path]) -> Iterator[tuple[str, torch.Tensor]]:
    from safetensors import safe_open

    for file in files:
        with safe_open(str(file), framework="pt", device="cpu") as handle:
            for name in handle.keys():  # noqa: SIM118 (a safetensors handle is not a dict)
                yield name, handle.get_tensor(name)


def _bad_shape(name: str, got: tuple[int, ...], want: tuple[int, ...], config: LlamaConfig) -> RmdataError:
    detail = ""
    if ".wqkv." in name:
        h, kv, d = head_counts(config)
        detail = (
            f": (num_attention_heads={h} + 2 x num_key_value_heads={kv}) x head_dim={d} rows, {kv} groups of "
            f"{h // kv} query heads + 1 key head + 1 value head"
        )
    return RmdataError(
        f"InternLM2 tensor {name} has shape {list(got)}; expected {list(want)}{detail} (the weights do not match "
        "config.json: fix the config or the checkpoint)"
    )


def load_state(
    path: str | Path, config: LlamaConfig, dtype: torch.dtype, device: torch.device | str = "cpu"
) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """The Llama-trunk state dict of the InternLM2 checkpoint at ``path``, and its ``v_head.weight`` (or None).

    Every tensor is checked against ``config`` by name and shape; anything unexpected or missing is an error.
    """
    path = Path(path)
    want = expected_shapes(config)
    state: dict[str, torch.Tensor] = {}
    seen: set[str] = set()
    v_head = None
    for stored, tensor in _tensors(_weight_files(path)):
        name = stored.removeprefix("model.")
        shape = tuple(tensor.shape)
        if stored in ("output.weight", "v_head.weight"):
            expect = (config.vocab_size if stored == "output.weight" else 1, config.hidden_size)
            if shape != expect:
                raise _bad_shape(stored, shape, expect, config)
            if stored == "v_head.weight":
                v_head = tensor.float().to(device)
            continue
        if name not in want:
            raise RmdataError(
                f"{path}: unexpected InternLM2 tensor {stored} with shape {list(shape)}; an InternLM2 checkpoint with "
                f"this config.json (bias={config.attention_bias}, {config.num_hidden_layers} layers) has "
                "model.tok_embeddings, model.layers.N.{attention.wqkv, attention.wo, feed_forward.w1/w2/w3, "
                "attention_norm, ffn_norm}, model.norm, output and v_head"
            )
        if shape != want[name]:
            raise _bad_shape(stored, shape, want[name], config)
        seen.add(name)
        tensor = tensor.to(device=device, dtype=dtype)
        layer = LAYER.fullmatch(name)
        if layer is None:
            state["embed_tokens.weight" if name.startswith("tok_") else name] = tensor
            continue
        prefix, rest = f"layers.{layer[1]}.", layer[2]
        module, kind = rest.rsplit(".", 1)
        if module == "attention.wqkv":
            for proj, part in zip(("q", "k", "v"), split_wqkv(tensor, config), strict=True):
                state[f"{prefix}self_attn.{proj}_proj.{kind}"] = part
        else:
            state[f"{prefix}{RENAMES[module]}.{kind}"] = tensor
    missing = sorted(set(want) - seen)
    if missing:
        raise RmdataError(
            f"{path}: InternLM2 tensor model.{missing[0]} (shape {list(want[missing[0]])}) is missing"
            + (f", and {len(missing) - 1} more" if len(missing) > 1 else "")
            + "; the checkpoint is incomplete or does not match config.json"
        )
    return state, v_head
