"""The held-out split (by prompt, seeded, the fraction respected) and the step plan (lazy, seeded epochs)."""

from __future__ import annotations

import time

import pytest

from rmdata.config import MAX_STEPS
from rmdata.data.drops import INVALID_RECORD, Drop
from rmdata.errors import RmdataError
from rmdata.tokens.packing import PackPlan, plan_pairs, rows_for_epoch
from rmdata.train.data import StepPlan, as_drop, eval_mask


def test_split_keeps_every_response_to_a_prompt_on_one_side() -> None:
    prompts = [f"p{i // 4}" for i in range(4000)]  # 1,000 prompts, 4 pairs each
    mask = eval_mask(prompts, 0.2, seed=3)
    side: dict[str, set[bool]] = {}
    for prompt, held in zip(prompts, mask, strict=True):
        side.setdefault(prompt, set()).add(held)
    assert all(len(s) == 1 for s in side.values())


def test_split_is_deterministic_for_a_seed_and_changes_with_it() -> None:
    prompts = [f"prompt-{i}" for i in range(500)]
    assert eval_mask(prompts, 0.1, seed=0) == eval_mask(list(prompts), 0.1, seed=0)
    assert eval_mask(prompts, 0.1, seed=0) != eval_mask(prompts, 0.1, seed=1)
    assert eval_mask(prompts[::-1], 0.1, seed=0) == eval_mask(prompts, 0.1, seed=0)[::-1]  # per prompt, not order


@pytest.mark.parametrize("fraction", [0.05, 0.25, 0.5])
def test_split_holds_out_the_fraction_of_prompts(fraction: float) -> None:
    """10,000 distinct prompts: the count held out is binomial(n, f); 4 standard deviations is
    4·sqrt(n·f·(1 − f)) = 87 at f = 0.05, 173 at 0.25, 200 at 0.5."""
    n = 10_000
    held = sum(eval_mask([f"q{i}" for i in range(n)], fraction, seed=0))
    assert abs(held - n * fraction) < 4 * (n * fraction * (1 - fraction)) ** 0.5
    assert sum(eval_mask([f"q{i}" for i in range(n)], 0.0, seed=0)) == 0


def five_row_plan() -> PackPlan:
    """Five pairs of 6 tokens each in rows of 12: one pair per row, five rows."""
    return plan_pairs([3] * 5, [3] * 5, 6)


def test_step_plan_cuts_seeded_epochs_into_grad_accum_rows() -> None:
    """5 rows, grad_accum 2: steps per epoch ceil(5/2) = 3 (the last holds 1 row); 2 epochs = 6 steps."""
    plan = five_row_plan()
    assert len(plan.rows) == 5
    steps = StepPlan(plan, epochs=2, max_steps=None, grad_accum=2, seed=7)
    assert len(steps) == 6 and steps.steps_per_epoch == 3
    first, second = rows_for_epoch(plan, 0, 7), rows_for_epoch(plan, 1, 7)
    assert [steps[i] for i in range(6)] == [first[0:2], first[2:4], first[4:5], second[0:2], second[2:4], second[4:5]]
    assert first != second  # each epoch has its own seeded order
    with pytest.raises(IndexError):
        steps[6]


def test_max_steps_wins_over_epochs() -> None:
    plan = five_row_plan()
    short = StepPlan(plan, epochs=3, max_steps=2, grad_accum=2, seed=0)
    assert len(short) == 2
    longer = StepPlan(plan, epochs=1, max_steps=7, grad_accum=2, seed=0)
    assert len(longer) == 7 and longer[6] == rows_for_epoch(plan, 2, 0)[0:2]  # a third epoch was added


def test_a_huge_plan_is_never_materialized() -> None:
    started = time.perf_counter()
    steps = StepPlan(five_row_plan(), epochs=1, max_steps=MAX_STEPS, grad_accum=1, seed=0)
    assert len(steps) == 10**9 and len(steps[MAX_STEPS - 1]) == 1
    assert time.perf_counter() - started < 1.0
    assert len(StepPlan(five_row_plan(), epochs=10**6, max_steps=None, grad_accum=1, seed=0)) == 5 * 10**6
    with pytest.raises(RmdataError, match="train.epochs=300000000 x 5 steps per epoch .* over the limit"):
        StepPlan(five_row_plan(), epochs=300_000_000, max_steps=None, grad_accum=1, seed=0)


def test_loader_rejects_become_drops() -> None:
    reject = {
        "source": "a.jsonl:3",
        "reason": INVALID_RECORD,
        "message": "chosen is missing",
        "errors": [{"field": "chosen", "message": "chosen is missing"}],
        "record": {"prompt": "hi"},
    }
    drop = as_drop(reject)
    assert drop == Drop(INVALID_RECORD, "chosen is missing", "a.jsonl:3", {"prompt": "hi"}, (reject["errors"][0],))
    assert drop.to_json() == reject
    assert as_drop(drop) is drop
