"""Stepwise records: TRL's columns and Math-Shepherd's tagged text, each bad record a drop with a reason."""

from __future__ import annotations

import pytest

from rmdata.data.drops import INVALID_RECORD, UNREADABLE_RECORD, Drop
from rmdata.data.stepwise import MATH_SHEPHERD, PRM800K, TRL, StepRow, normalize_step_record, read_stepwise
from rmdata.errors import RmdataError
from tests.conftest import WriteJsonl

SHEPHERD_INPUT = "What is 1+1? Step 1: 1+1=2. ки\nStep 2: The answer is 3. ки"
SHEPHERD_LABEL = "What is 1+1? Step 1: 1+1=2. +\nStep 2: The answer is 3. -"


def test_trl_record_reads_prompt_steps_and_labels() -> None:
    record = {"prompt": "Q", "completions": ["a", "b"], "labels": [True, False], "id": 7}
    row = normalize_step_record(record, TRL, "f.jsonl:1")
    assert isinstance(row, StepRow)
    assert (row.prompt, row.steps, row.labels, dict(row.extra)) == ("Q", ("a", "b"), (1.0, 0.0), {"id": 7})
    assert row.gold_first_error == 1


def test_math_shepherd_record_splits_question_steps_and_marks() -> None:
    row = normalize_step_record({"input": SHEPHERD_INPUT, "label": SHEPHERD_LABEL}, MATH_SHEPHERD, "m.jsonl:1")
    assert isinstance(row, StepRow)
    assert row.prompt == "What is 1+1?"
    assert row.steps == ("Step 1: 1+1=2.", "Step 2: The answer is 3.")
    assert row.labels == (1.0, 0.0)


@pytest.mark.parametrize(
    ("record", "field", "words"),
    [
        ({"prompt": "Q", "completions": ["a", "b"], "labels": [True]}, "labels", "1 entries but completions has 2"),
        ({"prompt": "Q", "completions": ["a", " "], "labels": [True, True]}, "completions[1]", "empty"),
        ({"prompt": "Q", "completions": ["a"], "labels": [2]}, "labels[0]", "number in [0, 1]"),
        ({"prompt": "Q", "completions": ["a"], "labels": ["yes"]}, "labels[0]", 'string "yes"'),
        ({"prompt": "Q", "completions": [], "labels": []}, "completions", "non-empty list"),
    ],
)
def test_bad_trl_records_name_the_field(record: dict, field: str, words: str) -> None:
    drop = normalize_step_record(record, TRL, "f.jsonl:3")
    assert isinstance(drop, Drop)
    assert drop.reason == INVALID_RECORD and drop.location == "f.jsonl:3"
    assert field in [f["field"] for f in drop.fields]
    assert words in drop.message


@pytest.mark.parametrize(
    ("record", "words"),
    [
        ({"input": "What? Step 1: x"}, "no step tag"),
        ({"input": "What? 1: x ки"}, "no 'Step 1:'"),
        ({"input": "What? Step 1: x ки ки"}, "step 1 of input is empty"),
        ({"input": SHEPHERD_INPUT, "label": SHEPHERD_LABEL.replace("-", "?")}, "must be + or -"),
        ({"input": SHEPHERD_INPUT, "label": SHEPHERD_LABEL + "+"}, "lengths do not match"),
    ],
)
def test_bad_math_shepherd_records_are_drops(record: dict, words: str) -> None:
    drop = normalize_step_record(record, MATH_SHEPHERD, "m.jsonl:2")
    assert isinstance(drop, Drop) and words in drop.message


def test_read_stepwise_detects_layout_and_keeps_every_line(write_jsonl: WriteJsonl) -> None:
    path = write_jsonl(
        "steps.jsonl",
        [
            {"prompt": "Q1", "completions": ["a", "b"], "labels": [True, True]},
            "{not json",
            {"prompt": "Q2", "completions": ["a"], "labels": [True, False]},
            {"prompt": "Q3", "completions": ["c"]},
        ],
    )
    data = read_stepwise(str(path))
    assert data.layout == TRL
    assert [row.prompt for row in data.rows] == ["Q1", "Q3"]
    assert data.rows[1].labels is None
    assert [(d.reason, d.location.rsplit(":", 1)[1]) for d in data.drops] == [
        (UNREADABLE_RECORD, "2"),
        (INVALID_RECORD, "3"),
    ]


