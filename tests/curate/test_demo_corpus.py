"""The bundled demo corpus: regenerated exactly by its tool, prompts outside the training set, readable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rmdata.config import resolve_data_path
from rmdata.data.load import load_dataset_records

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "rmdata" / "resources" / "data"


def test_the_tool_regenerates_the_bundled_file(tmp_path: Path) -> None:
    before = (DATA / "tiny-corpus.jsonl").read_bytes()
    subprocess.run([sys.executable, str(REPO / "tools" / "make_tiny_corpus.py")], check=True, capture_output=True)
    assert (DATA / "tiny-corpus.jsonl").read_bytes() == before


def test_prompts_are_new_and_each_has_two_followers_and_two_breakers() -> None:
    training = {json.loads(line)["prompt"] for line in (DATA / "tiny-prefs.jsonl").read_text().splitlines()}
    records = [json.loads(line) for line in (DATA / "tiny-corpus.jsonl").read_text().splitlines()]
    prompts = [r["prompt"] for r in records]
    assert len(records) == 200 and len(set(prompts)) == 200 and not set(prompts) & training
    assert all(len(set(r["responses"])) == 4 and sorted(r["follows"]) == [False, False, True, True] for r in records)
    assert {r["task"] for r in records} == {"case", "ending", "length"}
    case = next(r for r in records if r["task"] == "case")
    asked = str.upper if "uppercase" in case["prompt"] else str.lower
    assert all(
        (asked(text) == text) == follows for text, follows in zip(case["responses"], case["follows"], strict=True)
    )


def test_builtin_name_reads_as_multi_response_rows() -> None:
    loaded = load_dataset_records([resolve_data_path("builtin:tiny-corpus")])
    assert loaded.format == "multi-response" and loaded.frame.height == 800
    assert {"prompt_id", "response_id", "response_index", "task", "follows"} <= set(loaded.frame.columns)
    assert loaded.frame["prompt_id"].n_unique() == 200
