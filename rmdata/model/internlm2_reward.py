"""InternLM2-Reward checkpoints as rmdata reward models: the Llama trunk of :mod:`rmdata.model.internlm2`, its
``v_head`` as the value head and its ``reward_token_id`` as the reward token, without remote code."""

from __future__ import annotations

from pathlib import Path

import torch

from rmdata.errors import RmdataError
from rmdata.model.attention import choose_attention
from rmdata.model.internlm2 import load_trunk, local_dir, read_config
from rmdata.model.internlm2_tokenizer import load_internlm2_tokenizer
from rmdata.model.reward_model import BuiltModel, RewardModel, built, compute_dtype
from rmdata.tokens.reward_token import RewardToken


def load_internlm2_reward(
    path: str | Path,
    *,
    device: torch.device | str = "cpu",
    dtype: str | torch.dtype = "auto",
    attention: str = "auto",
) -> BuiltModel:
    """An InternLM2-Reward directory as an rmdata reward model: Llama trunk, ``v_head`` as value head,
    ``reward_token_id`` from ``config.json``, tokenizer from ``tokenizer.model``; in eval mode.

    ``dtype``: a torch dtype, or ``auto`` (bfloat16 on CUDA, float32 on CPU) / ``float32`` / ``bfloat16``.
    """
    path = local_dir(path) or Path(path)
    raw = read_config(path) or {}
    token_id = raw.get("reward_token_id")
    if token_id is None:
        raise RmdataError(
            f"{path}/config.json has no reward_token_id: it is an InternLM2 backbone, not a reward model; train "
            f"one with `rmdata train --set model.name_or_path={path}`"
        )
    device = torch.device(device)
    compute = dtype if isinstance(dtype, torch.dtype) else compute_dtype(dtype, device)
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
