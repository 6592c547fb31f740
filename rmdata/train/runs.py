"""The run directory: its layout, run.json, metrics.jsonl and the `latest` link.

```
rmdata-out/runs/<name>/
  .rmdata.json         marker: rmdata made this run directory (--overwrite and --resume touch only these)
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
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rmdata import __version__
from rmdata.config import Recipe, dump_recipe
from rmdata.dataset_dir import MARKER, read_marker, write_marker
from rmdata.errors import RmdataError
from rmdata.io import write_text_atomic

DEFAULT_ROOT = Path("rmdata-out") / "runs"
RUN_KIND = "run"  # the kind in a run directory's .rmdata.json marker


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


def is_run_dir(path: Path) -> bool:
    """A directory rmdata made for a run: its marker says so, or (runs made before the marker existed) it
    holds both ``run.json`` and ``recipe.yaml``."""
    if not path.is_dir() or path.is_symlink():
        return False
    marker = read_marker(path)
    if marker is not None:
        return marker["kind"] == RUN_KIND
    return (path / "run.json").is_file() and (path / "recipe.yaml").is_file()


def check_run_dir(run: RunDir, recipe: Recipe, *, resume: bool, overwrite: bool) -> None:
    """Refuse to mix two runs in one directory, to resume with a different recipe, and to replace or resume
    into a directory rmdata did not make. Writes nothing."""
    if resume and overwrite:
        raise RmdataError("--resume and --overwrite contradict each other: pick one")
    if run.path.exists() and not run.path.is_dir():
        raise RmdataError(f"--output-dir {run.path} is a file, not a directory; choose another output directory")
    if not run.path.exists() or not any(run.path.iterdir()):
        return
    if not is_run_dir(run.path):
        if overwrite or resume:
            flag = "--overwrite" if overwrite else "--resume"
            raise RmdataError(
                f"{run.path} holds files rmdata did not make (no {MARKER}, no run.json and recipe.yaml); {flag} "
                "only touches rmdata's own run directories: choose another --output-dir, or move those files away"
            )
        raise RmdataError(f"{run.path} already exists and holds files rmdata did not make; choose another --output-dir")
    if not (resume or overwrite):
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
    """Create the run directory (emptied first with ``overwrite``, when rmdata made it), mark it as a run and
    write the resolved recipe."""
    if overwrite and run.path.exists() and any(run.path.iterdir()):
        if not is_run_dir(run.path):  # checked before anything ran; checked again right before deleting
            raise RmdataError(f"{run.path} is not a run directory rmdata made; refusing to delete it")
        shutil.rmtree(run.path)
    run.path.mkdir(parents=True, exist_ok=True)
    write_marker(run.path, RUN_KIND)
    write_text_atomic(run.recipe, dump_recipe(recipe))


def marker_stamp(path: Path) -> tuple[int, int] | None:
    """(inode, mtime) of ``path``'s rmdata marker, or None: a new stamp means a new run was started there."""
    try:
        st = (path / MARKER).stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def discard_unfinished_run(run: RunDir, *, stamp_before: tuple[int, int] | None, keep_directory: bool) -> None:
    """After a new run was refused or failed: remove what it wrote, so nothing is left behind.

    Only a run this process started (its marker's stamp differs from ``stamp_before``) that holds no
    checkpoint and no model is touched; ``keep_directory`` (the directory existed before) empties it instead.
    """
    stamp = marker_stamp(run.path)
    if stamp is None or stamp == stamp_before or not is_run_dir(run.path) or run.final.exists():
        return
    if run.checkpoints.is_dir() and any(run.checkpoints.iterdir()):
        return
    if not keep_directory:
        shutil.rmtree(run.path)
        return
    for entry in run.path.iterdir():
        shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()


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


def point_latest(run: RunDir) -> str | None:
    """Make ``<parent>/latest`` a relative symlink to this run (replaced atomically).

    Only a ``latest`` rmdata made is replaced: a symlink to a sibling run directory. A user's file,
    directory or other link of that name is left alone; the return value is then a one-line warning
    (also printed on stderr), else None.
    """
    link = run.path.parent / "latest"
    if link.exists() or link.is_symlink():
        target = os.readlink(link) if link.is_symlink() else None
        ours = target is not None and "/" not in target and is_run_dir(run.path.parent / target)
        if not ours:
            warning = (
                f"warning: {link} exists and is not a link rmdata made; left it alone, so it does not "
                f"point to {run.path.name} (move it away to get the link)"
            )
            print(warning, file=sys.stderr)
            return warning
    tmp = run.path.parent / f".latest.tmp-{os.getpid()}"
    try:
        if tmp.is_symlink():
            tmp.unlink()
        tmp.symlink_to(run.path.name)
        os.replace(tmp, link)
    finally:
        if tmp.is_symlink():
            tmp.unlink()
    return None
