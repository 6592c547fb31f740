"""rmdata reads the directories it writes (and Hub-layout directories with side files) as the dataset they
hold: their data files only, never ``manifest.json``, ``rejects.jsonl``, the card or the plots."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from rmdata.data.inputs import resolve_input
from tests.hostile.cli import run_cli


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.score.models import save_hf_reward_model

    return save_hf_reward_model(tmp_path_factory.mktemp("models") / "rm")


def write_rows(path: Path, n: int, prefix: str = "q") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"prompt": f"{prefix}{i}", "response": f"a{i}"}) + "\n" for i in range(n)))
    return path


def test_inspect_and_score_read_a_score_directory_as_its_rows(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_rows(tmp_path / "c.jsonl", 7)
    (tmp_path / "c.jsonl").write_text((tmp_path / "c.jsonl").read_text() + "{broken\n")  # one reject, for rejects.jsonl
    first = run_cli(
        ["score", "c.jsonl", "-m", str(model_dir), "-o", "scores", "--on-error", "skip"], monkeypatch, tmp_path
    )
    assert first.code == 0, first.err
    assert {"manifest.json", "README.md", "rejects.jsonl", "data"} <= {p.name for p in (tmp_path / "scores").iterdir()}
    inspected = run_cli(["inspect", "scores", "--json"], monkeypatch, tmp_path)
    assert inspected.code == 0, inspected.err
    report = json.loads(inspected.out)
    assert report["records"] == 7 and report["invalid"] == 0, report
    again = run_cli(["score", "scores", "-m", str(model_dir), "-o", "rescored"], monkeypatch, tmp_path)
    assert again.code == 0, again.err
    rows = pl.read_parquet(tmp_path / "rescored" / "data" / "*.parquet")
    assert rows.height == 7 and rows["response"].to_list() == [f"a{i}" for i in range(7)]
    assert rows["reward"].to_list() == pl.read_parquet(tmp_path / "scores" / "data" / "*.parquet")["reward"].to_list()


def test_a_hub_directory_with_side_files_reads_its_data_folder(tmp_path: Path) -> None:
    root = tmp_path / "hub"
    write_rows(root / "data" / "train-00000-of-00001.jsonl", 3)
    (root / "manifest.json").write_text('{"rows": 3}')
    write_rows(root / "rejects.jsonl", 2, prefix="bad")
    (root / "notes.json").write_text("[]")
    info = resolve_input(str(root))
    assert info.files == [str(root / "data" / "train-00000-of-00001.jsonl")]


def test_a_card_configs_header_names_the_files_read(tmp_path: Path) -> None:
    root = tmp_path / "hub"
    write_rows(root / "shards" / "part-0.jsonl", 3)
    write_rows(root / "shards" / "part-1.jsonl", 3)
    write_rows(root / "extra.jsonl", 2)
    card = (
        "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: shards/*.jsonl\n---\n# x\n"
    )
    (root / "README.md").write_text(card)
    info = resolve_input(str(root))
    assert info.files == [str(root / "shards" / "part-0.jsonl"), str(root / "shards" / "part-1.jsonl")]


def test_a_marked_output_without_shards_is_one_clear_error(tmp_path: Path) -> None:
    from rmdata.dataset_dir import write_marker
    from rmdata.errors import RmdataError

    (tmp_path / "scores").mkdir()
    write_marker(tmp_path / "scores", "scores")
    (tmp_path / "scores" / "manifest.json").write_text("{}")
    with pytest.raises(RmdataError, match="an rmdata output with no data files under data/"):
        resolve_input(str(tmp_path / "scores"))
