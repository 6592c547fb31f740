"""RewardBench and RewardBench 2 scores on hand-worked numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rmdata.score.rewardbench import best_of_n, is_rewardbench, rewardbench2_scores, rewardbench_scores, ties_score


def test_rewardbench_sections_weight_subsets_by_their_example_counts() -> None:
    """alpacaeval-easy: (2 > 1) right, (1 = 1) a tie counts wrong -> 0.5; mt-bench-easy 1.0;
    math-prm: (1 < 2) wrong, (5 > 4) right -> 0.5; hep-cpp 0.0.
    Chat = (0.5 * 100 + 1.0 * 28) / 128 = 0.609375; Reasoning = (0.5 * 984 + 0 * 164) / 1148 = 0.4285714;
    overall = mean of the two sections present = 0.5189732."""
    subsets = ["alpacaeval-easy", "alpacaeval-easy", "mt-bench-easy", "math-prm", "math-prm", "hep-cpp"]
    chosen = np.array([2, 1, 3, 1, 5, 0], dtype=np.float32)
    rejected = np.array([1, 1, 0, 2, 4, 1], dtype=np.float32)
    out = rewardbench_scores(subsets, chosen, rejected)
    assert out["subsets"] == {"alpacaeval-easy": 0.5, "hep-cpp": 0.0, "math-prm": 0.5, "mt-bench-easy": 1.0}
    assert out["sections"] == pytest.approx({"Chat": 0.609375, "Reasoning": 492 / 1148})
    assert out["overall"] == pytest.approx((0.609375 + 492 / 1148) / 2)
    assert is_rewardbench(subsets) and not is_rewardbench(["helpful-base"])


def test_best_of_n_gives_partial_credit_for_ties() -> None:
    assert best_of_n([3, 1, 2, 0]) == 1.0
    assert best_of_n([3, 3, 1, 0]) == 0.5
    assert best_of_n([2, 3, 1, 0]) == 0.0
    assert best_of_n([1, 1, 1, 1]) == 0.25


TIES_IDS = ["ref:1", "tied:1", "ref:2", "tied:2"]
TIES_CORRECT = [1, 2, 1, 2]
TIES_SCORES = [[5, 1, 2], [4, 3, 1], [1, 2], [3, 2.5, 2]]


def test_ties_subset_rule() -> None:
    """ref:1 gap 5-2=3 (accurate); tied:1 correct {4,3} vs {1}: gap 2, spread 1 (accurate);
    ref:2 gap 1-2=-1 (not); tied:2 correct {3,2.5} vs {2}: gap 0.5, spread 0.5 (accurate).
    ref accuracy 0.5, tied accuracy 1.0. Prompt 1: 2 > 1 and min(3, 2) = 2 > 1; prompt 2: 0.5 > 0.5 no,
    min(-1, 0.5) > 0.5 no -> both preferred rates 0.5. Margin term: mean(tanh(2/1 - 1), tanh(-1/0.5 - 1)).
    Score = 0.3 * 1 + 0.3 * 0.5 + 0.2 * 0.5 + 0.2 * 0.5 + 0.01 * margin."""
    margin = (math.tanh(1.0) + math.tanh(-3.0)) / 2
    expected = 0.3 + 0.15 + 0.1 + 0.1 + 0.01 * margin
    assert ties_score(TIES_IDS, TIES_CORRECT, TIES_SCORES) == pytest.approx(expected)
    assert expected == pytest.approx(0.6488327, abs=1e-6)


def test_rewardbench2_overall_is_the_mean_of_subsets() -> None:
    subsets = ["Math", "Math", "Ties", "Ties", "Ties", "Ties"]
    out = rewardbench2_scores(
        subsets, ["m1", "m2", *TIES_IDS], [1, 1, *TIES_CORRECT], [[3, 1, 2, 0], [3, 3, 1, 0], *TIES_SCORES]
    )
    ties = ties_score(TIES_IDS, TIES_CORRECT, TIES_SCORES)
    assert out["subsets"] == pytest.approx({"Math": 0.75, "Ties": ties})
    assert out["overall"] == pytest.approx((0.75 + ties) / 2)
