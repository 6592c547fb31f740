"""Atomic writers: the destination holds the old content or the new, never a partial file."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from rmdata.io import atomic_path, write_jsonl, write_parquet, write_rejects, write_text_atomic


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_successful_write_replaces_and_creates_parent_dirs(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.txt"
    write_text_atomic(target, "new ✓")
    assert target.read_text(encoding="utf-8") == "new ✓"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_write_rejects_is_jsonl_and_stringifies_what_json_cannot_hold(tmp_path: Path) -> None:
    rejects = [
        {"source": "a.jsonl:3", "reason": "unreadable_record", "message": "malformed JSON", "record": None},
        {"source": "b.parquet:0", "reason": "invalid_record", "message": "chosen is empty",
         "record": {"chosen": "", "day": dt.date(2024, 5, 1), "text": "naïve"}},
    ]  # fmt: skip
    assert write_rejects(tmp_path / "rejects.jsonl", rejects) == 2
    lines = (tmp_path / "rejects.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0]) == rejects[0]
    assert json.loads(lines[1])["record"] == {"chosen": "", "day": "2024-05-01", "text": "naïve"}
    assert "naïve" in lines[1]  # written as UTF-8, not \\u escapes


def test_write_jsonl_counts_rows_from_a_generator(tmp_path: Path) -> None:
    assert write_jsonl(tmp_path / "x.jsonl", ({"i": i} for i in range(3))) == 3
    assert (tmp_path / "x.jsonl").read_text() == '{"i": 0}\n{"i": 1}\n{"i": 2}\n'


def test_write_parquet_round_trips(tmp_path: Path) -> None:
    frame = pl.DataFrame({"a": [1, 2], "b": ["x", None]})
    write_parquet(frame, tmp_path / "f.parquet")
    assert pl.read_parquet(tmp_path / "f.parquet").equals(frame)
