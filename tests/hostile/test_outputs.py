"""Hostile output paths and checkpoints: nothing unpickles, nothing rmdata did not make is replaced.

Classes: a planted pickle in every checkpoint file; damaged checkpoint files; ``--overwrite`` / ``-o`` on
a user's directory or file; a user's ``latest``; ``atomic_directory`` on unmarked directories; rejects
holding text that is not valid Unicode.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from rmdata.config import dump_recipe, load_recipe
from rmdata.data.drops import INVALID_RECORD, Drop
from rmdata.dataset_dir import atomic_directory, write_marker
from rmdata.errors import RmdataError
from rmdata.io import write_rejects
from rmdata.train.checkpoint import FILES, load_checkpoint, save_checkpoint
from rmdata.train.runs import RunDir, is_run_dir, point_latest
from tests.helpers import write_pairs
from tests.hostile.cli import run_cli

TINY = ["train.max_steps=2", "model.tiny.hidden_size=32", "model.tiny.intermediate_size=64"]


class Planted:
    """Unpickling this creates a directory: proof that code ran."""

    def __init__(self, proof: Path) -> None:
        self.proof = proof

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.makedirs, (str(self.proof),)


def tiny_checkpoint(root: Path) -> tuple[Path, torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.ones(2, 3)).sum().backward()
    optimizer.step()
    return save_checkpoint(root, 1, model, optimizer, {"total_steps": 2}, keep=2), model, optimizer


def test_a_checkpoint_restores_every_rng_from_tensors_and_json(tmp_path: Path) -> None:
    import random

    import numpy as np

    path, model, optimizer = tiny_checkpoint(tmp_path)
    assert sorted(p.name for p in path.iterdir()) == sorted([*FILES, ".rmdata.json"])
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    save_checkpoint(tmp_path, 2, model, optimizer, {}, keep=3)
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    random.seed(2)
    np.random.seed(2)
    torch.manual_seed(2)
    load_checkpoint(tmp_path / "step-2", model, optimizer)
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected


@pytest.mark.parametrize("name", ["trainable.pt", "optimizer.pt", "rng.pt"])
def test_a_planted_pickle_never_runs(name: str, tmp_path: Path) -> None:
    path, model, optimizer = tiny_checkpoint(tmp_path / "ckpt")
    proof = tmp_path / "code-ran"
    torch.save({"torch": Planted(proof)}, path / name)
    with pytest.raises(RmdataError) as caught:
        load_checkpoint(path, model, optimizer)
    message = str(caught.value)
    assert f"{path / name}: holds objects other than tensors" in message and "\n" not in message
    assert not proof.exists()


@pytest.mark.parametrize("name", ["trainable.pt", "optimizer.pt", "rng.pt"])
def test_a_truncated_checkpoint_file_is_one_line_naming_it(name: str, tmp_path: Path) -> None:
    path, model, optimizer = tiny_checkpoint(tmp_path)
    data = (path / name).read_bytes()
    (path / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(RmdataError, match=rf"{name}: cannot be read .*truncated or damaged") as caught:
        load_checkpoint(path, model, optimizer)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("state.json", "{broken", "state.json: not valid JSON"),
        ("state.json", "[]", "state.json: must hold a JSON object"),
        ("state.json", '{"step": "1"}', "no step number"),
        ("rng.json", '{"random": 1}', "cannot restore the checkpoint"),
    ],
)
def test_damaged_json_in_a_checkpoint_is_one_line(name: str, content: str, message: str, tmp_path: Path) -> None:
    path, model, optimizer = tiny_checkpoint(tmp_path)
    (path / name).write_text(content)
    with pytest.raises(RmdataError, match=message):
        load_checkpoint(path, model, optimizer)


def planted_run(tmp_path: Path, pairs: Path, plant: str) -> tuple[list[str], Path]:
    """A run directory as rmdata writes it, with a planted pickle in one checkpoint file."""
    overrides = [f"data.train={pairs}", *TINY]
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    write_marker(run.path, "run")
    run.recipe.write_text(dump_recipe(load_recipe(None, overrides)))
    path, _, _ = tiny_checkpoint(run.checkpoints)
    torch.save(Planted(tmp_path / "code-ran"), path / plant)
    args = ["train", *(x for o in overrides for x in ("--set", o)), "-o", str(run.path), "--resume"]
    return args, tmp_path / "code-ran"


def test_resume_from_a_planted_checkpoint_fails_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args, proof = planted_run(tmp_path, write_pairs(tmp_path / "pairs.jsonl"), "rng.pt")
    result = run_cli(args, monkeypatch, tmp_path)
    assert result.code == 2 and result.error_lines == 1 and "rng.pt: holds objects other than tensors" in result.err
    assert not proof.exists()


def test_overwrite_never_deletes_a_users_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pairs = write_pairs(tmp_path / "pairs.jsonl")
    sets = [x for o in [f"data.train={pairs}", *TINY] for x in ("--set", o)]
    mine = tmp_path / "v"
    mine.mkdir()
    (mine / "notes.txt").write_text("x")
    for extra in (["--overwrite"], ["--resume"], []):
        result = run_cli(["train", *sets, "-o", str(mine), *extra], monkeypatch, tmp_path)
        assert result.code == 2 and result.error_lines == 1, result.err
        assert "rmdata did not make" in result.err
        assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"] and (mine / "notes.txt").read_text() == "x"
    (tmp_path / "afile").write_text("keep")
    result = run_cli(["train", *sets, "-o", str(tmp_path / "afile")], monkeypatch, tmp_path)
    assert result.code == 2 and "is a file, not a directory" in result.err
    assert (tmp_path / "afile").read_text() == "keep"


def test_run_directories_are_recognized_by_marker_or_by_their_files(tmp_path: Path) -> None:
    marked, legacy, other, partial = (tmp_path / n for n in ("marked", "legacy", "other", "partial"))
    for d in (marked, legacy, other, partial):
        d.mkdir()
    write_marker(marked, "run")
    (legacy / "run.json").write_text("{}")
    (legacy / "recipe.yaml").write_text("name: x\n")
    write_marker(other, "scores")
    (partial / "recipe.yaml").write_text("mine")
    assert [is_run_dir(d) for d in (marked, legacy, other, partial)] == [True, True, False, False]


@pytest.mark.parametrize("kind", ["file", "directory", "foreign link", "link to a user directory"])
def test_a_users_latest_is_left_alone(kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = RunDir(tmp_path / "run-a")
    run.path.mkdir()
    write_marker(run.path, "run")
    latest = tmp_path / "latest"
    if kind == "file":
        latest.write_text("mine")
    elif kind == "directory":
        latest.mkdir()
        (latest / "x").write_text("mine")
    elif kind == "foreign link":
        latest.symlink_to("/tmp")
    else:
        (tmp_path / "user-dir").mkdir()
        latest.symlink_to("user-dir")
    before = os.readlink(latest) if latest.is_symlink() else None
    warning = point_latest(run)
    assert warning is not None and "not a link rmdata made" in warning
    assert capsys.readouterr().err.strip() == warning
    assert (os.readlink(latest) if latest.is_symlink() else None) == before
    if kind == "file":
        assert latest.read_text() == "mine"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".latest")]


def test_latest_moves_between_rmdata_runs(tmp_path: Path) -> None:
    for name in ("run-a", "run-b"):
        (tmp_path / name).mkdir()
        write_marker(tmp_path / name, "run")
        assert point_latest(RunDir(tmp_path / name)) is None
        assert os.readlink(tmp_path / "latest") == name
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".latest")]


def test_atomic_directory_replaces_only_its_own_kind(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with atomic_directory(out, kind="scores") as tmp:
        (tmp / "a").write_text("1")
    with atomic_directory(out, overwrite=True, kind="scores") as tmp:
        (tmp / "a").write_text("2")
    assert (out / "a").read_text() == "2"
    with (
        pytest.raises(RmdataError, match="rmdata scores directory, not dpo"),
        atomic_directory(out, overwrite=True, kind="dpo"),
    ):
        pass
    user = tmp_path / "user"
    user.mkdir()
    (user / "notes.txt").write_text("x")
    with (
        pytest.raises(RmdataError, match="holds files rmdata did not make"),
        atomic_directory(user, overwrite=True, kind="scores"),
    ):
        pass
    with pytest.raises(RmdataError, match="holds files rmdata did not make"), atomic_directory(user, overwrite=True):
        pass
    with atomic_directory(out, overwrite=True) as tmp:  # no kind given: any rmdata output may be replaced
        (tmp / "a").write_text("3")
    (tmp_path / "file").write_text("x")
    with pytest.raises(RmdataError, match="is a file"), atomic_directory(tmp_path / "file", overwrite=True):
        pass
    assert (user / "notes.txt").read_text() == "x" and (tmp_path / "file").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "out", "user"]


def test_rejects_holding_lone_surrogates_are_valid_utf8(tmp_path: Path) -> None:
    drop = Drop(INVALID_RECORD, "bad", "p.jsonl:1", row={"prompt": "\ud800", "note": "naïve"})
    assert write_rejects(tmp_path / "r.jsonl", [drop, {"source": "x", "reason": "r", "message": "\udfff"}]) == 2
    lines = (tmp_path / "r.jsonl").read_bytes().decode("utf-8").splitlines()  # strict UTF-8
    assert json.loads(lines[0]) == drop.to_json() and json.loads(lines[1])["message"] == "\udfff"
