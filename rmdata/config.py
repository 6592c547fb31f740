"""Recipes: YAML files that map one-to-one onto typed dataclasses.

Each field is documented once, in its ``metadata["help"]``; error messages and ``rmdata train --keys`` read
it from there. Unknown keys are an error that lists the valid ones, values are type-checked (YAML and
``--set a.b=value`` overrides alike), and the resolved recipe is written next to every output.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from rmdata.errors import RmdataError

BUILTIN_PREFIX = "builtin:"
DEFAULT_RECIPE = "tiny-cpu"


def _opt(default: Any, help: str, **kw: Any) -> Any:
    """A dataclass field with its one-line documentation."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


@dataclass
class TinyModelConfig:
    """Sizes of a tiny backbone built from config (no weights are downloaded)."""

    arch: str = field(default="llama", metadata={"help": "llama or qwen2: the transformers-native families tested"})
    hidden_size: int = field(default=64, metadata={"help": "trunk width; the value head reads this many features"})
    num_layers: int = field(default=2, metadata={"help": "decoder layers"})
    num_heads: int = field(default=4, metadata={"help": "attention heads"})
    num_kv_heads: int = field(default=2, metadata={"help": "key/value heads; fewer than num_heads = GQA"})
    intermediate_size: int = field(default=128, metadata={"help": "MLP width"})
    max_position_embeddings: int = field(default=4096, metadata={"help": "longest sequence the model accepts"})


@dataclass
class ModelConfig:
    name_or_path: str = _opt("tiny", "HF model directory (or hub id, cached), or 'tiny' to build model.tiny")
    gguf_file: str | None = _opt(None, "GGUF file name inside name_or_path, for GGUF-only checkpoints")
    tiny: TinyModelConfig = field(
        default_factory=TinyModelConfig, metadata={"help": "sizes of the tiny model built when name_or_path=tiny"}
    )
    reward_token: str | None = _opt(None, "token string appended to every sequence; its hidden state is scored")
    reward_token_id: int | None = _opt(None, "token id instead of reward_token (InternLM2 92527, Llama-3 128002)")
    finetune: Literal["full", "lora", "qlora"] = _opt("full", "full weights, LoRA adapters, or 4-bit nf4 + LoRA")
    lora_rank: int = _opt(16, "LoRA rank: higher = more capacity, more memory")
    lora_alpha: int = _opt(32, "LoRA scaling numerator (scale = alpha / rank)")
    lora_dropout: float = _opt(0.05, "dropout on the LoRA input")
    attention: Literal["auto", "flash_varlen", "torch_varlen", "sdpa_varlen", "eager_varlen"] = _opt(
        "auto",
        "varlen attention backend; auto = flash-attn on CUDA when installed, else torch's varlen_attn on CUDA, "
        "else per-segment SDPA",
    )
    dtype: Literal["auto", "float32", "bfloat16"] = _opt(
        "auto", "weights dtype; auto = bfloat16 autocast on CUDA, float32 on CPU"
    )
    gradient_checkpointing: bool = _opt(False, "recompute activations in backward: less memory, ~30% slower")


@dataclass
class DataConfig:
    train: list[str] = _opt([], "training files (any format rmdata reads); builtin:NAME for bundled data")
    eval: list[str] = _opt([], "held-out files; if empty, eval_fraction of train is held out")
    eval_fraction: float = _opt(0.05, "fraction of training pairs held out when data.eval is empty (0 = none)")
    format: str | None = _opt(None, "input format; None = detect (pairs, pairs-implicit, hh)")
    max_length: int = _opt(2048, "tokens per sequence, reward token included; prompts are cut from the left")
    max_packed_length: int = _opt(4096, "token budget of one packed row; a pair is never split across rows")
    chat_template: str | None = _opt(None, "Jinja chat template overriding the tokenizer's")
    on_error: Literal["raise", "skip"] = _opt("raise", "bad records: raise lists them all; skip writes rejects")


@dataclass
class LossConfig:
    kind: Literal["ranking", "focal"] = _opt("focal", "ranking = -log sigmoid(d); focal down-weights easy pairs")
    focal_gamma: float = _opt(2.0, "focal exponent; 0 turns focal into ranking")
    penalty: Literal["log_barrier", "l2", "none"] = _opt("log_barrier", "keeps scores small and centred")
    penalty_weight: float = _opt(0.01, "weight of the penalty per score")
    penalty_bound: float = _opt(5.0, "log_barrier bound b: scores are kept inside (-b, b)")
    use_margin: bool = _opt(True, "subtract the data's margin column from d inside the ranking term")


@dataclass
class TrainConfig:
    seed: int = _opt(0, "seed for the split, packing order, initialization and dropout")
    epochs: int = _opt(1, "passes over the training pairs")
    max_steps: int | None = _opt(None, "stop after this many optimizer steps (overrides epochs)")
    lr: float = _opt(2e-5, "peak learning rate of AdamW")
    head_lr: float | None = _opt(None, "learning rate of the value head; None = lr")
    weight_decay: float = _opt(0.0, "AdamW weight decay (never applied to the value head or norms)")
    warmup_ratio: float = _opt(0.03, "fraction of steps of linear warmup before the cosine decay")
    min_lr_ratio: float = _opt(0.0, "cosine decays to lr * min_lr_ratio")
    max_grad_norm: float = _opt(1.0, "gradient clipping by global norm (0 = off)")
    grad_accum: int = _opt(1, "packed rows per optimizer step")
    log_steps: int = _opt(10, "write a metrics.jsonl line every N steps")
    eval_steps: int = _opt(0, "evaluate every N steps (0 = only at the end)")
    save_steps: int = _opt(0, "checkpoint every N steps (0 = only on interrupt)")
    keep_checkpoints: int = _opt(2, "keep the last k checkpoints")
    device: str = _opt("auto", "auto, cpu, cuda or cuda:N")


