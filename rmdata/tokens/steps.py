"""A stepwise solution as one token sequence, with the position of each step's step token.

A process reward model reads one score per step at the step token that ends it. The solution is rendered
as one text and tokenized once (as the models' own reference code does, so the token ids are the same), and
the step positions are where the step token's id occurs:

- ``separator`` (Qwen2.5-Math-PRM, rmdata's own PRMs): the prompt as the user turn of the chat template
  (after an optional system turn), the assistant turn ``step_1<sep>step_2<sep>...step_n<sep>``;
- ``tag`` (Math-Shepherd): plain text ``prompt step_1 ки\\nstep_2 ки...``, no chat template.

A solution whose tokens do not hold exactly one step token per step (a step's text contains the step token,
or the tokenizer merged it into a neighbour) is a drop with reason ``step_token_mismatch``; one longer than
``max_length`` is a drop with reason ``steps_too_long`` (a solution is never cut: the last steps would lose
their scores).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rmdata.data.drops import STEP_TOKEN_MISMATCH, STEPS_TOO_LONG, Drop
from rmdata.data.stepwise import StepRow
from rmdata.errors import RmdataError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

SEPARATOR = "separator"
TAG = "tag"


@dataclass(frozen=True)
class StepTemplate:
    """How a solution becomes text, and which token id marks the end of a step."""

    style: str  # SEPARATOR (chat template) or TAG (plain text)
    step_text: str  # the text written after each step, e.g. "<extra_0>" or " ки"
    step_token_id: int  # the id read as the step position
    system: str | None = None  # SEPARATOR: a system turn before the prompt
    between: str = ""  # text after a step's step_text, before the next step (TAG: "\n")

    def render(self, tokenizer: PreTrainedTokenizerBase, prompt: str, steps: tuple[str, ...]) -> str:
        """The whole solution as the text the model reads."""
        body = self.between.join(step + self.step_text for step in steps)
        if self.style == TAG:
            return f"{prompt} {body}"
        messages = [{"role": "system", "content": self.system}] if self.system else []
        messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": body}]
        return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False))


@dataclass(frozen=True)
class StepTokens:
    """A solution's token ids ``[T]`` and the position of each step's step token ``[n_steps]``."""

    input_ids: np.ndarray  # int64
    step_positions: np.ndarray  # int64, increasing


def step_token_id(tokenizer: PreTrainedTokenizerBase, text: str) -> int:
    """The id of ``text``'s last token (how Math-Shepherd's reference code finds its tag id)."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    if not ids:
        raise RmdataError(f"step token {text!r} tokenizes to nothing; give a token the tokenizer knows")
    return int(ids[-1])


def tokenize_steps(
    tokenizer: PreTrainedTokenizerBase, template: StepTemplate, row: StepRow, max_length: int | None = None
) -> StepTokens | Drop:
    """Render and tokenize ``row``; a Drop when the step tokens do not match the steps or it is too long."""
    text = template.render(tokenizer, row.prompt, row.steps)
    ids = np.asarray(tokenizer.encode(text, add_special_tokens=True), dtype=np.int64)
    positions = np.flatnonzero(ids == template.step_token_id)
    if len(positions) != len(row.steps):
        message = (
            f"the tokenized solution holds {len(positions)} step tokens (id {template.step_token_id}) for "
            f"{len(row.steps)} steps; a step's text contains the step token {template.step_text!r}, or the "
            "tokenizer merged it with a neighbour"
        )
        return Drop(STEP_TOKEN_MISMATCH, message, row.location, _json_row(row))
    if max_length is not None and len(ids) > max_length:
        message = f"{len(ids)} tokens, over max_length={max_length}; a solution is never cut (raise --max-length)"
        return Drop(STEPS_TOO_LONG, message, row.location, _json_row(row))
    return StepTokens(ids, positions.astype(np.int64))


def _json_row(row: StepRow) -> dict[str, object]:
    labels = None if row.labels is None else list(row.labels)
    return {"prompt": row.prompt, "completions": list(row.steps), "labels": labels, **row.extra}
