"""The decision frame both commands share: one narrow row per scored response, its score and rank.

Columns: ``_row`` (position in the inputs), ``_prompt`` and ``_response`` (the dense rank of
``prompt_id`` / ``response_id`` in lexical order: integers that group and order exactly like the ids but
sort and hash far faster than strings; the ids themselves come back from the table when the output is
written), ``reward`` (Float64),
``num_tokens`` (when the table has it), ``_group`` (the ``--by`` value, with ``--normalize``), ``_text``
(a 64-bit hash of the response text, for finding identical texts), ``_draw`` (best-vs-random's seeded
hash of (prompt_id, response_id), when asked for), ``score`` and, after
:func:`rank_within_prompt`, ``rank`` (1 = best of its prompt) and ``responses`` (rows of the prompt).

``score`` is what every rule compares: the reward, rescaled within its ``--by`` group by ``--normalize``
(``zscore``: (reward - mean) / std, 0 where std is 0; ``rank``: (average rank - 1) / (n - 1) in [0, 1],
0.5 for a group of one; no ``--by``: the whole table is one group), minus ``--length-penalty`` x
``num_tokens``. Order within a prompt: score descending, then ``response_id``, then ``_row`` ascending.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import polars as pl

from rmdata.curate.source import ROW, ScoreTable, check_column
from rmdata.data.drops import DUPLICATE_RESPONSE, MISSING_REWARD, REASONS, TOO_FEW_RESPONSES
from rmdata.errors import RmdataError

Normalize = Literal["none", "zscore", "rank"]
NORMALIZE_CHOICES: tuple[str, ...] = ("none", "zscore", "rank")
REASON = "reason"  # null while a row is kept; the drop reason's name once a rule drops it
REASON_TYPE = pl.Enum(list(REASONS))  # one byte-sized code per row instead of a string
GROUP = "_group"
TEXT = "_text"
PROMPT = "_prompt"
RESPONSE = "_response"
DRAW = "_draw"


@dataclass(frozen=True)
class ScoreOptions:
    """How a reward becomes the score the rules compare (see the module docstring)."""

    normalize: str = "none"
    by: str | None = None
    length_penalty: float = 0.0

    def check(self, table: ScoreTable) -> None:
        if self.normalize not in NORMALIZE_CHOICES:
            raise RmdataError(f"--normalize {self.normalize}: choose one of {', '.join(NORMALIZE_CHOICES)}")
        if self.by is not None:
            if self.normalize == "none":
                raise RmdataError(f"--by {self.by} groups rewards for --normalize: add --normalize zscore or rank")
            check_column(table, self.by, "--by")
        if self.length_penalty < 0 or self.length_penalty != self.length_penalty:
            raise RmdataError(f"--length-penalty {self.length_penalty}: must be >= 0 (0 turns it off)")
        if self.length_penalty > 0:
            if not table.has("num_tokens"):
                raise RmdataError(
                    "--length-penalty needs a num_tokens column (rmdata score writes it); "
                    f"columns: {', '.join(table.schema)}"
                )
            check_column(table, "num_tokens", "--length-penalty", numeric=True)


def decision_frame(table: ScoreTable, options: ScoreOptions, draw_seed: int | None = None) -> pl.LazyFrame:
    """The narrow frame: id ranks, reward, length, group, text hash; ``reason`` is null for every row.

    ``draw_seed``: also ``_draw``, the seeded hash of (prompt_id, response_id) that best-vs-random draws by.
    """
    columns = [
        pl.col(ROW),
        pl.col("prompt_id").cast(pl.String),
        pl.col("response_id").cast(pl.String),
        pl.col("reward").cast(pl.Float64),
        pl.col("response").hash(seed=0).alias(TEXT),
    ]
    if draw_seed is not None:
        ids = pl.concat_str(
            [pl.col("prompt_id").cast(pl.String), pl.col("response_id").cast(pl.String)], separator="\n"
        )
        columns.append(ids.hash(seed=draw_seed).alias(DRAW))
    if table.has("num_tokens") and table.schema["num_tokens"].is_numeric():
        columns.append(pl.col("num_tokens").cast(pl.Int32))
    if options.by is not None:
        columns.append(pl.col(options.by).alias(GROUP))
    # the scan holds only row-wise expressions, so the streaming engine reads the texts batch by batch;
    # the id ranks (a sort of the strings) run on the narrow result
    narrow = table.scan().select(columns).collect(engine="streaming")
    ranks = [pl.col("prompt_id").rank("dense").alias(PROMPT), pl.col("response_id").rank("dense").alias(RESPONSE)]
    return narrow.lazy().with_columns(ranks).drop("prompt_id", "response_id").with_columns(no_reason())


def no_reason() -> pl.Expr:
    """The ``reason`` column of rows nothing has dropped yet."""
    return pl.lit(None, REASON_TYPE).alias(REASON)


def drop_where(condition: pl.Expr, reason: str) -> pl.Expr:
    """``reason`` for rows still kept that meet ``condition``; rows already dropped keep their reason."""
    return (
        pl.when(pl.col(REASON).is_null() & condition)
        .then(pl.lit(reason, REASON_TYPE))
        .otherwise(pl.col(REASON))
        .alias(REASON)
    )


def drop_missing_rewards(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Rows whose reward is null or NaN cannot be ranked: ``missing_reward``."""
    reward = pl.col("reward")
    return frame.with_columns(drop_where(reward.is_null() | reward.is_nan(), MISSING_REWARD))


