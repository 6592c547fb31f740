"""What a curation run kept and dropped: counts by reason, per-prompt counts, reward and margin statistics.

One ``dict`` (aggregated in polars from the narrow frames, so it costs little at 10M rows) feeds the
terminal summary, the dataset card and ``manifest.json``.
"""

from __future__ import annotations

from typing import Any, cast

import polars as pl

from rmdata.curate.ranking import PROMPT, REASON
from rmdata.data.drops import REASONS
from rmdata.dataset_dir import markdown_table

STAT_NAMES = ("count", "mean", "std", "min", "p05", "p25", "median", "p75", "p95", "max")


def stats(values: pl.Series) -> dict[str, float | int | None]:
    """Count, mean, std and quantiles of the non-null, non-NaN values (None where there are none)."""
    v = values.drop_nulls().cast(pl.Float64)
    v = v.filter(~v.is_nan()).sort()  # sorted once: each quantile is then a lookup
    if v.is_empty():
        return {name: (0 if name == "count" else None) for name in STAT_NAMES}
    quantiles = {"p05": 0.05, "p25": 0.25, "median": 0.5, "p75": 0.75, "p95": 0.95}
    out: dict[str, float | int | None] = {"count": v.len(), "mean": v.mean(), "std": v.std()}
    out["min"] = v.min()
    out.update({name: v.quantile(q, "linear") for name, q in quantiles.items()})
    out["max"] = v.max()
    return {k: out[k] for k in STAT_NAMES}


def count_reasons(frame: pl.DataFrame) -> dict[str, int]:
    """``{reason: rows}``, most frequent first (ties by name)."""
    if frame.is_empty():
        return {}
    counts = frame.group_by(REASON).len().sort(["len", REASON], descending=[True, False])
    return {str(r): int(n) for r, n in counts.iter_rows()}


def per_prompt(kept_prompt_ids: pl.Series, prompts_in: int) -> dict[str, int]:
    """``{"0": prompts with nothing kept, "1": prompts with one kept row/pair, ...}``."""
    counts = kept_prompt_ids.value_counts(name="n").get_column("n").value_counts(name="prompts").sort("n")
    out = {"0": prompts_in - int(counts.get_column("prompts").sum())}
    out.update({str(n): int(p) for n, p in counts.iter_rows()})
    return out


def summarize(
    command: str,
    rules: str,
    inputs: list[str],
    kept: pl.DataFrame,
    dropped: pl.DataFrame,
    *,
    pairs: pl.DataFrame | None = None,
    pair_drops: pl.DataFrame | None = None,
) -> dict[str, Any]:
    """The summary of one run. ``kept`` / ``dropped``: decision rows; ``pairs``: kept DPO pairs."""
    # _prompt is a dense rank 1..K over every input row, so the distinct prompts are its maximum (+1 for null)
    prompts = pl.concat([kept.get_column(PROMPT), dropped.get_column(PROMPT)])
    prompts_in = int(cast(int, prompts.max() or 0)) + int(prompts.null_count() > 0)
    summary: dict[str, Any] = {
        "command": command,
        "rules": rules,
        "inputs": inputs,
        "rows_in": kept.height + dropped.height,
        "prompts_in": prompts_in,
        "rows_kept": kept.height,
        "rows_dropped": dropped.height,
        "dropped": count_reasons(dropped),
    }
    if pairs is None:
        summary["prompts_kept"] = kept.get_column(PROMPT).n_unique()
        summary["kept_per_prompt"] = per_prompt(kept.get_column(PROMPT), prompts_in)
    else:
        summary["pairs"] = pairs.height
        summary["prompts_kept"] = pairs.get_column(PROMPT).n_unique()
        summary["pairs_per_prompt"] = per_prompt(pairs.get_column(PROMPT), prompts_in)
        summary["candidate_pairs"] = pairs.height + (0 if pair_drops is None else pair_drops.height)
        summary["pairs_dropped"] = count_reasons(pair_drops) if pair_drops is not None else {}
        summary["margin"] = stats(pairs.get_column("margin"))
    summary["reward"] = {"kept": stats(kept.get_column("reward")), "dropped": stats(dropped.get_column("reward"))}
    if "score" in kept.columns and not kept.get_column("score").equals(kept.get_column("reward"), check_names=False):
        summary["score"] = {"kept": stats(kept.get_column("score"))}
    return summary


def _stat_rows(groups: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"": name, **s} for name, s in groups.items()]


def _reason_rows(counts: dict[str, int], total: int, unit: str) -> list[dict[str, Any]]:
    return [
        {"reason": r, unit: n, "share": f"{n / max(total, 1):.1%}", "meaning": REASONS.get(r, "")}
        for r, n in counts.items()
    ]


