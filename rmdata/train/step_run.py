"""``rmdata train-steps``: labelled stepwise data -> a trained PRM export that ``score-steps`` and transformers load.

The model is built as for ``rmdata train`` (``model`` section: ``tiny`` or a Hugging Face directory; full,
LoRA or QLoRA; the reward token is the step separator), each labelled solution is rendered with the
separator after every step (``rmdata.tokens.steps``), and ``rmdata.train.steps.train_prm`` trains on packed
rows (under ``torchrun``, each rank its share of every step's rows; rank 0 writes the export). Records
without labels, unreadable or invalid ones, step-token mismatches and solutions over ``max_packed_length``
are drops, written to ``rejects.jsonl`` beside the export and counted in its ``train_steps.json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from rmdata.data.drops import INVALID_RECORD, Drop, count_by_reason
from rmdata.data.stepwise import read_stepwise
from rmdata.distributed import barrier, init_distributed
from rmdata.errors import RmdataError
from rmdata.io import write_rejects, write_text_atomic
from rmdata.model.export import save_reward_model
from rmdata.model.reward_model import autocast_for, build_reward_model, load_tokenizer, pick_device
from rmdata.progress import logger
from rmdata.tokens.reward_token import resolve_reward_token
from rmdata.tokens.steps import SEPARATOR, StepTemplate, tokenize_steps
from rmdata.train.step_config import StepTrainConfig
from rmdata.train.steps import StepExample, train_prm

log = logger()


def run_train_steps(cfg: StepTrainConfig, *, overwrite: bool = False) -> dict[str, Any]:
    """Train a PRM per ``cfg`` and export it to ``cfg.output``; returns the run summary."""
    import torch

    if Path(cfg.output).exists() and not overwrite:
        raise RmdataError(f"{cfg.output} already exists; choose another --output or pass --overwrite")
    for name in ("max_packed_length", "rows_per_step", "epochs"):
        if getattr(cfg, name) < 1:
            raise RmdataError(f"--{name.replace('_', '-')} {getattr(cfg, name)}: must be at least 1")
    data = read_stepwise(cfg.data, cfg.data_layout, cfg.neutral_label)
    torch.manual_seed(cfg.seed)
    tokenizer = load_tokenizer(cfg.model)
    token = resolve_reward_token(tokenizer, cfg.model.reward_token, cfg.model.reward_token_id)
    template = StepTemplate(SEPARATOR, token.text, token.id)
    drops: list[Drop] = list(data.drops)
    examples: list[StepExample] = []
    for row in data.rows:
        if row.labels is None:
            drops.append(Drop(INVALID_RECORD, "the record has no step labels; training needs them", row.location))
            continue
        result = tokenize_steps(tokenizer, template, row, cfg.max_packed_length)
        if isinstance(result, Drop):
            drops.append(result)
            continue
        examples.append(StepExample(result.input_ids, result.step_positions, np.asarray(row.labels, np.float32)))
    if not examples:
        raise RmdataError(f"{cfg.data}: no labelled solution to train on ({count_by_reason(drops)})")
    device = pick_device(cfg.device)
    world = init_distributed(device.type)  # one process unless launched by torchrun (or SLURM)
    if device.type == "cuda" and world.distributed:
        device = torch.device(f"cuda:{world.local_rank}")
    built = build_reward_model(cfg.model, tokenizer, token, device=device)
    autocast, _, why = autocast_for(cfg.model.dtype, device)
    log.info("train-steps: %s", why)
    with autocast:
        losses = train_prm(
            built.model,
            examples,
            max_packed_length=cfg.max_packed_length,
            rows_per_step=cfg.rows_per_step,
            epochs=cfg.epochs,
            lr=cfg.lr,
            seed=cfg.seed,
            world=world,
        )
    built.model.eval()
    summary = {
        "solutions": len(examples),
        "steps": int(sum(len(e.labels) for e in examples)),
        "dropped": count_by_reason(drops),
        "optimizer_steps": len(losses),
        "first_loss": round(losses[0], 6),
        "last_loss": round(losses[-1], 6),
        "reward_token": token.text,
        "options": asdict(cfg),
    }
    summary["ranks"] = world.world_size
    if world.is_main:  # the ranks hold the same weights: rank 0 writes
        path = save_reward_model(built, cfg.output, overwrite=overwrite)
        write_text_atomic(path / "train_steps.json", json.dumps(summary, indent=2, default=str) + "\n")
        if drops:
            write_rejects(Path(path) / "rejects.jsonl", drops)
    barrier(world)
    log.info(
        "train-steps: %d solutions, %d optimizer steps, loss %.4f -> %.4f",
        len(examples),
        len(losses),
        losses[0],
        losses[-1],
    )
    return summary
