"""--reward EXPR and --agree over a several-model score table (reward_<name> columns), checked against
plain-Python implementations of the same rules."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from rmdata.curate.expression import parse_reward
from rmdata.curate.pairs import PairRules
from rmdata.curate.ranking import ScoreOptions
from rmdata.curate.rules import FilterRules
from rmdata.curate.run import run_build_dpo, run_filter
from rmdata.errors import RmdataError
from tests.curate.scores import read_dir, rejects, row


def two_model_rows(prompts: int = 12, per_prompt: int = 6, seed: int = 0) -> list[dict[str, Any]]:
    """Rows scored by two models, b a noisy copy of a (the fine-tune); rewards on a 0.25 grid, so ties happen."""
    rng = random.Random(seed)
    rows = []
    for p in range(prompts):
        for r in range(per_prompt):
            a = rng.randint(-8, 8) / 4
            b = a + rng.choice([-1.0, -0.5, 0.0, 0.25, 0.5, 1.0])
            base = row(f"p{p:02d}", f"p{p:02d}-r{r}", None)
            del base["reward"]
            rows.append({**base, "reward_a": a, "reward_b": b})
    return rows


def write_models(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pl.DataFrame(rows)
    frame.with_columns(pl.col(c).cast(pl.Float32) for c in frame.columns if c.startswith("reward_")).write_parquet(path)
    return path


def test_parse_resolves_names_and_refuses_what_is_not_arithmetic() -> None:
    parsed = parse_reward(
        "0.7*helpful + 0.3*reward_safety", {"reward_helpful": pl.Float32(), "reward_safety": pl.Float64()}
    )
    assert parsed.columns == ("reward_helpful", "reward_safety")
    frame = pl.DataFrame({"reward_a": [1.0, 4.0, None], "reward_b": [3.0, 2.0, 1.0]})
    values = frame.select(parse_reward("min(a, reward_b) - -1 / 2", frame.schema).over_table()).to_series()
    assert values.to_list() == [1.5, 2.5, None]  # a missing reward stays missing (min() would skip it)
    with pytest.raises(RmdataError, match=r"unknown column 'safety' .*reward columns: reward_a, reward_b"):
        parse_reward("a + safety", frame.schema)
    for text in ["__import__('os').system('true')", "a.real", "a ** 2", "a if b else 1", "[a]", "a < b"]:
        with pytest.raises(RmdataError, match=r"is not allowed|not an expression"):
            parse_reward(text, frame.schema)
    with pytest.raises(RmdataError, match="not a number"):
        parse_reward("a + 'x'", frame.schema)
    with pytest.raises(RmdataError, match="names no column"):
        parse_reward("1 + 2", frame.schema)


def test_a_table_without_reward_needs_reward_expr(tmp_path: Path) -> None:
    table = write_models(tmp_path / "s.parquet", two_model_rows(2, 3))
    with pytest.raises(RmdataError, match=r"no reward column but reward columns reward_a, reward_b .*--reward"):
        run_filter([table], ScoreOptions(), FilterRules(top_k=1), tmp_path / "sft")
    with pytest.raises(RmdataError, match="--agree compares the models named in --reward: name two or more"):
        run_filter([table], ScoreOptions(reward="a", agree=True), FilterRules(top_k=1), tmp_path / "sft")
    with pytest.raises(RmdataError, match="--agree with filter .* give --top-k"):
        run_filter([table], ScoreOptions(reward="a+b", agree=True), FilterRules(), tmp_path / "sft")


def test_filter_top_k_by_a_weighted_expression(tmp_path: Path) -> None:
    rows = two_model_rows(seed=1)
    table = write_models(tmp_path / "s.parquet", rows)
    result = run_filter([table], ScoreOptions(reward="0.7*a + 0.3*b"), FilterRules(top_k=2), tmp_path / "sft")
    expected = set()
    for _, group in itertools.groupby(rows, key=lambda r: r["prompt_id"]):
        ranked = sorted(group, key=lambda r: (-(0.7 * r["reward_a"] + 0.3 * r["reward_b"]), r["response_id"]))
        expected |= {r["response_id"] for r in ranked[:2]}
    out = read_dir(tmp_path / "sft")
    assert set(out["response_id"]) == expected and result.rows == len(expected)
    first = out.row(0, named=True)
    assert first["reward"] == pytest.approx(0.7 * first["reward_a"] + 0.3 * first["reward_b"])  # the combined reward
    assert result.summary["rules"].endswith("reward = 0.7*a + 0.3*b")


def _ordered_alike(x: dict[str, Any], y: dict[str, Any]) -> bool:
    return x["reward_a"] > y["reward_a"] and x["reward_b"] > y["reward_b"]


def test_build_dpo_agree_keeps_exactly_the_pairs_both_models_order_alike(tmp_path: Path) -> None:
    rows = two_model_rows(seed=2)
    table = write_models(tmp_path / "s.parquet", rows)
    options = ScoreOptions(reward="reward_a + reward_b", agree=True)
    result = run_build_dpo(
        [table], options, PairRules(strategy="all-pairs"), tmp_path / "dpo", tmp_path / "rej.parquet"
    )
    out = read_dir(tmp_path / "dpo")
    got = set(zip(out["chosen_id"], out["rejected_id"], strict=True))
    expected, candidates, alike = set(), 0, 0
    for _, group in itertools.groupby(rows, key=lambda r: r["prompt_id"]):
        members = list(group)
        for x, y in itertools.permutations(members, 2):
            if _ordered_alike(x, y):
                expected.add((x["response_id"], y["response_id"]))
        for x, y in itertools.combinations(members, 2):
            candidates += 1
            alike += _ordered_alike(x, y) or _ordered_alike(y, x)
    assert got == expected and len(expected) > 20
    models = result.summary["models"]
    assert result.summary["candidate_pairs"] == candidates
    assert models["pairs_ordered_alike"] == pytest.approx(alike / candidates)
    assert result.summary["pairs_dropped"]["models_disagree"] > 0
    card = (tmp_path / "dpo" / "README.md").read_text()
    assert "## Models (`--reward reward_a + reward_b`)" in card and "| reward_a vs reward_b |" in card
    manifest = json.loads((tmp_path / "dpo" / "manifest.json").read_text())
    assert manifest["options"]["agree"] is True and manifest["options"]["reward"] == "reward_a + reward_b"


def test_build_dpo_agree_best_vs_worst_drops_the_pair_as_models_disagree(tmp_path: Path) -> None:
    def scored(rid: str, a: float, b: float) -> dict[str, Any]:
        base = row("p", rid, None)
        del base["reward"]
        return {**base, "reward_a": a, "reward_b": b}

    rows = [scored("x", 3.0, 0.0), scored("y", 1.0, 1.0), scored("z", 0.0, 2.0)]  # a: x>y>z, b: z>y>x
    rows += [{**scored("u", 2.0, 2.0), "prompt_id": "q"}, {**scored("v", 1.0, 1.0), "prompt_id": "q"}]
    table = write_models(tmp_path / "s.parquet", rows)
    result = run_build_dpo([table], ScoreOptions(reward="a + 0.1*b", agree=True), PairRules(), tmp_path / "dpo",
                           tmp_path / "rej.parquet")  # fmt: skip
    out = read_dir(tmp_path / "dpo")
    assert list(zip(out["chosen_id"], out["rejected_id"], strict=True)) == [("u", "v")]
    assert result.summary["pairs_dropped"] == {"models_disagree": 1}
    assert rejects(tmp_path / "rej.parquet") == {"x": "no_pair", "y": "no_pair", "z": "no_pair"}


def test_filter_agree_keeps_rows_in_every_models_top_k(tmp_path: Path) -> None:
    rows = two_model_rows(seed=3)
    table = write_models(tmp_path / "s.parquet", rows)
    options = ScoreOptions(reward="mean(a, b)", agree=True)
    result = run_filter([table], options, FilterRules(top_k=3), tmp_path / "sft", tmp_path / "rej.jsonl")

    def top(members: list[dict[str, Any]], key: Any) -> set[str]:
        return {r["response_id"] for r in sorted(members, key=lambda r: (-key(r), r["response_id"]))[:3]}

    expected = set()
    for _, group in itertools.groupby(rows, key=lambda r: r["prompt_id"]):
        members = list(group)
        both = top(members, lambda r: (r["reward_a"] + r["reward_b"]) / 2)
        expected |= both & top(members, lambda r: r["reward_a"]) & top(members, lambda r: r["reward_b"])
    assert set(read_dir(tmp_path / "sft")["response_id"]) == expected
    reasons = rejects(tmp_path / "rej.jsonl")
    assert {r for r, why in reasons.items() if why == "models_disagree"} == {
        r["response_id"] for r in rows if r["response_id"] not in expected
    } - {r for r, why in reasons.items() if why == "outside_top_k"}
    assert result.summary["dropped"]["models_disagree"] > 0
    rho = result.summary["models"]["spearman_per_prompt"]["reward_a vs reward_b"]
    assert 0.5 < rho <= 1.0  # b is a noisy copy of a


def test_the_cli_flags_reach_the_rules(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from rmdata.cli import app

    table = write_models(tmp_path / "s.parquet", two_model_rows(seed=4))
    args = [
        "build-dpo",
        str(table),
        "--reward",
        "a + b",
        "--agree",
        "--strategy",
        "all-pairs",
        "-o",
        str(tmp_path / "d"),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["options"]["agree"] and manifest["summary"]["pairs_dropped"]["models_disagree"] > 0
    bad = CliRunner().invoke(app, ["filter", str(table), "--reward", "a + nope", "-o", str(tmp_path / "f")])
    assert isinstance(bad.exception, RmdataError) and "unknown column 'nope'" in str(bad.exception)


def _per_prompt(frame: pl.DataFrame) -> dict[str, int]:
    return dict(frame.group_by("prompt_id").len().iter_rows())


def test_filter_random_baseline_matches_per_prompt_counts_and_the_seeded_draw(tmp_path: Path) -> None:
    from rmdata.curate.draw import draw_one
    from rmdata.curate.run import Baseline

    rows = two_model_rows(seed=5)
    table = write_models(tmp_path / "s.parquet", rows)
    options = ScoreOptions(reward="a")
    result = run_filter([table], options, FilterRules(top_k=2, min_score=0.0), tmp_path / "sft",
                        baseline=Baseline(tmp_path / "random", seed=7))  # fmt: skip
    kept, chance = read_dir(tmp_path / "sft"), read_dir(tmp_path / "random")
    assert _per_prompt(chance) == _per_prompt(kept) and chance.height == result.rows
    expected = set()
    for prompt, k in _per_prompt(kept).items():
        ids = sorted((r["response_id"] for r in rows if r["prompt_id"] == prompt), key=lambda i: draw_one(7, "", i))
        expected |= set(ids[:k])
    assert set(chance["response_id"]) == expected
    assert chance.columns == kept.columns
    base = result.summary["random_baseline"]
    assert base["rows"] == chance.height and base["reward_mean"] == pytest.approx(chance["reward"].mean())
    assert base["selection_reward_mean"] > base["reward_mean"]  # top-2 by reward beats chance on reward
    assert "## Random baseline" in (tmp_path / "sft" / "README.md").read_text()
    assert "random baseline" in (tmp_path / "random" / "README.md").read_text()
    with pytest.raises(RmdataError, match="--random-baseline .* overlaps --output"):
        run_filter([table], options, FilterRules(top_k=2), tmp_path / "sft", baseline=Baseline(tmp_path / "sft" / "r"))


def test_build_dpo_random_baseline_draws_pairs_and_labels(tmp_path: Path) -> None:
    from rmdata.curate.draw import draw_one
    from rmdata.curate.run import Baseline

    rows = two_model_rows(seed=6)
    table = write_models(tmp_path / "s.parquet", rows)
    result = run_build_dpo([table], ScoreOptions(reward="a + b", agree=True), PairRules(strategy="best-vs-all"),
                           tmp_path / "dpo", baseline=Baseline(tmp_path / "random", seed=3))  # fmt: skip
    pairs, chance = read_dir(tmp_path / "dpo"), read_dir(tmp_path / "random")
    assert _per_prompt(chance) == _per_prompt(pairs)
    score = {r["response_id"]: r["reward_a"] + r["reward_b"] for r in rows}
    expected = set()
    for prompt, n in _per_prompt(pairs).items():
        ids = sorted((r["response_id"] for r in rows if r["prompt_id"] == prompt), key=lambda i: (-score[i], i))
        candidates = [(x, y) for i, x in enumerate(ids) for y in ids[i + 1 :]]  # x ranked above y
        drawn = sorted(candidates, key=lambda p: draw_one(3, *p))[:n]
        expected |= {(x, y) if draw_one(3, x, y) % 2 == 0 else (y, x) for x, y in drawn}
    assert set(zip(chance["chosen_id"], chance["rejected_id"], strict=True)) == expected
    assert (chance["margin"] < 0).any() and (chance["margin"] > 0).any()  # labels are random too
    assert result.summary["random_baseline"]["pairs"] == chance.height
