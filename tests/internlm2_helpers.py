"""Tiny InternLM2-layout checkpoints built in the test: a SentencePiece tokenizer trained on the spot and a
from-config Llama model whose weights are written the InternLM2 way (fused ``wqkv``, InternLM2 names)."""

from __future__ import annotations

import io
import json
import random
import re
from pathlib import Path
from typing import Any

import torch

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# user-defined pieces land right after <unk>, <s>, </s>: ids 3, 4, 5, 6. tokenizer_config.json renames the first
# three, as InternLM2's renames its unused slots to <|im_start|> and <|im_end|>; 6 keeps its SentencePiece name.
USER_DEFINED = ["[UNUSED_TOKEN_0]", "[UNUSED_TOKEN_1]", "[UNUSED_TOKEN_2]", "[UNUSED_TOKEN_3]"]
IM_START, IM_END, REWARD_ID = 3, 4, 5
REWARD_TOKEN = "<|reward|>"  # the name rmdata's default recipe asks for
WORDS = "the a reward model scores every answer to prompt with one number higher is better said user assistant"


def corpus(seed: int = 0, lines: int = 300) -> list[str]:
    rng = random.Random(seed)
    words = WORDS.split()
    out = []
    for i in range(lines):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(3, 12)))
        if i % 5 == 0:
            text = f"def f{i}(x):\n    return x  +  {i * 37}"
        if i % 7 == 0:
            text += " Ünïcödé 数据"
        out.append(text)
    return out


def train_sentencepiece(path: Path, vocab_size: int = 384, **options: Any) -> Path:
    """A BPE SentencePiece model with byte fallback, InternLM2-style, written to ``path``."""
    import sentencepiece as spm

    buffer = io.BytesIO()
    settings: dict[str, Any] = dict(
        model_type="bpe",
        vocab_size=vocab_size,
        byte_fallback=True,
        character_coverage=1.0,
        user_defined_symbols=USER_DEFINED,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        split_digits=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=2,
    )
    settings.update(options)
    spm.SentencePieceTrainer.train(sentence_iterator=iter(corpus()), model_writer=buffer, **settings)
    path.write_bytes(buffer.getvalue())
    return path


def added_tokens_decoder() -> dict[str, dict[str, Any]]:
    spec = dict(lstrip=False, normalized=False, rstrip=False, single_word=False, special=True)
    names = {0: "<unk>", 1: "<s>", 2: "</s>", IM_START: "<|im_start|>", IM_END: "<|im_end|>", REWARD_ID: REWARD_TOKEN}
    return {str(i): {"content": name, **spec} for i, name in names.items()}


