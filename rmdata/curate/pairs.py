"""``rmdata build-dpo``'s pairing: candidate pairs per prompt, the margin and tie rules, the cap.

Works on ranked, deduplicated rows (``ranking.prepare`` with at least 2 distinct responses per prompt),
so both responses of a pair always share one ``prompt_id`` and never have the same text. A candidate
pair (chosen i, rejected j) has i ranked above j; its ``margin`` is score_i - score_j. It is kept when
``margin > tie_epsilon`` (else ``tie``) and ``margin >= margin`` (else ``below_margin``).

Strategies (the candidates of one prompt whose best response is b):
- ``best-vs-worst``: (b, the last-ranked response).
- ``best-vs-random``: (b, r) for one r drawn among the lower responses whose pair passes the rules; the
  draw takes the smallest hash of (seed, prompt_id, response_id), so it depends on neither row order nor
  partitioning (polars' hash: reproducible with the same polars version). The others are ``not_drawn``.
- ``best-vs-all``: (b, r) for every lower r.
- ``all-pairs``: (i, j) for every i ranked above j.
``max_pairs_per_prompt`` keeps a prompt's largest margins first (ties: chosen_id, then rejected_id, in
lexical order);
the rest are ``over_max_pairs``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl

from rmdata.curate.ranking import DRAW, PROMPT, REASON, REASON_TYPE, RESPONSE, drop_where, no_reason
from rmdata.curate.source import ROW
from rmdata.data.drops import BELOW_MARGIN, NO_PAIR, NOT_DRAWN, OVER_MAX_PAIRS, TIE, UNPAIRED
from rmdata.errors import RmdataError

STRATEGIES = ("best-vs-worst", "best-vs-random", "best-vs-all", "all-pairs")
SIDE_COLUMNS = {ROW: "row", RESPONSE: "response", "reward": "reward", "score": "score"}


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


def _side(ranked: pl.LazyFrame, prefix: str) -> pl.LazyFrame:
    names = {src: f"{prefix}_{dst}" for src, dst in SIDE_COLUMNS.items()}
    extra = [pl.col(DRAW).alias(f"{prefix}{DRAW}")] if DRAW in ranked.collect_schema() and prefix == "rejected" else []
    renamed = [pl.col(s).alias(d) for s, d in names.items()]
    return ranked.select(PROMPT, pl.col("rank").alias(f"{prefix}_rank"), *renamed, *extra)


def candidates(ranked: pl.LazyFrame, strategy: str) -> pl.LazyFrame:
    """The strategy's candidate pairs, one row each: ``_prompt``, ``chosen_*``, ``rejected_*``, ``margin``."""
    if strategy == "all-pairs":
        chosen = _side(ranked, "chosen")
        rejected = _side(ranked, "rejected")
        pairs = chosen.join(rejected, on=PROMPT).filter(pl.col("chosen_rank") < pl.col("rejected_rank"))
    else:
        chosen = _side(ranked.filter(pl.col("rank") == 1), "chosen")
        lower = ranked.filter(pl.col("rank") > 1)
        if strategy == "best-vs-worst":
            lower = lower.filter(pl.col("rank") == pl.col("responses"))
        pairs = chosen.join(_side(lower, "rejected"), on=PROMPT)
    margin = (pl.col("chosen_score") - pl.col("rejected_score")).alias("margin")
    return pairs.drop("chosen_rank", "rejected_rank").with_columns(margin, no_reason())


def pair_up(ranked: pl.LazyFrame, rules: PairRules) -> pl.LazyFrame:
    """Every candidate pair with ``reason`` null (kept) or its drop reason, sorted by chosen row then margin."""
    pairs = (
        candidates(ranked, rules.strategy)
        .with_columns(drop_where(pl.col("margin") <= rules.tie_epsilon, TIE))
        .with_columns(drop_where(pl.col("margin") < rules.margin, BELOW_MARGIN))
    )
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
    return pairs.sort(["chosen_row", "margin", "rejected_response"], descending=[False, True, False])


def unpaired_rows(ranked: pl.DataFrame, kept_pairs: pl.DataFrame) -> pl.DataFrame:
    """Ranked rows in no kept pair: ``unpaired`` when their prompt has a pair, else ``no_pair``."""
    used = pl.concat([kept_pairs.get_column("chosen_row"), kept_pairs.get_column("rejected_row")]).unique()
    paired_prompts = kept_pairs.get_column(PROMPT).unique()
    rest = ranked.filter(~pl.col(ROW).is_in(used.implode()))
    reason = (
        pl.when(pl.col(PROMPT).is_in(paired_prompts.implode()))
        .then(pl.lit(UNPAIRED, REASON_TYPE))
        .otherwise(pl.lit(NO_PAIR, REASON_TYPE))
    )
    return rest.with_columns(reason.alias(REASON))