def add_score(kept: pl.LazyFrame, options: ScoreOptions) -> pl.LazyFrame:
    """``score`` for rows that have a reward (call on kept rows only: groups are their statistics)."""
    reward = pl.col("reward")
    if options.normalize == "zscore":
        std = reward.std()
        scaled = pl.when(std > 0).then((reward - reward.mean()) / std).otherwise(0.0)
    elif options.normalize == "rank":
        n = pl.len()
        scaled = pl.when(n > 1).then((reward.rank("average") - 1) / (n - 1)).otherwise(0.5)
    else:
        scaled = reward
    if options.normalize != "none" and options.by is not None:
        scaled = scaled.over(GROUP)
    score = scaled - options.length_penalty * pl.col("num_tokens") if options.length_penalty > 0 else scaled
    return kept.with_columns(score.cast(pl.Float64).alias("score"))


ORDER = [PROMPT, "score", RESPONSE, ROW]
DESCENDING = [False, True, False, False]


def rank_within_prompt(kept: pl.LazyFrame, *, presorted: bool = False) -> pl.LazyFrame:
    """Sort by prompt then best first; ``rank`` (1-based) and ``responses`` (rows of the prompt).

    Uses run starts of the sorted ``prompt_id`` instead of a window over a hash of it: one pass, no hashing.
    ``presorted``: the frame is already in that order (a filtered ranked frame), so skip the sort.
    """
    position = pl.int_range(pl.len(), dtype=pl.Int64)
    starts = pl.col(PROMPT) != pl.col(PROMPT).shift(1)
    first = pl.when(starts.fill_null(True)).then(position).otherwise(None).forward_fill()
    last = pl.when(starts.shift(-1).fill_null(True)).then(position).otherwise(None).backward_fill()
    ordered = kept if presorted else kept.sort(ORDER, descending=DESCENDING)
    return ordered.with_columns((position - first + 1).alias("rank"), (last - first + 1).alias("responses"))


def drop_duplicate_texts(scored: pl.LazyFrame) -> pl.LazyFrame:
    """Of identical response texts under one prompt, keep the best-ranked: the rest are ``duplicate_response``.

    Sorted by (prompt, text, then the ranking order), the best copy of a text starts its run, so a copy is
    a row whose prompt and text equal the previous row's: two sorts of integers, no hash table.
    Texts are compared by a 64-bit hash: identical texts always match; two different texts are merged only
    on a hash collision within one prompt (odds ~1e-19 per pair).
    """
    order = [PROMPT, TEXT, "score", RESPONSE, ROW]
    same = (pl.col(PROMPT) == pl.col(PROMPT).shift(1)) & (pl.col(TEXT) == pl.col(TEXT).shift(1))
    by_text = scored.sort(order, descending=[False, False, True, False, False])
    return by_text.with_columns(drop_where(same.fill_null(False), DUPLICATE_RESPONSE))


def drop_small_prompts(ranked: pl.LazyFrame, minimum: int) -> pl.LazyFrame:
    """Prompts with fewer than ``minimum`` rows (distinct responses, after deduplication): ``too_few_responses``."""
    return ranked.with_columns(drop_where(pl.col("responses") < minimum, TOO_FEW_RESPONSES))


def prepare(
    table: ScoreTable, options: ScoreOptions, min_responses: int, *, draw_seed: int | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(kept, dropped): kept rows scored, deduplicated and ranked among their prompt's distinct responses.

    Drops, in order: ``missing_reward``, ``duplicate_response``, ``too_few_responses`` (fewer than
    ``min_responses`` distinct responses). ``rank`` and ``responses`` of kept rows count distinct responses.
    """
    frame = drop_missing_rewards(decision_frame(table, options, draw_seed)).collect()
    dropped = [frame.filter(pl.col(REASON).is_not_null())]
    scored = add_score(frame.filter(pl.col(REASON).is_null()).lazy(), options)
    del frame
    deduped = drop_duplicate_texts(scored).collect()
    dropped.append(deduped.filter(pl.col(REASON).is_not_null()))
    distinct = rank_within_prompt(deduped.lazy().filter(pl.col(REASON).is_null()))
    del scored, deduped
    ranked = drop_small_prompts(distinct, min_responses).collect()
    dropped.append(ranked.filter(pl.col(REASON).is_not_null()))
    kept = ranked.filter(pl.col(REASON).is_null())
    return kept, pl.concat(dropped, how="diagonal_relaxed")