def write_tokenizer(directory: Path, **sp_options: Any) -> Path:
    """``tokenizer.model`` + an InternLM2 ``tokenizer_config.json`` (auto_map to files that are not there)."""
    directory.mkdir(parents=True, exist_ok=True)
    train_sentencepiece(directory / "tokenizer.model", **sp_options)
    config = {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": added_tokens_decoder(),
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "auto_map": {
            "AutoTokenizer": [
                "tokenization_internlm2.InternLM2Tokenizer",
                "tokenization_internlm2_fast.InternLM2TokenizerFast",
            ]
        },
        "bos_token": "<s>",
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "</s>",
        "pad_token": "</s>",
        "tokenizer_class": "InternLM2Tokenizer",
        "unk_token": "<unk>",
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return directory


def reference_ids(model_file: Path, text: str, add_bos: bool = True) -> list[int]:
    """InternLM2Tokenizer's documented behaviour written on sentencepiece directly: split the text on the added
    tokens of tokenizer_config.json, ``SentencePieceProcessor.encode`` every other chunk, BOS first."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(model_file))
    added = {spec["content"]: int(i) for i, spec in added_tokens_decoder().items()}
    pattern = "(" + "|".join(re.escape(t) for t in sorted(added, key=len, reverse=True)) + ")"
    ids = [sp.bos_id()] if add_bos else []
    for chunk in re.split(pattern, text):
        if chunk in added:
            ids.append(added[chunk])
        elif chunk:
            ids.extend(sp.encode(chunk))
    return ids


def fuse_wqkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kv_heads: int, head_dim: int) -> torch.Tensor:
    """InternLM2's layout: for each key/value group, its query heads, then its key head, then its value head."""
    tail = q.shape[1:]
    q = q.reshape(kv_heads, -1, head_dim, *tail)
    k = k.reshape(kv_heads, 1, head_dim, *tail)
    v = v.reshape(kv_heads, 1, head_dim, *tail)
    return torch.cat([q, k, v], dim=1).reshape(-1, *tail)


def internlm2_state(llama: Any, v_head: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The state dict of an InternLM2 model holding the weights of ``llama`` (a LlamaForCausalLM)."""
    config = llama.config
    kv, head_dim = config.num_key_value_heads, config.head_dim
    src = {k: t.detach().clone() for k, t in llama.state_dict().items()}
    out: dict[str, torch.Tensor] = {"model.tok_embeddings.weight": src["model.embed_tokens.weight"]}
    for i in range(config.num_hidden_layers):
        a, b = f"model.layers.{i}.", f"model.layers.{i}."
        for kind in ("weight", "bias"):
            if f"{a}self_attn.q_proj.{kind}" in src:
                parts = [src[f"{a}self_attn.{p}_proj.{kind}"] for p in "qkv"]
                out[f"{b}attention.wqkv.{kind}"] = fuse_wqkv(*parts, kv_heads=kv, head_dim=head_dim)
            if f"{a}self_attn.o_proj.{kind}" in src:
                out[f"{b}attention.wo.{kind}"] = src[f"{a}self_attn.o_proj.{kind}"]
        for ours, theirs in (("gate_proj", "w1"), ("up_proj", "w3"), ("down_proj", "w2")):
            out[f"{b}feed_forward.{theirs}.weight"] = src[f"{a}mlp.{ours}.weight"]
        out[f"{b}attention_norm.weight"] = src[f"{a}input_layernorm.weight"]
        out[f"{b}ffn_norm.weight"] = src[f"{a}post_attention_layernorm.weight"]
    out["model.norm.weight"] = src["model.norm.weight"]
    if v_head is None:
        out["output.weight"] = src["lm_head.weight"]
    else:
        out["v_head.weight"] = v_head
    return out


def internlm2_config(llama_config: Any, reward: bool, rope_scaling: dict[str, Any] | None = None) -> dict[str, Any]:
    c = llama_config
    arch = "InternLM2ForRewardModel" if reward else "InternLM2ForCausalLM"
    config: dict[str, Any] = {
        "architectures": [arch],
        "auto_map": {
            "AutoConfig": "configuration_internlm2.InternLM2Config",
            "AutoModel": f"modeling_internlm2.{arch}",
            "AutoModelForCausalLM": "modeling_internlm2.InternLM2ForCausalLM",
        },
        "model_type": "internlm2",
        "attn_implementation": "eager",
        "bias": bool(c.attention_bias),
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": c.hidden_size,
        "initializer_range": 0.02,
        "intermediate_size": c.intermediate_size,
        "max_position_embeddings": c.max_position_embeddings,
        "num_attention_heads": c.num_attention_heads,
        "num_hidden_layers": c.num_hidden_layers,
        "num_key_value_heads": c.num_key_value_heads,
        "rms_norm_eps": c.rms_norm_eps,
        "rope_scaling": rope_scaling,
        "rope_theta": c.rope_parameters["rope_theta"],
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "use_cache": True,
        "vocab_size": c.vocab_size,
    }
    if reward:
        config["reward_token_id"] = REWARD_ID
    return config


def llama_source(
    vocab_size: int,
    *,
    hidden: int = 64,
    heads: int = 4,
    kv_heads: int = 2,
    layers: int = 2,
    bias: bool = False,
    rope_scaling: dict[str, Any] | None = None,
    max_positions: int = 512,
    seed: int = 0,
) -> Any:
    """A random LlamaForCausalLM whose config InternLM2 can express (bias on attention only, no MLP bias)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    rope: dict[str, Any] = {"rope_type": "default", "rope_theta": 10000.0}
    if rope_scaling is not None:
        rope = {"rope_type": rope_scaling["type"], "factor": rope_scaling["factor"], "rope_theta": 10000.0}
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_positions,
        attention_bias=bias,
        rope_parameters=rope,
        tie_word_embeddings=False,
        pad_token_id=2,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    if bias:  # transformers initializes biases at zero; make them count
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name.endswith("bias"):
                    param.normal_(0, 0.05)
    return model


def write_internlm2_checkpoint(
    directory: Path,
    llama: Any,
    *,
    v_head: torch.Tensor | None = None,
    rope_scaling: dict[str, Any] | None = None,
    with_tokenizer: bool = True,
) -> Path:
    """An InternLM2(-Reward) directory: config.json with auto_map to absent files, model.safetensors, tokenizer."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    config = internlm2_config(llama.config, reward=v_head is not None, rope_scaling=rope_scaling)
    (directory / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    state = {k: v.contiguous() for k, v in internlm2_state(llama, v_head).items()}
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
    if with_tokenizer:
        write_tokenizer(directory)
    return directory


def tiny_internlm2_dir(directory: Path, vocab_size: int = 384) -> Path:
    """A tiny InternLM2-Chat-style backbone directory (hidden 64, MLP 128: multiples of 64, as bitsandbytes' 4-bit
    CPU fast path needs), with its tokenizer; a stand-in for the InternLM2 recipes."""
    return write_internlm2_checkpoint(directory, llama_source(vocab_size, hidden=64, heads=4, kv_heads=2))
