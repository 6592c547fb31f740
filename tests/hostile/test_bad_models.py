"""Bad model directories through the real CLI: one ``error:`` line naming the file, exit non-zero, nothing written.

``rmdata score`` / ``eval`` with ``--model BAD`` and ``rmdata train`` with ``model.name_or_path=BAD``: a truncated
``model.safetensors``, a score head of the wrong shape, a ``config.json`` that is ``[]`` or not JSON, a
``reward_token_id`` outside the vocabulary (which used to crash mid-scoring and leave an empty marked output).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from rmdata.model.export import save_reward_model
from tests.core_helpers import build_tiny, randomize_head
from tests.hostile.cli import run_cli


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    built = build_tiny("llama")
    randomize_head(built.model)
    return save_reward_model(built, tmp_path_factory.mktemp("models") / "export")


def _truncate(d: Path) -> None:
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])


def _two_score_rows(d: Path) -> None:
    tensors = load_file(d / "model.safetensors")
    tensors["score.weight"] = torch.randn(2, tensors["score.weight"].shape[1])
    save_file(tensors, d / "model.safetensors", metadata={"format": "pt"})


def _reward_token_outside(d: Path) -> None:
    config = json.loads((d / "config.json").read_text())
    config["reward_token_id"] = config["vocab_size"] + 7
    (d / "config.json").write_text(json.dumps(config))


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated": (_truncate, "model.safetensors: truncated"),
    "head [2, hidden]": (_two_score_rows, "model.safetensors: score head score.weight has shape [2, 64]"),
    "config []": (lambda d: (d / "config.json").write_text("[]"), "config.json: holds a JSON list"),
    "config not JSON": (lambda d: (d / "config.json").write_text("{"), "config.json: not readable JSON"),
    "reward token outside": (_reward_token_outside, "reward_token_id=268 is outside the vocabulary"),
}


def _damaged(export_dir: Path, tmp_path: Path, case: str) -> tuple[Path, str]:
    damage, message = DAMAGE[case]
    directory = shutil.copytree(export_dir, tmp_path / "model")
    damage(directory)
    return directory, message


@pytest.mark.parametrize("case", list(DAMAGE))
def test_score_refuses_a_bad_model_before_writing(
    export_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    directory, message = _damaged(export_dir, tmp_path, case)
    out = tmp_path / "scores"
    result = run_cli(["score", "builtin:tiny-corpus", "--model", str(directory), "-o", str(out)], monkeypatch, tmp_path)
    assert result.code != 0 and result.error_lines == 1
    assert message in result.err and str(directory) in result.err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # nothing else written anywhere


@pytest.mark.parametrize("case", ["truncated", "head [2, hidden]", "reward token outside"])
def test_eval_refuses_a_bad_model(export_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    directory, message = _damaged(export_dir, tmp_path, case)
    result = run_cli(["eval", "builtin:tiny-prefs", "--model", str(directory)], monkeypatch, tmp_path)
    assert result.code != 0 and result.error_lines == 1 and message in result.err
    assert result.out == ""


@pytest.mark.parametrize("case", ["truncated", "config []", "config not JSON"])
def test_train_refuses_a_bad_backbone_before_the_run_directory(
    export_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    directory, message = _damaged(export_dir, tmp_path, case)
    run = tmp_path / "run"
    args = ["train", "--set", f"model.name_or_path={directory}", "--set", "train.max_steps=1", "-o", str(run)]
    result = run_cli(args, monkeypatch, tmp_path)
    assert result.code != 0 and result.error_lines == 1 and message in result.err
    assert not run.exists()
