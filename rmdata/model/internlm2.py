"""InternLM2 and InternLM2-Reward checkpoints read without remote code, as a transformers Llama trunk.

A directory is InternLM2 when its ``config.json`` says ``model_type: internlm2`` or names
``InternLM2ForRewardModel`` / ``InternLM2ForCausalLM`` / ``InternLM2Model``. Its ``auto_map`` is ignored: no file
of the directory is imported or executed, only ``config.json``, ``*.safetensors``, ``tokenizer.model`` and
``tokenizer_config.json`` are read as data. Pickled weights (``*.bin``) are refused, since unpickling can run code.

The architecture is Llama's with other names, so the config maps onto ``LlamaConfig`` (``bias`` ->
``attention_bias``, no MLP bias; ``rope_theta``; ``rope_scaling`` ``{"type": "linear"|"dynamic", "factor": f}`` ->
``rope_parameters``) and the weights are renamed on load (``model.`` prefix dropped):

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

Known difference: InternLM2's remote ``dynamic`` RoPE keeps the largest rescaled table it has seen, so once it
scored a sequence longer than ``max_position_embeddings`` it scores shorter ones with the stretched base;
transformers (and so rmdata) rescales per forward pass from the longest position. Both agree for every
sequence up to ``max_position_embeddings`` and on a fresh model.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from rmdata.errors import RmdataError

if TYPE_CHECKING:
    from transformers import LlamaConfig, PreTrainedModel, PreTrainedTokenizerFast

    from rmdata.model.reward_model import BuiltModel

ARCHITECTURES = ("InternLM2ForRewardModel", "InternLM2ForCausalLM", "InternLM2Model")
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


def load_internlm2_reward(
    path: str | Path, *, device: torch.device | str = "cpu", dtype: str = "auto", attention: str = "auto"
) -> BuiltModel:
    """An InternLM2-Reward directory as an rmdata reward model: Llama trunk, ``v_head`` as value head,
    ``reward_token_id`` from ``config.json``, tokenizer from ``tokenizer.model``; in eval mode."""
    from rmdata.model.attention import choose_attention
    from rmdata.model.internlm2_tokenizer import load_internlm2_tokenizer
    from rmdata.model.reward_model import RewardModel, built, compute_dtype
    from rmdata.tokens.templates import RewardToken

    path = local_dir(path) or Path(path)
    raw = read_config(path) or {}
    token_id = raw.get("reward_token_id")
    if token_id is None:
        raise RmdataError(
            f"{path}/config.json has no reward_token_id: it is an InternLM2 backbone, not a reward model; train "
            f"one with `rmdata train --set model.name_or_path={path}`"
        )
    device = torch.device(device)
    compute = compute_dtype(dtype, device)
    trunk, v_head = load_trunk(path, dtype=compute, device=device)
    if v_head is None:
        raise RmdataError(f"{path}: config.json has reward_token_id={token_id} but the weights have no v_head.weight")
    tokenizer = load_internlm2_tokenizer(path)
    text = str(tokenizer.convert_ids_to_tokens(int(token_id)))
    token = RewardToken(int(token_id), text, f"{path}/config.json reward_token_id")
    model = RewardModel(trunk, token, choose_attention(attention, device, compute), export_dtype=compute)
    with torch.no_grad():
        model.value_head.weight.copy_(v_head)
    return built(model.eval(), tokenizer)


def internlm2_tokenizer(name_or_path: str) -> PreTrainedTokenizerFast | None:
    """The tokenizer of a directory (or cached hub id) with InternLM2's tokenizer, built without remote code;
    None for any other model."""
    from rmdata.model.internlm2_tokenizer import load_internlm2_tokenizer, names_internlm2_tokenizer

    path = local_dir(name_or_path)
    if path is None or not (is_internlm2(path) or names_internlm2_tokenizer(path)):
        return None
    return load_internlm2_tokenizer(path)
