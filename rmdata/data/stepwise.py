"""Stepwise data for process reward models: one solution split into steps, optionally a label per step.

Four input layouts, recognised from a record's keys (or named with ``layout=``):

- ``trl``: TRL's stepwise supervision, ``{"prompt": str, "completions": [step, ...], "labels": [bool, ...]}``.
  A label is a boolean, 0/1, or a number in [0, 1] (a soft label). ``labels`` may be absent (data to score).
- ``math-shepherd``: ``{"input": "question Step 1: ... ки\\nStep 2: ... ки", "label": "question Step 1: ... +\\n..."}``,
  each step ending in the step tag (``ки``); ``label`` is ``input`` with each tag replaced by ``+`` (correct) or
  ``-`` (wrong). The question is the text before ``Step 1:`` (TRL's own conversion splits there). ``label``
  may be absent.
- ``processbench``: ProcessBench's ``{"problem": str, "steps": [step, ...], "label": int}``, ``label`` the index
  of the first wrong step, -1 when every step is correct. It gives the gold first error, no per-step labels.
- ``prm800k``: PRM800K's raw rating records (its public README), ``{"question": {"problem": ...}, "label":
  {"steps": [{"completions": [{"text", "rating"}, ...], "human_completion", "chosen_completion"}, ...]}}``.
  Each step is the chosen completion, else the human completion, else (the step where labelling stopped) the
  first completion rated -1, else the first one. Ratings map 1 -> 1.0, -1 -> 0.0 and 0 (neutral) ->
  ``neutral`` (default 1.0: a neutral step is not an error, as in Lightman et al.'s evaluation; 0.0 counts it
  as one, 0.5 makes it a soft label).

A valid record gives one :class:`StepRow`; a bad one (labels and steps of different lengths, an empty step,
a label outside the allowed set, a tag or ``Step 1:`` missing) gives a
:class:`rmdata.data.drops.Drop` with the file:line and the fields at fault. Pure Python, no torch or polars.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from rmdata.data.drops import INVALID_RECORD, UNREADABLE_RECORD, Drop, count_by_reason
from rmdata.data.rules import Problems, check_text, describe
from rmdata.errors import RmdataError

TRL = "trl"
MATH_SHEPHERD = "math-shepherd"
PROCESSBENCH = "processbench"
PRM800K = "prm800k"
LAYOUTS = (TRL, MATH_SHEPHERD, PROCESSBENCH, PRM800K)
STEP_TAG = "ки"  # Math-Shepherd's step tag
FIRST_STEP = "Step 1:"  # where a Math-Shepherd question ends and its first step begins


@dataclass(frozen=True)
class StepRow:
    """One solution: the prompt, its steps, and a label per step (1.0 correct, 0.0 wrong) when known."""

    prompt: str
    steps: tuple[str, ...]
    labels: tuple[float, ...] | None
    location: str  # file:line or file:row it came from
    extra: Mapping[str, Any] = field(default_factory=dict)  # input keys the layout does not read, carried
    first_error: int | None = None  # processbench: the gold first wrong step (-1: none), without labels

    @property
    def gold_first_error(self) -> int | None:
        """The first step labelled wrong (label < 0.5), -1 when every step is correct; None when unknown."""
        if self.first_error is not None:
            return self.first_error
        if self.labels is None:
            return None
        return next((i for i, label in enumerate(self.labels) if label < 0.5), -1)


@dataclass
class StepData:
    """Every record of an input: the rows kept, and the records dropped with their reasons."""

    rows: list[StepRow]
    drops: list[Drop]
    layout: str  # the layout used

    @property
    def drop_counts(self) -> dict[str, int]:
        return count_by_reason(self.drops)


def detect_layout(record: Mapping[str, Any]) -> str | None:
    """``trl`` (``prompt`` + ``completions``), ``math-shepherd`` (``input``), ``processbench`` (``problem`` +
    ``steps``), ``prm800k`` (``question`` + a ``label`` object); ``None`` for other keys."""
    if "completions" in record and "prompt" in record:
        return TRL
    if "input" in record:
        return MATH_SHEPHERD
    if "problem" in record and "steps" in record:
        return PROCESSBENCH
    if "question" in record and isinstance(record.get("label"), dict):
        return PRM800K
    return None


def normalize_step_record(
    record: Mapping[str, Any], layout: str, location: str, neutral: float = 1.0
) -> StepRow | Drop:
    """One record of ``layout`` -> its :class:`StepRow`, or a Drop naming every problem found.

    ``neutral``: the label of a PRM800K step rated 0 (see the module docstring).
    """
    problems = Problems()
    if layout == TRL:
        parsed = _trl(record, problems)
        consumed: tuple[str, ...] = ("prompt", "completions", "labels")
    elif layout == MATH_SHEPHERD:
        parsed = _math_shepherd(record, problems)
        consumed = ("input", "label")
    elif layout == PROCESSBENCH:
        parsed = _processbench(record, problems)
        consumed = ("problem", "steps", "label")
    elif layout == PRM800K:
        parsed = _prm800k(record, neutral, problems)
        consumed = ("question", "label")
    else:
        raise RmdataError(f"stepwise layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    if parsed is None or problems:
        fields = tuple({"field": f, "message": m} for f, m in problems.items)
        message = "; ".join(m for _, m in problems.items) or "the record breaks a rule of its layout"
        return Drop(INVALID_RECORD, message, location, dict(record), fields)
    prompt, steps, labels = parsed
    extra = {k: v for k, v in record.items() if k not in consumed}
    first_error = record["label"] if layout == PROCESSBENCH else None
    return StepRow(prompt, tuple(steps), None if labels is None else tuple(labels), location, extra, first_error)


def _trl(record: Mapping[str, Any], problems: Problems) -> tuple[str, list[str], list[float] | None] | None:
    prompt = check_text(record.get("prompt"), "prompt", problems)
    steps = _steps(record.get("completions"), "completions", problems)
    labels = None
    if record.get("labels") is not None:
        labels = _labels(record["labels"], problems)
        if labels is not None and steps is not None and len(labels) != len(steps):
            problems.add("labels", f"labels has {len(labels)} entries but completions has {len(steps)} steps")
    if prompt is None or steps is None or problems:
        return None
    return prompt, steps, labels


def _steps(value: Any, name: str, problems: Problems) -> list[str] | None:
    if not isinstance(value, list) or not value:
        problems.add(name, f"{name} must be a non-empty list of step strings; got {describe(value)}")
        return None
    steps = [check_text(step, f"{name}[{i}]", problems) for i, step in enumerate(value)]
    return None if any(s is None for s in steps) else [s for s in steps if s is not None]


def _labels(value: Any, problems: Problems) -> list[float] | None:
    if not isinstance(value, list):
        problems.add("labels", f"labels must be a list of booleans or numbers in [0, 1]; got {describe(value)}")
        return None
    out: list[float] = []
    for i, label in enumerate(value):
        ok = isinstance(label, (bool, int, float)) and 0 <= label <= 1
        if not ok:
            problems.add(f"labels[{i}]", f"labels[{i}] must be a boolean or a number in [0, 1]; got {describe(label)}")
            continue
        out.append(float(label))
    return None if len(out) != len(value) else out


def _processbench(record: Mapping[str, Any], problems: Problems) -> tuple[str, list[str], None] | None:
    prompt = check_text(record.get("problem"), "problem", problems)
    steps = _steps(record.get("steps"), "steps", problems)
    label = record.get("label")
    if steps is not None and (isinstance(label, bool) or not isinstance(label, int) or not -1 <= label < len(steps)):
        problems.add("label", f"label must be -1 or a step index below {len(steps)}; got {describe(label)}")
    if prompt is None or steps is None or problems:
        return None
    return prompt, steps, None


def _prm800k(
    record: Mapping[str, Any], neutral: float, problems: Problems
) -> tuple[str, list[str], list[float]] | None:
    question, label = record.get("question"), record.get("label")
    prompt = check_text(question.get("problem") if isinstance(question, dict) else None, "question.problem", problems)
    raw_steps = label.get("steps") if isinstance(label, dict) else None
    if not isinstance(raw_steps, list) or not raw_steps:
        problems.add("label.steps", f"label.steps must be a non-empty list of rated steps; got {describe(raw_steps)}")
        return None
    steps: list[str] = []
    labels: list[float] = []
    for i, step in enumerate(raw_steps):
        picked = _prm800k_pick(step, f"label.steps[{i}]", problems)
        if picked is None:
            continue
        text, rating = picked
        steps.append(text)
        labels.append({1: 1.0, -1: 0.0, 0: neutral}[rating])
    if prompt is None or problems:
        return None
    return prompt, steps, labels


def _prm800k_pick(step: Any, where: str, problems: Problems) -> tuple[str, int] | None:
    """The (text, rating) a PRM800K step continues with (see the module docstring)."""
    completions = (step.get("completions") or []) if isinstance(step, dict) else None  # null: a human step only
    if not isinstance(completions, list) or not all(isinstance(c, dict) for c in completions):
        problems.add(
            f"{where}.completions", f"{where}.completions must be a list of objects; got {describe(completions)}"
        )
        return None
    chosen, human = step.get("chosen_completion"), step.get("human_completion")
    if isinstance(chosen, int) and not isinstance(chosen, bool) and 0 <= chosen < len(completions):
        picked, field_name = completions[chosen], f"{where}.completions[{chosen}]"
    elif isinstance(human, dict):
        picked, field_name = (
            {"rating": 1, **{k: v for k, v in human.items() if v is not None}},
            f"{where}.human_completion",
        )
    elif completions:
        index = next((j for j, c in enumerate(completions) if c.get("rating") == -1), 0)
        picked, field_name = completions[index], f"{where}.completions[{index}]"
    else:
        problems.add(where, f"{where} has no completion, no chosen_completion and no human_completion")
        return None
    text = check_text(picked.get("text"), f"{field_name}.text", problems)
    rating = picked.get("rating")
    if isinstance(rating, bool) or rating not in (-1, 0, 1):
        problems.add(f"{field_name}.rating", f"{field_name}.rating must be -1, 0 or 1; got {describe(rating)}")
        return None
    return (text, int(rating)) if text is not None else None


def _math_shepherd(record: Mapping[str, Any], problems: Problems) -> tuple[str, list[str], list[float] | None] | None:
    text = check_text(record.get("input"), "input", problems)
    if text is None:
        return None
    pieces = text.split(STEP_TAG)
    if len(pieces) < 2:
        problems.add("input", f"input has no step tag {STEP_TAG!r}; every step must end with it")
        return None
    if pieces[-1].strip():
        problems.add("input", f"input has text after its last step tag {STEP_TAG!r}: {describe(pieces[-1])}")
    head, *rest = pieces[:-1]
    start = head.find(FIRST_STEP)
    if start < 0:
        problems.add("input", f"input has no {FIRST_STEP!r} before its first step tag to split the question off")
        return None
    prompt = head[:start].strip()
    steps = [head[start:].strip(), *(piece.strip() for piece in rest)]
    if not prompt:
        problems.add("input", f"input has no question before {FIRST_STEP!r}")
    for i, step in enumerate(steps):
        if not step:
            problems.add("input", f"step {i} of input is empty (two step tags with nothing between them)")
    labels = None if record.get("label") is None else _shepherd_labels(text, record["label"], len(steps), problems)
    if problems:
        return None
    return prompt, steps, labels


def _shepherd_labels(text: str, label: Any, num_steps: int, problems: Problems) -> list[float] | None:
    """The ``+``/``-`` at each tag position of ``input``, read from ``label`` (``input`` with tags replaced)."""
    if not isinstance(label, str):
        problems.add("label", f"label must be a string; got {describe(label)}")
        return None
    marks: list[str] = []
    offset = 0  # each tag in input is len(STEP_TAG) characters, one mark in label
    at = text.find(STEP_TAG)
    while at >= 0:
        marks.append(label[at - offset] if at - offset < len(label) else "")
        offset += len(STEP_TAG) - 1
        at = text.find(STEP_TAG, at + len(STEP_TAG))
    if len(label) != len(text) - offset or len(marks) != num_steps:
        problems.add("label", f"label must be input with each {STEP_TAG!r} replaced by + or -; lengths do not match")
        return None
    bad = [i for i, mark in enumerate(marks) if mark not in "+-" or not mark]
    if bad:
        problems.add("label", f"label has {describe(marks[bad[0]])} at step {bad[0]}'s tag; labels must be + or -")
        return None
    return [1.0 if mark == "+" else 0.0 for mark in marks]


def read_stepwise(path: str, layout: str = "auto", neutral: float = 1.0) -> StepData:
    """Every record of ``path`` (any input rmdata reads) as step rows or drops, in file order.

    ``neutral``: the label of a PRM800K step rated 0 (1.0, 0.0, or a soft label between).
    ``layout="auto"`` takes the layout of the first record whose keys name one (:func:`detect_layout`); records
    before it are read in that layout too (so they become drops naming what they lack). A file where no record
    names a layout is an RmdataError naming the first record's keys.
    """
    from rmdata.data.inputs import resolve_input
    from rmdata.data.readers import iter_batches

    if not 0 <= neutral <= 1:
        raise RmdataError(f"--neutral-label {neutral}: must be in [0, 1] (1 = neutral steps are correct, 0 = errors)")
    if layout != "auto" and layout not in LAYOUTS:
        raise RmdataError(f"--data-layout {layout!r} is not one of auto, {', '.join(LAYOUTS)}")
    info = resolve_input(path)
    results: list[StepRow | Drop | tuple[str, dict[str, Any]]] = []  # a tuple: read once the layout is known
    for location, value, error, text in _records(iter_batches(info)):
        if value is None:
            results.append(Drop(UNREADABLE_RECORD, error or "unreadable", location, None, raw=text))
            continue
        if layout == "auto" and (detected := detect_layout(value)) is not None:
            layout = detected
            results = [
                normalize_step_record(r[1], layout, r[0], neutral) if isinstance(r, tuple) else r for r in results
            ]
        results.append(
            (location, value) if layout == "auto" else normalize_step_record(value, layout, location, neutral)
        )
    if layout == "auto":
        first = next((r for r in results if isinstance(r, tuple)), None)
        if first is None:
            raise RmdataError(f"{path}: no readable record, so no stepwise layout to detect")
        raise RmdataError(
            f"{first[0]}: cannot tell the stepwise layout from the keys {sorted(first[1])}, nor from any later "
            "record; expected prompt + completions (+ labels) for trl, input (+ label) for math-shepherd, "
            "problem + steps + label for processbench, question + label for prm800k (or pass --data-layout)"
        )
    rows = [r for r in results if isinstance(r, StepRow)]
    return StepData(rows, [r for r in results if isinstance(r, Drop)], layout)


def _records(batches: Iterator[Any]) -> Iterator[tuple[str, dict[str, Any] | None, str | None, str | None]]:
    for batch in batches:
        for i, value in enumerate(batch.values):
            error, text = batch.unreadable.get(i, (None, None))
            yield batch.location(i), value, error, text