def markdown(summary: dict[str, Any]) -> str:
    """The summary as Markdown sections for the dataset card."""
    dpo = "pairs" in summary
    lines = [
        f"Rules: {summary['rules']}.",
        "",
        f"- rows in: {summary['rows_in']:,} ({summary['prompts_in']:,} prompts)",
        f"- rows kept: {summary['rows_kept']:,}" + ("" if dpo else f" ({summary['prompts_kept']:,} prompts)"),
        f"- rows dropped: {summary['rows_dropped']:,}",
    ]
    if dpo:
        lines.append(
            f"- pairs: {summary['pairs']:,} from {summary['prompts_kept']:,} prompts "
            f"({summary['candidate_pairs']:,} candidates)"
        )
    if summary["dropped"]:
        lines += [
            "",
            "## Dropped rows by reason",
            "",
            markdown_table(_reason_rows(summary["dropped"], summary["rows_in"], "rows")),
        ]
    if dpo and summary["pairs_dropped"]:
        lines += [
            "",
            "## Dropped candidate pairs by reason",
            "",
            markdown_table(_reason_rows(summary["pairs_dropped"], summary["candidate_pairs"], "pairs")),
        ]
    key = "pairs_per_prompt" if dpo else "kept_per_prompt"
    lines += [
        "",
        f"## {'Pairs' if dpo else 'Kept rows'} per prompt",
        "",
        markdown_table([{key.replace("_", " "): k, "prompts": v} for k, v in summary[key].items()]),
    ]
    lines += ["", "## Reward", "", markdown_table(_stat_rows(summary["reward"]))]
    if "score" in summary:
        lines += [
            "",
            "## Score (the normalized / length-penalized reward the rules compare)",
            "",
            markdown_table(_stat_rows(summary["score"])),
        ]
    if "models" in summary:
        lines += ["", *_model_lines(summary["models"])]
    if "random_baseline" in summary:
        lines += ["", "## Random baseline", "", _baseline_line(summary["random_baseline"])]
    if dpo:
        lines += [
            "",
            "## Margin (chosen score - rejected score)",
            "",
            markdown_table(_stat_rows({"pairs": summary["margin"]})),
        ]
    return "\n".join(lines)  # fmt: skip


def _model_lines(models: dict[str, Any]) -> list[str]:
    """The card's section on the models a ``--reward`` expression names (``curate.agreement.report``)."""
    lines = [f"## Models (`--reward {models['expression']}`)", "", "Raw reward columns of the kept rows:", ""]
    lines.append(markdown_table(_stat_rows(models["stats"])))
    if models["spearman_per_prompt"]:
        agreement = [{"models": k, "spearman per prompt (mean)": v} for k, v in models["spearman_per_prompt"].items()]
        lines += ["", markdown_table(agreement)]
    if "pairs_ordered_alike" in models:
        lines += ["", f"Candidate pairs every model orders alike: {models['pairs_ordered_alike']:.1%}"]
    return lines


def _baseline_line(base: dict[str, Any]) -> str:
    """One sentence comparing the selection with its random baseline (``curate.baseline``)."""

    def f(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4g}"

    if "pairs" in base:
        return (
            f"random baseline: {base['output']} ({base['pairs']:,} pairs, seed {base['seed']}): mean margin "
            f"{f(base['margin_mean'])} vs {f(base['selection_margin_mean'])} selected; chosen scores higher in "
            f"{base['chosen_scores_higher']:.1%} of its pairs"
        )
    return (
        f"random baseline: {base['output']} ({base['rows']:,} rows, seed {base['seed']}): mean reward "
        f"{f(base['reward_mean'])} vs {f(base['selection_reward_mean'])} selected"
    )


def _model_line(models: dict[str, Any]) -> str:
    parts = [f"spearman per prompt {k} {v:.3f}" for k, v in models["spearman_per_prompt"].items() if v is not None]
    if "pairs_ordered_alike" in models:
        parts.append(f"candidate pairs ordered alike {models['pairs_ordered_alike']:.1%}")
    return f"models ({', '.join(models['stats'])}): " + ("; ".join(parts) or "one model")


def render(summary: dict[str, Any]) -> None:
    """Print the summary to stderr (rich tables)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True, width=max(100, Console(stderr=True).width))
    dpo = "pairs" in summary
    head = f"[bold]{summary['command']}[/bold]: {summary['rules']}\n"
    head += f"rows in {summary['rows_in']:,} ({summary['prompts_in']:,} prompts), kept {summary['rows_kept']:,}, "
    head += f"dropped {summary['rows_dropped']:,}"
    if dpo:
        head += f"; pairs {summary['pairs']:,} from {summary['prompts_kept']:,} prompts"
    else:
        head += f" ({summary['prompts_kept']:,} prompts kept)"
    console.print(head)
    sections = [("dropped rows", summary["dropped"], summary["rows_in"])]
    if dpo:
        sections.append(("dropped candidate pairs", summary["pairs_dropped"], summary["candidate_pairs"]))
    for title, counts, total in sections:
        if counts:
            table = Table(title=title, title_justify="left")
            for col in ("reason", "count", "share"):
                table.add_column(col, justify="right" if col in ("count", "share") else "left")
            for r, n in counts.items():
                table.add_row(r, f"{n:,}", f"{n / max(total, 1):.1%}")
            console.print(table)
    key = "pairs_per_prompt" if dpo else "kept_per_prompt"
    console.print(f"{key.replace('_', ' ')}: " + ", ".join(f"{k}: {v:,}" for k, v in summary[key].items()))
    if "models" in summary:
        console.print(_model_line(summary["models"]))
    if "random_baseline" in summary:
        console.print(_baseline_line(summary["random_baseline"]))
    groups = {f"reward, {'in a pair' if dpo and k == 'kept' else k}": v for k, v in summary["reward"].items()}
    if dpo:
        groups["margin"] = summary["margin"]
    table = Table(title="distributions", title_justify="left")
    table.add_column("")
    shown = ("count", "mean", "std", "min", "p25", "median", "p75", "max")
    for name in shown:
        table.add_column(name, justify="right")
    for name, s in groups.items():
        table.add_row(name, *("" if s[n] is None else f"{s[n]:,}" if n == "count" else f"{s[n]:.4g}" for n in shown))
    console.print(table)
