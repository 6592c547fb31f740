"""The scored dataset's rows, statistics and dataset card (``README.md``), written next to the shards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from rmdata.dataset_dir import SHARD_GLOB, dataset_card, markdown_table

CORE = ("prompt_id", "response_id", "prompt", "response")
SCORED = ("reward", "num_tokens", "truncated", "model")  # the columns scoring adds
GROUP_COLUMNS = ("generator", "subset", "category", "policy")  # the first one present groups the card's stats

COLUMN_DOCS = {
    "prompt_id": "content id of the prompt (sha256 of its messages)",
    "response_id": "content id of (prompt, response): identical rows share it and their score",
    "prompt": "the prompt as a message list [{role, content}]",
    "response": "the scored reply",
    "reward": "the reward model's score (float32)",
    "num_tokens": "tokens of the scored sequence (after truncation, score token included)",
    "truncated": "true when the sequence was cut from the left to fit max_length",
    "model": "fingerprint of the weights, tokenizer and score rule",
    "source": "where the row came from (file:line or file:row)",
}


def scored_frame(
    block: pl.DataFrame, rewards: np.ndarray, num_tokens: np.ndarray, truncated: np.ndarray, fingerprint: str
) -> pl.DataFrame:
    """The output rows of one block: core columns, the scores, then every input column carried through.

    A carried column named like a scoring column is kept as ``<name>_input``.
    """
    carried = [c for c in block.columns if c not in CORE]
    renamed = block.rename({c: f"{c}_input" for c in carried if c in SCORED})
    scores = pl.DataFrame(
        [
            pl.Series("reward", rewards, dtype=pl.Float32),
            pl.Series("num_tokens", num_tokens, dtype=pl.Int32),
            pl.Series("truncated", truncated, dtype=pl.Boolean),
            pl.Series("model", [fingerprint] * block.height, dtype=pl.String),
        ]
    )
    rest = [c for c in renamed.columns if c not in CORE]
    return pl.concat([renamed.select(CORE), scores, renamed.select(rest)], how="horizontal")


def reward_stats(directory: Path) -> tuple[dict[str, Any], str | None, list[dict[str, Any]]]:
    """Overall reward statistics, the grouping column (or None) and per-group statistics of the shards."""
    frame = pl.scan_parquet(directory / SHARD_GLOB)
    names = frame.collect_schema().names()

    def agg() -> list[pl.Expr]:
        r = pl.col("reward")
        return [
            pl.len().alias("rows"),
            r.mean().alias("mean"),
            r.std().alias("std"),
            r.min().alias("min"),
            r.median().alias("median"),
            r.max().alias("max"),
            pl.col("truncated").sum().alias("truncated"),
        ]

    overall = frame.select(agg()).collect().to_dicts()[0]
    group = next((c for c in GROUP_COLUMNS if c in names), None)
    groups: list[dict[str, Any]] = []
    if group is not None:
        groups = frame.group_by(group).agg(agg()).sort("mean", descending=True).collect().to_dicts()
    return overall, group, groups


def write_card(directory: Path, manifest: dict[str, Any], columns: list[str]) -> str:
    """``README.md``: counts, reward statistics (overall and per group), the model, the rule, the command."""
    overall, group, groups = reward_stats(directory)
    model, inputs, totals = manifest["model"], manifest["input"], manifest["totals"]
    lines = [
        f"Rewards for {inputs['valid_rows']} responses from {', '.join(inputs['paths'])}, scored by rmdata.",
        "",
        f"- model: `{model['path']}` ({model['architecture']}, {model['kind']}), fingerprint `{model['fingerprint']}`",
        f"- score rule: {model['rule']}",
        f"- command: `{manifest['command']}`",
        f"- rows: {totals['rows']} ({totals['scored']} sequences scored, {totals.get('reused', 0)} rewards copied "
        f"from --reuse outputs, {totals['duplicates']} duplicates reused "
        f"run-wide ({totals.get('copied', 0)} from earlier shards), "
        f"{totals['truncated']} truncated, {inputs['invalid']} invalid input records"
        + (" in rejects.jsonl)" if inputs["invalid"] else ")"),
        f"- layout: {manifest['settings']['layout']}, max_length {manifest['settings']['max_length']}, "
        f"{model['dtype']} on {model['device']}",
        *([f"- reused from: {', '.join(manifest['reused_from'])}"] if manifest.get("reused_from") else []),
        "",
        "## Reward statistics",
        "",
        markdown_table([{"": "all", **overall}]),
    ]
    if group is not None:
        lines += ["", f"### By `{group}`", "", markdown_table(groups)]
    lines += [
        "",
        "## Columns",
        "",
        markdown_table([{"column": c, "meaning": COLUMN_DOCS.get(c, "carried from the input")} for c in columns]),
    ]
    card = dataset_card("Scored responses", "\n".join(lines), directory, tags=["rmdata", "reward-scores"])
    from rmdata.io import write_text_atomic

    write_text_atomic(directory / "README.md", card)
    return card
