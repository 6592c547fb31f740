"""The package layout: one package per pipeline stage, imports from a stage to earlier stages only, no module
importing itself through others (no import cycle), and the light entry points (the data stage, the packer,
``rmdata --help``) free of heavy libraries.

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
# earlier stages a stage must not import even so: scoring needs no training code, curation reads score tables only
NEVER = {"score": ("train",), "curate": ("model", "train")}
# top-level modules: what they may import from the stages (cli and __main__ may import anything)
# io writes rejects files, which hold the data stage's Drop rows
TOP_LEVEL = {
    "config": {"rmdata.data.formats", "rmdata.data.inputs"},
    "options": set(),
    "io": {"rmdata.data.drops"},
    "errors": set(),
    "paths": set(),
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
    barred = sorted(m for m in imported if stage_of(m) in NEVER.get(STAGES[own], ()))
    assert barred == [], f"rmdata/{relative} (stage {STAGES[own]}) must not import {barred}"


def test_the_import_reader_sees_lazy_and_relative_imports() -> None:
    """The reader itself must be able to fail: function-level and relative imports of later stages are found."""
    source = "import os\ndef f():\n    from rmdata.train.loop import train\n    from ..model import tiny\n"
    found = rmdata_imports(source, "rmdata.tokens")
    assert found == {"rmdata.train.loop", "rmdata.train.loop.train", "rmdata.model", "rmdata.model.tiny"}


def module_name(path: Path) -> str:
    """``rmdata/data/hub.py`` -> ``rmdata.data.hub``; a package's ``__init__.py`` is the package."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(sources: dict[str, tuple[str, str]]) -> dict[str, set[str]]:
    """Module -> the modules of ``sources`` it imports anywhere in it (type-checking and function-level imports
    included); ``sources`` maps each module name to (the package its relative imports start from, its source)."""
    graph: dict[str, set[str]] = {}
    for name, (package, source) in sources.items():
        graph[name] = {m for m in rmdata_imports(source, package) if m in sources and m != name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per import that leads back to a module still being walked (depth first)."""
    cycles: list[list[str]] = []
    state: dict[str, str] = {}  # "open" while its imports are walked, then "done"
    path: list[str] = []

    def walk(module: str) -> None:
        state[module] = "open"
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                walk(target)
        path.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            walk(module)
    return cycles


def rmdata_sources() -> dict[str, tuple[str, str]]:
    sources = {}
    for path in modules():
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        sources[name] = (package, path.read_text(encoding="utf-8"))
    return sources


def as_file(module: str) -> str:
    path = PACKAGE.parent / Path(*module.split("."))
    return str((path / "__init__.py" if path.is_dir() else path.with_suffix(".py")).relative_to(PACKAGE.parent))


def test_no_import_cycles() -> None:
    cycles = import_cycles(import_graph(rmdata_sources()))
    named = ["\n  " + " -> ".join(as_file(m) for m in cycle) for cycle in cycles]
    assert cycles == [], "import cycles (move the shared piece to the module that owns it):" + "".join(named)


def test_the_cycle_finder_sees_relative_and_package_imports() -> None:
    """It must be able to fail: a three-module loop through a relative import, a function-level import and
    ``from pkg import module`` is found, and the same modules importing one way only are not a cycle."""
    sources = {
        "rmdata.model": ("rmdata.model", ""),
        "rmdata.model.a": ("rmdata.model", "from .b import f\n"),
        "rmdata.model.b": ("rmdata.model", "def f():\n    from rmdata.model import c\n"),
        "rmdata.model.c": ("rmdata.model", "import rmdata.model.a\n"),
    }
    loop = ["rmdata.model.a", "rmdata.model.b", "rmdata.model.c", "rmdata.model.a"]
    assert import_cycles(import_graph(sources)) == [loop]
    sources["rmdata.model.c"] = ("rmdata.model", "import os\n")
    assert import_cycles(import_graph(sources)) == []


def imported_after(code: str) -> set[str]:
    """Top-level packages in sys.modules after running ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport sys\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize(
    "module", ["rmdata.data", "rmdata.data.load", "rmdata.tokens.packing", "rmdata.config", "rmdata.curate.run"]
)
def test_the_data_stage_the_packer_and_curation_import_no_torch(module: str) -> None:
    assert "torch" not in imported_after(f"import {module}")


def test_help_imports_no_torch_polars_or_transformers() -> None:
    code = (
        "import runpy, sys\nsys.argv = ['rmdata', '--help']\n"
        "try:\n    runpy.run_module('rmdata', run_name='__main__')\nexcept SystemExit:\n    pass"
    )
    loaded = imported_after(code)
    assert "typer" in loaded  # the help really ran
    assert {"torch", "polars", "transformers", "peft", "bitsandbytes"} & loaded == set()
