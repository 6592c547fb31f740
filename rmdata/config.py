"""Recipes: YAML files that map one-to-one onto typed dataclasses, the one source of truth for every option.

Each field is declared once, with its default, its one-line documentation (``metadata["help"]``) and its
allowed range (``metadata["range"]``); error messages, ``rmdata train --keys`` and the modules that use an
option (losses, attention backends, finetune modes, dtypes) read them from here, never from a second list.
Choices are ``Literal`` types (:func:`choices` lists them). Unknown keys are an error that lists the valid
ones, values are type-checked (YAML and ``--set a.b=value`` overrides alike) and range-checked when a
section is built (so a hand-built ``LossConfig(kind="hinge")`` is refused too), and the resolved recipe is
written next to every output.

This module may import the data stage's format registry (``rmdata.data.formats``, pure Python) and
nothing later. Every option of every section is declared here once, with its range, so this is the one file
to read for what a recipe may say; the field machinery and type coercion are :mod:`rmdata.options`, the rest
here is YAML loading, ``--set`` overrides and writing the resolved recipe.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml

from rmdata.data.formats import FORMATS
from rmdata.errors import RmdataError
from rmdata.options import Section, build, field_types, option, type_name

DEFAULT_RECIPE = "tiny-cpu"
MAX_STEPS = 10**9  # optimizer steps a run may plan: far beyond any real run, small enough to refuse typos

LossKind = Literal["ranking", "focal"]
Penalty = Literal["log_barrier", "l2", "none"]
FinetuneMode = Literal["full", "lora", "qlora"]
AttentionName = Literal["auto", "flash_varlen", "torch_varlen", "sdpa_varlen", "eager_varlen"]
DtypeName = Literal["auto", "float32", "bfloat16"]
TinyArch = Literal["llama", "qwen2"]
OnError = Literal["raise", "skip"]
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


@dataclass
class TinyModelConfig(Section):
    """Sizes of a tiny backbone built from config (no weights are downloaded)."""

    SECTION: ClassVar[str] = "model.tiny"
    arch: TinyArch = option("llama", "llama or qwen2: the transformers-native families tested")
    hidden_size: int = option(
        64, "trunk width; the value head reads this many features (QLoRA: a multiple of 64)", ge=1, le=65536
    )
    num_layers: int = option(2, "decoder layers", ge=1, le=1024)
    num_heads: int = option(4, "attention heads; must divide hidden_size", ge=1, le=1024)
    num_kv_heads: int = option(2, "key/value heads; fewer than num_heads = GQA (must divide num_heads)", ge=1, le=1024)
    intermediate_size: int = option(128, "MLP width (QLoRA: a multiple of 64)", ge=1, le=262144)
    max_position_embeddings: int = option(4096, "longest sequence the model accepts", ge=2, le=10**7)

    def check(self) -> None:
        if self.hidden_size % self.num_heads:
            raise RmdataError(
                f"model.tiny.num_heads={self.num_heads} does not divide model.tiny.hidden_size={self.hidden_size}; "
                "pick a head count that divides the width (e.g. hidden_size=64, num_heads=4)"
            )
        if (self.hidden_size // self.num_heads) % 2:
            raise RmdataError(
                f"model.tiny head width hidden_size/num_heads = {self.hidden_size // self.num_heads} is odd; "
                "rotary embeddings need an even head width (e.g. hidden_size=64, num_heads=4)"
            )
        if self.num_heads % self.num_kv_heads:
            raise RmdataError(
                f"model.tiny.num_kv_heads={self.num_kv_heads} does not divide model.tiny.num_heads={self.num_heads}; "
                "grouped-query attention shares each key/value head among a whole number of query heads"
            )


@dataclass
class ModelConfig(Section):
    SECTION: ClassVar[str] = "model"
    name_or_path: str = option("tiny", "HF model directory (or hub id, cached), or 'tiny' to build model.tiny")
    gguf_file: str | None = option(None, "GGUF file name inside name_or_path, for GGUF-only checkpoints")
    tiny: TinyModelConfig = field(
        default_factory=TinyModelConfig, metadata={"help": "sizes of the tiny model built when name_or_path=tiny"}
    )
    reward_token: str | None = option(None, "token string appended to every sequence; its hidden state is scored")
    reward_token_id: int | None = option(
        None, "token id instead of reward_token (InternLM2 92527, Llama-3 128002)", ge=0
    )
    finetune: FinetuneMode = option("full", "full weights, LoRA adapters, or 4-bit nf4 + LoRA")
    lora_rank: int = option(16, "LoRA rank: higher = more capacity, more memory", ge=1, le=65536)
    lora_alpha: int = option(32, "LoRA scaling numerator (scale = alpha / rank)", gt=0)
    lora_dropout: float = option(0.05, "dropout on the LoRA input", ge=0.0, lt=1.0)
    attention: AttentionName = option(
        "auto",
        "varlen attention backend; auto = flash-attn on CUDA when installed, else torch's varlen_attn on CUDA, "
        "else per-segment SDPA",
    )
    dtype: DtypeName = option("auto", "weights dtype; auto = bfloat16 autocast on CUDA, float32 on CPU")
    gradient_checkpointing: bool = option(False, "recompute activations in backward: less memory, ~30% slower")


@dataclass
class DataConfig(Section):
    SECTION: ClassVar[str] = "data"
    train: list[str] = option([], "training files (any format rmdata reads); builtin:NAME for bundled data")
    eval: list[str] = option([], "held-out files; if empty, eval_fraction of train is held out")
    eval_fraction: float = option(
        0.05, "fraction of training pairs held out when data.eval is empty (0 = none)", ge=0.0, lt=1.0
    )
    format: str | None = option(None, f"input format; None = detect ({', '.join(FORMATS)})")
    max_length: int = option(
        2048, "tokens per sequence, reward token included; prompts are cut from the left", ge=2, le=10**7
    )
    max_packed_length: int = option(
        4096, "token budget of one packed row; a pair is never split across rows", ge=2, le=10**8
    )
    chat_template: str | None = option(None, "Jinja chat template overriding the tokenizer's")
    on_error: OnError = option("raise", "bad records: raise lists them all; skip writes rejects")

    def check(self) -> None:
        for name in ("train", "eval"):
            for i, path in enumerate(getattr(self, name)):
                if not path.strip():
                    raise RmdataError(f"data.{name}[{i}] is an empty path; give a file or directory to read")
        if self.format is not None and self.format not in FORMATS:
            raise RmdataError(
                f"data.format={self.format!r} is not a format rmdata reads; use one of {', '.join(FORMATS)}"
            )
        if self.max_packed_length < self.max_length:
            raise RmdataError(
                f"data.max_packed_length={self.max_packed_length} is below data.max_length={self.max_length}: "
                "a pair of full-length sequences could never be packed; raise data.max_packed_length"
            )


@dataclass
class LossConfig(Section):
    SECTION: ClassVar[str] = "loss"
    kind: LossKind = option("focal", "ranking = -log sigmoid(d); focal down-weights easy pairs")
    focal_gamma: float = option(2.0, "focal exponent; 0 turns focal into ranking", ge=0.0)
    penalty: Penalty = option("log_barrier", "keeps scores small and centred")
    penalty_weight: float = option(0.01, "weight of the penalty per score", ge=0.0)
    penalty_bound: float = option(5.0, "log_barrier bound b: scores are kept inside (-b, b)", gt=0.0)
    use_margin: bool = option(True, "subtract the data's margin column from d inside the ranking term")


@dataclass
class TrainConfig(Section):
    SECTION: ClassVar[str] = "train"
    seed: int = option(0, "seed for the split, packing order, initialization and dropout", ge=0, le=2**63 - 1)
    epochs: int = option(1, "passes over the training pairs", ge=1, le=10**6)
    max_steps: int | None = option(None, "stop after this many optimizer steps (overrides epochs)", ge=1, le=MAX_STEPS)
    lr: float = option(2e-5, "peak learning rate of AdamW", gt=0.0, le=10.0)
    head_lr: float | None = option(None, "learning rate of the value head; None = lr", gt=0.0, le=10.0)
    weight_decay: float = option(0.0, "AdamW weight decay (never applied to the value head or norms)", ge=0.0)
    warmup_ratio: float = option(0.03, "fraction of steps of linear warmup before the cosine decay", ge=0.0, lt=1.0)
    min_lr_ratio: float = option(0.0, "cosine decays to lr * min_lr_ratio", ge=0.0, le=1.0)
    max_grad_norm: float = option(1.0, "gradient clipping by global norm (0 = off)", ge=0.0)
    grad_accum: int = option(1, "packed rows per optimizer step", ge=1, le=10**6)
    log_steps: int = option(10, "write a metrics.jsonl line every N steps", ge=1)
    eval_steps: int = option(0, "evaluate every N steps (0 = only at the end)", ge=0)
    save_steps: int = option(0, "checkpoint every N steps (0 = only on interrupt)", ge=0)
    keep_checkpoints: int = option(2, "keep the last k checkpoints", ge=1)
    device: str = option("auto", "auto, cpu, cuda or cuda:N")

    def check(self) -> None:
        if not _DEVICE.fullmatch(self.device):
            raise RmdataError(
                f"train.device={self.device!r} is not a device rmdata trains on; use auto, cpu, cuda or cuda:N"
            )


@dataclass
class ParallelConfig(Section):
    """Scale-out under torchrun (docs/scale-out.md); fsdp does nothing in a single process."""

    SECTION: ClassVar[str] = "parallel"
    fsdp: bool = option(False, "shard parameters, gradients and optimizer state across ranks (FSDP2, full finetune)")
    sequence_parallel: int = option(
        1, "ranks that split each packed row (Ulysses all-to-all attention); 1 = off", ge=1, le=4096
    )


@dataclass
class Recipe:
    name: str = option("run", "run name; the default output is rmdata-out/runs/<name>")
    output_dir: str | None = option(None, "run directory; None = rmdata-out/runs/<name>")
    model: ModelConfig = field(default_factory=ModelConfig, metadata={"help": "backbone, head and adapters"})
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "inputs, templates and packing"})
    loss: LossConfig = field(default_factory=LossConfig, metadata={"help": "InternLM2 reward loss"})
    train: TrainConfig = field(default_factory=TrainConfig, metadata={"help": "optimizer and loop"})
    parallel: ParallelConfig = field(default_factory=ParallelConfig, metadata={"help": "torchrun scale-out"})


# ---------------------------------------------------------------- loading, overrides, writing


def recipe_path(name_or_path: str | Path | None) -> Path:
    """Resolve a recipe argument: a file path, or the name of a recipe bundled with rmdata."""
    if name_or_path is None:
        name_or_path = DEFAULT_RECIPE
    path = Path(name_or_path)
    if path.is_file():
        return path
    bundled = resources.files("rmdata") / "resources" / "recipes" / f"{name_or_path}.yaml"
    if bundled.is_file():
        return Path(str(bundled))
    raise RmdataError(f"recipe {name_or_path!r} not found: give a YAML file or a bundled name ({DEFAULT_RECIPE})")


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b=value`` -> (["a", "b"], value parsed as YAML)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise RmdataError(f"--set {text!r} must look like section.key=value, e.g. train.max_steps=20")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def _merge(tree: dict[str, Any], keys: list[str], value: Any) -> None:
    node = tree
    for k in keys[:-1]:
        child = node.setdefault(k, {})
        if not isinstance(child, dict):
            raise RmdataError(f"--set {'.'.join(keys)}: {k} is a value, not a section")
        node = child
    node[keys[-1]] = value


def load_recipe(source: str | Path | None = None, overrides: Sequence[str] = ()) -> Recipe:
    """Read a recipe (file or bundled name), apply ``--set`` overrides, type-check and validate it."""
    path = recipe_path(source)
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise RmdataError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(tree, dict):
        raise RmdataError(f"{path}: a recipe must be a mapping of sections, got {type(tree).__name__}")
    for text in overrides:
        _merge(tree, *parse_override(text))
    try:
        recipe: Recipe = build(Recipe, tree)
    except RmdataError as err:
        raise RmdataError(f"{path}: {err}") from None
    return recipe


def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    return dataclasses.asdict(recipe)


def dump_recipe(recipe: Recipe) -> str:
    """The resolved recipe as YAML, in field order, loadable again with ``load_recipe``."""
    return yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False, allow_unicode=True)


def iter_keys(cls: type = Recipe, prefix: str = "") -> Iterator[tuple[str, str, Any, str]]:
    """Every leaf key as (dotted key, type, default, help): the source of ``rmdata train --keys``."""
    hints = field_types(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            yield from iter_keys(tp, f"{prefix}{f.name}.")  # type: ignore[arg-type]
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        yield f"{prefix}{f.name}", type_name(tp), default, f.metadata.get("help", "")


def resolve_data_path(path: str) -> str:
    """``builtin:NAME`` -> the bundled data file rmdata ships; anything else unchanged (the data layer decides)."""
    from rmdata.data.inputs import builtin_path

    return builtin_path(path)
