"""Tiny models and tokenizers built from code: for tests, the CPU demo recipe and benchmarks.

Nothing here downloads anything. The tokenizer is byte-level BPE with no merges (one token per byte)
plus ChatML special tokens and a dedicated reward token, so any text round-trips exactly.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedTokenizerFast

    from rmdata.config import TinyModelConfig

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>", "<|reward|>")
REWARD_TOKEN = "<|reward|>"


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level tokenizer (256 byte tokens + 5 specials) with a ChatML chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens(list(SPECIAL_TOKENS))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|endoftext|>",
        pad_token="<|pad|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>", REWARD_TOKEN],
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def tiny_backbone_config(sizes: TinyModelConfig, vocab_size: int, pad_token_id: int | None) -> PretrainedConfig:
    """A transformers config for a tiny Llama- or Qwen2-style causal LM."""
    from transformers import LlamaConfig, Qwen2Config

    common: dict[str, Any] = dict(
        vocab_size=vocab_size,
        hidden_size=sizes.hidden_size,
        intermediate_size=sizes.intermediate_size,
        num_hidden_layers=sizes.num_layers,
        num_attention_heads=sizes.num_heads,
        num_key_value_heads=sizes.num_kv_heads,
        max_position_embeddings=sizes.max_position_embeddings,
        pad_token_id=pad_token_id,
        use_cache=False,
        tie_word_embeddings=False,
    )
    if sizes.arch == "llama":
        return LlamaConfig(**common)
    if sizes.arch == "qwen2":
        return Qwen2Config(**common)
    from rmdata.errors import RmdataError

    raise RmdataError(f"model.tiny.arch must be one of llama, qwen2; got {sizes.arch!r}")


def save_tiny_qwen_prm(path: Any, sizes: TinyModelConfig, seed: int = 0) -> Any:
    """A random process reward model in the Qwen2.5-Math-PRM layout, saved at ``path`` (returned).

    ``model.*`` Qwen2 trunk weights, a ``score = Sequential(Linear(d, d), ReLU, Linear(d, 2))`` two-class head
    (its last layer drawn with std 0.5 so step scores spread), ``architectures: [Qwen2ForProcessRewardModel]``
    and the tiny tokenizer with ``<extra_0>`` added as the step separator.
    """
    from pathlib import Path

    import torch
    from safetensors.torch import save_file
    from torch import nn
    from transformers import Qwen2Model

    torch.manual_seed(seed)
    tokenizer = build_tiny_tokenizer()
    tokenizer.add_tokens(["<extra_0>"], special_tokens=True)
    config = tiny_backbone_config(replace(sizes, arch="qwen2"), len(tokenizer), pad_token_id=None)
    trunk = Qwen2Model(config)
    classes = nn.Linear(sizes.hidden_size, 2)
    nn.init.normal_(classes.weight, std=0.5)
    head = nn.Sequential(nn.Linear(sizes.hidden_size, sizes.hidden_size), nn.ReLU(), classes)
    weights = {f"model.{k}": v.contiguous() for k, v in trunk.state_dict().items()}
    weights.update({f"score.{k}": v.contiguous() for k, v in head.state_dict().items()})
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(path / "model.safetensors"), metadata={"format": "pt"})
    config.architectures = ["Qwen2ForProcessRewardModel"]
    config.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
