"""Both outputs load with `datasets.load_dataset(DIR)` and pass TRL's own conversational checks."""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest
from trl.data_utils import is_conversational, maybe_apply_chat_template

from rmdata.model.tiny import build_tiny_tokenizer
from tests.curate.scores import dpo_rows, filter_rows, row

ROWS = [row("p1", "a", 2.0), row("p1", "b", 0.0), row("p2", "c", 1.0), row("p2", "d", 3.0)]


def load(directory: Path) -> datasets.Dataset:
    return datasets.load_dataset(str(directory), split="train")


def test_sft_rows_are_conversational_and_render_with_a_chat_template(tmp_path: Path) -> None:
    filter_rows(tmp_path, ROWS, top_k=1)
    ds = load(tmp_path / "sft")
    assert ds.num_rows == 2 and set(ds.column_names) >= {"messages", "prompt_id", "response_id", "reward", "rank"}
    example = ds[0]
    assert is_conversational(example)
    text = maybe_apply_chat_template({"messages": example["messages"]}, build_tiny_tokenizer())["text"]
    assert text == "<|im_start|>user\nquestion p1<|im_end|>\n<|im_start|>assistant\nanswer a<|im_end|>\n"


def test_dpo_rows_are_conversational_preferences(tmp_path: Path) -> None:
    dpo_rows(tmp_path, ROWS)
    ds = load(tmp_path / "dpo")
    assert ds.num_rows == 2
    example = ds[0]
    assert is_conversational(example)
    rendered = maybe_apply_chat_template(
        {k: example[k] for k in ("prompt", "chosen", "rejected")}, build_tiny_tokenizer()
    )
    assert rendered["prompt"] == "<|im_start|>user\nquestion p1<|im_end|>\n<|im_start|>assistant\n"
    assert rendered["chosen"] == "answer a<|im_end|>\n" and rendered["rejected"] == "answer b<|im_end|>\n"
    assert example["chosen_reward"] - example["rejected_reward"] == pytest.approx(example["margin"])


def test_a_rerun_into_the_same_directory_is_not_served_from_the_datasets_cache(tmp_path: Path) -> None:
    """datasets caches a local directory by its name and card header: the card carries the data's byte count so a
    re-run with other rules is read afresh (without it the second load returned the first run's 2 rows)."""
    rows = ROWS + [row("p1", "e", 1.0), row("p2", "f", 2.5)]
    cache = str(tmp_path / "hf-cache")
    filter_rows(tmp_path, rows, top_k=1)
    assert datasets.load_dataset(str(tmp_path / "sft"), split="train", cache_dir=cache).num_rows == 2
    filter_rows(tmp_path, rows, top_k=2)
    assert datasets.load_dataset(str(tmp_path / "sft"), split="train", cache_dir=cache).num_rows == 4
