"""The `rmdata` command line: a thin Typer layer over the library.

Heavy libraries (torch, transformers, peft, bitsandbytes) are imported inside commands so that
`rmdata --help` stays fast. Every command lives in its own small function; the logic lives in the
library modules they call.
"""

from __future__ import annotations

import sys

import typer

from rmdata import __version__
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
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
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
