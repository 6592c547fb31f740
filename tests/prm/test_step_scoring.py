"""Step scores from one packed forward equal each layout's plain-transformers reference and the per-prefix loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rmdata.data.drops import STEP_TOKEN_MISMATCH, Drop
from rmdata.data.stepwise import StepRow
from rmdata.model.step_model import MATH_SHEPHERD, QWEN_PRM, load_step_model
from rmdata.score.steps import aggregate, first_error_step, score_steps, score_steps_per_prefix
from rmdata.tokens.steps import StepTokens, tokenize_steps
from tests.prm.models import qwen_reference, save_math_shepherd, save_qwen_prm, shepherd_reference

SOLUTIONS = [
    ("What is 2+3?", ["Step 1: 2+3 = 5.", "Step 2: The answer is 5."]),
    ("Add 10 and 7.", ["Step 1: 10+7 = 17.", "Step 2: So 17.", "Step 3: Done, 17."]),
    ("Is 9 prime?", ["Step 1: 9 = 3*3, so no."]),
]
LAYOUTS = {QWEN_PRM: (save_qwen_prm, qwen_reference), MATH_SHEPHERD: (save_math_shepherd, shepherd_reference)}


def _tokens(model, rows: list[StepRow]) -> list[StepTokens]:  # type: ignore[no-untyped-def]
    out = [tokenize_steps(model.tokenizer, model.template, row) for row in rows]
    assert all(isinstance(t, StepTokens) for t in out)
    return out  # type: ignore[return-value]


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_packed_step_scores_equal_the_plain_transformers_reference(layout: str, tmp_path: Path) -> None:
    save, reference = LAYOUTS[layout]
    path = save(tmp_path / layout)
    model = load_step_model(path)  # auto-detected from config.json
    assert model.layout == layout
    rows = [StepRow(p, tuple(s), None, f"x:{i}") for i, (p, s) in enumerate(SOLUTIONS)]
    tokens = _tokens(model, rows)
    packed = score_steps(model, tokens, batch_tokens=4096)  # all three solutions in one row
    for (prompt, steps), got, solution in zip(SOLUTIONS, packed, tokens, strict=True):
        expected = reference(path, prompt, steps).numpy()
        assert got.shape == (len(steps),)
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
        np.testing.assert_allclose(score_steps_per_prefix(model, solution), expected, atol=1e-5, rtol=0)
    assert np.ptp(np.concatenate(packed)) > 1e-3  # the random heads give distinct scores, so equality means something


def test_scores_do_not_depend_on_the_row_a_solution_is_packed_in(tmp_path: Path) -> None:
    model = load_step_model(save_qwen_prm(tmp_path / "q"))
    rows = [StepRow(p, tuple(s), None, f"x:{i}") for i, (p, s) in enumerate(SOLUTIONS)]
    tokens = _tokens(model, rows)
    together = score_steps(model, tokens, batch_tokens=4096)
    alone = score_steps(model, tokens, batch_tokens=1)  # one solution per row
    for a, b in zip(together, alone, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)


def test_a_step_holding_the_separator_is_a_drop(tmp_path: Path) -> None:
    model = load_step_model(save_qwen_prm(tmp_path / "q"))
    row = StepRow("Q", ("one <extra_0> two",), None, "d.jsonl:4")
    drop = tokenize_steps(model.tokenizer, model.template, row)
    assert isinstance(drop, Drop) and drop.reason == STEP_TOKEN_MISMATCH and drop.location == "d.jsonl:4"
    assert "2 step tokens" in drop.message and "for 1 steps" in drop.message


def test_aggregates_and_first_error_by_hand() -> None:
    scores = np.array([0.9, 0.4, 0.8], dtype=np.float32)
    assert aggregate(scores, "min") == pytest.approx(0.4)
    assert aggregate(scores, "last") == pytest.approx(0.8)
    assert aggregate(scores, "mean") == pytest.approx(0.7)
    assert aggregate(scores, "product") == pytest.approx(0.288)
    assert first_error_step(scores, 0.5) == 1
    assert first_error_step(scores, 0.3) == -1
    assert first_error_step(scores, 0.95) == 0


def test_an_unknown_model_names_the_layout_flag(tmp_path: Path) -> None:
    from rmdata.errors import RmdataError

    (tmp_path / "config.json").write_text('{"architectures": ["BertModel"]}')
    with pytest.raises(RmdataError, match="--layout"):
        load_step_model(tmp_path)


def test_a_directory_without_weights_is_one_clear_error(tmp_path: Path) -> None:
    from rmdata.errors import RmdataError

    path = save_qwen_prm(tmp_path / "q")
    (path / "model.safetensors").unlink()
    with pytest.raises(RmdataError, match="cannot load it as a qwen-prm PRM"):
        load_step_model(path)
