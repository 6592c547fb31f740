"""Step-level preference pairs: a shared correct prefix, then a correct next step vs a wrong one.

Two solutions of the same prompt whose first ``k`` steps are the same text share that prefix; their steps
``k`` differ. When the prefix scores at least ``threshold`` at every step, one solution's step ``k`` does too and
the other's scores under it, they make a pair: ``prompt`` (the prompt and the prefix, one step per line),
``chosen`` (the correct step), ``rejected`` (the wrong one), in TRL's standard (non-conversational) preference
format, plus ``step_index`` (= k), ``prefix_steps``, ``chosen_reward``, ``rejected_reward`` and ``gap``.

The same (prompt, prefix, chosen, rejected) is paired once; ``max_pairs_per_prompt`` keeps the largest gaps
(ties by step index, then text). Every solution in no pair is a drop with the reasons ``rmdata build-dpo`` uses:
``too_few_responses`` (its prompt has one solution), ``no_pair`` (its prompt has none), ``unpaired`` (others of
its prompt are paired).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import polars as pl

from rmdata.curate.ranking import REASON
from rmdata.data.drops import NO_PAIR, TOO_FEW_RESPONSES, UNPAIRED

PAIR_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "prompt": pl.String,
    "chosen": pl.String,
    "rejected": pl.String,
    "step_index": pl.Int64,
    "prefix_steps": pl.List(pl.String),
    "chosen_reward": pl.Float64,
    "rejected_reward": pl.Float64,
    "gap": pl.Float64,
}


def _shared(a: list[str], b: list[str]) -> int:
    k = 0
    while k < len(a) and k < len(b) and a[k] == b[k]:
        k += 1
    return k


def step_pairs(
    scored: pl.DataFrame, *, threshold: float, max_pairs_per_prompt: int | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(the pairs, the solutions in no pair with their ``reason``) from ``score-steps`` rows."""
    rows = scored.with_row_index("_solution").to_dicts()
    by_prompt: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_prompt[row["prompt"]].append(row)
    pairs: list[dict[str, Any]] = []
    reasons: dict[int, str] = {}
    for prompt, group in by_prompt.items():
        found: dict[tuple[Any, ...], dict[str, Any]] = {}
        used: dict[tuple[Any, ...], tuple[int, int]] = {}
        for a in group:
            for b in group:
                pair = _pair(prompt, a, b, threshold)
                if pair is not None:
                    key = (tuple(pair["prefix_steps"]), pair["chosen"], pair["rejected"])
                    if key not in found:
                        found[key], used[key] = pair, (a["_solution"], b["_solution"])
        ranked = sorted(found, key=lambda k: (-found[k]["gap"], found[k]["step_index"], k))
        kept = ranked[:max_pairs_per_prompt] if max_pairs_per_prompt is not None else ranked
        pairs.extend(found[k] for k in kept)
        paired = {s for k in kept for s in used[k]}
        for row in group:
            if row["_solution"] not in paired:
                reasons[row["_solution"]] = TOO_FEW_RESPONSES if len(group) < 2 else UNPAIRED if kept else NO_PAIR
    dropped = [dict(row, **{REASON: reasons[row["_solution"]]}) for row in rows if row["_solution"] in reasons]
    dropped_frame = pl.DataFrame(dropped, infer_schema_length=None).drop("_solution") if dropped else pl.DataFrame()
    return pl.DataFrame(pairs, schema=PAIR_SCHEMA), dropped_frame


def _pair(prompt: str, a: dict[str, Any], b: dict[str, Any], threshold: float) -> dict[str, Any] | None:
    """The pair (a's step k chosen, b's step k rejected) at their first differing step k, if it qualifies."""
    steps_a, steps_b = a["completions"], b["completions"]
    rewards_a, rewards_b = a["step_rewards"], b["step_rewards"]
    if rewards_a is None or rewards_b is None:
        return None
    k = _shared(steps_a, steps_b)
    if k >= len(steps_a) or k >= len(steps_b):
        return None
    prefix_ok = all(r >= threshold for r in rewards_a[:k]) and all(r >= threshold for r in rewards_b[:k])
    if not prefix_ok or not rewards_a[k] >= threshold > rewards_b[k]:
        return None
    prefix = list(steps_a[:k])
    return {
        "prompt": "\n".join([prompt, *prefix]),
        "chosen": steps_a[k],
        "rejected": steps_b[k],
        "step_index": k,
        "prefix_steps": prefix,
        "chosen_reward": float(rewards_a[k]),
        "rejected_reward": float(rewards_b[k]),
        "gap": float(rewards_a[k] - rewards_b[k]),
    }
