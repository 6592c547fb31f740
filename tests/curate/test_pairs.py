"""rmdata build-dpo's strategies and rules on hand-built score tables."""

from __future__ import annotations

import random
from pathlib import Path

import polars as pl
import pytest

from rmdata.curate.pairs import PairRules
from rmdata.curate.ranking import ScoreOptions
from rmdata.curate.run import run_build_dpo
from tests.curate.scores import dpo_rows, read_dir, rejects, row, write_scores

FOUR = [row("p1", "a", 4.0), row("p1", "b", 3.0), row("p1", "c", 1.5), row("p1", "d", 1.0)]


def pairs_of(directory: Path) -> list[tuple[str, str, float]]:
    out = read_dir(directory)
    return list(zip(out["chosen_id"], out["rejected_id"], out["margin"], strict=True))


def test_best_vs_worst_writes_trl_conversational_rows(tmp_path: Path) -> None:
    result = dpo_rows(tmp_path, FOUR + [row("p2", "e", 0.0), row("p2", "f", 2.0)])
    out = read_dir(tmp_path / "dpo")
    assert pairs_of(tmp_path / "dpo") == [("a", "d", 3.0), ("f", "e", 2.0)]
    first = out.row(0, named=True)
    assert first["prompt"] == [{"role": "user", "content": "question p1"}]
    assert first["chosen"] == [{"role": "assistant", "content": "answer a"}]
    assert first["rejected"] == [{"role": "assistant", "content": "answer d"}]
    assert (first["chosen_reward"], first["rejected_reward"], first["prompt_id"]) == (4.0, 1.0, "p1")
    assert out.columns[:9] == ["prompt", "chosen", "rejected", "chosen_reward", "rejected_reward", "margin",
                               "prompt_id", "chosen_id", "rejected_id"]  # fmt: skip
    assert {"chosen_model", "rejected_num_tokens"} <= set(out.columns)
    assert rejects(tmp_path / "rejects.parquet") == {"b": "unpaired", "c": "unpaired"}
    assert result.summary["pairs_per_prompt"] == {"0": 0, "1": 2}


def test_margin_and_tie_epsilon(tmp_path: Path) -> None:
    """best-vs-all from a (4.0): gaps 1.0 (b), 2.5 (c), 3.0 (d). --margin 2.5 keeps c and d (>=);
    --tie-epsilon 1.0 alone drops b as a tie (gap must be > epsilon)."""
    dpo_rows(tmp_path, FOUR, strategy="best-vs-all", margin=2.5)
    assert pairs_of(tmp_path / "dpo") == [("a", "d", 3.0), ("a", "c", 2.5)]
    result = dpo_rows(tmp_path, FOUR, strategy="best-vs-all", tie_epsilon=1.0)
    assert [p[1] for p in pairs_of(tmp_path / "dpo")] == ["d", "c"]
    assert result.summary["pairs_dropped"] == {"tie": 1}


def test_equal_rewards_never_pair_and_identical_texts_are_merged_first(tmp_path: Path) -> None:
    """p1: a and b tie -> no pair (tie). p2: c and d are the same text -> one distinct response -> dropped.
    p3: e repeats g's text, so only f vs g can pair."""
    rows = [row("p1", "a", 1.0), row("p1", "b", 1.0), row("p2", "c", 2.0, "same"), row("p2", "d", 0.0, "same")]
    rows += [row("p3", "e", -1.0, "dup"), row("p3", "f", 5.0), row("p3", "g", 3.0, "dup")]
    result = dpo_rows(tmp_path, rows)
    assert pairs_of(tmp_path / "dpo") == [("f", "g", 2.0)]
    assert rejects(tmp_path / "rejects.parquet") == {
        "a": "no_pair", "b": "no_pair", "c": "too_few_responses", "d": "duplicate_response", "e": "duplicate_response",
    }  # fmt: skip
    assert result.summary["pairs_dropped"] == {"tie": 1}


def test_single_response_prompts_are_dropped_and_counted(tmp_path: Path) -> None:
    result = dpo_rows(tmp_path, FOUR + [row("solo", "s", 9.0)])
    assert result.summary["dropped"]["too_few_responses"] == 1 and result.summary["prompts_in"] == 2


