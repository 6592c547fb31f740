"""The package layout: one package per pipeline stage, imports from a stage to earlier stages only, and the
light entry points (the data stage, the packer, ``rmdata --help``) free of heavy libraries.

Imports are read with ``ast`` from the source (function-level imports included), so a lazy import of a
later stage counts as much as one at the top of a module.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rmdata"
STAGES = ("data", "tokens", "model", "train", "score", "curate", "serve")  # the order data flows through them
# top-level modules: what they may import from the stages (cli and __main__ may import anything)
# io writes rejects files, which hold the data stage's Drop rows
TOP_LEVEL = {
    "config": {"rmdata.data.formats", "rmdata.data.inputs"},
    "io": {"rmdata.data.drops"},
    "errors": set(),
    "progress": set(),
    "dataset_dir": set(),
    "distributed": set(),
}
FREE_TO_IMPORT = {"cli", "__main__"}


def rmdata_imports(source: str, package: str) -> set[str]:
    """Every ``rmdata.*`` module a module of ``package`` imports, absolute or relative, anywhere in it."""
    tree = ast.parse(source)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "rmdata")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            if module.split(".")[0] == "rmdata":
                found.add(module)
                found.update(f"{module}.{alias.name}" for alias in node.names)  # `from rmdata import train`
    return found


def stage_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGES else None


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_from_a_stage_to_earlier_stages_only(path: Path) -> None:
    relative = path.relative_to(PACKAGE)
    if relative.parts[0] in FREE_TO_IMPORT:  # the cli package sits above every stage
        return
    package = ".".join(("rmdata", *relative.parent.parts))
    imported = rmdata_imports(path.read_text(encoding="utf-8"), package)
    if len(relative.parts) == 1:  # a top-level module
        name = relative.stem
        if name in FREE_TO_IMPORT:
            return
        allowed = TOP_LEVEL.get(name, set())
        staged = {m for m in imported if stage_of(m) is not None}
        extra = sorted(m for m in staged if not any(m == a or m.startswith(f"{a}.") for a in allowed))
        assert extra == [], f"rmdata/{relative} imports stage modules {extra}"
        return
    own = STAGES.index(relative.parts[0])
    later = sorted(m for m in imported if (s := stage_of(m)) is not None and STAGES.index(s) > own)
    assert later == [], f"rmdata/{relative} (stage {STAGES[own]}) imports later stages: {later}"


def test_the_import_reader_sees_lazy_and_relative_imports() -> None:
    """The reader itself must be able to fail: function-level and relative imports of later stages are found."""
    source = "import os\ndef f():\n    from rmdata.train.loop import train\n    from ..model import tiny\n"
    found = rmdata_imports(source, "rmdata.tokens")
    assert found == {"rmdata.train.loop", "rmdata.train.loop.train", "rmdata.model", "rmdata.model.tiny"}


def imported_after(code: str) -> set[str]:
    """Top-level packages in sys.modules after running ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport sys\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("module", ["rmdata.data", "rmdata.data.load", "rmdata.tokens.packing", "rmdata.config"])
def test_the_data_stage_and_the_packer_import_no_torch(module: str) -> None:
    assert "torch" not in imported_after(f"import {module}")


def test_help_imports_no_torch_polars_or_transformers() -> None:
    code = (
        "import runpy, sys\nsys.argv = ['rmdata', '--help']\n"
        "try:\n    runpy.run_module('rmdata', run_name='__main__')\nexcept SystemExit:\n    pass"
    )
    loaded = imported_after(code)
    assert "typer" in loaded  # the help really ran
    assert {"torch", "polars", "transformers", "peft", "bitsandbytes"} & loaded == set()
