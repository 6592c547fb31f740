"""Training data: read and validate pairs, hold out an eval split by prompt, tokenize, plan packed steps.

Everything here is deterministic for a seed, so a resumed run replays exactly the steps it would have run.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rmdata.config import Recipe, resolve_data_path
from rmdata.errors import RmdataError
from rmdata.tokens.batching import PackedBatch, pack_sequences
from rmdata.tokens.packing import PackPlan, PackRow, plan_pairs, rows_for_epoch
from rmdata.tokens.templates import DroppedRow, RewardToken, TokenizedPairs, tokenize_pairs

if TYPE_CHECKING:
    import polars as pl
    from transformers import PreTrainedTokenizerBase


@dataclass
class PairSplit:
    """Tokenized pairs of one split with their packing plan."""

    pairs: TokenizedPairs
    plan: PackPlan

    def batch(self, row: PackRow) -> PackedBatch:
        """The packed tensors of one row: chosen then rejected for each pair."""
        seqs = [seq for u in row.units for seq in (self.pairs.chosen[u], self.pairs.rejected[u])]
        return pack_sequences(seqs)

    def margins(self, row: PackRow) -> list[float]:
        """Data margins of the row's pairs (NaN where a pair has none)."""
        return [float("nan") if (m := self.pairs.margin[u]) is None else m for u in row.units]


@dataclass
class TrainingData:
    train: PairSplit
    eval: PairSplit | None
    summary: dict[str, Any] = field(default_factory=dict)  # counts for run.json
    rejects: list[dict[str, Any]] = field(default_factory=list)  # dropped records with their reasons


def eval_mask(prompt_ids: Sequence[str], fraction: float, seed: int) -> list[bool]:
    """Hold out whole prompts: a prompt is in eval when its seeded hash falls under ``fraction``.

    Splitting by prompt (not by row) keeps every response to one prompt on the same side.
    """
    threshold = int(fraction * 2**64)
    out = []
    for pid in prompt_ids:
        digest = hashlib.blake2b(f"{seed}:{pid}".encode(), digest_size=8).digest()
        out.append(int.from_bytes(digest, "big") < threshold)
    return out


def _load_pairs(paths: Sequence[str], recipe: Recipe, role: str) -> tuple[pl.DataFrame, dict[str, Any], list]:
    from rmdata.data.load import load_dataset_records

    loaded = load_dataset_records(
        [resolve_data_path(p) for p in paths], format=recipe.data.format, on_error=recipe.data.on_error
    )
    if loaded.kind != "pairs":
        raise RmdataError(
            f"data.{role}: {', '.join(paths)} holds {loaded.format} records ({loaded.kind}); "
            "training needs preference pairs (pairs, pairs-implicit or hh)"
        )
    counts = {"format": loaded.format, "records": loaded.records, "invalid": len(loaded.rejects)}
    return loaded.frame, counts, list(loaded.rejects)


def _dropped_records(rows: list[DroppedRow]) -> list[dict[str, Any]]:
    return [{"source": d.source, "reason": d.reason, "message": d.message} for d in rows]


def _split(pairs: TokenizedPairs, max_packed_length: int, name: str, summary: dict[str, Any]) -> PairSplit:
    plan = plan_pairs(pairs.chosen.lengths, pairs.rejected.lengths, max_packed_length)
    summary[name] = {
        "pairs": len(pairs),
        "dropped": {**dict(pairs.dropped), **dict(plan.dropped_counts)},
        "prompt_truncated": pairs.prompt_truncated,
        "packing": plan.summary(),
    }
    return PairSplit(pairs, plan)


def prepare_training_data(
    recipe: Recipe, tokenizer: PreTrainedTokenizerBase, reward_token: RewardToken
) -> TrainingData:
    """Read, validate, split, tokenize and pack the recipe's training (and eval) pairs."""
    if not recipe.data.train:
        raise RmdataError("data.train is empty: give training files, e.g. --set data.train=pairs.jsonl")
    frame, counts, rejects = _load_pairs(recipe.data.train, recipe, "train")
    summary: dict[str, Any] = {"train_input": counts}
    if recipe.data.eval:
        eval_frame, eval_counts, eval_rejects = _load_pairs(recipe.data.eval, recipe, "eval")
        summary["eval_input"] = eval_counts
        rejects += eval_rejects
    elif recipe.data.eval_fraction > 0:
        import polars as pl

        mask = pl.Series(eval_mask(frame["prompt_id"].to_list(), recipe.data.eval_fraction, recipe.train.seed))
        eval_frame, frame = frame.filter(mask), frame.filter(~mask)
        summary["eval_input"] = {"held_out_from_train": recipe.data.eval_fraction, "records": eval_frame.height}
    else:
        eval_frame = None

    def tokenize(rows: pl.DataFrame) -> TokenizedPairs:
        return tokenize_pairs(
            rows.iter_rows(named=True),
            tokenizer,
            max_length=recipe.data.max_length,
            reward_token=reward_token,
            chat_template=recipe.data.chat_template,
        )

    train_pairs = tokenize(frame)
    train = _split(train_pairs, recipe.data.max_packed_length, "train", summary)
    rejects += _dropped_records(train_pairs.dropped_rows)
    if not train.plan.rows:
        reasons = Counter({**dict(train_pairs.dropped), **dict(train.plan.dropped_counts)})
        detail = ", ".join(f"{n} {reason}" for reason, n in reasons.most_common()) or "no records"
        raise RmdataError(
            f"no training pairs left after filtering ({detail}); check data.train, data.max_length="
            f"{recipe.data.max_length} and data.max_packed_length={recipe.data.max_packed_length}"
        )
    evaluation = None
    if eval_frame is not None and eval_frame.height:
        eval_pairs = tokenize(eval_frame)
        rejects += _dropped_records(eval_pairs.dropped_rows)
        evaluation = _split(eval_pairs, recipe.data.max_packed_length, "eval", summary)
    return TrainingData(train, evaluation, summary, rejects)


def plan_steps(
    plan: PackPlan, *, epochs: int, max_steps: int | None, grad_accum: int, seed: int
) -> list[list[PackRow]]:
    """Every optimizer step's rows, in order: epochs of seeded row orders cut into ``grad_accum`` rows.

    An epoch's last step may hold fewer rows (the loss is normalized by each step's own pair count).
    ``max_steps`` wins over ``epochs``: it cuts the run short or adds epochs until it is reached.
    """
    steps: list[list[PackRow]] = []
    epoch = 0
    while (max_steps is None and epoch < epochs) or (max_steps is not None and len(steps) < max_steps):
        rows = rows_for_epoch(plan, epoch, seed)
        steps.extend(rows[i : i + grad_accum] for i in range(0, len(rows), grad_accum))
        epoch += 1
    return steps[:max_steps] if max_steps is not None else steps


def describe(summary: dict[str, Any], rejects_path: str | None) -> str:
    """One line per split for the terminal: pairs kept, drops by reason, packing efficiency."""
    lines = []
    for split in ("train", "eval"):
        if split not in summary:
            continue
        info = summary[split]
        dropped = ", ".join(f"{n} {reason}" for reason, n in sorted(info["dropped"].items()))
        line = f"{split}: {info['pairs']} pairs in {info['packing']['rows']} packed rows"
        line += f" (efficiency {info['packing']['efficiency']:.3f})"
        if dropped:
            line += f"; dropped {dropped}"
        lines.append(line)
    if rejects_path and any(summary[s]["dropped"] for s in ("train", "eval") if s in summary):
        lines.append(f"dropped records and reasons: {rejects_path}")
    return "\n".join(lines)
