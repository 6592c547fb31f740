"""The run directory: its layout, run.json, metrics.jsonl and the `latest` link.

```
rmdata-out/runs/<name>/
  recipe.yaml          the resolved recipe
  run.json             recipe, versions, attention backend and dtype with reasons, packing, drops, resume
  metrics.jsonl        one line per logging step (and per evaluation)
  eval.json            final held-out metrics
  rejects/             records dropped with --on-error skip or by tokenization, with reasons
  checkpoints/step-N/  resumable state, written atomically, the last k kept
  final/               the exported model (AutoModelForSequenceClassification)
```
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rmdata import __version__
from rmdata.config import Recipe, dump_recipe
from rmdata.errors import RmdataError
from rmdata.io import write_text_atomic

DEFAULT_ROOT = Path("rmdata-out") / "runs"


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def recipe(self) -> Path:
        return self.path / "recipe.yaml"

    @property
    def run_json(self) -> Path:
        return self.path / "run.json"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def eval_json(self) -> Path:
        return self.path / "eval.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def final(self) -> Path:
        return self.path / "final"

    @property
    def rejects(self) -> Path:
        return self.path / "rejects"


def run_dir_for(recipe: Recipe, output_dir: str | Path | None) -> RunDir:
    """``--output-dir``, else ``recipe.output_dir``, else ``rmdata-out/runs/<recipe name>``."""
    chosen = output_dir or recipe.output_dir
    return RunDir(Path(chosen) if chosen else DEFAULT_ROOT / recipe.name)


def check_run_dir(run: RunDir, recipe: Recipe, *, resume: bool, overwrite: bool) -> None:
    """Refuse to mix two runs in one directory, and to resume with a different recipe. Writes nothing."""
    if resume and overwrite:
        raise RmdataError("--resume and --overwrite contradict each other: pick one")
    holds_run = run.recipe.exists() or run.checkpoints.exists()
    if holds_run and not (resume or overwrite):
        raise RmdataError(
            f"{run.path} already holds a run: pass --resume to continue it, --overwrite to start over, "
            "or --output-dir for a new directory"
        )
    if resume and run.recipe.exists() and run.recipe.read_text(encoding="utf-8") != dump_recipe(recipe):
        raise RmdataError(
            f"--resume: the recipe differs from the one {run.path} was started with ({run.recipe}); "
            "resume with the same recipe and --set values, or start a new run"
        )


def start_run(run: RunDir, recipe: Recipe, *, overwrite: bool) -> None:
    """Create the run directory (emptied first with ``overwrite``) and write the resolved recipe."""
    if overwrite and run.path.exists():
        shutil.rmtree(run.path)
    run.path.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run.recipe, dump_recipe(recipe))


def environment_info() -> dict[str, Any]:
    """Versions that decide numerics, for run.json."""
    import torch
    import transformers

    info: dict[str, Any] = {
        "rmdata": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "platform": platform.platform(),
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def write_json(path: Path, value: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(value, indent=2, sort_keys=False, default=str) + "\n")


def append_metrics(run: RunDir, record: dict[str, Any]) -> None:
    with run.metrics.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()


def truncate_metrics(run: RunDir, after_step: int) -> None:
    """On resume, forget lines logged after the checkpoint so metrics.jsonl reads as one unbroken run."""
    if not run.metrics.exists():
        return
    kept = [
        line for line in run.metrics.read_text(encoding="utf-8").splitlines() if json.loads(line)["step"] <= after_step
    ]
    write_text_atomic(run.metrics, "".join(line + "\n" for line in kept))


def point_latest(run: RunDir) -> None:
    """Make ``<parent>/latest`` a relative symlink to this run (replaced atomically)."""
    link = run.path.parent / "latest"
    tmp = run.path.parent / ".latest.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(run.path.name)
    os.replace(tmp, link)
