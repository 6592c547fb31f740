"""Evaluating step scores: step accuracy, and ProcessBench's first-error rule.

ProcessBench (Zheng et al., 2024) scores a PRM per solution: its predicted first error is the first step
scoring under the threshold (-1 when none does, ``rmdata.score.steps.first_error_step``), compared with the
gold first error (-1 for a correct solution). It reports the accuracy on the erroneous solutions (predicted
== gold), on the correct ones (predicted == -1) and their harmonic mean, the F1, per subset. Here accuracies
are fractions in [0, 1] (ProcessBench prints percentages); an accuracy over no solutions is ``None``, and so
is an F1 that needs it.

Step accuracy counts labelled steps whose score is on the side of the threshold its label is (label >= 0.5
correct).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rmdata.data.stepwise import StepRow
from rmdata.score.steps import first_error_step


def processbench_metrics(predicted: Sequence[int], gold: Sequence[int]) -> dict[str, Any]:
    """Accuracy on erroneous solutions, on correct ones, and their F1 (see the module docstring)."""
    if len(predicted) != len(gold):
        raise ValueError(f"{len(predicted)} predictions for {len(gold)} gold first errors")
    pred, true = np.asarray(predicted, dtype=np.int64), np.asarray(gold, dtype=np.int64)
    erroneous, correct = true != -1, true == -1
    error_acc = float((pred[erroneous] == true[erroneous]).mean()) if erroneous.any() else None
    correct_acc = float((pred[correct] == -1).mean()) if correct.any() else None
    f1 = None
    if error_acc is not None and correct_acc is not None:
        f1 = 0.0 if error_acc + correct_acc == 0 else 2 * error_acc * correct_acc / (error_acc + correct_acc)
    return {
        "solutions": len(true),
        "erroneous": int(erroneous.sum()),
        "correct": int(correct.sum()),
        "error_accuracy": error_acc,
        "correct_accuracy": correct_acc,
        "f1": f1,
    }


def step_accuracy(
    scores: Sequence[np.ndarray], labels: Sequence[Sequence[float] | None], threshold: float
) -> float | None:
    """The fraction of labelled steps on the right side of ``threshold``; ``None`` when no step is labelled."""
    right = total = 0
    for values, gold in zip(scores, labels, strict=True):
        if gold is None:
            continue
        predicted = np.asarray(values) >= threshold
        right += int((predicted == (np.asarray(gold) >= 0.5)).sum())
        total += len(gold)
    return right / total if total else None


def evaluate_steps(
    rows: Sequence[StepRow], scores: Sequence[np.ndarray], *, threshold: float = 0.5, subset: str | None = None
) -> dict[str, Any]:
    """Step accuracy and ProcessBench metrics over ``rows`` scored ``scores``, overall and per ``subset`` value.

    ``subset`` names a carried input key (e.g. ProcessBench's split kept in a column); rows without a gold
    first error (unlabelled) are counted in ``unlabelled`` and left out of the metrics.
    """
    groups: dict[str, list[int]] = {"all": list(range(len(rows)))}
    if subset is not None:
        for i, row in enumerate(rows):
            groups.setdefault(f"{subset}={row.extra.get(subset)}", []).append(i)
    report: dict[str, Any] = {"threshold": threshold}
    for name, members in groups.items():
        known = [i for i in members if rows[i].gold_first_error is not None]
        predicted = [first_error_step(scores[i], threshold) for i in known]
        gold = [int(rows[i].gold_first_error) for i in known]  # type: ignore[arg-type]
        report[name] = {
            **processbench_metrics(predicted, gold),
            "unlabelled": len(members) - len(known),
            "step_accuracy": step_accuracy([scores[i] for i in members], [rows[i].labels for i in members], threshold),
        }
    return report
