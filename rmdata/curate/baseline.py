"""``--random-baseline DIR``: a random selection the same size as the rule's, with the same per-prompt counts.

Train once on the rule's output and once on the baseline: the gap on a downstream eval is what the reward
model's selection is worth over chance. Both draw from the same candidates (the rows left after
``missing_reward``, ``duplicate_response`` and ``too_few_responses``), seeded with ``--seed``:

- ``filter``: a prompt whose rule kept ``k`` rows gets the ``k`` candidates of smallest
  ``draw(seed, "", response_id)`` (``curate.draw``; ``response_id`` already names the prompt); ``rank`` is
  the position in that draw.
- ``build-dpo``: a prompt with ``n`` kept pairs gets the ``n`` unordered pairs of distinct candidates of
  smallest ``draw(seed, id_1, id_2)`` (``id_1`` the better-ranked), and the side that is chosen is the draw's
  lowest bit (0: the better-ranked one), so the preference label is random too; ``margin`` can be negative.

The baseline directory is a dataset of the same kind (``sft`` / ``dpo``), loadable and trainable the same
way; the main summary reports its size and reward (or margin) next to the selection's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from rmdata.curate.draw import draws
from rmdata.curate.pairs import candidates
from rmdata.curate.ranking import PROMPT, RESPONSE
from rmdata.curate.source import ROW, ScoreTable
from rmdata.errors import RmdataError


@dataclass(frozen=True)
class Baseline:
    """Where the random baseline goes, and the seed of its draw."""

    output: Path
    seed: int = 0

    def check(self, output: Path, kind: str) -> None:
        from rmdata.dataset_dir import check_replaceable

        here, there = self.output.resolve(), output.resolve()
        if here == there or there in here.parents or here in there.parents:
            raise RmdataError(
                f"--random-baseline {self.output} overlaps --output {output}: each is replaced whole; put the "
                "baseline beside it"
            )
        check_replaceable(self.output, [kind], flag="--random-baseline")


def random_rows(ranked: pl.DataFrame, kept: pl.DataFrame, seed: int) -> pl.DataFrame:
    """``_row``, ``score``, ``rank``, ``reward`` of the baseline's rows (see the module docstring)."""
    counts = kept.group_by(PROMPT).agg(pl.len().alias("_k"))
    pool = ranked.select(ROW, PROMPT, RESPONSE, "score", "reward").join(counts, on=PROMPT, how="inner")
    empty = pl.Series([""] * pool.height, dtype=pl.String)
    pool = pool.with_columns(draws(seed, empty, pool.get_column(RESPONSE)))
    position = pl.col("_draw").rank("ordinal").over(PROMPT)
    chosen = pool.with_columns(position.cast(pl.Int64).alias("rank")).filter(pl.col("rank") <= pl.col("_k"))
    return chosen.select(ROW, PROMPT, "score", "rank", "reward").sort(ROW)


def random_pairs(ranked: pl.DataFrame, pairs: pl.DataFrame, seed: int) -> pl.DataFrame:
    """The baseline's pairs: ``_prompt``, ``chosen_row``, ``rejected_row``, their scores and ``margin``."""
    counts = pairs.group_by(PROMPT).agg(pl.len().alias("_k"))
    pool = candidates(ranked.filter(pl.col(PROMPT).is_in(counts.get_column(PROMPT).implode())), "all-pairs")
    pool = pool.with_columns(draws(seed, pool.get_column("chosen_response"), pool.get_column("rejected_response")))
    pool = pool.join(counts, on=PROMPT, how="inner")
    picked = pool.filter(pl.col("_draw").rank("ordinal").over(PROMPT) <= pl.col("_k"))
    flip = (pl.col("_draw") % 2) == 1
    swapped = {}
    for name in ("row", "response", "score", "reward"):
        c, r = pl.col(f"chosen_{name}"), pl.col(f"rejected_{name}")
        swapped[f"chosen_{name}"] = pl.when(flip).then(r).otherwise(c)
        swapped[f"rejected_{name}"] = pl.when(flip).then(c).otherwise(r)
    out = picked.with_columns(**swapped).with_columns(
        (pl.col("chosen_score") - pl.col("rejected_score")).alias("margin")
    )
    return out.select(
        PROMPT, "chosen_row", "rejected_row", "chosen_score", "rejected_score", "chosen_reward", "rejected_reward",
        "margin",
    ).sort("chosen_row", "rejected_row")  # fmt: skip


def compare_rows(kept: pl.DataFrame, baseline: pl.DataFrame, output: Path, seed: int) -> dict[str, Any]:
    """The summary's ``random_baseline`` entry for ``filter``: sizes and mean reward of both selections."""
    return {
        "output": str(output),
        "seed": seed,
        "rows": baseline.height,
        "reward_mean": baseline.get_column("reward").mean(),
        "selection_reward_mean": kept.get_column("reward").mean(),
    }


def compare_pairs(pairs: pl.DataFrame, baseline: pl.DataFrame, output: Path, seed: int) -> dict[str, Any]:
    """The same for ``build-dpo``: sizes, mean margin and the share of pairs whose chosen side scores higher."""
    return {
        "output": str(output),
        "seed": seed,
        "pairs": baseline.height,
        "margin_mean": baseline.get_column("margin").mean(),
        "chosen_scores_higher": (baseline.get_column("margin") > 0).mean(),
        "selection_margin_mean": pairs.get_column("margin").mean(),
    }


def write_baseline(
    kind: str, table: ScoreTable, frame: pl.DataFrame, baseline: Baseline, summary: dict[str, Any]
) -> None:
    """The baseline dataset directory (atomically): shards as the rule's output, a card saying what it is,
    ``manifest.json`` and the marker."""
    from rmdata.curate.write import write_dpo, write_manifest, write_sft
    from rmdata.dataset_dir import atomic_directory, dataset_card, write_marker
    from rmdata.io import write_text_atomic

    with atomic_directory(baseline.output, overwrite=True) as tmp:
        if kind == "sft":
            shards = write_sft(table, frame.select(ROW, "score", "rank"), tmp)
        else:
            shards = write_dpo(table, frame, tmp)
        rows = sum(s["rows"] for s in shards)
        body = (
            f"A random baseline for `rmdata {summary['command']}` ({summary['rules']}): {rows:,} "
            f"{'rows' if kind == 'sft' else 'pairs'} drawn with seed {baseline.seed} from the same candidates, "
            "with the same count per prompt as the selection (rmdata.curate.baseline). Train on it and on the "
            "selection to measure what the selection is worth over chance.\n"
        )
        title = f"rmdata random baseline ({kind})"
        write_text_atomic(tmp / "README.md", dataset_card(title, body, tmp, pretty_name=title, tags=["rmdata", kind]))
        manifest = {"kind": kind, "rows": rows, "shards": shards, "random_baseline": summary["random_baseline"]}
        write_manifest(tmp, manifest)
        write_marker(tmp, kind, rows=rows, inputs=summary["inputs"], random_baseline=True)
