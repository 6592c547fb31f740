"""rmdata filter's rules on hand-built score tables: every expected row worked out in the test."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest

from rmdata.curate.ranking import ScoreOptions
from tests.curate.scores import filter_rows, read_dir, rejects, row


def test_top_k_1_keeps_the_best_response_and_breaks_ties_by_response_id(tmp_path: Path) -> None:
    rows = [row("p1", "b", 2.0), row("p1", "a", 2.0), row("p1", "c", 1.0), row("p2", "z", -1.0), row("p2", "y", -3.0)]
    result = filter_rows(tmp_path, rows, top_k=1)
    out = read_dir(tmp_path / "sft")
    # p1: a and b tie at 2.0, "a" < "b" wins; p2: z is the best
    assert out.select("prompt_id", "response_id", "rank").rows() == [("p1", "a", 1), ("p2", "z", 1)]
    assert result.rows == 2
    assert rejects(tmp_path / "rejects.jsonl") == {"b": "outside_top_k", "c": "outside_top_k", "y": "outside_top_k"}


def test_messages_are_the_prompt_then_the_kept_response_and_columns_are_carried(tmp_path: Path) -> None:
    rows = [row("p1", "a", 1.0, "the answer", generator="g1", source="f.jsonl:3")]
    filter_rows(tmp_path, rows)
    out = read_dir(tmp_path / "sft")
    assert out.get_column("messages").to_list() == [
        [{"role": "user", "content": "question p1"}, {"role": "assistant", "content": "the answer"}]
    ]
    assert out.columns[:6] == ["messages", "prompt_id", "response_id", "reward", "score", "rank"]
    assert {"num_tokens", "truncated", "model", "generator", "source"} <= set(out.columns)
    assert out.get_column("reward").dtype == pl.Float32 and out.row(0, named=True)["source"] == "f.jsonl:3"


def test_identical_texts_under_different_ids_count_once(tmp_path: Path) -> None:
    """b repeats a's text with a lower reward: it is a duplicate, so top-2 keeps a and c."""
    rows = [row("p1", "a", 3.0, "same"), row("p1", "b", 2.0, "same"), row("p1", "c", 1.0, "other")]
    filter_rows(tmp_path, rows, top_k=2)
    assert read_dir(tmp_path / "sft").get_column("response_id").to_list() == ["a", "c"]
    assert rejects(tmp_path / "rejects.jsonl") == {"b": "duplicate_response"}


def test_top_p_keeps_the_best_fraction_of_all_rows(tmp_path: Path) -> None:
    """100 rows with rewards 0..99: top-p 0.07 keeps the best 7; 0.07 x 100 is 7.000000000000001 in floats,
    whose plain ceil would be 8 (the rounding is guarded)."""
    rows = [row(f"p{i % 3}", f"r{i}", float(i)) for i in range(100)]
    filter_rows(tmp_path, rows, top_p=0.07)
    kept = sorted(read_dir(tmp_path / "sft").get_column("reward").to_list())
    assert kept == [93.0, 94.0, 95.0, 96.0, 97.0, 98.0, 99.0] and 0.07 * 100 > 7


def test_rules_combine_and_the_first_failing_rule_names_the_drop(tmp_path: Path) -> None:
    """top-k 2, min-score 1.5: p1 keeps 3.0 and 2.0 (1.0 fails both rules; below_min_score is checked first),
    p2's best is 1.0 < 1.5 so p2 keeps nothing."""
    rows = [row("p1", "a", 3.0), row("p1", "b", 2.0), row("p1", "c", 1.0), row("p2", "d", 1.0), row("p2", "e", 0.0)]
    result = filter_rows(tmp_path, rows, top_k=2, min_score=1.5)
    assert read_dir(tmp_path / "sft").get_column("response_id").to_list() == ["a", "b"]
    assert rejects(tmp_path / "rejects.jsonl") == {
        "c": "below_min_score",
        "d": "below_min_score",
        "e": "below_min_score",
    }
    assert result.summary["kept_per_prompt"] == {"0": 1, "2": 1}


def test_min_responses_drops_prompts_with_fewer_distinct_responses(tmp_path: Path) -> None:
    """--min-responses 3: p2 has three rows but two share a text, so 2 distinct responses: dropped."""
    rows = [row("p1", "a", 1.0), row("p1", "b", 2.0), row("p1", "c", 3.0)]
    rows += [row("p2", "d", 1.0, "x"), row("p2", "e", 0.5, "x"), row("p2", "f", 2.0)]
    result = filter_rows(tmp_path, rows, top_k=1, min_responses=3)
    assert read_dir(tmp_path / "sft").get_column("response_id").to_list() == ["c"]
    assert rejects(tmp_path / "rejects.jsonl") == {
        "a": "outside_top_k", "b": "outside_top_k", "d": "too_few_responses", "e": "duplicate_response",
        "f": "too_few_responses",
    }  # fmt: skip
    assert result.summary["dropped"] == {"outside_top_k": 2, "too_few_responses": 2, "duplicate_response": 1}


