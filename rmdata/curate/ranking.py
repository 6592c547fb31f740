"""The decision frame both commands share: one narrow row per scored response, its score and rank.

Columns: ``_row`` (position in the inputs), ``_prompt`` (the dense rank of ``prompt_id`` in lexical
order: an integer that groups and orders exactly like the id but sorts far faster than a string; the id
itself comes back from the table when the output is written), ``response_id``, ``reward`` (Float64),
``num_tokens`` (when the table has it), ``_group`` (the ``--by`` value, with ``--normalize``), ``_text``
(a 64-bit hash of the response text, for finding identical texts), ``_draw`` (best-vs-random's seeded
hash of (seed, prompt_id, response_id), when asked for), ``score`` and, after :func:`rank_within_prompt`,
``rank`` (1 = best of its prompt) and ``responses`` (rows of the prompt).

``score`` is what every rule compares: the reward, rescaled within its ``--by`` group by ``--normalize``
(``zscore``: (reward - mean) / std, 0 where std is 0; ``rank``: (average rank - 1) / (n - 1) in [0, 1],
0.5 for a group of one; no ``--by``: the whole table is one group), minus ``--length-penalty`` x
``num_tokens``. Order within a prompt: score descending, then ``response_id``, then ``_row`` ascending.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from rmdata.curate.draw import draws
from rmdata.curate.expression import RewardExpression
from rmdata.curate.source import ROW, ScoreTable, check_column
from rmdata.data.drops import DUPLICATE_RESPONSE, MISSING_REWARD, NON_FINITE_REWARD, REASONS, TOO_FEW_RESPONSES
from rmdata.errors import RmdataError

Normalize = Literal["none", "zscore", "rank"]
NORMALIZE_CHOICES: tuple[str, ...] = ("none", "zscore", "rank")
ON_ERROR_CHOICES: tuple[str, ...] = ("fail", "skip")
REASON = "reason"  # null while a row is kept; the drop reason's name once a rule drops it
REASON_TYPE = pl.Enum(list(REASONS))  # one byte-sized code per row instead of a string
GROUP = "_group"
TEXT = "_text"
PROMPT = "_prompt"
RESPONSE = "response_id"
DRAW = "_draw"


@dataclass(frozen=True)
class ScoreOptions:
    """How a reward becomes the score the rules compare (see the module docstring)."""

    normalize: str = "none"
    by: str | None = None
    length_penalty: float = 0.0
    on_error: str = "fail"  # a NaN or infinite reward: fail refuses the table (naming the row), skip drops the row
    reward: str | None = None  # --reward EXPR over reward columns (curate.expression); None: the reward column
    agree: bool = False  # keep only what every model named in --reward agrees on (curate.agreement)

    def check(self, table: ScoreTable) -> None:
        if self.on_error not in ON_ERROR_CHOICES:
            raise RmdataError(f"--on-error {self.on_error}: choose one of {', '.join(ON_ERROR_CHOICES)}")
        if self.agree and (table.reward is None or len(table.reward.columns) < 2):
            raise RmdataError(
                "--agree compares the models named in --reward: name two or more reward columns, "
                "e.g. --reward 'reward_a + reward_b' --agree"
            )
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


def decision_frame(table: ScoreTable, options: ScoreOptions, draw_seed: int | None = None) -> pl.DataFrame:
    """The narrow frame: id ranks, reward, length, group, text hash; ``reason`` is null for every row.

    ``draw_seed``: also ``_draw``, best-vs-random's seeded hash of (prompt_id, response_id) (``curate.draw``).
    """
    columns = [
        pl.col(ROW),
        pl.col("prompt_id").cast(pl.String),
        pl.col("response_id").cast(pl.String),
        pl.col("reward").cast(pl.Float64),
        pl.col("response").hash(seed=0).alias(TEXT),
    ]
    if table.has("num_tokens") and table.schema["num_tokens"].is_numeric():
        columns.append(pl.col("num_tokens").cast(pl.Int32))
    if options.by is not None:
        columns.append(pl.col(options.by).alias(GROUP))
    if table.reward is not None:
        columns += [pl.col(c).cast(pl.Float64).alias(model_column(i)) for i, c in enumerate(table.reward.columns)]
    # the scan holds only row-wise expressions, so the streaming engine reads the texts batch by batch;
    # the prompt rank (a sort of the strings) runs on the narrow result
    read = [
        c for c in ("prompt_id", "response_id", "reward", "response", "num_tokens", options.by) if c and table.has(c)
    ]
    narrow = table.collect(table.scan().select(columns), read)
    if draw_seed is not None:
        narrow = narrow.with_columns(draws(draw_seed, narrow.get_column("prompt_id"), narrow.get_column("response_id")))
    prompt = pl.col("prompt_id").rank("dense").cast(pl.UInt32).alias(PROMPT)
    return narrow.with_columns(prompt, no_reason()).drop("prompt_id")


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
    """Rows whose reward is null cannot be ranked: ``missing_reward``; NaN or infinite: ``non_finite_reward``."""
    reward = pl.col("reward")
    missing = frame.with_columns(drop_where(reward.is_null(), MISSING_REWARD))
    return missing.with_columns(drop_where(~reward.is_finite(), NON_FINITE_REWARD))


def refuse_non_finite(table: ScoreTable, frame: pl.DataFrame) -> None:
    """Under ``--on-error fail``: a NaN or infinite reward stops the run, naming its file and row."""
    bad = frame.filter(pl.col("reward").is_not_null() & ~pl.col("reward").is_finite())
    if bad.is_empty():
        return
    file, at = table.locate(int(bad.get_column(ROW).min()))  # type: ignore[arg-type]
    value = bad.sort(ROW).get_column("reward")[0]
    more = f" ({bad.height - 1:,} more rows too)" if bad.height > 1 else ""
    raise RmdataError(
        f"{file}: row {at}: reward is {value}, not a finite number{more}; rescore the table, or pass "
        f"--on-error skip to drop such rows as {NON_FINITE_REWARD}"
    )


def model_column(i: int) -> str:
    """The decision frame's copy of the ``i``-th reward column a ``--reward`` expression names (Float64)."""
    return f"_m{i}"


