"""`rmdata serve` refuses before binding anything: a missing model, a bad device, with the fix named."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from rmdata.cli import app
from rmdata.errors import RmdataError


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "no-such-dir"], "does not exist"),
        (["--device", "cuda:x"], "cuda:N with N a GPU index"),
    ],
)
def test_refusals_name_the_fix(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["serve", "--model", str(tmp_path / "missing"), *args])
    assert isinstance(result.exception, RmdataError) and message in str(result.exception)


def test_help_lists_the_limits_and_names_the_extra() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for flag in ("--max-wait-ms", "--max-queue-rows", "--max-request-bytes", "--api-key", "--drain-timeout-s"):
        assert flag in result.output
    assert "rmdata[serve]" in result.output
