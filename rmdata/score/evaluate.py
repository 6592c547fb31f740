"""``rmdata eval``: score both sides of preference pairs and report how often the model agrees with them.

Metrics (:func:`pair_metrics`): ``accuracy`` (share of pairs with chosen > rejected; a tie counts as wrong,
as in RewardBench), ``ties``, mean chosen / rejected / margin scores, mean and std of all scores, and
``length_correlation``: Pearson's r between a response's score and its length in characters over every
scored response. Above ``LENGTH_WARNING`` the report warns of a length bias. RewardBench data also gets
its official scores (``rmdata.score.rewardbench``). Pairs are scored with the same engine as ``rmdata
score`` (blocks of ``SHARD_ROWS`` pairs, duplicates folded, exact batches).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from rmdata.model.loading import ScoringModel
from rmdata.score.dedup import unique_rows
from rmdata.score.engine import score_sequences
from rmdata.score.progress import ScoreProgress
from rmdata.score.sequences import encode_conversations
from rmdata.score.shards import SHARD_ROWS, blocks

LENGTH_WARNING = 0.3  # |r| above this: scores follow response length more than a judge should


@dataclass
class PairScores:
    """Scores of every pair's chosen and rejected response, index-aligned with the input rows."""

    chosen: np.ndarray  # float32 [n]
    rejected: np.ndarray
    chosen_chars: np.ndarray  # int64 [n]: response lengths in characters
    rejected_chars: np.ndarray
    truncated: int = 0
    scored: int = 0  # sequences run through the model (after dedup)
    columns: dict[str, list[Any]] = field(default_factory=dict)  # carried columns, for --by and RewardBench


