"""`rmdata inspect` through Typer's CliRunner and as a real process (exit codes 0, 1, 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rmdata.cli import app

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.jsonl"))
PAIR = {"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."}


def test_json_output_of_a_valid_file(write_jsonl) -> None:
    path = write_jsonl("p.jsonl", [PAIR, {**PAIR, "chosen": "Hey."}])
    result = CliRunner().invoke(app, ["inspect", str(path), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert (out["format"], out["kind"], out["records"], out["valid"], out["invalid"], out["errors"]) == (
        "pairs", "pairs", 2, 2, 0, [],
    )  # fmt: skip


def test_broken_line_3_exits_1_and_is_named(write_jsonl) -> None:
    path = write_jsonl("p.jsonl", [PAIR, PAIR | {"chosen": "x"}, '{"prompt": "Hi", "chosen": ', PAIR | {"chosen": "y"}])
    result = CliRunner().invoke(app, ["inspect", str(path), "--json"])
    assert result.exit_code == 1
    errors = json.loads(result.output)["errors"]
    assert errors == [{"location": f"{path}:3", "field": None, "message": errors[0]["message"]}]
    assert errors[0]["message"].startswith("malformed JSON")
    human = CliRunner().invoke(app, ["inspect", str(path)])
    assert human.exit_code == 1 and f"{path}:3: malformed JSON" in human.output


def test_format_option_and_several_paths(write_jsonl) -> None:
    a = write_jsonl("a.jsonl", [{"prompt": "Q", "response": "A"}])
    b = write_jsonl("b.jsonl", [{"prompt": "Q", "response": "B"}])
    result = CliRunner().invoke(app, ["inspect", str(a), str(b), "--format", "prompt-response", "--json"])
    out = json.loads(result.output)
    assert result.exit_code == 0 and (out["format"], out["detected"], out["records"]) == ("prompt-response", False, 2)


def test_missing_path_is_one_error(tmp_path: Path) -> None:
    """Paths are checked by the data layer (a Hub dataset id is not a path Typer could check)."""
    done = run_cli("inspect", str(tmp_path / "nope.jsonl"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"error: {tmp_path / 'nope.jsonl'}: no such file or directory"]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_bundled_examples_are_valid(path: Path) -> None:
    result = CliRunner().invoke(app, ["inspect", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["format"] == {"pairs.jsonl": "pairs", "corpus.jsonl": "messages"}[path.name]


def test_examples_glob_finds_both_files() -> None:
    assert [p.name for p in EXAMPLES] == ["corpus.jsonl", "pairs.jsonl"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "rmdata", *args], capture_output=True, text=True, env=env, cwd=REPO)


def test_process_exit_codes(write_jsonl, tmp_path: Path) -> None:
    good = write_jsonl("good.jsonl", [PAIR])
    bad = write_jsonl("bad.jsonl", [PAIR, {**PAIR, "rejected": ""}])
    assert run_cli("inspect", str(good)).returncode == 0
    assert run_cli("inspect", str(bad), "--json").returncode == 1
    wrong = run_cli("inspect", str(good), "--format", "chat")
    assert wrong.returncode == 2
    assert wrong.stderr.strip().splitlines() == [
        "error: format 'chat' is not one rmdata reads; choose one of pairs, pairs-implicit, hh, messages, "
        "prompt-response, alpaca, multi-response"
    ]
    (tmp_path / "empty.jsonl").write_text("")
    empty = run_cli("inspect", str(tmp_path / "empty.jsonl"))
    assert (empty.returncode, empty.stderr.count("\n"), "Traceback" in empty.stderr) == (2, 1, False)
    assert "empty.jsonl: empty file, no records in it" in empty.stderr


def test_cli_module_imports_no_heavy_library() -> None:
    code = "import sys, rmdata.cli; print(sorted(m for m in ('polars', 'torch', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"
