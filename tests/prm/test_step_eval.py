"""ProcessBench's first-error rule and step accuracy, against numbers worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from rmdata.data.drops import Drop
from rmdata.data.stepwise import PROCESSBENCH, StepRow, normalize_step_record
from rmdata.score.step_eval import evaluate_steps, processbench_metrics, step_accuracy


def test_processbench_metrics_by_hand() -> None:
    """Gold (-1, -1, 2, 0, 1), predicted (-1, 0, 2, 1, 1).
    Correct solutions: 2, predicted -1 once -> 1/2. Erroneous: 3, exact twice (2 and 1) -> 2/3.
    F1 = 2 * (1/2) * (2/3) / (1/2 + 2/3) = (2/3) / (7/6) = 4/7.
    """
    got = processbench_metrics([-1, 0, 2, 1, 1], [-1, -1, 2, 0, 1])
    assert (got["correct"], got["erroneous"]) == (2, 3)
    assert got["correct_accuracy"] == pytest.approx(0.5)
    assert got["error_accuracy"] == pytest.approx(2 / 3)
    assert got["f1"] == pytest.approx(4 / 7)


def test_a_metric_over_no_solutions_is_none() -> None:
    got = processbench_metrics([-1], [-1])
    assert got["correct_accuracy"] == 1.0 and got["error_accuracy"] is None and got["f1"] is None


def test_step_accuracy_skips_unlabelled_rows() -> None:
    """Scores (0.9, 0.2) vs labels (1, 1): one right; (0.1,) vs (0,): right; unlabelled row ignored -> 2/3."""
    scores = [np.array([0.9, 0.2]), np.array([0.1]), np.array([0.7])]
    assert step_accuracy(scores, [(1.0, 1.0), (0.0,), None], 0.5) == pytest.approx(2 / 3)


def test_evaluate_steps_per_subset_from_step_scores() -> None:
    rows = [
        StepRow("a", ("s1", "s2"), (1.0, 0.0), "f:1", {"split": "gsm8k"}),  # gold 1
        StepRow("b", ("s1", "s2"), (1.0, 1.0), "f:2", {"split": "gsm8k"}),  # gold -1
        StepRow("c", ("s1",), None, "f:3", {"split": "math"}, first_error=0),  # processbench: gold 0
    ]
    scores = [np.array([0.8, 0.3]), np.array([0.6, 0.4]), np.array([0.9])]  # predicted 1, 1, -1
    report = evaluate_steps(rows, scores, threshold=0.5, subset="split")
    assert report["all"]["error_accuracy"] == pytest.approx(0.5)  # row a right, row c wrong
    assert report["all"]["correct_accuracy"] == 0.0  # row b predicted 1
    assert report["all"]["f1"] == 0.0
    assert report["split=gsm8k"]["error_accuracy"] == 1.0 and report["split=math"]["error_accuracy"] == 0.0
    assert report["split=gsm8k"]["step_accuracy"] == pytest.approx(3 / 4)


def test_processbench_records_carry_the_gold_first_error() -> None:
    row = normalize_step_record({"problem": "P", "steps": ["a", "b"], "label": 1, "id": "x"}, PROCESSBENCH, "p:1")
    assert isinstance(row, StepRow) and row.gold_first_error == 1 and row.labels is None
    bad = normalize_step_record({"problem": "P", "steps": ["a"], "label": 3}, PROCESSBENCH, "p:2")
    assert isinstance(bad, Drop) and "label must be -1 or a step index below 1" in bad.message
