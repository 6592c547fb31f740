"""The docs stay true: docs/cli.md is what the generator writes from the Typer app today, docs/architecture.md
names every package and top-level module and no path that does not exist, and every relative link in the docs
and the README reaches a file and, with ``#anchor``, one of its headings."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = sorted(DOCS.glob("*.md")) + [REPO / "README.md"]
PATH = re.compile(r"\b(?:rmdata|tests|tools|benchmarks|docs|recipes)/[\w./-]*")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_cli_reference_is_what_the_generator_writes() -> None:
    check = subprocess.run(
        [sys.executable, "tools/gen_cli_docs.py", "--check"], cwd=REPO, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr


def test_the_generator_sees_every_command_and_option() -> None:
    """It must be able to fail: each command and each of its options appears in the page."""
    from rmdata.cli import app
    from tools.gen_cli_docs import render

    text = render()
    for command in app.registered_commands:
        name = command.name or command.callback.__name__.replace("_", "-")
        assert f"## `rmdata {name}`" in text
    assert "`--top-k`" in text and "`--resume`, `--no-resume`" in text and "`train.max_steps`" in text


def architecture_paths(text: str) -> set[str]:
    return {m.rstrip(".") for m in PATH.findall(text)}


def test_architecture_names_every_package_and_top_level_module() -> None:
    named = architecture_paths((DOCS / "architecture.md").read_text(encoding="utf-8"))
    package = REPO / "rmdata"
    wanted = {f"rmdata/{p.parent.name}/" for p in package.glob("*/__init__.py")}
    wanted |= {f"rmdata/{p.name}" for p in package.glob("*.py") if p.name != "__init__.py"}
    assert sorted(wanted - named) == []


def test_every_path_the_architecture_names_exists() -> None:
    named = architecture_paths((DOCS / "architecture.md").read_text(encoding="utf-8"))
    assert named  # the reader found paths at all
    assert sorted(p for p in named if not (REPO / p).exists()) == []


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation (backticks too) dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {anchor(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_reach_a_file_and_heading(page: Path) -> None:
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target):  # https:, mailto:
            continue
        file, _, fragment = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if not dest.exists() or (fragment and dest.suffix == ".md" and fragment not in anchors(dest)):
            broken.append(target)
    assert broken == []


def test_anchor_follows_github() -> None:
    assert anchor("`rmdata train`") == "rmdata-train"
    assert anchor("rmdata train: a run directory") == "rmdata-train-a-run-directory"
    assert anchor("Bundled data sets (`builtin:NAME`)") == "bundled-data-sets-builtinname"


def test_the_drop_reasons_table_lists_the_reasons_of_the_code() -> None:
    from rmdata.data.drops import REASONS

    text = (DOCS / "outputs.md").read_text(encoding="utf-8")
    section = text[text.index("## Drop reasons") :]
    listed = re.findall(r"^\| `(\w+)` \|", section, re.M)
    assert sorted(listed) == sorted(REASONS)