def model_score(i: int) -> str:
    """That column normalized by ``--normalize`` (equal to it with ``none``): what ``--agree`` compares."""
    return f"_s{i}"


def add_score(kept: pl.LazyFrame, options: ScoreOptions, expression: RewardExpression | None = None) -> pl.LazyFrame:
    """``score`` for rows that have a reward (call on kept rows only: groups are their statistics).

    With a ``--reward`` expression each named column is normalized on its own (``_s{i}``) and the score is the
    expression over those.
    """
    if expression is None:
        scaled = _normalized(pl.col("reward"), options)
    else:
        each = [
            _normalized(pl.col(model_column(i)), options).alias(model_score(i)) for i in range(len(expression.columns))
        ]
        kept = kept.with_columns(each)
        scaled = expression.evaluate(lambda i: pl.col(model_score(i)))
    score = scaled - options.length_penalty * pl.col("num_tokens") if options.length_penalty > 0 else scaled
    return kept.with_columns(score.cast(pl.Float64).alias("score"))


def _normalized(reward: pl.Expr, options: ScoreOptions) -> pl.Expr:
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
    return scaled.cast(pl.Float64)


ORDER = [PROMPT, "score", RESPONSE, ROW]
DESCENDING = [False, True, False, False]
SMALL_PROMPT = 8  # prompts with at most this many rows are deduplicated by comparing neighbours


def sort_by_rank(scored: pl.DataFrame) -> pl.DataFrame:
    """``scored`` in ``ORDER``: by prompt, then best first (score descending, then ``response_id``, ``_row``).

    One sort of two numeric keys; only the runs of rows that tie on (prompt, score), usually few, are then
    put in (``response_id``, ``_row``) order by a second sort of just those rows. Nulls sort first.
    """
    scored = scored.rechunk()  # the sort and gathers run ~3x slower over the 100s of chunks a query leaves
    index = scored.select(pl.arg_sort_by([PROMPT, "score"], descending=[False, True])).to_series()
    keys = scored.select(PROMPT, "score").gather(index)
    prompt, score = keys.get_column(PROMPT), keys.get_column("score")
    tie = ((prompt == prompt.shift(1)) & score.eq_missing(score.shift(1))).fill_null(False)
    in_run = (tie | tie.shift(-1).fill_null(False)).arg_true()
    if in_run.len():
        runs = index.gather(in_run)
        tied = scored.select(ORDER).gather(runs)
        order = tied.select(pl.arg_sort_by(ORDER, descending=DESCENDING)).to_series()
        index = index.scatter(in_run, runs.gather(order))
    return scored.gather(index)