def test_read_stepwise_refuses_an_unknown_layout(write_jsonl: WriteJsonl) -> None:
    path = write_jsonl("pairs.jsonl", [{"prompt": "Q", "chosen": "a", "rejected": "b"}])
    with pytest.raises(
        RmdataError, match="pairs.jsonl:1: cannot tell the stepwise layout from the keys .* nor from any later"
    ):
        read_stepwise(str(path))


def _prm800k(steps: list[dict]) -> dict:
    return {"question": {"problem": "How many?", "ground_truth_answer": "12"}, "label": {"steps": steps}}


def test_prm800k_follows_the_chosen_then_human_then_first_bad_completion() -> None:
    record = _prm800k(
        [
            {"completions": [{"text": "a", "rating": 0}, {"text": "b", "rating": 1}], "chosen_completion": 1},
            {"completions": [{"text": "c", "rating": -1}], "human_completion": {"text": "h", "rating": None}},
            {"completions": [{"text": "d", "rating": 0}], "chosen_completion": 0},
            {"completions": [{"text": "e", "rating": 1}, {"text": "f", "rating": -1}], "chosen_completion": None},
        ]
    )
    row = normalize_step_record(record, PRM800K, "p.jsonl:1")
    assert isinstance(row, StepRow)
    assert row.prompt == "How many?" and row.steps == ("b", "h", "d", "f")
    assert row.labels == (1.0, 1.0, 1.0, 0.0) and row.gold_first_error == 3
    soft = normalize_step_record(record, PRM800K, "p.jsonl:1", neutral=0.0)
    assert isinstance(soft, StepRow) and soft.labels == (1.0, 1.0, 0.0, 0.0) and soft.gold_first_error == 2


def test_prm800k_bad_ratings_and_empty_steps_are_drops() -> None:
    bad = normalize_step_record(_prm800k([{"completions": [{"text": "a", "rating": 2}]}]), PRM800K, "p:2")
    assert isinstance(bad, Drop) and "rating must be -1, 0 or 1" in bad.message
    empty = normalize_step_record(_prm800k([]), PRM800K, "p:3")
    assert isinstance(empty, Drop) and "label.steps must be a non-empty list" in empty.message


def test_prm800k_is_detected_and_the_neutral_label_checked(write_jsonl: WriteJsonl) -> None:
    step = {"completions": [{"text": "a", "rating": 0}], "chosen_completion": 0}
    path = write_jsonl("prm800k.jsonl", [_prm800k([step])])
    assert read_stepwise(str(path), neutral=0.5).rows[0].labels == (0.5,)
    with pytest.raises(RmdataError, match="--neutral-label 2"):
        read_stepwise(str(path), neutral=2)


def test_records_before_the_first_recognisable_one_are_drops_not_a_failure(write_jsonl: WriteJsonl) -> None:
    path = write_jsonl(
        "steps.jsonl",
        [{"prompt": "Q0", "labels": [True]}, "nope", {"prompt": "Q1", "completions": ["a"], "labels": [True]}],
    )
    data = read_stepwise(str(path))
    assert data.layout == TRL and [r.prompt for r in data.rows] == ["Q1"]
    assert [(d.reason, d.location.rsplit(":", 1)[1]) for d in data.drops] == [
        (INVALID_RECORD, "1"),
        (UNREADABLE_RECORD, "2"),
    ]
    assert "completions must be a non-empty list" in data.drops[0].message


def test_prm800k_step_with_only_a_human_completion() -> None:
    record = _prm800k([{"completions": None, "human_completion": {"text": "by hand", "rating": None}}])
    row = normalize_step_record(record, PRM800K, "p:4")
    assert isinstance(row, StepRow) and row.steps == ("by hand",) and row.labels == (1.0,)
