"""Conversations -> the token sequences a reward model scores, cut to ``max_length`` from the left.

Each row is rendered as ``prompt + [assistant response]`` with the tokenizer's chat template and tokenized
without added special tokens (the template writes them). When the model names a reward token it is appended;
the score is read at the sequence's last token either way (``rmdata.model.loading`` states the rule).

Truncation: a sequence longer than ``max_length`` loses tokens from the left (the prompt first, then the
start of the reply), so the end of the reply and the score token always stay; a leading BOS that never
recurs is kept (``rmdata.tokens.templates.fit_to_length``). Such rows are flagged ``truncated``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from rmdata.errors import RmdataError
from rmdata.tokens.templates import fit_to_length, render_conversation

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@dataclass
class Sequences:
    """Token sequences index-aligned with their rows, and which of them were cut."""

    tokens: list[np.ndarray]  # int64 [len_i], score token last
    truncated: np.ndarray  # bool [n]

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(t) for t in self.tokens), dtype=np.int64, count=len(self.tokens))


def encode_conversations(
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Sequence[dict[str, str]]],
    responses: Sequence[str],
    sources: Sequence[str],
    *,
    max_length: int,
    reward_token_id: int | None,
) -> Sequences:
    """Render and tokenize ``prompt + reply`` conversations in one batched tokenizer call."""
    texts = [
        render_conversation(tokenizer, [*map(dict, prompt), {"role": "assistant", "content": reply}], source=src)
        for prompt, reply, src in zip(prompts, responses, sources, strict=True)
    ]
    return encode_texts(tokenizer, texts, sources, max_length=max_length, reward_token_id=reward_token_id)


def encode_texts(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    sources: Sequence[str],
    *,
    max_length: int,
    reward_token_id: int | None,
) -> Sequences:
    """Tokenize rendered conversations (no added special tokens), append the reward token, cut from the left."""
    if max_length < 2:
        raise RmdataError(f"--max-length {max_length}: a scored sequence needs at least 2 tokens")
    ids: list[list[int]] = tokenizer(list(texts), add_special_tokens=False, return_attention_mask=False)["input_ids"]
    bos = tokenizer.bos_token_id
    tokens: list[np.ndarray] = []
    truncated = np.zeros(len(ids), dtype=bool)
    for i, row in enumerate(ids):
        full = np.asarray(row, dtype=np.int64)
        if reward_token_id is not None:
            full = np.append(full, np.int64(reward_token_id))
        if len(full) == 0:
            raise RmdataError(f"{sources[i]}: the chat template rendered this conversation as no tokens")
        if len(full) > max_length:
            body, last = full[:-1], int(full[-1])
            cut = fit_to_length(body, len(body), max_length, last, int(bos) if bos is not None else None)
            assert cut is not None  # nothing counts as reply, so a left cut always fits
            full, truncated[i] = cut, True
        tokens.append(full)
    return Sequences(tokens, truncated)


def conversation_columns(frame: Any) -> tuple[list[Any], list[str], list[str]]:
    """``prompt``, ``response`` and ``source`` of a normalized corpus frame as Python lists."""
    return frame["prompt"].to_list(), frame["response"].to_list(), frame["source"].to_list()
