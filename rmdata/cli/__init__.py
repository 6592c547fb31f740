"""The `rmdata` command line: a thin Typer layer over the library, one module per command group.

Heavy libraries (torch, transformers, peft, bitsandbytes) are imported inside commands so that
`rmdata --help` stays fast. Each module registers its commands on the one app in `rmdata.cli.app`;
`COMMAND_GROUPS` is the order `rmdata --help` lists them in.
"""

from __future__ import annotations

import os
import sys
from importlib import import_module

import typer

from rmdata.cli.app import app
from rmdata.errors import RmdataError

COMMAND_GROUPS = ("train", "inspect", "score", "curate", "prm", "serve")
for _group in COMMAND_GROUPS:
    import_module(f"rmdata.cli.{_group}")

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


__all__ = ["app", "main"]
