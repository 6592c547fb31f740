"""``rmdata filter`` and ``rmdata build-dpo`` as functions: options in, an output directory and a summary out.

Both: check every option against the score table before reading it, decide on the narrow frame, print
the summary, refuse an empty result, then write the dataset directory beside its final place and rename
it in (``dataset_dir.atomic_directory``), so no half-written output is ever left behind.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import polars as pl

from rmdata.curate import agreement, plots
from rmdata.curate import summary as report
from rmdata.curate.baseline import Baseline, compare_pairs, compare_rows, random_pairs, random_rows, write_baseline
from rmdata.curate.pairs import PairRules, pair_up, split_paired
from rmdata.curate.ranking import REASON, ScoreOptions, prepare
from rmdata.curate.rules import FilterRules, apply_rules
from rmdata.curate.source import ROW, open_scores
from rmdata.curate.write import check_rejects_path, display, write_dpo, write_manifest, write_rejects, write_sft
from rmdata.dataset_dir import atomic_directory, check_replaceable, dataset_card, write_marker
from rmdata.errors import RmdataError
from rmdata.io import write_text_atomic

LOOSEN = {
    "below_min_score": "lower --min-score",
    "outside_top_k": "raise --top-k",
    "outside_top_p": "raise --top-p",
    "too_few_responses": "lower --min-responses, or score more responses per prompt",
    "missing_reward": "rescore: the table has no usable rewards",
    "non_finite_reward": "rescore: the table's rewards are NaN or infinite",
    "below_margin": "lower --margin",
    "tie": "lower --tie-epsilon",
    "no_pair": "lower --margin or --tie-epsilon",
    "models_disagree": "drop --agree, or name models that agree more in --reward",
}


@dataclass(frozen=True)
class Result:
    output: Path
    rows: int
    summary: dict[str, Any]
    rejects: Path | None


def _check_output(output: Path, kind: str, rejects: Path | None) -> None:
    check_replaceable(output, [kind], flag=f"rmdata {'filter' if kind == 'sft' else 'build-dpo'}")
    if rejects is not None:
        check_rejects_path(rejects, output)


def _refuse_empty(summary: dict[str, Any], what: str) -> None:
    """No rows or pairs survived: name the rule that dropped most, and the option to loosen."""
    counts, unit = dict(summary.get("pairs_dropped") or summary["dropped"]), what
    if summary.get("pairs_dropped"):
        unit = "candidate pairs"
    else:
        counts.pop("unpaired", None)
    if not counts:
        raise RmdataError(f"no {what}: the score table has no rows")
    top = max(counts, key=lambda r: counts[r])
    hint = LOOSEN.get(top, "loosen the rules")
    raise RmdataError(
        f"no {what} left ({counts[top]:,} {unit} dropped as {top}): {hint}; no output directory was written"
    )


def _card(
    title: str,
    kind: str,
    summary: dict[str, Any],
    plot_paths: list[str],
    output: Path,
    usage: str,
    directory: Path,
) -> str:
    """The card of the dataset written in ``directory`` (its shards already there), to be renamed to ``output``."""
    plot_lines = "\n".join(f"![{p}]({p})" for p in plot_paths)
    body = (
        f"Made by `rmdata {summary['command']}` from {', '.join(f'`{i}`' for i in summary['inputs'])}.\n\n"
        f"```python\nimport datasets\nds = datasets.load_dataset({str(output)!r}, split='train')\n{usage}\n```\n\n"
        f"{report.markdown(summary)}\n\n## Plots\n\n{plot_lines}\n"
    )
    return dataset_card(title, body, directory, pretty_name=title, tags=["rmdata", kind])


def _write_rejects(table: Any, dropped: pl.DataFrame, rejects: Path | None) -> None:
    if rejects is not None:
        write_rejects(table, dropped, rejects)


def run_filter(
    inputs: Sequence[str | Path],
    options: ScoreOptions,
    rules: FilterRules,
    output: Path,
    rejects: Path | None = None,
    baseline: Baseline | None = None,
) -> Result:
    """Keep the responses the rules select; write SFT rows (``messages``) to ``output`` (and a random baseline)."""
    start = time.perf_counter()
    rules.check()
    table = open_scores(inputs).with_reward(options.reward)
    options.check(table)
    if options.agree and rules.top_k is None:
        raise RmdataError("--agree with filter keeps rows in every model's --top-k: give --top-k N")
    _check_output(output, "sft", rejects)
    if baseline is not None:
        baseline.check(output, "sft")
    ranked, dropped = prepare(table, options, rules.min_responses)
    models = len(table.reward.columns) if options.agree and table.reward is not None else 0
    if models:
        ranked = agreement.with_model_ranks(ranked, models)
    judged = apply_rules(ranked.lazy(), rules, models).collect()
    kept = judged.filter(pl.col(REASON).is_null())
    dropped = pl.concat([dropped, judged.filter(pl.col(REASON).is_not_null())], how="diagonal_relaxed")
    rule_text = rules.describe() + _score_text(options)
    summary = report.summarize("filter", rule_text, list(table.inputs), kept, dropped)
    if table.reward is not None:
        summary["models"] = agreement.report(table.reward, ranked, kept)
    chance = None
    if baseline is not None:
        chance = random_rows(ranked, kept, baseline.seed)
        summary["random_baseline"] = compare_rows(kept, chance, baseline.output, baseline.seed)
    del ranked
    report.render(summary)
    if kept.is_empty():
        _write_rejects(table, dropped, rejects)
        _refuse_empty(summary, "rows")
    rows = kept.height
    with atomic_directory(output, overwrite=True) as tmp:
        plot_data = plots.plot_data(kept, dropped)
        decisions = kept.select(ROW, "score", "rank")
        drops = dropped.select(ROW, *(c for c in (REASON, "score", "rank") if c in dropped.columns))
        del kept, dropped, judged  # the texts are read back next: free the decision frames first
        with plots.drawing_in_background(tmp, plot_data) as drawing:
            shards = write_sft(table, decisions, tmp)
        _write_rejects(table, drops, rejects)  # after the texts read back: a damaged page leaves no file
        plot_paths = drawing.result()
        usage = "# TRL: trl.SFTTrainer(model=..., train_dataset=ds)  (conversational 'messages' column)"
        write_text_atomic(
            tmp / "README.md", _card("rmdata SFT selection", "sft", summary, plot_paths, output, usage, tmp)
        )
        _finish(tmp, "sft", shards, summary, options, asdict(rules), start)
    if baseline is not None and chance is not None:
        write_baseline("sft", table, chance, baseline, summary)
    return Result(output, rows, summary, rejects)


def run_build_dpo(
    inputs: Sequence[str | Path],
    options: ScoreOptions,
    rules: PairRules,
    output: Path,
    rejects: Path | None = None,
    baseline: Baseline | None = None,
) -> Result:
    """Pair responses of each prompt by the strategy; write TRL conversational preference rows to ``output``
    (and a random baseline)."""
    start = time.perf_counter()
    rules.check()
    table = open_scores(inputs).with_reward(options.reward)
    options.check(table)
    _check_output(output, "dpo", rejects)
    if baseline is not None:
        baseline.check(output, "dpo")
    draw_seed = rules.seed if rules.strategy == "best-vs-random" else None
    ranked, dropped = prepare(table, options, min_responses=2, draw_seed=draw_seed)
    models = len(table.reward.columns) if options.agree and table.reward is not None else 0
    judged = pair_up(ranked, rules, models)
    pairs = judged.filter(pl.col(REASON).is_null())
    pair_drops = judged.filter(pl.col(REASON).is_not_null())
    used, unused = split_paired(ranked, pairs)
    dropped = pl.concat([dropped, unused], how="diagonal_relaxed")
    rule_text = rules.describe() + _score_text(options)
    summary = report.summarize("build-dpo", rule_text, list(table.inputs), used, dropped, pairs=pairs,
                               pair_drops=pair_drops)  # fmt: skip
    if table.reward is not None:
        summary["models"] = agreement.report(table.reward, ranked, used, judged)
    chance = None
    if baseline is not None:
        chance = random_pairs(ranked, pairs, baseline.seed)
        summary["random_baseline"] = compare_pairs(pairs, chance, baseline.output, baseline.seed)
    report.render(summary)
    if pairs.is_empty():
        _write_rejects(table, dropped, rejects)
        _refuse_empty(summary, "pairs")
    rows = pairs.height
    with atomic_directory(output, overwrite=True) as tmp:
        plot_data = plots.plot_data(used, dropped, margins=pairs.get_column("margin"), margin=rules.margin,
                                    kept_label="in a pair")  # fmt: skip
        pairs = pairs.select("chosen_row", "rejected_row", "chosen_score", "rejected_score", "margin")
        drops = dropped.select(ROW, *(c for c in (REASON, "score", "rank") if c in dropped.columns))
        del ranked, used, unused, dropped, judged, pair_drops  # free the decision frames before reading texts
        with plots.drawing_in_background(tmp, plot_data) as drawing:
            shards = write_dpo(table, pairs, tmp)
        _write_rejects(table, drops, rejects)  # after the texts read back: a damaged page leaves no file
        plot_paths = drawing.result()
        usage = "# TRL: trl.DPOTrainer(model=..., train_dataset=ds, processing_class=tokenizer)"
        write_text_atomic(tmp / "README.md", _card("rmdata DPO pairs", "dpo", summary, plot_paths, output, usage, tmp))
        _finish(tmp, "dpo", shards, summary, options, asdict(rules), start)
    if baseline is not None and chance is not None:
        write_baseline("dpo", table, chance, baseline, summary)
    return Result(output, rows, summary, rejects)


def _score_text(options: ScoreOptions) -> str:
    parts = [f"reward = {options.reward}"] if options.reward is not None else []
    if options.agree:
        parts.append("every model must agree (--agree)")
    if options.normalize != "none":
        parts.append(f"rewards normalized ({options.normalize}) within {options.by or 'the whole table'}")
    if options.length_penalty > 0:
        parts.append(f"score = reward - {options.length_penalty:g} x num_tokens")
    return "".join(f"; {p}" for p in parts)


def _finish(
    directory: Path,
    kind: str,
    shards: list[dict[str, Any]],
    summary: dict[str, Any],
    options: ScoreOptions,
    rules: dict[str, Any],
    start: float,
) -> None:
    manifest = {
        "kind": kind,
        "rows": sum(s["rows"] for s in shards),
        "shards": shards,
        "options": {**asdict(options), **rules},
        "seconds": round(time.perf_counter() - start, 3),
        "summary": summary,
    }
    write_manifest(directory, manifest)
    write_marker(directory, kind, rows=manifest["rows"], inputs=summary["inputs"])


__all__ = ["Baseline", "Result", "run_build_dpo", "run_filter", "display"]
