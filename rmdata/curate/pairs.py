"""``rmdata build-dpo``'s pairing: candidate pairs per prompt, the margin and tie rules, the cap.

Works on ranked, deduplicated rows (``ranking.prepare`` with at least 2 distinct responses per prompt),
so both responses of a pair always share one ``prompt_id`` and never have the same text. A candidate
pair (chosen i, rejected j) has i ranked above j; its ``margin`` is score_i - score_j. It is kept when
``margin > tie_epsilon`` (else ``tie``) and ``margin >= margin`` (else ``below_margin``).

Strategies (the candidates of one prompt whose best response is b):
- ``best-vs-worst``: (b, the last-ranked response).
- ``best-vs-random``: (b, r) for one r drawn among the lower responses whose pair passes the rules; the
  draw takes the smallest of rmdata's own 64-bit hash of (seed, prompt_id, response_id) (``curate.draw``),
  so it depends on neither row order, nor file split, nor library versions. The others are ``not_drawn``.
- ``best-vs-all``: (b, r) for every lower r.
- ``all-pairs``: (i, j) for every i ranked above j.
``max_pairs_per_prompt`` keeps a prompt's largest margins first (ties: chosen_id, then rejected_id, in
lexical order);
the rest are ``over_max_pairs``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import polars as pl

from rmdata.curate.agreement import drop_pairs_disagreeing
from rmdata.curate.ranking import DRAW, PROMPT, REASON, REASON_TYPE, RESPONSE, drop_where, no_reason
from rmdata.curate.source import ROW
from rmdata.data.drops import BELOW_MARGIN, NO_PAIR, NOT_DRAWN, OVER_MAX_PAIRS, TIE, UNPAIRED
from rmdata.errors import RmdataError

STRATEGIES = ("best-vs-worst", "best-vs-random", "best-vs-all", "all-pairs")
SIDE_COLUMNS = {ROW: "row", RESPONSE: "response", "reward": "reward", "score": "score"}
MODEL_SCORE = re.compile(r"_s\d+")  # each --reward model's own score (ranking.model_score), on both sides


@dataclass(frozen=True)
class PairRules:
    """How ``rmdata build-dpo`` forms pairs."""

    margin: float = 0.0  # keep a pair when chosen score - rejected score >= margin
    strategy: str = "best-vs-worst"
    max_pairs_per_prompt: int | None = None  # cap per prompt, largest margins first
    tie_epsilon: float = 0.0  # gaps <= this are ties, never pairs
    seed: int = 0  # best-vs-random's draw

    def check(self) -> None:
        if self.strategy not in STRATEGIES:
            raise RmdataError(f"--strategy {self.strategy}: choose one of {', '.join(STRATEGIES)}")
        if not math.isfinite(self.margin) or self.margin < 0:
            raise RmdataError(
                f"--margin {self.margin}: must be >= 0 (chosen must score at least that much above rejected)"
            )
        if not math.isfinite(self.tie_epsilon) or self.tie_epsilon < 0:
            raise RmdataError(f"--tie-epsilon {self.tie_epsilon}: must be >= 0")
        if self.max_pairs_per_prompt is not None and self.max_pairs_per_prompt < 1:
            raise RmdataError(
                f"--max-pairs-per-prompt {self.max_pairs_per_prompt}: must be >= 1 (leave it out for no cap)"
            )
        if self.max_pairs_per_prompt is not None and self.strategy in ("best-vs-worst", "best-vs-random"):
            raise RmdataError(
                f"--max-pairs-per-prompt has no effect with --strategy {self.strategy} (one pair per prompt); "
                "use it with best-vs-all or all-pairs"
            )

    def describe(self) -> str:
        text = f"{self.strategy}, margin >= {self.margin:g}, gap > {self.tie_epsilon:g}"
        if self.strategy == "best-vs-random":
            text += f", seed {self.seed}"
        if self.max_pairs_per_prompt:
            text += f", at most {self.max_pairs_per_prompt} per prompt"
        return text


def _side(ranked: pl.DataFrame, prefix: str) -> pl.DataFrame:
    names = {src: f"{prefix}_{dst}" for src, dst in SIDE_COLUMNS.items()}
    extra = [pl.col(DRAW).alias(f"{prefix}{DRAW}")] if DRAW in ranked.columns and prefix == "rejected" else []
    extra += [pl.col(c).alias(f"{prefix}{c}") for c in ranked.columns if MODEL_SCORE.fullmatch(c)]
    renamed = [pl.col(s).alias(d) for s, d in names.items()]
    return ranked.select(PROMPT, pl.col("rank").alias(f"{prefix}_rank"), *renamed, *extra)


def candidates(ranked: pl.DataFrame, strategy: str) -> pl.DataFrame:
    """The strategy's candidate pairs, one row each: ``_prompt``, ``chosen_*``, ``rejected_*``, ``margin``.

    ``ranked`` is in ``ranking.ORDER`` (prompt, then rank), so a prompt's best row sits ``rank - 1``
    positions above each lower row: the one-chosen strategies pair rows by position, with no join.
    """
    if strategy == "all-pairs":
        pairs = (
            _side(ranked, "chosen")
            .join(_side(ranked, "rejected"), on=PROMPT)
            .filter(pl.col("chosen_rank") < pl.col("rejected_rank"))
        )
    else:
        rank = pl.col("rank")
        lower = (rank == pl.col("responses")) if strategy == "best-vs-worst" else (rank > 1)
        at = ranked.select(lower.arg_true()).to_series()
        best = at - (ranked.get_column("rank").gather(at) - 1)
        rejected = _side(ranked.gather(at), "rejected").drop(PROMPT)
        pairs = _side(ranked.gather(best), "chosen").hstack(rejected)
    margin = (pl.col("chosen_score") - pl.col("rejected_score")).alias("margin")
    return pairs.drop("chosen_rank", "rejected_rank").with_columns(margin, no_reason())


def pair_up(ranked: pl.DataFrame, rules: PairRules, agree_models: int = 0) -> pl.DataFrame:
    """Every candidate pair with ``reason`` null (kept) or its drop reason, sorted by chosen row then margin.

    ``agree_models``: with ``--agree``, the number of models whose scores (``_s{i}``) must all order the
    pair alike (``curate.agreement``), checked after the margin rules and before the draw and the cap.
    """
    pairs = (
        candidates(ranked, rules.strategy)
        .lazy()
        .with_columns(drop_where(pl.col("margin") <= rules.tie_epsilon, TIE))
        .with_columns(drop_where(pl.col("margin") < rules.margin, BELOW_MARGIN))
    )
    if agree_models:
        pairs = drop_pairs_disagreeing(pairs, agree_models)
    passing = pl.col(REASON).is_null()
    if rules.strategy == "best-vs-random":  # needs ranked rows made with ranking.prepare(draw_seed=seed)
        draw = pl.when(passing).then(pl.col(f"rejected{DRAW}")).otherwise(None)
        pairs = (
            pairs.with_columns(draw.alias(DRAW))
            .with_columns(drop_where(pl.col(DRAW) != pl.col(DRAW).min().over(PROMPT), NOT_DRAWN))
            .drop(DRAW, f"rejected{DRAW}")
        )
    if rules.max_pairs_per_prompt is not None:
        # passing pairs first, then the largest margins, ties by ids: positions past the cap are dropped
        order = pl.struct(
            pl.col(REASON).is_not_null().alias("failed"),
            (-pl.col("margin")).alias("gap"),
            "chosen_response",
            "rejected_response",
        )
        position = order.rank("ordinal").over(PROMPT)
        pairs = pairs.with_columns(drop_where(position > rules.max_pairs_per_prompt, OVER_MAX_PAIRS))
    return pairs.sort(["chosen_row", "margin", "rejected_response"], descending=[False, True, False]).collect()


def _marks(values: pl.Series, size: int) -> np.ndarray:
    """A boolean array of ``size``, True at the (non-negative integer) ``values``."""
    out = np.zeros(size, dtype=bool)
    out[values.to_numpy()] = True
    return out


def split_paired(ranked: pl.DataFrame, kept_pairs: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(used, unused): ranked rows in a kept pair, and the rest with their reason: ``unpaired`` when their
    prompt has a pair, else ``no_pair``."""
    row, prompt = ranked.get_column(ROW).to_numpy(), ranked.get_column(PROMPT).to_numpy()
    paired_rows = pl.concat([kept_pairs.get_column("chosen_row"), kept_pairs.get_column("rejected_row")])
    in_pair = _marks(paired_rows, int(row.max(initial=0)) + 1)[row]
    paired_prompt = _marks(kept_pairs.get_column(PROMPT), int(prompt.max(initial=0)) + 1)[prompt]
    used = pl.Series(in_pair)
    reason = pl.when(pl.col("_paired")).then(pl.lit(UNPAIRED, REASON_TYPE)).otherwise(pl.lit(NO_PAIR, REASON_TYPE))
    unused = ranked.with_columns(_paired=paired_prompt).filter(~used).with_columns(reason.alias(REASON))
    return ranked.filter(used), unused.drop("_paired")
