"""The Typer app every command module registers on, and helpers the commands share."""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

import typer

from rmdata import __version__

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


def quiet_transformers() -> None:
    """No weight-loading progress bars from transformers on the user's terminal; rmdata draws its own."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def strict_json(value: Any) -> str:
    """One line of strict JSON (RFC 8259): NaN and infinities, which JSON cannot hold, are written as null."""
    return json.dumps(_finite(value), ensure_ascii=False, allow_nan=False, default=str)
