"""Resumable training checkpoints, written atomically, the last k kept. Nothing in them is unpickled.

``checkpoints/step-N/`` holds the trainable parameters (the whole model in full fine-tuning; adapters and
value head with LoRA/QLoRA, whose frozen base is rebuilt from the recipe) in ``trainable.pt``, the optimizer
state in ``optimizer.pt``, the torch CPU/CUDA RNG states as tensors in ``rng.pt``, the Python ``random`` and
NumPy RNG states in ``rng.json``, and ``state.json``. The ``.pt`` files are read with
``torch.load(weights_only=True)``, which builds tensors and plain containers only: a checkpoint handed to you
cannot run code on ``--resume``. A checkpoint is written to a hidden temporary directory and renamed when
complete, so a directory named ``step-N`` is always whole.
"""

from __future__ import annotations

import json
import pickle
import random
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rmdata.dataset_dir import atomic_directory
from rmdata.errors import RmdataError

_STEP_DIR = re.compile(r"^step-(\d+)$")
FILES = ("trainable.pt", "optimizer.pt", "rng.pt", "rng.json", "state.json")


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(
    root: Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any], keep: int
) -> Path:
    """Write ``root/step-<step>`` atomically and delete all but the newest ``keep`` checkpoints."""
    final = root / f"step-{step}"
    with atomic_directory(final, overwrite=True, kind="checkpoint") as tmp:
        torch.save(trainable_state(model), tmp / "trainable.pt")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(_torch_rng(), tmp / "rng.pt")
        (tmp / "rng.json").write_text(json.dumps(_python_rng()), encoding="utf-8")
        (tmp / "state.json").write_text(json.dumps({"step": step, **state}, indent=2), encoding="utf-8")
    for old in list_checkpoints(root)[:-keep]:
        shutil.rmtree(old)
    return final


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints, oldest first (half-written ``.tmp`` directories are ignored)."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore parameters, optimizer and RNG from ``path``; returns its ``state.json``.

    Every file is read and checked before anything is restored; a damaged or foreign file is one
    RmdataError naming it.
    """
    saved = _load_tensors(path / "trainable.pt")
    optimizer_state = _load_tensors(path / "optimizer.pt")
    rng = _load_tensors(path / "rng.pt")
    # rng.json is absent in checkpoints written before it existed; they restore the torch states only
    python_rng = _load_json(path / "rng.json") if (path / "rng.json").exists() else None
    state = _load_json(path / "state.json")
    if not isinstance(state.get("step"), int) or isinstance(state["step"], bool) or state["step"] < 0:
        raise RmdataError(f"{path / 'state.json'}: no step number in it; the checkpoint is damaged, delete {path}")
    params = dict(model.named_parameters())
    expected = {name for name, p in params.items() if p.requires_grad}
    if not isinstance(saved, dict) or set(saved) != expected:
        raise RmdataError(f"{path}: its parameters do not match this model (was the recipe changed?)")
    if not isinstance(rng, dict) or not isinstance(rng.get("torch"), torch.Tensor):
        raise RmdataError(f"{path / 'rng.pt'}: holds no torch RNG state; the checkpoint is damaged, delete {path}")
    try:
        with torch.no_grad():
            for name, value in saved.items():
                params[name].copy_(value)
        optimizer.load_state_dict(optimizer_state)
        torch.set_rng_state(rng["torch"])
        cuda = [rng[k] for k in sorted(rng, key=_cuda_index) if k.startswith("cuda:")]
        if cuda and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(cuda)
        if python_rng is not None:
            _restore_python_rng(python_rng)
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as err:
        raise RmdataError(
            f"{path}: cannot restore the checkpoint ({str(err).splitlines()[0]}); was the recipe changed, or is it "
            f"damaged? delete {path} to resume from the one before"
        ) from err
    return state


def _torch_rng() -> dict[str, torch.Tensor]:
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng.update({f"cuda:{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    return rng


def _cuda_index(key: str) -> int:
    return int(key.split(":", 1)[1]) if key.startswith("cuda:") else -1


def _python_rng() -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    numpy_state = np.random.get_state(legacy=True)
    assert isinstance(numpy_state, tuple)  # legacy=True: (name, keys, pos, has_gauss, cached)
    name, keys, pos, has_gauss, cached = numpy_state
    return {
        "random": {"version": version, "state": list(internal), "gauss": gauss},
        "numpy": {"name": name, "keys": keys.tolist(), "pos": pos, "has_gauss": has_gauss, "cached": cached},
    }


def _restore_python_rng(saved: dict[str, Any]) -> None:
    py, npy = saved["random"], saved["numpy"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    keys = np.asarray(npy["keys"], dtype=np.uint32)
    np.random.set_state((npy["name"], keys, npy["pos"], npy["has_gauss"], npy["cached"]))


def _load_tensors(path: Path) -> Any:
    """``torch.load`` that builds tensors and containers only; any failure is one line naming the file."""
    if not path.is_file():
        raise RmdataError(f"{path}: missing; the checkpoint is incomplete, delete {path.parent} and resume again")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise RmdataError(
            f"{path}: holds objects other than tensors, which rmdata never writes; refusing to load it "
            "(it could run code). Delete the checkpoint, or resume only from checkpoints rmdata wrote"
        ) from err
    except (RuntimeError, OSError, EOFError, ValueError, zipfile.BadZipFile) as err:
        raise RmdataError(
            f"{path}: cannot be read ({str(err).splitlines()[0]}); the file is truncated or damaged, "
            f"delete {path.parent} to resume from the checkpoint before"
        ) from err


def _load_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise RmdataError(f"{path}: missing; the checkpoint is incomplete, delete {path.parent}") from err
    except (OSError, ValueError, RecursionError) as err:
        raise RmdataError(f"{path}: not valid JSON ({err}); the checkpoint is damaged, delete {path.parent}") from err
    if not isinstance(value, dict):
        raise RmdataError(f"{path}: must hold a JSON object; the checkpoint is damaged, delete {path.parent}")
    return value
