"""Rows a stage leaves out: one ``Drop`` type, one set of reason names, for every stage.

Every drop is counted by reason (``run.json``, summaries, dataset cards) and can be written out with its
row (``rejects/*.jsonl``). The reason names below are the only ones any stage uses; the README's table of
drop reasons lists the same names.
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

REASONS: dict[str, str] = {
    INVALID_RECORD: "the record breaks a rule of its format",
    UNREADABLE_RECORD: "the line or item cannot be read as a record (malformed JSON, not an object, not UTF-8)",
    INVALID_RESPONSE: "one response of a multi-response record breaks a rule; the others are kept",
    DUPLICATE: "the same normalized content as an earlier record (data.dedup: true)",
    RESPONSE_TOO_LONG: "the response and reward token do not fit max_length, even with the prompt cut away",
    IDENTICAL_AFTER_TRUNCATION: "chosen and rejected are the same tokens once the prompt is cut",
    OVER_MAX_PACKED_LENGTH: "the pair is longer than one packed row (data.max_packed_length)",
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
