"""`rmdata inspect`: detect, validate and summarize inputs without a model."""

from __future__ import annotations

from typing import Annotated

import typer

from rmdata.cli.app import app, strict_json
from rmdata.data.formats import FORMATS


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
        typer.echo(strict_json(report.to_dict()))
    else:
        render_report(report)
    raise typer.Exit(1 if report.invalid else 0)
