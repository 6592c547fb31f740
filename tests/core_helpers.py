"""Tiny reward models, random packed data and a few training steps, shared by the core tests."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from collections.abc import Iterator, Sequence  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402

from rmdata.config import (
    ModelConfig,  # noqa: E402
    TinyModelConfig,  # noqa: E402
)
from rmdata.model.reward_model import BuiltModel, RewardModel, build_reward_model  # noqa: E402
from rmdata.model.tiny import REWARD_TOKEN, build_tiny_tokenizer  # noqa: E402
from rmdata.tokens.batching import pack_sequences  # noqa: E402
from rmdata.tokens.reward_token import resolve_reward_token  # noqa: E402

# Models this small gain nothing from a second thread, and on a shared 2-core machine the threads' spin-waits
# made a tiny backward pass ~100x slower (2.3 s instead of 0.02 s).
torch.set_num_threads(1)

LENGTHS = (7, 19, 4, 12)  # a packed row of four sequences of different lengths


def tiny_config(arch: str = "llama", **overrides: Any) -> ModelConfig:
    """The recipe's model section for a 2-layer, width-64 GQA model (4 query heads, 2 key/value heads).

    Widths are multiples of 64, as in real checkpoints: QLoRA refuses others (bitsandbytes' CPU path needs it).
    """
    sizes = TinyModelConfig(
        arch=arch,
        hidden_size=64,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        intermediate_size=128,
        max_position_embeddings=512,
    )
    fields: dict[str, Any] = {
        "name_or_path": "tiny",
        "tiny": sizes,
        "reward_token": REWARD_TOKEN,
        "attention": "sdpa_varlen",
        **overrides,
    }
    return ModelConfig(**fields)


def build_tiny(arch: str = "llama", seed: int = 0, device: str = "cpu", **overrides: Any) -> BuiltModel:
    """A tiny reward model; ``overrides`` are fields of the recipe's model section."""
    torch.manual_seed(seed)
    tokenizer = build_tiny_tokenizer()
    cfg = tiny_config(arch, **overrides)
    reward = resolve_reward_token(tokenizer, cfg.reward_token, cfg.reward_token_id)
    return build_reward_model(cfg, tokenizer, reward, device=device)


def randomize_head(model: RewardModel, seed: int = 1) -> None:
    """A non-zero head, so that scores depend on the trunk (a zero head scores everything 0)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.value_head.weight.copy_(torch.randn(model.value_head.weight.shape, generator=generator))


def random_sequences(lengths: Sequence[int], reward_id: int, seed: int = 0) -> list[list[int]]:
    """Random byte tokens, each sequence ending with the reward token."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (n - 1,), generator=generator).tolist() + [reward_id] for n in lengths]


@contextmanager
def transformers_sdpa(model: RewardModel) -> Iterator[None]:
    """Run the trunk on transformers' own SDPA attention inside the block (backward passes included)."""
    backend = model.trunk.config._attn_implementation
    model.trunk.set_attn_implementation("sdpa")
    try:
        yield
    finally:
        model.trunk.set_attn_implementation(backend)


def unpacked_scores(model: RewardModel, sequences: Sequence[Sequence[int]]) -> torch.Tensor:
    """Each sequence alone as an ordinary ``[1, L]`` call: default position ids, no segment arguments."""
    device = model.value_head.weight.device
    hidden = [model.trunk(input_ids=torch.tensor([list(s)], device=device)).last_hidden_state[0, -1] for s in sequences]
    return model.score_hidden(torch.stack(hidden))


def reference_scores(model: RewardModel, sequences: Sequence[Sequence[int]]) -> torch.Tensor:
    """Each sequence run alone through transformers' own SDPA attention (no rmdata attention code involved)."""
    with transformers_sdpa(model):
        return unpacked_scores(model, sequences)


def pair_loss(scores: torch.Tensor) -> torch.Tensor:
    """-log sigmoid(chosen - rejected) summed over pairs; scores alternate chosen, rejected."""
    return -torch.nn.functional.logsigmoid(scores[0::2] - scores[1::2]).sum()


def train_steps(
    model: RewardModel, rows: Sequence[Sequence[Sequence[int]]], steps: int, lr: float = 1e-2
) -> list[float]:
    """A few AdamW steps of ``pair_loss`` on packed rows; returns the losses."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    model.train()
    losses = []
    for step in range(steps):
        loss = pair_loss(model(pack_sequences(rows[step % len(rows)])))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return losses
