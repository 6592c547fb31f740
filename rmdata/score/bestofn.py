"""RewardBench 2 data: rows with ``chosen`` and ``rejected`` lists, scored as one list of responses per row.

Rows need ``prompt`` (string), ``chosen`` and ``rejected`` (non-empty lists of strings), ``num_correct`` (int),
``subset`` and ``id``. They are read raw (``rmdata.data.readers``), since no pairs format holds lists of
replies; each row's responses are scored chosen first, then rejected, with the same engine as every other
command, and ranked by ``rmdata.score.rewardbench.rewardbench2_scores``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rmdata.config import resolve_data_path
from rmdata.data.inputs import resolve_input
from rmdata.data.readers import iter_batches
from rmdata.data.schema import prompt_id, response_id
from rmdata.errors import RmdataError
from rmdata.model.loading import ScoringModel
from rmdata.score.dedup import unique_rows
from rmdata.score.engine import score_sequences
from rmdata.score.progress import ScoreProgress
from rmdata.score.sequences import encode_conversations
from rmdata.score.shards import SHARD_ROWS

REQUIRED = ("prompt", "chosen", "rejected", "num_correct", "subset", "id")


@dataclass
class BestOfNRows:
    """Valid rows, their locations, and the records that broke a rule (location, message)."""

    rows: list[dict[str, Any]]
    locations: list[str]
    invalid: list[tuple[str, str]]


def looks_like_rewardbench2(paths: Sequence[str]) -> bool:
    """True when the first record of the first input has list-valued ``chosen`` and a ``num_correct``."""
    info = resolve_input(resolve_data_path(paths[0]))
    for batch in iter_batches(info, 1):
        value = batch.records[0].value or {}
        return isinstance(value.get("chosen"), list) and "num_correct" in value and "subset" in value
    return False


def read_rows(paths: Sequence[str], on_error: str) -> BestOfNRows:
    """Every record, checked; with ``on_error="fail"`` any broken record raises naming file:line: field."""
    out = BestOfNRows([], [], [])
    for path in paths:
        for batch in iter_batches(resolve_input(resolve_data_path(path))):
            for raw in batch.records:
                problem = _problem(raw.value) if raw.value is not None else raw.error or "unreadable"
                if problem is None:
                    assert raw.value is not None
                    out.rows.append(raw.value)
                    out.locations.append(raw.location)
                else:
                    out.invalid.append((raw.location, problem))
    if out.invalid and on_error == "fail":
        shown = "; ".join(f"{loc}: {msg}" for loc, msg in out.invalid[:5])
        raise RmdataError(
            f"{len(out.invalid)} RewardBench 2 records are invalid: {shown}; fix them, or drop them with "
            "--on-error skip"
        )
    return out


def _problem(record: dict[str, Any]) -> str | None:
    for key in REQUIRED:
        if record.get(key) is None:
            return f"{key}: missing (RewardBench 2 rows need {', '.join(REQUIRED)})"
    if not isinstance(record["prompt"], str) or not record["prompt"].strip():
        return "prompt: must be a non-empty string"
    for key in ("chosen", "rejected"):
        value = record[key]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
            return f"{key}: must be a non-empty list of non-empty strings"
    if not isinstance(record["num_correct"], int) or not 1 <= record["num_correct"] <= len(record["chosen"]):
        return f"num_correct: must be an int from 1 to len(chosen)={len(record['chosen'])}"
    return None


def score_rows(
    model: ScoringModel,
    rows: list[dict[str, Any]],
    locations: list[str],
    *,
    max_length: int,
    batch_tokens: int,
    layout: str,
    show_progress: bool = True,
) -> list[np.ndarray]:
    """Per row, the scores of its chosen responses then its rejected ones (float32)."""
    flat: list[tuple[int, str]] = [(i, reply) for i, r in enumerate(rows) for reply in [*r["chosen"], *r["rejected"]]]
    scores = np.empty(len(flat), dtype=np.float32)
    with ScoreProgress(len(flat), "eval", enabled=show_progress) as progress:
        for start in range(0, len(flat), SHARD_ROWS):
            part = flat[start : start + SHARD_ROWS]
            prompts = [[{"role": "user", "content": rows[i]["prompt"]}] for i, _ in part]
            keys = [response_id(prompt_id(p), reply) for p, (_, reply) in zip(prompts, part, strict=True)]
            first, inverse = unique_rows(keys)
            pick = first.tolist()
            picked_sources = [locations[part[k][0]] for k in pick]
            seqs = encode_conversations(
                model.tokenizer,
                [prompts[k] for k in pick],
                [part[k][1] for k in pick],
                picked_sources,
                max_length=max_length,
                reward_token_id=model.reward_token_id,
            )
            unique = score_sequences(model, seqs.tokens, batch_tokens=batch_tokens, layout=layout,
                                     progress=progress.scored, sources=picked_sources)  # fmt: skip
            progress.skip(len(part) - len(pick))
            scores[start : start + len(part)] = unique[inverse]
    bounds = np.cumsum([0] + [len(r["chosen"]) + len(r["rejected"]) for r in rows])
    return [scores[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def flattened_pairs(rows: list[dict[str, Any]], scores: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    """Every (chosen, rejected) combination of each row: chosen scores, rejected scores, their lengths."""
    c, r, cl, rl = [], [], [], []
    for row, values in zip(rows, scores, strict=True):
        n = len(row["chosen"])
        for i, good in enumerate(row["chosen"]):
            for j, bad in enumerate(row["rejected"]):
                c.append(values[i])
                r.append(values[n + j])
                cl.append(len(good))
                rl.append(len(bad))
    return np.array(c, dtype=np.float32), np.array(r, dtype=np.float32), np.array(cl), np.array(rl)
