"""`rmdata filter` and `rmdata build-dpo`: curation over score tables (rmdata.curate)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rmdata.cli.app import app

if TYPE_CHECKING:
    from rmdata.curate.run import Result

_SCORES_HELP = "rmdata score outputs or Parquet files with their columns (default: rmdata-out/scores)."
_NORMALIZE_HELP = "Rescale rewards within each --by group before the rules: none, zscore or rank (to [0, 1])."
_BY_HELP = "Column whose groups --normalize rescales separately (e.g. generator, source); default: the whole table."
_PENALTY_HELP = "Rank by reward - L x num_tokens (tokens, not characters)."
_REJECTS_HELP = "Also write the dropped rows with their reason: .parquet, .jsonl or .ndjson."
_ON_ERROR_HELP = (
    "A NaN or infinite reward: fail stops before any output, naming file and row; "
    "skip drops such rows (reason non_finite_reward). Null rewards are always dropped as missing_reward."
)


def _check_paths(inputs: list[Path] | None, output: Path, rejects: Path | None, baseline: Path | None) -> None:
    """-o, --rejects and --random-baseline never name a score table read, nor each other (see rmdata.paths)."""
    from rmdata.curate.source import DEFAULT_SCORES
    from rmdata.paths import check_output_paths

    reads = [("input", p) for p in inputs or [Path(DEFAULT_SCORES)]]
    check_output_paths([("--output", output), ("--rejects", rejects), ("--random-baseline", baseline)], reads)

_REWARD_HELP = (
    "Rank by an expression over reward columns instead of `reward`: +, -, *, /, numbers, min(), max(), mean(); "
    "NAME means reward_NAME. E.g. '0.7*helpful + 0.3*safety', 'min(reward_a, reward_b)'. With --normalize "
    "each column is rescaled first (--by prompt_id: per prompt)."
)
_BASELINE_HELP = (
    "Also write a random selection of the same size and per-prompt counts (seeded by --seed) to this dataset "
    "directory, to show the selection beats chance."
)
_AGREE_HELP = "Keep only what every model in --reward agrees on; the rest is dropped as models_disagree."
_AGREE_FILTER_HELP = _AGREE_HELP + " filter: rows in every model's --top-k."
_AGREE_DPO_HELP = _AGREE_HELP + " build-dpo: pairs every model orders chosen above rejected."


def _report(kind: str, unit: str, result: Result) -> None:
    """Where the output landed, its rejects, and how to load and train on it."""
    from rmdata.curate.run import display

    where = display(result.output)
    typer.echo(f"{kind}: {where}  ({result.rows:,} {unit}; card {where}/README.md, plots {where}/plots/)")
    if result.rejects is not None:
        typer.echo(f"rejects: {display(result.rejects)}  ({result.summary['rows_dropped']:,} rows)")
    typer.echo(f"load:  datasets.load_dataset({where!r}, split='train')")
    if kind == "sft":
        typer.echo("train: trl.SFTTrainer(model=..., train_dataset=that)  # conversational 'messages' column")
    else:
        typer.echo("train: trl.DPOTrainer(model=..., train_dataset=that, processing_class=tokenizer)"
                   "  # conversational prompt/chosen/rejected")  # fmt: skip


def _report_baseline(result: Result) -> None:
    base = result.summary.get("random_baseline")
    if base is not None:
        unit = "pairs" if "pairs" in base else "rows"
        typer.echo(f"random baseline: {base['output']}  ({base[unit]:,} {unit}, seed {base['seed']})")


@app.command("filter")
def filter_command(
    inputs: Annotated[list[Path] | None, typer.Argument(show_default=False, help=_SCORES_HELP)] = None,
    top_k: Annotated[int | None, typer.Option("--top-k", help="Keep the N best responses of each prompt.")] = None,
    top_p: Annotated[float | None, typer.Option("--top-p", help="Keep the best fraction F (0-1] of all rows.")] = None,
    min_score: Annotated[float | None, typer.Option("--min-score", help="Keep rows scoring at least X.")] = None,
    normalize: Annotated[str, typer.Option("--normalize", help=_NORMALIZE_HELP)] = "none",
    by: Annotated[str | None, typer.Option("--by", help=_BY_HELP)] = None,
    length_penalty: Annotated[float, typer.Option("--length-penalty", help=_PENALTY_HELP)] = 0.0,
    min_responses: Annotated[
        int, typer.Option("--min-responses", help="Drop prompts with fewer distinct responses than N first.")
    ] = 1,
    reward: Annotated[str | None, typer.Option("--reward", show_default=False, help=_REWARD_HELP)] = None,
    agree: Annotated[bool, typer.Option("--agree", help=_AGREE_FILTER_HELP)] = False,
    random_baseline: Annotated[
        Path | None, typer.Option("--random-baseline", show_default=False, help=_BASELINE_HELP)
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of --random-baseline's draw.")] = 0,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output dataset directory.")] = Path("rmdata-out/sft"),
    rejects: Annotated[Path | None, typer.Option("--rejects", help=_REJECTS_HELP)] = None,
    on_error: Annotated[str, typer.Option("--on-error", help=_ON_ERROR_HELP)] = "fail",
) -> None:
    """Select SFT data: the best responses per prompt (rules combine: all must hold), as `messages` rows.

    Ties break by reward (score), then response_id. Writes a Hub-layout dataset (Parquet shards, card,
    plots) and prints what was kept and dropped, by reason.
    """
    from rmdata.curate.ranking import ScoreOptions
    from rmdata.curate.rules import FilterRules
    from rmdata.curate.run import Baseline, run_filter

    _check_paths(inputs, output, rejects, random_baseline)
    rules = FilterRules(top_k=top_k, top_p=top_p, min_score=min_score, min_responses=min_responses)
    baseline = Baseline(random_baseline, seed) if random_baseline is not None else None
    options = ScoreOptions(normalize, by, length_penalty, on_error, reward, agree)
    result = run_filter(inputs or [], options, rules, output, rejects, baseline)
    _report("sft", "rows", result)
    _report_baseline(result)


@app.command("build-dpo")
def build_dpo_command(
    inputs: Annotated[list[Path] | None, typer.Argument(show_default=False, help=_SCORES_HELP)] = None,
    margin: Annotated[
        float, typer.Option("--margin", help="Keep a pair when chosen score - rejected score >= M.")
    ] = 0.0,
    strategy: Annotated[
        str, typer.Option("--strategy", help="best-vs-worst, best-vs-random, best-vs-all or all-pairs.")
    ] = "best-vs-worst",
    max_pairs_per_prompt: Annotated[
        int | None, typer.Option("--max-pairs-per-prompt", help="Cap pairs per prompt, largest margins first.")
    ] = None,
    tie_epsilon: Annotated[
        float, typer.Option("--tie-epsilon", help="Score gaps <= E are ties and never pairs.")
    ] = 0.0,
    normalize: Annotated[str, typer.Option("--normalize", help=_NORMALIZE_HELP)] = "none",
    by: Annotated[str | None, typer.Option("--by", help=_BY_HELP)] = None,
    length_penalty: Annotated[float, typer.Option("--length-penalty", help=_PENALTY_HELP)] = 0.0,
    reward: Annotated[str | None, typer.Option("--reward", show_default=False, help=_REWARD_HELP)] = None,
    agree: Annotated[bool, typer.Option("--agree", help=_AGREE_DPO_HELP)] = False,
    random_baseline: Annotated[
        Path | None, typer.Option("--random-baseline", show_default=False, help=_BASELINE_HELP)
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of best-vs-random's and --random-baseline's draws.")] = 0,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output dataset directory.")] = Path("rmdata-out/dpo"),
    rejects: Annotated[Path | None, typer.Option("--rejects", help=_REJECTS_HELP)] = None,
    on_error: Annotated[str, typer.Option("--on-error", help=_ON_ERROR_HELP)] = "fail",
) -> None:
    """Build DPO pairs within each prompt, in TRL's conversational preference format.

    Identical texts under one prompt are merged first; prompts with fewer than two distinct responses are
    dropped and counted. Writes a Hub-layout dataset (Parquet shards, card, plots).
    """
    from rmdata.curate.pairs import PairRules
    from rmdata.curate.ranking import ScoreOptions
    from rmdata.curate.run import Baseline, run_build_dpo

    _check_paths(inputs, output, rejects, random_baseline)
    rules = PairRules(margin, strategy, max_pairs_per_prompt, tie_epsilon, seed)
    baseline = Baseline(random_baseline, seed) if random_baseline is not None else None
    options = ScoreOptions(normalize, by, length_penalty, on_error, reward, agree)
    result = run_build_dpo(inputs or [], options, rules, output, rejects, baseline)
    _report("dpo", "pairs", result)
    _report_baseline(result)