def rank_within_prompt(ordered: pl.DataFrame) -> pl.DataFrame:
    """``rank`` (1-based) and ``responses`` (rows of the prompt) of a frame already in ``ORDER``.

    Uses run starts of the sorted prompt ranks instead of a window over a hash of them: one pass, no hashing.
    """
    position = pl.int_range(pl.len(), dtype=pl.Int64)
    starts = pl.col(PROMPT) != pl.col(PROMPT).shift(1)
    first = pl.when(starts.fill_null(True)).then(position).otherwise(None).forward_fill()
    last = pl.when(starts.shift(-1).fill_null(True)).then(position).otherwise(None).backward_fill()
    return ordered.with_columns((position - first + 1).alias("rank"), (last - first + 1).alias("responses"))


def duplicate_texts(ordered: pl.DataFrame) -> pl.Series:
    """True for a row whose response text a better-ranked row of its prompt already has (frame in ``ORDER``).

    The first (best-ranked) copy of a text is kept. In a prompt of at most ``SMALL_PROMPT`` rows every
    earlier row is within ``SMALL_PROMPT - 1`` positions, so comparing each row with its neighbours at
    those distances finds every copy; rows of bigger prompts are sorted by (prompt, text, position), where
    a copy is a row whose prompt and text equal the previous row's. Texts are compared by a 64-bit hash:
    identical texts always match; two different texts are merged only on a hash collision within one
    prompt (odds ~1e-19 per pair).
    """
    prompt = ordered.get_column(PROMPT).to_numpy()
    text = ordered.get_column(TEXT).to_numpy()
    copy = np.zeros(len(prompt), dtype=bool)
    for distance in range(1, SMALL_PROMPT):
        same = (prompt[distance:] == prompt[:-distance]) & (text[distance:] == text[:-distance])
        copy[distance:] |= same
    sizes = rank_within_prompt(ordered.select(PROMPT)).get_column("responses").to_numpy()
    big = np.flatnonzero(sizes > SMALL_PROMPT)
    if big.size:
        rows = pl.DataFrame({"p": prompt[big], "t": text[big], "at": big}).sort("p", "t", "at")
        again = (rows["p"] == rows["p"].shift(1)) & (rows["t"] == rows["t"].shift(1))
        copy[rows.get_column("at").filter(again.fill_null(False)).to_numpy()] = True
    return pl.Series(copy)


def prepare(
    table: ScoreTable, options: ScoreOptions, min_responses: int, *, draw_seed: int | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(kept, dropped): kept rows scored, deduplicated and ranked among their prompt's distinct responses.

    Drops, in order: ``missing_reward`` (``non_finite_reward`` too, under ``--on-error skip``),
    ``duplicate_response``, ``too_few_responses`` (fewer than
    ``min_responses`` distinct responses). ``rank`` and ``responses`` of kept rows count distinct responses;
    kept rows are in ``ORDER``.
    """
    frame = decision_frame(table, options, draw_seed)
    if options.on_error == "fail":
        refuse_non_finite(table, frame)
    frame = drop_missing_rewards(frame.lazy()).collect()
    missing = pl.col(REASON).is_not_null()
    dropped = [frame.filter(missing)]
    ordered = sort_by_rank(add_score(frame.filter(~missing).lazy(), options, table.reward).collect())
    del frame
    copy = duplicate_texts(ordered)
    dropped.append(ordered.filter(copy).with_columns(pl.lit(DUPLICATE_RESPONSE, REASON_TYPE).alias(REASON)))
    ranked = rank_within_prompt(ordered.filter(~copy))
    del ordered
    small = ranked.get_column("responses") < min_responses
    if small.any():
        dropped.append(ranked.filter(small).with_columns(pl.lit(TOO_FEW_RESPONSES, REASON_TYPE).alias(REASON)))
        ranked = ranked.filter(~small)
    return ranked, pl.concat(dropped, how="diagonal_relaxed")
