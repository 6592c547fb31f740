"""Hostile score tables given to ``rmdata filter`` and ``rmdata build-dpo`` through the real CLI entry point.

Every case: exit 2, exactly one ``error:`` line naming the file (and the row or column where there is one),
no traceback, no output directory, no rejects file, the input unchanged.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from tests.curate.scores import row, write_scores
from tests.hostile.cli import run_cli

ROWS = [row(f"p{i % 4}", f"r{i}", float(i % 7), text="answer " * (5 + i)) for i in range(120)]


def with_rewards(rewards: list[object]) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        rows = [{**r, "reward": v} for r, v in zip(ROWS, rewards, strict=False)] + ROWS[len(rewards) :]
        pl.DataFrame(rows, strict=False).write_parquet(path)

    return make


def plain_prompts(path: Path) -> None:
    pl.DataFrame([{**r, "prompt": f"question {r['prompt_id']}"} for r in ROWS]).write_parquet(path)


def damaged_column(column: str) -> Callable[[Path], None]:
    """A valid footer over a data page of ``column`` whose zstd frame header was overwritten."""

    def make(path: Path) -> None:
        write_scores(path, ROWS)
        chunk = next(
            c
            for c in (pq.read_metadata(path).row_group(0).column(i) for i in range(pq.read_metadata(path).num_columns))
            if c.path_in_schema == column
        )
        data = bytearray(path.read_bytes())
        frame = data.index(ZSTD_MAGIC, chunk.data_page_offset)  # the data page's compressed payload
        data[frame : frame + 8] = b"\x00" * 8
        path.write_bytes(bytes(data))
        pq.read_metadata(io.BytesIO(bytes(data)))  # the footer still reads
        with pytest.raises(pl.exceptions.PolarsError):  # and the data does not
            pl.read_parquet(path, columns=[column.split(".")[0]])

    return make


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
NUMBERS: list[float] = [float(i % 7) for i in range(len(ROWS))]
CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "reward as strings": (with_rewards([str(v) for v in NUMBERS]), "column reward is String, not a number"),
    "prompt as plain strings": (plain_prompts, "column prompt is String, not a message list"),
    "damaged response pages": (damaged_column("response"), "its Parquet data cannot be read"),
    "damaged prompt pages": (damaged_column("prompt.list.element.content"), "its Parquet data cannot be read"),
    "damaged carried column pages": (damaged_column("model"), "its Parquet data cannot be read"),
    "infinite reward": (with_rewards([*NUMBERS[:5], float("inf")]), "row 5: reward is inf, not a finite number"),
    "two +inf rewards of one prompt": (
        with_rewards([float("inf"), 0.0, 1.0, 2.0, float("inf")]),
        "row 0: reward is inf, not a finite number (1 more rows too)",
    ),
    "NaN reward": (with_rewards([float("nan")]), "row 0: reward is nan, not a finite number"),
}


@pytest.mark.parametrize("command", ["filter", "build-dpo"])
@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_score_table_is_one_error_line_and_nothing_written(
    case: str, command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make, message = CASES[case]
    table = tmp_path / "scores.parquet"
    make(table)
    before = table.read_bytes()
    result = run_cli([command, str(table), "-o", "out", "--rejects", "rejects.jsonl"], monkeypatch, tmp_path)
    assert result.code == 2 and result.error_lines == 1, result.err
    assert f"{table}: " in result.err and message in result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.parquet"]
    assert table.read_bytes() == before


@pytest.mark.parametrize("command", ["filter", "build-dpo"])
def test_non_finite_rewards_are_dropped_with_a_reason_under_skip(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prompt p0's two best rows score +inf: never selected, never paired (their margin would be NaN)."""
    rows = [row("p0", "a", float("inf")), row("p0", "b", float("inf")), row("p0", "c", 1.0), row("p0", "d", 0.0)]
    table = write_scores(tmp_path / "scores.parquet", rows)
    args = [command, str(table), "-o", "out", "--rejects", "rejects.parquet", "--on-error", "skip"]
    args += ["--top-k", "1"] if command == "filter" else []
    result = run_cli(args, monkeypatch, tmp_path)
    assert result.code == 0, result.err
    out = pl.read_parquet(tmp_path / "out" / "data" / "*.parquet")
    if command == "filter":
        assert out.get_column("response_id").to_list() == ["c"]
    else:
        assert out.select("chosen_id", "rejected_id", "margin").rows() == [("c", "d", 1.0)]
    dropped = pl.read_parquet(tmp_path / "rejects.parquet")
    assert dict(zip(dropped["response_id"], dropped["reason"], strict=True)) == {
        "a": "non_finite_reward", "b": "non_finite_reward", **({"d": "outside_top_k"} if command == "filter" else {})
    }  # fmt: skip
