"""Training data: read and validate pairs, hold out an eval split by prompt, tokenize, plan packed steps.

Everything here is deterministic for a seed, so a resumed run replays exactly the steps it would have run.
Every row left out on the way is a :class:`rmdata.data.drops.Drop` (the loader's invalid records, margins
the model's float32 cannot hold, tokenization drops, pairs over ``data.max_packed_length``), counted by
reason in the summary (``run.json``) and returned for ``rejects/train.jsonl``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from rmdata.config import MAX_STEPS, Recipe, resolve_data_path
from rmdata.data.drops import INVALID_RECORD, Drop, count_by_reason
from rmdata.errors import RmdataError
from rmdata.progress import logger
from rmdata.tokens.batching import PackedBatch, pack_sequences
from rmdata.tokens.packing import PackPlan, PackRow, plan_pairs, rows_for_epoch
from rmdata.tokens.reward_token import RewardToken
from rmdata.tokens.templates import TokenizedPairs, tokenize_pairs

if TYPE_CHECKING:
    import polars as pl
    from transformers import PreTrainedTokenizerBase

log = logger()
FLOAT32_MAX = float(np.finfo(np.float32).max)  # margins become float32 tensors
MAX_LISTED = 20  # bad margins named in one error


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
    drops: list[Drop] = field(default_factory=list)  # every row left out, with its reason


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


def as_drop(reject: Drop | Mapping[str, Any]) -> Drop:
    """A loader reject as a Drop (the loader still returns JSON-ready dicts; a Drop passes through)."""
    if isinstance(reject, Drop):
        return reject
    return Drop(
        reason=str(reject["reason"]),
        message=str(reject["message"]),
        location=str(reject["source"]),
        row=reject.get("record"),
        fields=tuple(reject.get("errors") or ()),
        raw=reject.get("raw"),
    )


def _load_pairs(paths: Sequence[str], recipe: Recipe, role: str) -> tuple[pl.DataFrame, dict[str, Any], list[Drop]]:
    from rmdata.data.load import load_dataset_records

    loaded = load_dataset_records(
        [resolve_data_path(p) for p in paths], format=recipe.data.format, on_error=recipe.data.on_error
    )
    if loaded.kind != "pairs":
        raise RmdataError(
            f"data.{role}: {', '.join(paths)} holds {loaded.format} records ({loaded.kind}); "
            "training needs preference pairs (pairs, pairs-implicit or hh)"
        )
    frame, bad_margins = _without_float32_overflow(loaded.frame, recipe.data.on_error, role)
    drops = [as_drop(r) for r in loaded.rejects] + bad_margins
    counts = {"format": loaded.format, "records": loaded.records, "invalid": len(drops)}
    return frame, counts, drops


def _without_float32_overflow(frame: pl.DataFrame, on_error: str, role: str) -> tuple[pl.DataFrame, list[Drop]]:
    """Refuse (or with ``on_error: skip`` drop) pairs whose margin a float32 tensor cannot hold."""
    import polars as pl

    if "margin" not in frame.columns:
        return frame, []
    too_big = pl.col("margin").abs() > FLOAT32_MAX
    bad = frame.filter(too_big)
    if not bad.height:
        return frame, []
    rule = f"over float32's largest value {FLOAT32_MAX:.4g} (training computes in float32)"
    if on_error == "raise":
        listed = "; ".join(f"{row['source']}: margin {row['margin']:g}" for row in bad.head(MAX_LISTED).to_dicts())
        more = f" (and {bad.height - MAX_LISTED} more)" if bad.height > MAX_LISTED else ""
        raise RmdataError(
            f"data.{role}: {bad.height} margin(s) {rule}: {listed}{more}; fix the records' margin field, or set "
            "data.on_error=skip to drop and count them"
        )
    drops = [
        Drop(
            INVALID_RECORD,
            f"margin {row['margin']:g} is {rule}",
            str(row["source"]),
            row,
            ({"field": "margin", "message": f"margin {row['margin']:g} is {rule}"},),
        )
        for row in bad.to_dicts()
    ]
    return frame.filter(~too_big.fill_null(False)), drops


def _packing_drops(pairs: TokenizedPairs, plan: PackPlan, frame: pl.DataFrame) -> list[Drop]:
    """Pairs the packer left out, as drops of their input records (source, row and reason)."""
    drops = []
    for packed, unit in zip(plan.dropped, plan.dropped_units, strict=True):
        source = pairs.source[unit]
        row = frame.row(pairs.row_index[unit], named=True)
        drops.append(Drop(packed.reason, f"{source}: pair of {packed.message}", source, row))
    return drops


def _split(
    frame: pl.DataFrame, tokenize: Any, max_packed_length: int, name: str, summary: dict[str, Any]
) -> tuple[PairSplit, list[Drop]]:
    pairs: TokenizedPairs = tokenize(frame)
    plan = plan_pairs(pairs.chosen.lengths, pairs.rejected.lengths, max_packed_length)
    drops = pairs.drops + _packing_drops(pairs, plan, frame)
    summary[name] = {
        "pairs": len(pairs) - len(plan.dropped),  # pairs packed into rows
        "dropped": count_by_reason(drops),
        "prompt_truncated": pairs.prompt_truncated,
        "packing": plan.summary(),
    }
    return PairSplit(pairs, plan), drops


def prepare_training_data(
    recipe: Recipe, tokenizer: PreTrainedTokenizerBase, reward_token: RewardToken
) -> TrainingData:
    """Read, validate, split, tokenize and pack the recipe's training (and eval) pairs."""
    if not recipe.data.train:
        raise RmdataError("data.train is empty: give training files, e.g. --set data.train=pairs.jsonl")
    frame, counts, drops = _load_pairs(recipe.data.train, recipe, "train")
    summary: dict[str, Any] = {"train_input": counts}
    eval_frame: pl.DataFrame | None = None
    if recipe.data.eval:
        eval_frame, eval_counts, eval_drops = _load_pairs(recipe.data.eval, recipe, "eval")
        summary["eval_input"] = eval_counts
        drops += eval_drops
    elif recipe.data.eval_fraction > 0:
        import polars as pl

        mask = pl.Series(eval_mask(frame["prompt_id"].to_list(), recipe.data.eval_fraction, recipe.train.seed))
        eval_frame, frame = frame.filter(mask), frame.filter(~mask)
        summary["eval_input"] = {"held_out_from_train": recipe.data.eval_fraction, "records": eval_frame.height}
        if not frame.height and eval_frame.height:
            raise RmdataError(
                f"data.eval_fraction={recipe.data.eval_fraction} held out all {eval_frame.height} pairs: the split is "
                f"by prompt and they have {eval_frame['prompt_id'].n_unique()} distinct prompt(s); give data.eval "
                "files, more varied prompts, or data.eval_fraction=0"
            )
        if not eval_frame.height and frame.height:
            prompts = frame["prompt_id"].n_unique()
            log.warning(
                f"data.eval_fraction={recipe.data.eval_fraction} held out no pairs: the split is by prompt and the "
                f"{frame.height} training pairs have {prompts} distinct prompt(s); the run has no held-out "
                "evaluation (give data.eval files, or more varied prompts)"
            )

    def tokenize(rows: pl.DataFrame) -> TokenizedPairs:
        return tokenize_pairs(
            rows.iter_rows(named=True),
            tokenizer,
            max_length=recipe.data.max_length,
            reward_token=reward_token,
            chat_template=recipe.data.chat_template,
        )

    budget = recipe.data.max_packed_length
    train, train_drops = _split(frame, tokenize, budget, "train", summary)
    drops += train_drops
    if not train.plan.rows:
        detail = ", ".join(f"{n} {reason}" for reason, n in count_by_reason(drops).items()) or "no records"
        raise RmdataError(
            f"no training pairs left after filtering ({detail}); check data.train, data.max_length="
            f"{recipe.data.max_length} and data.max_packed_length={recipe.data.max_packed_length}"
        )
    evaluation = None
    if eval_frame is not None and eval_frame.height:
        evaluation, eval_drops = _split(eval_frame, tokenize, budget, "eval", summary)
        drops += eval_drops
        if not evaluation.plan.rows:
            log.warning("eval: no held-out pair is left after filtering; the run has no held-out evaluation")
            evaluation = None
    summary["dropped"] = count_by_reason(drops)
    return TrainingData(train, evaluation, summary, drops)


