"""Tiny reward-model directories built from config, saved the way third parties and rmdata save them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def save_hf_reward_model(
    out: Path, *, arch: str = "llama", seed: int = 0, reward_token: bool = False, **config: Any
) -> Path:
    """A random ``*ForSequenceClassification`` (num_labels=1) + the tiny ChatML tokenizer, in safetensors.

    ``reward_token=True`` names ``<|reward|>`` as ``config.reward_token_id``, the way an rmdata export does.
    """
    from transformers import LlamaConfig, LlamaForSequenceClassification, Qwen2Config, Qwen2ForSequenceClassification

    from rmdata.model.tiny import REWARD_TOKEN, build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    sizes: dict[str, Any] = dict(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=1,
    )
    sizes.update(config)
    if reward_token:
        sizes["reward_token_id"] = tokenizer.convert_tokens_to_ids(REWARD_TOKEN)
    torch.manual_seed(seed)
    cls, cfg = (
        (LlamaForSequenceClassification, LlamaConfig)
        if arch == "llama"
        else (Qwen2ForSequenceClassification, Qwen2Config)
    )
    model = cls(cfg(**sizes))
    with torch.no_grad():
        model.score.weight.normal_(0, 1.0)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
