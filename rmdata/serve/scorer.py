"""The scoring core of the server: requests' rows -> token sequences -> rewards, with ``rmdata score``'s engine.

Rows are rendered and tokenized by ``rmdata.score.sequences`` (the chat template, the reward token, the left cut
to ``max_length``) and scored by ``rmdata.score.engine.score_sequences`` in the ``packed`` layout: each sequence
attends to itself only and the head is read row by row, so on CPU a reward is bit-identical to the one ``rmdata
score`` writes for the same row, whatever else shares its batch (the ``padded`` layout is exact only to ~3e-6
across batch compositions, so the server never uses it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rmdata.data.rules import Message
from rmdata.errors import RmdataError
from rmdata.model.loading import ScoringModel, load_scoring_model
from rmdata.score.engine import resolve_batch_tokens, score_sequences
from rmdata.score.sequences import Sequences, encode_conversations, encode_texts
from rmdata.serve.config import ServeConfig
from rmdata.serve.queries import QueryRule

LAYOUT = "packed"


@dataclass
class Scorer:
    """A loaded model and the rules that turn request rows into its input."""

    model: ScoringModel
    max_length: int
    batch_tokens: int
    query_rule: QueryRule

    @classmethod
    def load(cls, cfg: ServeConfig) -> Scorer:
        model = load_scoring_model(
            cfg.model, device=select_device(cfg.device), dtype=cfg.dtype, trust_remote_code=cfg.trust_remote_code
        )
        return cls.of(model, max_length=cfg.max_length, batch_tokens=cfg.batch_tokens)

    @classmethod
    def of(
        cls,
        model: ScoringModel,
        *,
        max_length: int | None = None,
        batch_tokens: int | None = None,
    ) -> Scorer:
        return cls(
            model,
            max_length or model.context_length,
            resolve_batch_tokens(batch_tokens, model.device),
            QueryRule.of(model.tokenizer),
        )

    def encode_rows(self, prompts: Sequence[list[Message]], responses: Sequence[str]) -> Sequences:
        """``prompt + [assistant response]`` rows, exactly as ``rmdata score`` encodes them."""
        return encode_conversations(
            self.model.tokenizer,
            prompts,
            responses,
            [f"rows[{i}]" for i in range(len(responses))],
            max_length=self.max_length,
            reward_token_id=self.model.reward_token_id,
        )

    def encode_texts(self, texts: Sequence[str]) -> Sequences:
        """Already rendered conversations (canonical query texts, ``rmdata.serve.queries``)."""
        return encode_texts(
            self.model.tokenizer,
            texts,
            [f"query[{i}]" for i in range(len(texts))],
            max_length=self.max_length,
            reward_token_id=self.model.reward_token_id,
        )

    def score(self, tokens: Sequence[np.ndarray]) -> np.ndarray:
        """Rewards float32 ``[n]`` of token sequences, index-aligned (blocking: run it off the event loop)."""
        return score_sequences(self.model, tokens, batch_tokens=self.batch_tokens, layout=LAYOUT)

    def warm_up(self) -> float:
        """One forward on a short conversation, so the first request pays no one-time costs; its reward."""
        seqs = self.encode_rows([[{"role": "user", "content": "Hello"}]], ["Hello!"])
        return float(self.score(seqs.tokens)[0])


def select_device(device: str) -> str:
    """``cuda:N`` -> make GPU N torch's current device and load on ``cuda``; other values pass through."""
    if not device.startswith("cuda:"):
        return device
    index = device.removeprefix("cuda:")
    if not index.isdigit():
        raise RmdataError(f"--device {device!r}: use auto, cpu, cuda or cuda:N with N a GPU index")
    import torch

    if not torch.cuda.is_available() or int(index) >= torch.cuda.device_count():
        raise RmdataError(f"--device {device}: torch sees {torch.cuda.device_count()} CUDA devices")
    torch.cuda.set_device(int(index))
    return "cuda"
