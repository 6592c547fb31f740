"""best-vs-random's seeded draw: rmdata's own hash, pinned to published and hand-checked values."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from rmdata.curate.draw import draw_one, draws, fmix64, fnv1a64
from tests.curate.scores import dpo_rows, read_dir, row


def test_fnv1a64_matches_the_published_test_vectors() -> None:
    """FNV-1a 64-bit: "" is the offset basis itself; "a" and "foobar" are the reference implementation's vectors."""
    assert fnv1a64(b"") == 0xCBF29CE484222325
    assert fnv1a64(b"a") == 0xAF63DC4C8601EC8C
    assert fnv1a64(b"foobar") == 0x85944171F73967E8


def test_fmix64_matches_murmurhash3() -> None:
    """MurmurHash3's finalizer maps 0 to 0, and 1 to 0xb456bcfc34c2cb2c."""
    assert fmix64(0) == 0
    assert fmix64(1) == 0xB456BCFC34C2CB2C


def test_draw_is_fmix64_of_fnv1a64_of_seed_prompt_and_response() -> None:
    """draw(0, "p", "r") hashes the five bytes b"0\\np\\nr"; the values are pinned so that a change of the
    definition (which would change every user's best-vs-random pairs) fails here."""
    assert fnv1a64(b"0\np\nr") == 0x3A27C2DD068A8445
    assert draw_one(0, "p", "r") == fmix64(0x3A27C2DD068A8445) == 0x780D6FB183FE377E
    assert draw_one(7, "p1", "a") == 0xA75D3B4D801ABD68


def test_vectorized_draws_equal_the_byte_loop_for_every_row() -> None:
    prompts = pl.Series(["p1", "p1", "", None, "é", "long" * 30, "p1"])
    responses = pl.Series(["a", "bb", "x", "y", "ü", "z", None])
    expected = [draw_one(7, p or "", r or "") for p, r in zip(prompts.to_list(), responses.to_list(), strict=True)]
    assert draws(7, prompts, responses).to_list() == expected
    assert draws(7, prompts.slice(2, 3), responses.slice(2, 3)).to_list() == expected[2:5]  # sliced buffers
    assert draws(7, prompts.clear(), responses.clear()).to_list() == []


def test_best_vs_random_pairs_the_best_with_the_smallest_draw_among_passing_candidates(tmp_path: Path) -> None:
    """Per prompt: chosen is the best; rejected is the lower response whose pair passes the rules and whose
    draw (computed here byte by byte) is smallest."""
    rows = [row(f"p{i}", f"p{i}-r{j}", float(j)) for i in range(30) for j in range(5)]
    dpo_rows(tmp_path, rows, strategy="best-vs-random", seed=11, margin=2.0)
    out = read_dir(tmp_path / "dpo")
    for prompt, chosen, rejected in zip(out["prompt_id"], out["chosen_id"], out["rejected_id"], strict=True):
        passing = [f"{prompt}-r{j}" for j in range(3)]  # rewards 0, 1, 2: gaps 4, 3, 2 >= margin 2 from r4
        assert chosen == f"{prompt}-r4"
        assert rejected == min(passing, key=lambda r: draw_one(11, prompt, r))
    assert out.height == 30


def test_the_draw_spreads_evenly_over_candidates() -> None:
    """Over 4,000 prompts of 4 candidates each, the smallest draw falls on each position ~1,000 times."""
    prompts = pl.Series([f"prompt-{i}" for i in range(4000) for _ in range(4)])
    responses = pl.Series([f"resp-{j}" for _ in range(4000) for j in range(4)])
    drawn = (
        pl.DataFrame({"p": prompts, "j": pl.Series([j for _ in range(4000) for j in range(4)]),
                      "d": draws(3, prompts, responses)})
        .group_by("p").agg(pl.col("j").sort_by("d").first())
        .get_column("j").value_counts().sort("j").get_column("count").to_list()
    )  # fmt: skip
    assert drawn == pytest.approx([1000] * 4, abs=120)  # ~4 standard deviations (27.4 each)
