"""The options of ``rmdata train-steps``: one dataclass, each field documented once; the CLI help is read from it."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from rmdata.config import ModelConfig


def _opt(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass
class StepTrainConfig:
    """Everything a PRM training run depends on; ``train_steps.json`` in the export records it."""

    data: str = _opt("", "Labelled stepwise data: TRL (prompt, completions, labels), Math-Shepherd or PRM800K.")
    data_layout: str = _opt("auto", "Data layout: auto (from the first record's keys), trl, math-shepherd or prm800k.")
    neutral_label: float = _opt(1.0, "PRM800K: the label of a step rated 0 (1 = not an error, 0 = an error).")
    output: str = _opt("rmdata-out/prm", "Export directory (AutoModelForSequenceClassification + tokenizer).")
    max_packed_length: int = _opt(4096, "Tokens per packed row; a longer solution is a steps_too_long drop.")
    rows_per_step: int = _opt(1, "Packed rows per optimizer step.")
    epochs: int = _opt(1, "Passes over the data.")
    lr: float = _opt(1e-4, "AdamW learning rate.")
    seed: int = _opt(0, "Seed of the model's initialisation and the row order.")
    device: str = _opt("auto", "auto (CUDA when available), cpu or cuda.")
    model: ModelConfig = field(default_factory=ModelConfig, metadata={"help": "backbone, reward token, adapters"})


HELP: dict[str, str] = {f.name: f.metadata["help"] for f in fields(StepTrainConfig)}