def score_pairs(
    model: ScoringModel,
    frames: Iterator[pl.DataFrame],
    *,
    total: int,
    max_length: int,
    batch_tokens: int,
    layout: str,
    keep: Sequence[str] = (),
    show_progress: bool = True,
) -> PairScores:
    """Score a stream of normalized pair frames block by block; ``keep`` names carried columns to return."""
    chosen: list[np.ndarray] = []
    rejected: list[np.ndarray] = []
    lengths: list[np.ndarray] = []
    columns: dict[str, list[Any]] = {name: [] for name in keep}
    truncated = scored = 0
    with ScoreProgress(2 * total, "eval", enabled=show_progress) as progress:
        for block in blocks(frames, SHARD_ROWS):
            n = block.height
            texts = block["chosen"].to_list() + block["rejected"].to_list()
            first, inverse = unique_rows(block["chosen_id"].to_list() + block["rejected_id"].to_list())
            prompts = block["prompt"].to_list() * 2
            sources = block["source"].to_list() * 2
            pick = first.tolist()
            picked_sources = [sources[i] for i in pick]
            seqs = encode_conversations(
                model.tokenizer,
                [prompts[i] for i in pick],
                [texts[i] for i in pick],
                picked_sources,
                max_length=max_length,
                reward_token_id=model.reward_token_id,
            )
            scores = score_sequences(
                model,
                seqs.tokens,
                batch_tokens=batch_tokens,
                layout=layout,
                progress=progress.scored,
                sources=picked_sources,
            )[inverse]
            progress.skip(2 * n - len(pick))
            chosen.append(scores[:n])
            rejected.append(scores[n:])
            lengths.append(np.fromiter((len(t) for t in texts), dtype=np.int64, count=2 * n))
            truncated += int(seqs.truncated[inverse].sum())
            scored += len(pick)
            for name in keep:
                columns[name] += block[name].to_list()
    both = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)
    halves = [(b[: len(b) // 2], b[len(b) // 2 :]) for b in lengths]
    return PairScores(
        chosen=np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.float32),
        rejected=np.concatenate(rejected) if rejected else np.zeros(0, dtype=np.float32),
        chosen_chars=np.concatenate([c for c, _ in halves]) if halves else both,
        rejected_chars=np.concatenate([r for _, r in halves]) if halves else both,
        truncated=truncated,
        scored=scored,
        columns=columns,
    )


def pair_metrics(
    chosen: np.ndarray, rejected: np.ndarray, chosen_chars: np.ndarray, rejected_chars: np.ndarray
) -> dict[str, Any]:
    """The report's numbers for one set of pairs (see the module docstring); NaN-free: undefined -> None."""
    c, r = np.asarray(chosen, dtype=np.float64), np.asarray(rejected, dtype=np.float64)
    every = np.concatenate([c, r])
    chars = np.concatenate([chosen_chars, rejected_chars]).astype(np.float64)
    return {
        "pairs": int(len(c)),
        "accuracy": _num(float((c > r).mean())) if len(c) else None,
        "ties": int((c == r).sum()),
        "chosen_mean": _num(c.mean()) if len(c) else None,
        "rejected_mean": _num(r.mean()) if len(c) else None,
        "margin_mean": _num((c - r).mean()) if len(c) else None,
        "score_mean": _num(every.mean()) if len(c) else None,
        "score_std": _num(every.std()) if len(c) else None,
        "length_correlation": correlation(every, chars),
    }


def correlation(x: np.ndarray, y: np.ndarray) -> float | None:
    """Pearson's r, or None when either side is constant (or there are fewer than two values)."""
    if len(x) < 2 or float(np.std(x)) == 0.0 or float(np.std(y)) == 0.0:
        return None
    return _num(float(np.corrcoef(x, y)[0, 1]))


def grouped_metrics(scores: PairScores, column: str) -> dict[str, dict[str, Any]]:
    """:func:`pair_metrics` per value of ``column`` (values as text, sorted)."""
    values = np.asarray([str(v) for v in scores.columns[column]])
    out: dict[str, dict[str, Any]] = {}
    for value in sorted(set(values.tolist())):
        take = values == value
        out[value] = pair_metrics(
            scores.chosen[take], scores.rejected[take], scores.chosen_chars[take], scores.rejected_chars[take]
        )
    return out


def length_warning(metrics: dict[str, Any]) -> str | None:
    r = metrics.get("length_correlation")
    if r is None or abs(r) < LENGTH_WARNING:
        return None
    side = "longer" if r > 0 else "shorter"
    return (
        f"warning: scores correlate with response length (r = {r:.2f}, |r| >= {LENGTH_WARNING}): the model "
        f"tends to prefer {side} replies; check accuracy on pairs where the chosen reply is the {side} one"
    )


def _num(value: float) -> float:
    return round(float(value), 6)


def evaluate(
    paths: Sequence[str],
    *,
    model_dir: str,
    by: str | None = None,
    on_error: str = "fail",
    max_length: int | None = None,
    batch_tokens: int | None = None,
    device: str = "auto",
    dtype: str = "auto",
    trust_remote_code: bool = False,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Validate ``paths`` (pairs), load the model, score every pair; the report as one JSON-ready dict."""
    from rmdata.data.stream import scan, stream
    from rmdata.errors import RmdataError
    from rmdata.model.loading import load_scoring_model
    from rmdata.score.engine import resolve_batch_tokens, resolve_layout
    from rmdata.score.rewardbench import is_rewardbench, rewardbench_scores

    if on_error not in ("fail", "skip"):
        raise RmdataError(f"--on-error {on_error!r}: use fail or skip")
    from rmdata.score import bestofn

    if bestofn.looks_like_rewardbench2(paths):
        if by is not None:
            raise RmdataError(f"--by {by}: RewardBench 2 data is reported per subset already; drop --by")
        return _evaluate_rewardbench2(
            paths, model_dir, on_error, max_length, batch_tokens, device, dtype, trust_remote_code, show_progress
        )
    report = scan(list(paths), on_error=on_error)  # type: ignore[arg-type]
    if report.kind != "pairs":
        raise RmdataError(
            f"{', '.join(paths)} holds single responses, not preference pairs; score them with `rmdata score`, "
            "or give pairs (prompt, chosen, rejected)"
        )
    if by is not None and by not in report.carried:
        carried = ", ".join(report.carried) or "none"
        raise RmdataError(f"--by {by}: the input has no column {by!r} (columns carried: {carried})")
    model = load_scoring_model(model_dir, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
    layout = resolve_layout("auto", model.device)
    keep = [c for c in dict.fromkeys([by, "subset"]) if c is not None and c in report.carried]
    scores = score_pairs(
        model,
        stream(report, batch_rows=SHARD_ROWS),
        total=report.valid_rows,
        max_length=max_length or model.context_length,
        batch_tokens=resolve_batch_tokens(batch_tokens, model.device),
        layout=layout,
        keep=keep,
        show_progress=show_progress,
    )
    result: dict[str, Any] = pair_metrics(scores.chosen, scores.rejected, scores.chosen_chars, scores.rejected_chars)
    result.update(
        invalid=report.invalid,
        truncated=scores.truncated,
        model=str(model.path),
        fingerprint=model.fingerprint,
        rule=model.rule,
        layout=layout,
    )
    if by is not None:
        result["by"] = {"column": by, "groups": grouped_metrics(scores, by)}
    subsets = [str(s) for s in scores.columns.get("subset", [])]
    if "subset" in keep and is_rewardbench(subsets):
        result["rewardbench"] = rewardbench_scores(subsets, scores.chosen, scores.rejected)
    return result


def _evaluate_rewardbench2(
    paths: Sequence[str],
    model_dir: str,
    on_error: str,
    max_length: int | None,
    batch_tokens: int | None,
    device: str,
    dtype: str,
    trust_remote_code: bool,
    show_progress: bool,
) -> dict[str, Any]:
    """RewardBench 2 rows: the pair metrics over every (chosen, rejected) combination, and the RB2 scores."""
    from rmdata.model.loading import load_scoring_model
    from rmdata.score import bestofn
    from rmdata.score.engine import resolve_batch_tokens, resolve_layout
    from rmdata.score.rewardbench import rewardbench2_scores

    data = bestofn.read_rows(paths, on_error)
    model = load_scoring_model(model_dir, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
    layout = resolve_layout("auto", model.device)
    scores = bestofn.score_rows(
        model,
        data.rows,
        data.locations,
        max_length=max_length or model.context_length,
        batch_tokens=resolve_batch_tokens(batch_tokens, model.device),
        layout=layout,
        show_progress=show_progress,
    )
    result: dict[str, Any] = pair_metrics(*bestofn.flattened_pairs(data.rows, scores))
    result.update(invalid=len(data.invalid), model=str(model.path), fingerprint=model.fingerprint,
                  rule=model.rule, layout=layout)  # fmt: skip
    result["rewardbench2"] = rewardbench2_scores(
        [str(r["subset"]) for r in data.rows],
        [str(r["id"]) for r in data.rows],
        [int(r["num_correct"]) for r in data.rows],
        [s.tolist() for s in scores],
    )
    return result
