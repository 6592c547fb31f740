"""Output paths that alias an input, the model or another output, or cannot be written: refused through the
real CLI before anything is written, in one ``error:`` line, leaving every user file as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rmdata.errors import RmdataError
from rmdata.paths import check_output_paths
from tests.curate.scores import row, write_scores
from tests.helpers import write_pairs
from tests.hostile.cli import run_cli

ROWS = [row("p1", "a", 2.0), row("p1", "b", 0.0), row("p2", "c", 1.0), row("p2", "d", 3.0)]
TINY = ["train.max_steps=2", "model.tiny.hidden_size=32", "model.tiny.intermediate_size=64"]


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (None for a directory)."""
    return {str(p.relative_to(root)): None if p.is_dir() else p.read_bytes() for p in sorted(root.rglob("*"))}


def refused(args: list[str], monkeypatch: pytest.MonkeyPatch, cwd: Path, message: str) -> None:
    """``rmdata ARGS`` exits 2 with one error line holding ``message``, and nothing under ``cwd`` changed."""
    before = snapshot(cwd)
    result = run_cli(args, monkeypatch, cwd)
    assert result.code == 2 and result.error_lines == 1, result.err
    assert message in result.err, result.err
    assert snapshot(cwd) == before


@pytest.mark.parametrize("command", ["filter", "build-dpo"])
@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--rejects", "scores.parquet"], "--rejects scores.parquet is input scores.parquet"),
        (["-o", "scores.parquet"], "--output scores.parquet is input scores.parquet"),
        (["-o", "."], "--output . contains input scores.parquet"),
        (["-o", "out", "--rejects", "out"], "--output out is --rejects out"),
        (["-o", "/proc/rmdata-out"], "--output /proc/rmdata-out: cannot write under /proc"),
        (["-o", "out", "--rejects", "adir.jsonl"], "--rejects adir.jsonl is a directory"),
    ],
)
def test_curation_outputs_never_alias_their_inputs(
    command: str, options: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_scores(tmp_path / "scores.parquet", ROWS)
    (tmp_path / "adir.jsonl").mkdir()
    refused([command, "scores.parquet", *options], monkeypatch, tmp_path, message)


def test_rejects_inside_a_score_directory_read_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_scores(tmp_path / "scores" / "data" / "train-00000.parquet", ROWS)
    refused(
        ["build-dpo", "scores", "--rejects", "scores/rejects.jsonl"],
        monkeypatch,
        tmp_path,
        "--rejects scores/rejects.jsonl is inside input scores",
    )


def test_a_symlink_to_the_input_is_the_input(tmp_path: Path) -> None:
    write_scores(tmp_path / "scores.parquet", ROWS)
    (tmp_path / "alias.parquet").symlink_to(tmp_path / "scores.parquet")
    with pytest.raises(RmdataError, match="is input"):
        check_output_paths([("--rejects", tmp_path / "alias.parquet")], [("input", tmp_path / "scores.parquet")])
    check_output_paths([("-o", tmp_path / "out")], [("input", "builtin:tiny-corpus"), ("--model", "org/model")])


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.score.models import save_hf_reward_model

    return save_hf_reward_model(tmp_path_factory.mktemp("models") / "rm")


def corpus(path: Path, **extra: object) -> Path:
    rows = [{"prompt": f"q{i}", "response": f"a{i}", **extra} for i in range(4)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["-o", "MODEL"], "--output MODEL is --model MODEL"),
        (["-o", "MODEL/scores"], "--output MODEL/scores is inside --model MODEL"),
        (["-o", "c.jsonl"], "--output c.jsonl is input c.jsonl"),
        (["-o", "out", "--save-to-disk", "out"], "--output out is --save-to-disk out"),
        (["-o", "out", "--save-to-disk", "out/arrow"], "--save-to-disk out/arrow is inside --output out"),
        (["-o", "out", "--save-to-disk", "MODEL"], "--save-to-disk MODEL is --model MODEL"),
        (["-o", "out", "--save-to-disk", "mine"], "mine holds files rmdata did not make"),
        (["-o", "/proc/rmdata-scores"], "cannot write under /proc"),
        (["-o", "new/../out/x/.."], "--output new/../out/x/..: goes up (..) from new, which is not an existing"),
        (["-o", "out", "--max-length", "1"], "--max-length 1: a scored sequence needs at least 2 tokens"),
        (["-o", "out", "--max-length", "0"], "--max-length 0: a scored sequence needs at least 2 tokens"),
    ],
)
def test_score_outputs_are_checked_before_anything_is_written(
    options: list[str], message: str, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus(tmp_path / "c.jsonl")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    (tmp_path / "MODEL").symlink_to(model_dir)
    refused(["score", "c.jsonl", "-m", "MODEL", *options], monkeypatch, tmp_path, message)


def test_an_input_with_reward_and_reward_input_columns_is_refused(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus(tmp_path / "c.jsonl", reward=1.0, reward_input=2.0)
    refused(
        ["score", "c.jsonl", "-m", str(model_dir), "-o", "out"],
        monkeypatch,
        tmp_path,
        "c.jsonl: has both reward and reward_input columns",
    )


def train_args(pairs: Path, *extra: str) -> list[str]:
    return ["train", *(x for o in [f"data.train={pairs}", *TINY] for x in ("--set", o)), *extra]


def test_train_into_an_unwritable_place_is_refused_before_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pairs = write_pairs(tmp_path / "pairs.jsonl")
    refused(train_args(pairs, "-o", "/proc/rmdata-run"), monkeypatch, tmp_path, "cannot write under /proc")
    refused(train_args(pairs, "-o", "pairs.jsonl/run"), monkeypatch, tmp_path, "is inside data.train")
    refused(train_args(pairs, "-o", "."), monkeypatch, tmp_path, "--output-dir . contains data.train")


@pytest.mark.parametrize("existing", [False, True])
def test_a_refused_train_leaves_nothing_behind(existing: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A check failing after the run directory was made (here: the first step) removes what the run wrote."""
    import rmdata.train.loop

    def refuse(*args: object) -> None:
        raise RmdataError("step 1: refused for the test")

    monkeypatch.setattr(rmdata.train.loop, "run_steps", refuse)
    pairs = write_pairs(tmp_path / "pairs.jsonl")
    if existing:
        (tmp_path / "run").mkdir()
    refused(train_args(pairs, "-o", "run"), monkeypatch, tmp_path, "step 1: refused for the test")
