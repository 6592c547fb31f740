"""The options of ``rmdata score-steps``, ``eval-steps`` and ``filter-steps``: one dataclass, each field
documented once; the CLI help is read from it."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

AGGREGATES = ("min", "last", "mean", "product")  # how step scores become a solution's reward


def _opt(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass
class StepScoreConfig:
    """Everything a step-scoring run depends on; ``manifest.json`` records it."""

    data: str = _opt(
        "", "Stepwise data: TRL (prompt, completions, labels), Math-Shepherd (input, label) or ProcessBench."
    )
    model: str = _opt(
        "", "Process reward model directory: Qwen2.5-Math-PRM layout, Math-Shepherd layout, or an rmdata export."
    )
    layout: str = _opt("auto", "Model layout: auto (from config.json), qwen-prm, math-shepherd or rmdata.")
    data_layout: str = _opt(
        "auto", "Data layout: auto (from the first record's keys), trl, math-shepherd or processbench."
    )
    neutral_label: float = _opt(
        1.0, "PRM800K: the label of a step rated 0 (1 = not an error, 0 = an error, 0.5 = soft)."
    )
    output: str = _opt("rmdata-out/step-scores", "Output dataset directory (data/*.parquet, README.md, manifest.json).")
    aggregate: str = _opt("min", f"A solution's reward from its step scores: {', '.join(AGGREGATES)}.")
    threshold: float = _opt(0.5, "A step scoring under this is an error: first_error_step is the first such step.")
    batch_tokens: int = _opt(8192, "Tokens per packed forward pass; a longer solution gets a row of its own.")
    max_length: int | None = _opt(
        None, "Longest solution in tokens (default: none); longer ones are steps_too_long drops."
    )
    device: str = _opt("auto", "auto (CUDA when available), cpu or cuda.")
    subset: str | None = _opt(None, "eval-steps: an input key whose values get metrics of their own (e.g. a split).")
    overwrite: bool = _opt(False, "Replace an existing output directory rmdata wrote.")


HELP: dict[str, str] = {f.name: f.metadata["help"] for f in fields(StepScoreConfig)}
