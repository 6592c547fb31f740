"""Recipes: every bundled and repo recipe loads; unknown keys, bad types and bad overrides are clear errors."""

from pathlib import Path

import pytest

from rmdata.config import dump_recipe, iter_keys, load_recipe, parse_override, resolve_data_path
from rmdata.errors import RmdataError

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted((REPO / "recipes").rglob("*.yaml"))


def test_recipes_are_found_recursively() -> None:
    names = {p.stem for p in RECIPES}
    assert "tiny-cpu" in names
    assert len(RECIPES) == 9  # raise this when a recipe is added: it guards against a glob that finds nothing


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_recipe_loads_and_is_headed_by_its_command(path: Path) -> None:
    recipe = load_recipe(path)
    first_line = path.read_text(encoding="utf-8").splitlines()[0]
    assert first_line.startswith("# rmdata train")
    assert recipe.name == path.stem


def test_default_recipe_is_the_bundled_tiny_cpu() -> None:
    recipe = load_recipe(None)
    assert recipe.name == "tiny-cpu"
    assert recipe.model.name_or_path == "tiny"
    assert Path(resolve_data_path(recipe.data.train[0])).is_file()


def test_overrides_are_type_checked_and_coerced() -> None:
    recipe = load_recipe(None, ["train.max_steps=20", "train.lr=1e-4", "data.train=a.jsonl", "loss.use_margin=false"])
    assert recipe.train.max_steps == 20
    assert recipe.train.lr == pytest.approx(1e-4)  # YAML 1.1 alone would read "1e-4" as a string
    assert recipe.data.train == ["a.jsonl"]  # a single path is accepted for a list
    assert recipe.loss.use_margin is False
    assert load_recipe(None, ["train.max_steps=null"]).train.max_steps is None


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.foo=1", "unknown recipe key train.foo; valid keys under train: seed, epochs"),
        ("nope.x=1", "unknown recipe key nope"),
        ("train.lr=fast", "train.lr must be float; got 'fast'"),
        ("train.max_steps=2.5", "train.max_steps must be int | null; got 2.5"),
        ("model.finetune=half", "model.finetune must be 'full' | 'lora' | 'qlora'; got 'half'"),
        ("train.grad_accum=0", "train.grad_accum=0 is out of range: it must be >= 1 and <= 1_000_000; set it"),
        ("train.lr=inf", "train.lr=inf is not a finite number; set it in the recipe or with --set train.lr=VALUE"),
        ("train.lr=.nan", "train.lr=nan is not a finite number"),
        ("train.lr=0", "train.lr=0.0 is out of range: it must be > 0 and <= 10"),
        ("train.lr=1e38", "train.lr=1e+38 is out of range: it must be > 0 and <= 10"),
        ("train.head_lr=-1e-3", "train.head_lr=-0.001 is out of range: it must be > 0"),
        (
            "train.max_steps=1000000000000",
            "train.max_steps=1000000000000 is out of range: it must be >= 1 and <= 1_000",
        ),
        ("train.max_steps=0", "train.max_steps=0 is out of range"),
        ("train.epochs=0", "train.epochs=0 is out of range"),
        ("train.warmup_ratio=1", "train.warmup_ratio=1.0 is out of range: it must be >= 0 and < 1"),
        ("train.seed=-1", "train.seed=-1 is out of range: it must be >= 0"),
        ("train.device=tpu", "train.device='tpu' is not a device rmdata trains on; use auto, cpu, cuda or cuda:N"),
        ("train.device=cuda:x", "train.device='cuda:x' is not a device"),
        ("model.tiny.hidden_size=0", "model.tiny.hidden_size=0 is out of range: it must be >= 1"),
        ("model.tiny.num_heads=3", "model.tiny.num_heads=3 does not divide model.tiny.hidden_size=64"),
        ("model.tiny.num_kv_heads=3", "model.tiny.num_kv_heads=3 does not divide model.tiny.num_heads=4"),
        ("model.tiny.num_heads=64", "head width hidden_size/num_heads = 1 is odd"),
        ("model.lora_dropout=1", "model.lora_dropout=1.0 is out of range: it must be >= 0 and < 1"),
        ("model.reward_token_id=-5", "model.reward_token_id=-5 is out of range: it must be >= 0"),
        ("data.max_length=1", "data.max_length=1 is out of range: it must be >= 2"),
        ("data.max_packed_length=100", "data.max_packed_length=100 is below data.max_length=256"),
        ("data.eval_fraction=1", "data.eval_fraction=1.0 is out of range: it must be >= 0 and < 1"),
        ("data.train=", "data.train[0] is an empty path"),
        ("data.format=csv", "data.format='csv' is not a format rmdata reads; use one of pairs, pairs-implicit, hh"),
        ("loss.penalty_bound=0", "loss.penalty_bound=0.0 is out of range: it must be > 0"),
        ("train", "must look like section.key=value"),
        ("train.lr.x=1", "--set train.lr.x: lr is a value, not a section"),
    ],
)
def test_bad_recipes_name_the_key_and_rule(override: str, message: str) -> None:
    with pytest.raises(RmdataError) as err:
        load_recipe(None, [override])
    assert message in str(err.value)


def test_options_are_declared_once_and_read_from_the_recipe_dataclasses() -> None:
    """The modules that use an option take its choices from the recipe field's type, not from a second list."""
    from rmdata.config import AttentionName, DtypeName, FinetuneMode, ModelConfig
    from rmdata.data.formats import FORMATS
    from rmdata.model.attention import BACKENDS
    from rmdata.options import choices

    assert tuple(c for c in choices(AttentionName) if c != "auto") == BACKENDS
    assert choices(FinetuneMode) == ("full", "lora", "qlora") and "bfloat16" in choices(DtypeName)
    keys = {key: (default, help_text) for key, _, default, help_text in iter_keys()}
    assert keys["loss.kind"][0] == "focal"  # one default, the recipe's
    assert all(name in keys["data.format"][1] for name in FORMATS)  # the help lists the format registry
    assert ModelConfig().tiny.hidden_size % 64 == 0


def test_resolved_recipe_round_trips(tmp_path: Path) -> None:
    recipe = load_recipe(None, ["train.max_steps=7", "model.lora_rank=8"])
    out = tmp_path / "resolved.yaml"
    out.write_text(dump_recipe(recipe), encoding="utf-8")
    assert load_recipe(out) == recipe


def test_every_key_is_documented() -> None:
    undocumented = [key for key, _, _, help_text in iter_keys() if not help_text]
    assert undocumented == []


def test_parse_override_reads_yaml_values() -> None:
    assert parse_override("data.train=[a.jsonl, b.jsonl]") == (["data", "train"], ["a.jsonl", "b.jsonl"])
    assert parse_override("model.reward_token=<|reward|>") == (["model", "reward_token"], "<|reward|>")


def test_unknown_recipe_name() -> None:
    with pytest.raises(RmdataError, match="recipe 'nope' not found"):
        load_recipe("nope")
