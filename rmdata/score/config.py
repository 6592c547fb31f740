"""The options of ``rmdata score``: one dataclass, each field documented once; the CLI help is read from it."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

DEFAULT_MODEL = "rmdata-out/runs/latest/final"
DEFAULT_OUTPUT = "rmdata-out/scores"


def _opt(default: Any, help: str) -> Any:
    """A field with its help text (typed Any so each field keeps its own annotation)."""
    return field(default=default, metadata={"help": help})


@dataclass
class ScoreConfig:
    """Everything a scoring run depends on; ``manifest.json`` records it."""

    inputs: list[str] = field(default_factory=list, metadata={"help": "Files or directories of responses to score."})
    model: str = _opt(
        DEFAULT_MODEL,
        "Reward model directory: an rmdata export or a Hugging Face "
        "*ForSequenceClassification with num_labels=1 (safetensors).",
    )
    output: str = _opt(
        DEFAULT_OUTPUT, "Output dataset directory (Hub layout: data/*.parquet, README.md, manifest.json)."
    )
    on_error: str = _opt(
        "fail",
        "fail: a bad record stops the run before scoring, naming file:line; skip: write "
        "bad records to rejects.jsonl in the output and score the rest.",
    )
    max_length: int | None = _opt(
        None,
        "Longest sequence in tokens (default: the model's context); longer rows "
        "lose tokens from the left and are flagged truncated.",
    )
    batch_tokens: int | None = _opt(
        None, "Tokens per forward pass (default: 1024 on CPU, 16384 on CUDA); a longer row gets one of its own."
    )
    device: str = _opt("auto", "auto (CUDA when available), cpu or cuda.")
    dtype: str = _opt("auto", "auto (bfloat16 on CUDA, float32 on CPU), float32 or bfloat16.")
    resume: bool = _opt(
        True, "Continue a killed run in the output directory, skipping committed shards; --no-resume replaces it."
    )
    save_to_disk: str | None = _opt(None, "Also write an Arrow copy (datasets save_to_disk) to this directory.")
    trust_remote_code: bool = _opt(False, "Allow a model directory's own Python code (auto_map) to run.")
    layout: str = _opt(
        "auto", "Batch layout: auto (the fastest measured for the device), packed or padded; every layout is exact."
    )
    shard_rows: int = _opt(4096, "Input rows per output shard (the unit of commit and resume).")
    reuse: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Earlier score outputs whose rewards are copied for unchanged rows (same response_id, model "
            "fingerprint, max_length, dtype and device); only the other rows are scored. Repeatable."
        },
    )


HELP: dict[str, str] = {f.name: f.metadata["help"] for f in fields(ScoreConfig)}
HELP["models"] = (
    HELP["model"] + " Repeat it to score with several models into one table with a reward_<name> column per "
    "model: --model NAME=DIR, or DIR (named after the directory)."
)