class StepPlan:
    """Every optimizer step's rows, in order: epochs of seeded row orders cut into ``grad_accum`` rows.

    Computed per step, never materialized: step ``i`` is chunk ``i mod k`` of epoch ``i div k`` (``k`` steps per
    epoch), and only the current epoch's row order is kept. An epoch's last step may hold fewer rows (the loss
    is normalized by each step's own pair count). ``max_steps`` wins over ``epochs``: it cuts the run short or
    adds epochs until it is reached.
    """

    def __init__(self, plan: PackPlan, *, epochs: int, max_steps: int | None, grad_accum: int, seed: int) -> None:
        if not plan.rows:
            raise ValueError("a step plan needs at least one packed row")
        self.plan, self.grad_accum, self.seed = plan, grad_accum, seed
        self.steps_per_epoch = math.ceil(len(plan.rows) / grad_accum)
        self.total = max_steps if max_steps is not None else epochs * self.steps_per_epoch
        if self.total > MAX_STEPS:
            raise RmdataError(
                f"train.epochs={epochs} x {self.steps_per_epoch} steps per epoch = {self.total:,} optimizer steps, "
                f"over the limit of {MAX_STEPS:,}; lower train.epochs or set train.max_steps"
            )
        self._epoch: tuple[int, list[PackRow]] | None = None

    def __len__(self) -> int:
        return self.total

    def __getitem__(self, step: int) -> list[PackRow]:
        if not 0 <= step < self.total:
            raise IndexError(f"step {step} is outside the plan of {self.total} steps")
        epoch, chunk = divmod(step, self.steps_per_epoch)
        if self._epoch is None or self._epoch[0] != epoch:
            self._epoch = (epoch, rows_for_epoch(self.plan, epoch, self.seed))
        start = chunk * self.grad_accum
        return self._epoch[1][start : start + self.grad_accum]


def describe(summary: dict[str, Any], rejects_path: str | None) -> str:
    """One line per split for the terminal: pairs kept, drops by reason, packing efficiency."""
    lines = []
    for split in ("train", "eval"):
        if split not in summary:
            continue
        info = summary[split]
        dropped = ", ".join(f"{n} {reason}" for reason, n in info["dropped"].items())
        line = f"{split}: {info['pairs']} pairs in {info['packing']['rows']} packed rows"
        line += f" (efficiency {info['packing']['efficiency']:.3f})"
        if dropped:
            line += f"; dropped {dropped}"
        lines.append(line)
    if rejects_path and summary.get("dropped"):
        total = sum(summary["dropped"].values())
        lines.append(f"{total} dropped record(s) with their reasons: {rejects_path}")
    return "\n".join(lines)