def test_missing_and_non_finite_rewards_are_dropped_and_counted_under_skip(tmp_path: Path) -> None:
    rows = [row("p1", "a", None), row("p1", "b", float("nan")), row("p1", "c", 0.0), row("p1", "d", float("inf"))]
    result = filter_rows(tmp_path, rows, ScoreOptions(on_error="skip"))
    assert read_dir(tmp_path / "sft").get_column("response_id").to_list() == ["c"]
    assert result.summary["dropped"] == {"missing_reward": 1, "non_finite_reward": 2}
    assert result.summary["rows_in"] == 4 and result.summary["rows_kept"] == 1
    assert rejects(tmp_path / "rejects.jsonl") == {
        "a": "missing_reward",
        "b": "non_finite_reward",
        "d": "non_finite_reward",
    }


def test_zscore_within_generator_before_the_global_floor(tmp_path: Path) -> None:
    """Generator g1 scores 10, 12, 14 (mean 12, std 2 -> z -1, 0, 1); g2 scores 0, 1 (mean 0.5, std 0.7071
    -> z -0.7071, 0.7071). --min-score 0.5 keeps 14 (z 1) and 1 (z 0.7071), though 1 < 10 in raw reward."""
    rows = [row("p1", "a", 10.0, generator="g1"), row("p2", "b", 12.0, generator="g1")]
    rows += [row("p3", "c", 14.0, generator="g1"), row("p1", "d", 0.0, generator="g2")]
    rows += [row("p2", "e", 1.0, generator="g2")]
    filter_rows(tmp_path, rows, ScoreOptions("zscore", "generator"), min_score=0.5)
    out = read_dir(tmp_path / "sft").sort("response_id")
    assert out.get_column("response_id").to_list() == ["c", "e"]
    assert out.get_column("score").to_list() == pytest.approx([1.0, 1 / math.sqrt(2)])


def test_rank_normalization_maps_each_group_to_0_1(tmp_path: Path) -> None:
    """Rewards 5, 7, 9 in one group -> (rank - 1) / (n - 1) = 0, 0.5, 1; a group of one -> 0.5."""
    rows = [row("p1", "a", 5.0, generator="g"), row("p2", "b", 7.0, generator="g"), row("p3", "c", 9.0, generator="g")]
    rows.append(row("p4", "d", -100.0, generator="solo"))
    filter_rows(tmp_path, rows, ScoreOptions("rank", "generator"))
    out = read_dir(tmp_path / "sft").sort("response_id")
    assert out.get_column("score").to_list() == [0.0, 0.5, 1.0, 0.5]


def test_length_penalty_ranks_by_reward_minus_tokens(tmp_path: Path) -> None:
    """a: 5.0 - 0.1 x 40 = 1.0; b: 4.0 - 0.1 x 10 = 3.0, so b wins with the penalty and a without."""
    rows = [row("p1", "a", 5.0, num_tokens=40), row("p1", "b", 4.0, num_tokens=10)]
    filter_rows(tmp_path, rows, top_k=1)
    assert read_dir(tmp_path / "sft").get_column("response_id").to_list() == ["a"]
    filter_rows(tmp_path, rows, ScoreOptions(length_penalty=0.1), top_k=1)
    out = read_dir(tmp_path / "sft")
    assert out.get_column("response_id").to_list() == ["b"] and out.get_column("score").to_list() == pytest.approx(
        [3.0]
    )


def test_every_row_is_kept_or_rejected_with_a_reason(tmp_path: Path) -> None:
    rows = [row(f"p{i % 7}", f"r{i}", float((i * 37) % 11), f"t{i % 13}") for i in range(60)]
    result = filter_rows(tmp_path, rows, top_k=2, top_p=0.5, min_score=2.0)
    kept = set(read_dir(tmp_path / "sft").get_column("response_id"))
    dropped = rejects(tmp_path / "rejects.jsonl")
    assert kept.isdisjoint(dropped) and kept | set(dropped) == {f"r{i}" for i in range(60)}
    assert sum(result.summary["dropped"].values()) == len(dropped) == 60 - len(kept)


def test_card_manifest_marker_and_plots(tmp_path: Path) -> None:
    filter_rows(tmp_path, [row("p1", "a", 1.0), row("p1", "b", 0.0)], top_k=1)
    out = tmp_path / "sft"
    card = (out / "README.md").read_text()
    assert (
        card.startswith("---\nconfigs:") and "outside_top_k" in card and "![plots/reward.png](plots/reward.png)" in card
    )
    assert (out / "plots" / "reward.png").stat().st_size > 1000 and (out / "plots" / "reward_vs_length.png").exists()
    assert '"kind": "sft"' in (out / ".rmdata.json").read_text()
    assert '"rows": 1' in (out / "manifest.json").read_text()
