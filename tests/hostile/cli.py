"""Run ``rmdata.cli.main`` (the console entry point, with its error handler) in-process, as a user would."""

from __future__ import annotations

import io
import os
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def error_lines(self) -> int:
        """Lines of stderr that start with ``error:`` (a user error prints exactly one)."""
        return sum(line.startswith("error:") for line in self.err.splitlines())


def run_cli(args: list[str], monkeypatch: pytest.MonkeyPatch, cwd: Path) -> CliResult:
    """Exit code, stdout and stderr of ``rmdata ARGS`` run in ``cwd``. An exception escaping main() (what a
    user sees as a traceback) propagates and fails the test."""
    from rmdata.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    here = os.getcwd()
    monkeypatch.setattr(sys, "argv", ["rmdata", *args])
    try:
        os.chdir(cwd)
        with redirect_stdout(out), redirect_stderr(err):
            main()
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    finally:
        os.chdir(here)
    assert "Traceback" not in err.getvalue()
    return CliResult(code, out.getvalue(), err.getvalue())