def test_all_pairs_and_the_cap_keep_the_largest_gaps(tmp_path: Path) -> None:
    """Rewards 4, 3, 1.5, 1: six pairs with gaps a-d 3, a-c 2.5, b-d 2, b-c 1.5, a-b 1, c-d 0.5; cap 3 keeps
    the first three."""
    result = dpo_rows(tmp_path, FOUR, strategy="all-pairs")
    assert sorted(m for *_, m in pairs_of(tmp_path / "dpo")) == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    result = dpo_rows(tmp_path, FOUR, strategy="all-pairs", max_pairs_per_prompt=3)
    assert sorted(pairs_of(tmp_path / "dpo")) == [("a", "c", 2.5), ("a", "d", 3.0), ("b", "d", 2.0)]
    assert result.summary["pairs_dropped"] == {"over_max_pairs": 3} and result.summary["candidate_pairs"] == 6


def test_the_cap_breaks_equal_gaps_by_ids(tmp_path: Path) -> None:
    """a-c and b-d both have gap 2: with cap 1 after a-d (3), (a, c) wins on chosen_id."""
    rows = [row("p", "a", 3.0), row("p", "b", 2.0), row("p", "c", 1.0), row("p", "d", 0.0)]
    dpo_rows(tmp_path, rows, strategy="all-pairs", max_pairs_per_prompt=2)
    assert sorted(pairs_of(tmp_path / "dpo")) == [("a", "c", 2.0), ("a", "d", 3.0)]


def test_best_vs_random_is_seeded_and_independent_of_row_order_and_files(tmp_path: Path) -> None:
    rows = [row(f"p{i}", f"p{i}-r{j}", float(j)) for i in range(40) for j in range(5)]
    options = ScoreOptions()

    def draw(tables: list[Path], seed: int, out: str) -> set[tuple[str, str]]:
        run_build_dpo(tables, options, PairRules(strategy="best-vs-random", seed=seed), tmp_path / out)
        return set(zip(read_dir(tmp_path / out)["chosen_id"], read_dir(tmp_path / out)["rejected_id"], strict=True))

    once = draw([write_scores(tmp_path / "a.parquet", rows)], 7, "o1")
    shuffled = rows[:]
    random.Random(1).shuffle(shuffled)
    halves = [
        write_scores(tmp_path / "s1.parquet", shuffled[:77]),
        write_scores(tmp_path / "s2.parquet", shuffled[77:]),
    ]
    assert draw(halves, 7, "o2") == once
    assert len(once) == 40 and all(c.endswith("r4") for c, _ in once)
    assert len({r for _, r in once}) > 5  # draws spread over the four lower responses
    assert draw(halves, 8, "o3") != once


def test_best_vs_random_draws_only_among_pairs_that_pass(tmp_path: Path) -> None:
    """--margin 2.5 leaves c and d eligible under a (gaps 2.5 and 3.0); b (gap 1.0) is never drawn."""
    for seed in range(6):
        dpo_rows(tmp_path, FOUR, strategy="best-vs-random", margin=2.5, seed=seed)
        assert pairs_of(tmp_path / "dpo")[0][1] in {"c", "d"}


def test_normalized_scores_set_the_margin(tmp_path: Path) -> None:
    """zscore over the whole table (rewards 4, 3, 1.5, 1: mean 2.375, std 1.3769): a-d margin 3 / 1.3769."""
    dpo_rows(tmp_path, FOUR, ScoreOptions("zscore"))
    out = read_dir(tmp_path / "dpo")
    assert out["margin"].to_list() == pytest.approx([3.0 / pl.Series([4.0, 3.0, 1.5, 1.0]).std()])
    assert out["chosen_reward"].to_list() == [4.0]


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"margin": -1.0}, "--margin -1.0: must be >= 0"),
        ({"tie_epsilon": -0.1}, "--tie-epsilon"),
        ({"strategy": "best-vs-median"}, "choose one of best-vs-worst"),
        ({"strategy": "best-vs-worst", "max_pairs_per_prompt": 2}, "no effect with --strategy best-vs-worst"),
        ({"strategy": "all-pairs", "max_pairs_per_prompt": 0}, "must be >= 1"),
    ],
)
def test_contradictory_pair_options_are_refused(rules: dict[str, object], message: str) -> None:
    with pytest.raises(Exception, match=message.replace("(", r"\(")):
        PairRules(**rules).check()  # type: ignore[arg-type]
