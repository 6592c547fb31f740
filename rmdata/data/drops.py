"""Rows a stage leaves out: one ``Drop`` type, one set of reason names, for every stage.

Every drop is counted by reason (``run.json``, summaries, dataset cards) and can be written out with its
row (``rejects/*.jsonl``). The reason names below are the only ones any stage uses; the table of
drop reasons in docs/outputs.md lists the same names.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# data: a record that breaks a rule of its format (or of every format, when detection failed)
INVALID_RECORD = "invalid_record"
# data: a line or item that could not be read as a record (malformed JSON, not an object, not UTF-8)
UNREADABLE_RECORD = "unreadable_record"
# data: a multi-response record kept without one of its responses, which broke a rule
INVALID_RESPONSE = "invalid_response"
# data: a record whose normalized content repeats an earlier one (with data.dedup: true)
DUPLICATE = "duplicate"
# tokens: the response plus reward token cannot fit max_length even with the prompt cut away
RESPONSE_TOO_LONG = "response_too_long"
# tokens: chosen and rejected became the same token sequence after the prompt was cut
IDENTICAL_AFTER_TRUNCATION = "identical_after_truncation"
# tokens: a pair longer than one packed row (data.max_packed_length)
OVER_MAX_PACKED_LENGTH = "over_max_packed_length"
# tokens: a stepwise solution whose tokens hold a different number of step tokens than it has steps
STEP_TOKEN_MISMATCH = "step_token_mismatch"
# tokens: a stepwise solution longer than max_length (never cut: its last steps would lose their scores)
STEPS_TOO_LONG = "steps_too_long"
# curate: a solution with a predicted wrong step (filter --no-step-error)
STEP_ERROR = "step_error"
# curate: a scored row whose reward is null (a step score that is null or NaN, in filter-steps)
MISSING_REWARD = "missing_reward"
# curate, --on-error skip: a scored row whose reward is NaN or infinite (refused without --on-error skip)
NON_FINITE_REWARD = "non_finite_reward"
# curate: the same response text as a better-scored response of the same prompt
DUPLICATE_RESPONSE = "duplicate_response"
# curate: the prompt has fewer distinct responses than the command needs (--min-responses; 2 for build-dpo)
TOO_FEW_RESPONSES = "too_few_responses"
# filter: the score is under --min-score
BELOW_MIN_SCORE = "below_min_score"
# filter: not among the --top-k best responses of its prompt
OUTSIDE_TOP_K = "outside_top_k"
# filter: not among the best --top-p fraction of all rows
OUTSIDE_TOP_P = "outside_top_p"
# build-dpo: the prompt has two or more distinct responses but no pair passed --margin and --tie-epsilon
NO_PAIR = "no_pair"
# build-dpo: the prompt has pairs, but this response is in none of them (strategy or --max-pairs-per-prompt)
UNPAIRED = "unpaired"
# build-dpo, a candidate pair: the score gap is not above --tie-epsilon
TIE = "tie"
# build-dpo, a candidate pair: the score gap is under --margin
BELOW_MARGIN = "below_margin"
# build-dpo, a candidate pair: passed the rules, but its prompt already has --max-pairs-per-prompt larger gaps
OVER_MAX_PAIRS = "over_max_pairs"
# build-dpo, a candidate pair (best-vs-random): passed the rules, but the seeded draw chose another
NOT_DRAWN = "not_drawn"
# --agree: filter, a row outside some model's --top-k; build-dpo, a pair some model orders the other way (or ties)
MODELS_DISAGREE = "models_disagree"

REASONS: dict[str, str] = {
    INVALID_RECORD: "the record breaks a rule of its format",
    UNREADABLE_RECORD: "the line or item cannot be read as a record (malformed JSON, not an object, not UTF-8)",
    INVALID_RESPONSE: "one response of a multi-response record breaks a rule; the others are kept",
    DUPLICATE: "the same normalized content as an earlier record (data.dedup: true)",
    RESPONSE_TOO_LONG: "the response and reward token do not fit max_length, even with the prompt cut away",
    IDENTICAL_AFTER_TRUNCATION: "chosen and rejected are the same tokens once the prompt is cut",
    OVER_MAX_PACKED_LENGTH: "the pair is longer than one packed row (data.max_packed_length)",
    STEP_TOKEN_MISMATCH: "the tokenized solution holds a different number of step tokens than steps",
    STEPS_TOO_LONG: "the stepwise solution is longer than max_length (a solution is never cut)",
    STEP_ERROR: "a step scores under the threshold (its first error step is named)",
    MISSING_REWARD: "the scored row has no reward (null)",
    NON_FINITE_REWARD: "the reward is NaN or infinite (--on-error skip; the default refuses the table)",
    DUPLICATE_RESPONSE: "the same response text as a better-scored response of the same prompt",
    TOO_FEW_RESPONSES: "the prompt has fewer distinct responses than needed (--min-responses; 2 for build-dpo)",
    BELOW_MIN_SCORE: "the score is under --min-score",
    OUTSIDE_TOP_K: "not among the --top-k best responses of its prompt",
    OUTSIDE_TOP_P: "not among the best --top-p fraction of all rows",
    NO_PAIR: "the prompt has two or more distinct responses, but no pair passes --margin and --tie-epsilon",
    UNPAIRED: "the prompt has pairs, but this response is in none (strategy or --max-pairs-per-prompt)",
    TIE: "a candidate pair whose score gap is not above --tie-epsilon",
    BELOW_MARGIN: "a candidate pair whose score gap is under --margin",
    OVER_MAX_PAIRS: "a candidate pair beyond --max-pairs-per-prompt (larger gaps kept first)",
    NOT_DRAWN: "a candidate pair that passed the rules, but best-vs-random's seeded draw chose another",
    MODELS_DISAGREE: "--agree: not every model named in --reward ranks it so (filter: in its --top-k; "
    "build-dpo: chosen above rejected)",
}


@dataclass(frozen=True)
class Drop:
    """One row left out: why (a name from ``REASONS``), a readable message, where it came from, and the row.

    ``location`` is ``file:line`` or ``file:row``; ``row`` is the record or normalized row as JSON-ready
    values (``None`` when the record could not be read at all); ``fields`` holds per-field problems
    (``[{"field", "message"}]``) when a rule named them; ``raw`` the text of a line that did not parse.
    """

    reason: str
    message: str
    location: str
    row: Mapping[str, Any] | None = None
    fields: tuple[Mapping[str, str | None], ...] = field(default_factory=tuple)  # field None: the whole record
    raw: str | None = None  # the line or item that could not be read as a record

    def __post_init__(self) -> None:
        if self.reason not in REASONS:
            raise ValueError(f"unknown drop reason {self.reason!r}; add it to rmdata.data.drops.REASONS")

    def to_json(self) -> dict[str, Any]:
        """The line written to a rejects file."""
        out: dict[str, Any] = {"source": self.location, "reason": self.reason, "message": self.message}
        if self.fields:
            out["errors"] = [dict(f) for f in self.fields]
        if self.row is not None:
            out["record"] = dict(self.row)
        if self.raw is not None:
            out["raw"] = self.raw
        return out


def count_by_reason(drops: Iterable[Drop]) -> dict[str, int]:
    """``{reason: count}``, most frequent first (ties by name), for run.json and summaries."""
    counts = Counter(d.reason for d in drops)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
