"""``rmdata score-steps`` and ``eval-steps``: stepwise data -> step scores, a dataset directory or a report.

Every input record either gives one output row or is a drop with its reason (``rejects.jsonl`` in the output,
counted in ``manifest.json``): unreadable or invalid records (``rmdata.data.stepwise``), step-token
mismatches and over-long solutions (``rmdata.tokens.steps``). Output columns: ``prompt``, ``completions``,
``labels`` (null when the input had none), ``step_rewards``, ``reward`` (the ``aggregate``),
``first_error_step`` (at ``threshold``), ``gold_first_error`` (null when unknown), ``source`` (file:line)
and every carried input key.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from rmdata.data.drops import Drop, count_by_reason
from rmdata.data.stepwise import StepRow, read_stepwise
from rmdata.dataset_dir import atomic_directory, dataset_card, shard_path
from rmdata.errors import RmdataError
from rmdata.io import write_parquet, write_rejects, write_text_atomic
from rmdata.model.step_model import StepModel, load_step_model
from rmdata.progress import logger
from rmdata.score.step_config import StepScoreConfig
from rmdata.score.step_eval import evaluate_steps
from rmdata.score.steps import AGGREGATES, aggregate, first_error_step, score_steps
from rmdata.tokens.steps import StepTokens, tokenize_steps

log = logger()
KIND = "step-scores"


def _model(cfg: StepScoreConfig) -> StepModel:
    device = cfg.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda") or (device == "cuda" and not torch.cuda.is_available()):
        raise RmdataError(f"--device {cfg.device!r}: use auto, cpu, or cuda on a machine where torch sees CUDA")
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    return load_step_model(cfg.model, layout=cfg.layout, device=device, dtype=dtype)


def scored_rows(cfg: StepScoreConfig) -> tuple[list[StepRow], list[np.ndarray], list[Drop], StepModel]:
    """The rows that scored, their step scores, every drop, and the model."""
    if cfg.aggregate not in AGGREGATES:
        raise RmdataError(f"--aggregate {cfg.aggregate!r} is not one of {', '.join(AGGREGATES)}")
    data = read_stepwise(cfg.data, cfg.data_layout, cfg.neutral_label)
    model = _model(cfg)
    rows: list[StepRow] = []
    tokens: list[StepTokens] = []
    drops = list(data.drops)
    for row in data.rows:
        result = tokenize_steps(model.tokenizer, model.template, row, cfg.max_length)
        if isinstance(result, Drop):
            drops.append(result)
        else:
            rows.append(row)
            tokens.append(result)
    log.info("score-steps: %d solutions to score, %d dropped (%s)", len(rows), len(drops), count_by_reason(drops))
    return rows, score_steps(model, tokens, batch_tokens=cfg.batch_tokens), drops, model


def _frame(rows: list[StepRow], scores: list[np.ndarray], cfg: StepScoreConfig) -> pl.DataFrame:
    core = pl.DataFrame(
        {
            "prompt": [r.prompt for r in rows],
            "completions": [list(r.steps) for r in rows],
            "labels": [None if r.labels is None else list(r.labels) for r in rows],
            "step_rewards": [s.astype(np.float64).tolist() for s in scores],
            "reward": [aggregate(s, cfg.aggregate) for s in scores],
            "first_error_step": [first_error_step(s, cfg.threshold) for s in scores],
            "gold_first_error": [r.gold_first_error for r in rows],
            "source": [r.location for r in rows],
        },
        schema_overrides={"labels": pl.List(pl.Float64), "gold_first_error": pl.Int64},
    )
    extra_keys = sorted({k for r in rows for k in r.extra if k not in core.columns})
    if not extra_keys:
        return core
    try:
        extras = pl.DataFrame([{k: r.extra.get(k) for k in extra_keys} for r in rows], infer_schema_length=None)
    except (pl.exceptions.PolarsError, TypeError, ValueError):  # mixed types in a key: carried as JSON text
        log.info("score-steps: carried keys %s have mixed types; written as JSON text in column extra", extra_keys)
        extras = pl.DataFrame({"extra": [json.dumps({k: r.extra.get(k) for k in extra_keys}) for r in rows]})
    return pl.concat([core, extras], how="horizontal")


def run_score_steps(cfg: StepScoreConfig) -> dict[str, Any]:
    """Score ``cfg.data`` with ``cfg.model`` into the dataset directory ``cfg.output``; returns the manifest."""
    rows, scores, drops, model = scored_rows(cfg)
    if not rows:
        raise RmdataError(f"{cfg.data}: no solution left to score ({count_by_reason(drops)}); see the reasons above")
    frame = _frame(rows, scores, cfg)
    manifest = {
        "rows": len(rows),
        "steps": int(sum(len(s) for s in scores)),
        "dropped": count_by_reason(drops),
        "model_layout": model.layout,
        "attention": model.attention.name,
        "options": asdict(cfg),
    }
    with atomic_directory(Path(cfg.output), overwrite=cfg.overwrite, kind=KIND) as tmp:
        shard = shard_path(tmp, 0)
        shard.parent.mkdir(parents=True)
        write_parquet(frame, shard)
        body = f"Step scores by `{cfg.model}` ({model.layout} layout) of `{cfg.data}`.\n\n```json\n"
        card = dataset_card("rmdata step scores", body + json.dumps(manifest["dropped"]) + "\n```\n", tmp)
        write_text_atomic(tmp / "README.md", card)
        write_text_atomic(tmp / "manifest.json", json.dumps(manifest, indent=2) + "\n")
        if drops:
            write_rejects(tmp / "rejects.jsonl", drops)
    return manifest


def run_eval_steps(cfg: StepScoreConfig) -> dict[str, Any]:
    """Score ``cfg.data`` and report step accuracy and ProcessBench metrics (``rmdata.score.step_eval``)."""
    rows, scores, drops, model = scored_rows(cfg)
    report = evaluate_steps(rows, scores, threshold=cfg.threshold, subset=cfg.subset)
    return {
        "model": cfg.model,
        "model_layout": model.layout,
        "data": cfg.data,
        "dropped": count_by_reason(drops),
        **report,
    }
