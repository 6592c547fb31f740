"""The benchmark's preference pairs as token sequences: real pairs tokenized by rmdata, or synthetic ones.

Real pairs (``--data``): a seeded sample of a pairs JSONL file (``prompt`` a string or a message list,
``chosen`` and ``rejected`` strings), rendered with the tokenizer's chat template and tokenized by
``rmdata.tokens.templates.tokenize_pairs`` (prompts cut from the left to ``max_length``; drops are counted).
Synthetic pairs: lengths from ``benchmarks._lengths`` and random byte-range token ids (the cost of a step
depends on the lengths, not on which ids). Every sequence ends with the reward token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._lengths import synthetic_pair_lengths, template_overhead


@dataclass
class Pairs:
    """Token sequences of the benchmark's pairs, index-aligned, each ending with the reward token."""

    chosen: list[np.ndarray]
    rejected: list[np.ndarray]
    reward_id: int
    pad_id: int
    info: dict[str, Any] = field(default_factory=dict)  # where they came from, for the JSON line


def load_tokenizer(path: str | None) -> tuple[Any, int]:
    """The tokenizer and its reward token id: the tiny tokenizer's ``<|reward|>``, else the tokenizer's EOS."""
    from rmdata.model.tiny import REWARD_TOKEN, build_tiny_tokenizer
    from rmdata.tokens.reward_token import resolve_reward_token

    if path is None:
        tiny = build_tiny_tokenizer()
        return tiny, resolve_reward_token(tiny, REWARD_TOKEN).id
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    return tokenizer, resolve_reward_token(tokenizer).id


def read_pairs(path: str | Path, n: int, seed: int) -> list[dict[str, Any]]:
    """A seeded sample of ``n`` preference pairs of ``path`` (any format rmdata reads), in file order."""
    from rmdata.data.load import load_dataset_records
    from rmdata.errors import RmdataError

    loaded = load_dataset_records([str(path)])
    if loaded.kind != "pairs":
        raise RmdataError(f"{path} holds {loaded.format} records; the benchmark needs preference pairs")
    picked = sorted(np.random.default_rng(seed).permutation(loaded.frame.height)[:n].tolist())
    return loaded.frame[picked].to_dicts()


def load_pairs(
    tokenizer: Any, reward_id: int, *, n: int, max_length: int, seed: int, data: str | Path | None = None
) -> Pairs:
    """``n`` pairs of at most ``max_length`` tokens per sequence: sampled from ``data``, or synthetic."""
    from rmdata.tokens.reward_token import resolve_reward_token
    from rmdata.tokens.templates import tokenize_pairs

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else reward_id
    if data is not None:
        reward = resolve_reward_token(tokenizer, token_id=reward_id)
        tokenized = tokenize_pairs(read_pairs(data, n, seed), tokenizer, max_length=max_length, reward_token=reward)
        info = {"source": str(data), "dropped": dict(tokenized.dropped), "prompt_truncated": tokenized.prompt_truncated}
        return Pairs(list(tokenized.chosen), list(tokenized.rejected), reward_id, pad_id, info)
    overhead = template_overhead(tokenizer)
    chosen_len, rejected_len = synthetic_pair_lengths(n, overhead, max_length, seed)
    rng = np.random.default_rng(seed + 1)
    vocab = min(len(tokenizer), 256)  # stay clear of special tokens

    def sequence(length: int) -> np.ndarray:
        return np.append(rng.integers(0, vocab, length - 1), reward_id)

    info = {"source": "synthetic: log-normal fit to alpaca_eval_gpt4_prefs", "template_overhead": overhead}
    return Pairs([sequence(k) for k in chosen_len], [sequence(k) for k in rejected_len], reward_id, pad_id, info)