@dataclass
class ParallelConfig:
    """Scale-out under torchrun (README "Scale-out"); fsdp does nothing in a single process."""

    fsdp: bool = _opt(False, "shard parameters, gradients and optimizer state across ranks (FSDP2, full finetune)")
    sequence_parallel: int = _opt(1, "ranks that split each packed row (Ulysses all-to-all attention); 1 = off")


@dataclass
class Recipe:
    name: str = _opt("run", "run name; the default output is rmdata-out/runs/<name>")
    output_dir: str | None = _opt(None, "run directory; None = rmdata-out/runs/<name>")
    model: ModelConfig = field(default_factory=ModelConfig, metadata={"help": "backbone, head and adapters"})
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "inputs, templates and packing"})
    loss: LossConfig = field(default_factory=LossConfig, metadata={"help": "InternLM2 reward loss"})
    train: TrainConfig = field(default_factory=TrainConfig, metadata={"help": "optimizer and loop"})
    parallel: ParallelConfig = field(default_factory=ParallelConfig, metadata={"help": "torchrun scale-out"})


# ---------------------------------------------------------------- type checking and coercion


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list[{_type_name(typing.get_args(tp)[0])}]"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Return ``value`` as type ``tp`` or raise an RmdataError naming the key, the value and the type."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        is_null = value is None or (isinstance(value, str) and value.lower() in ("null", "none", "~"))
        if is_null and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except RmdataError:
                continue
    elif origin is Literal:
        if value in typing.get_args(tp):
            return value
    elif origin is list:
        (item,) = typing.get_args(tp)
        items = value if isinstance(value, list) else [value] if isinstance(value, str) else None
        if items is not None:
            return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(items)]
    elif isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if isinstance(value, dict):
            return _build(tp, value, prefix=f"{key}.")
    elif tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:  # YAML 1.1 reads "1e-4" as a string
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    raise RmdataError(f"{key} must be {_type_name(tp)}; got {value!r}")


def _build(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    hints = _hints(cls)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        valid = ", ".join(f.name for f in dataclasses.fields(cls))
        where = prefix.rstrip(".") or "the top level"
        raise RmdataError(f"unknown recipe key {prefix}{unknown[0]}; valid keys under {where}: {valid}")
    kwargs = {name: _coerce(v, hints[name], prefix + name) for name, v in values.items()}
    return cls(**kwargs)


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
        recipe: Recipe = _build(Recipe, tree)
    except RmdataError as err:
        raise RmdataError(f"{path}: {err}") from None
    validate_recipe(recipe)
    return recipe


def validate_recipe(recipe: Recipe) -> None:
    """Range checks that types alone cannot express."""
    checks = [
        (recipe.data.max_length > 1, "data.max_length must be > 1"),
        (recipe.data.max_packed_length >= recipe.data.max_length, "data.max_packed_length must be >= data.max_length"),
        (0.0 <= recipe.data.eval_fraction < 1.0, "data.eval_fraction must be in [0, 1)"),
        (recipe.loss.penalty_bound > 0, "loss.penalty_bound must be > 0"),
        (recipe.loss.penalty_weight >= 0, "loss.penalty_weight must be >= 0"),
        (recipe.train.epochs >= 1, "train.epochs must be >= 1"),
        (recipe.train.max_steps is None or recipe.train.max_steps >= 1, "train.max_steps must be >= 1"),
        (recipe.train.grad_accum >= 1, "train.grad_accum must be >= 1"),
        (recipe.train.lr > 0, "train.lr must be > 0"),
        (0.0 <= recipe.train.warmup_ratio < 1.0, "train.warmup_ratio must be in [0, 1)"),
        (recipe.train.log_steps >= 1, "train.log_steps must be >= 1"),
        (recipe.train.keep_checkpoints >= 1, "train.keep_checkpoints must be >= 1"),
        (recipe.model.lora_rank >= 1, "model.lora_rank must be >= 1"),
    ]
    for ok, message in checks:
        if not ok:
            raise RmdataError(message)


def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    return dataclasses.asdict(recipe)


def dump_recipe(recipe: Recipe) -> str:
    """The resolved recipe as YAML, in field order, loadable again with ``load_recipe``."""
    return yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False, allow_unicode=True)


def iter_keys(cls: type = Recipe, prefix: str = "") -> Iterator[tuple[str, str, Any, str]]:
    """Every leaf key as (dotted key, type, default, help): the source of ``rmdata train --keys``."""
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            yield from iter_keys(tp, f"{prefix}{f.name}.")  # type: ignore[arg-type]
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        yield f"{prefix}{f.name}", _type_name(tp), default, f.metadata.get("help", "")


def resolve_data_path(path: str) -> str:
    """``builtin:NAME`` -> the bundled data file rmdata ships; anything else unchanged."""
    if not path.startswith(BUILTIN_PREFIX):
        return path
    name = path[len(BUILTIN_PREFIX) :]
    bundled = resources.files("rmdata") / "resources" / "data" / f"{name}.jsonl"
    if not bundled.is_file():
        raise RmdataError(f"{path}: no bundled data set named {name!r}")
    return str(bundled)
