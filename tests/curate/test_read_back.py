"""The paths that only large tables take, forced at toy size: several row-group chunks, several output shards,
a prompt's rows spread over files, prompts bigger than the neighbour dedupe window, long tie runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from rmdata.curate import ranking, source, write
from rmdata.curate.pairs import PairRules
from rmdata.curate.ranking import ScoreOptions
from rmdata.curate.rules import FilterRules
from rmdata.curate.run import run_build_dpo, run_filter
from tests.curate.scores import read_dir, rejects, row


@pytest.fixture
def tiny_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source, "CHUNK_ROWS", 5)
    monkeypatch.setattr(write, "ROWS_PER_SHARD", 4)
    monkeypatch.setattr(write, "PAIRS_PER_SHARD", 3)


def spread_tables(tmp: Path) -> tuple[list[Path], list[dict[str, Any]]]:
    """9 prompts x 3 responses; response j of every prompt is in file j (so a prompt spans all three files),
    each file in row groups of 2 rows. Rewards: r2 best, r0 worst, except p4 where r0 is best."""
    rows = [row(f"p{i}", f"p{i}-r{j}", float(j if i != 4 else -j), f"text {i}/{j}") for i in range(9) for j in range(3)]
    files = []
    for j in range(3):
        path = tmp / f"scores-{j}.parquet"
        part = [r for r in rows if r["response_id"].endswith(f"r{j}")]
        pl.DataFrame(part).with_columns(pl.col("reward").cast(pl.Float32)).write_parquet(path, row_group_size=2)
        files.append(path)
    return files, rows


def test_chunks_cover_the_table_in_row_order(tmp_path: Path, tiny_chunks: None) -> None:
    files, _ = spread_tables(tmp_path)
    table = source.open_scores(files)
    chunks = table.chunks()
    assert [(Path(f).name, offset, start, size) for f, offset, start, size in chunks] == [
        ("scores-0.parquet", 0, 0, 6), ("scores-0.parquet", 6, 6, 3),
        ("scores-1.parquet", 0, 9, 6), ("scores-1.parquet", 6, 15, 3),
        ("scores-2.parquet", 0, 18, 6), ("scores-2.parquet", 6, 24, 3),
    ]  # fmt: skip
    wanted = np.array([1, 5, 6, 20, 26])
    got = pl.concat([frame for _, frame in table.read_rows(wanted, ["response_id"])])
    everything = table.scan().collect()
    assert got.get_column("response_id").to_list() == everything.get_column("response_id").gather(wanted).to_list()


def test_filter_output_over_chunks_and_shards_is_in_input_order(tmp_path: Path, tiny_chunks: None) -> None:
    files, rows = spread_tables(tmp_path)
    run_filter(files, ScoreOptions(), FilterRules(top_k=1), tmp_path / "sft")
    shards = sorted((tmp_path / "sft" / "data").glob("*.parquet"))
    assert [pl.read_parquet(s).height for s in shards] == [4, 4, 1]
    out = read_dir(tmp_path / "sft")
    # input order: file 0 (r0 of every prompt: only p4's is kept), then file 2 (r2 of the others)
    assert out.get_column("response_id").to_list() == ["p4-r0"] + [f"p{i}-r2" for i in range(9) if i != 4]
    texts = {r["response_id"]: r["response"] for r in rows}
    for messages, rid in zip(out["messages"], out["response_id"], strict=True):
        assert messages[-1] == {"role": "assistant", "content": texts[rid]}
        assert messages[0]["content"] == f"question {rid.split('-')[0]}"


@pytest.mark.parametrize("staged", [False, True], ids=["from-table", "staged"])
@pytest.mark.parametrize("strategy", ["best-vs-worst", "all-pairs"])
def test_dpo_pairs_over_chunks_and_shards_carry_their_own_rows(
    tmp_path: Path, tiny_chunks: None, strategy: str, staged: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pairs are written in chosen-row order; every side's text, reward and id come from its own row, though
    a prompt's rows sit in three files and pairs fill several shards: read per shard from the table, or
    (forced here) through the staging files one pass writes when shards' rows interleave."""
    if staged:
        monkeypatch.setattr(write, "_local_shards", lambda table, pairs: None)
    files, rows = spread_tables(tmp_path)
    run_build_dpo(files, ScoreOptions(), PairRules(strategy=strategy), tmp_path / "dpo")
    out = read_dir(tmp_path / "dpo")
    by_id = {r["response_id"]: r for r in rows}
    expected = 9 if strategy == "best-vs-worst" else 27
    assert out.height == expected
    assert [pl.read_parquet(s).height for s in sorted((tmp_path / "dpo" / "data").glob("*.parquet"))] == (
        [3] * (expected // 3)
    )
    for pair in out.iter_rows(named=True):
        chosen, rejected = by_id[pair["chosen_id"]], by_id[pair["rejected_id"]]
        assert chosen["prompt_id"] == rejected["prompt_id"] == pair["prompt_id"]
        assert pair["chosen"] == [{"role": "assistant", "content": chosen["response"]}]
        assert pair["rejected"] == [{"role": "assistant", "content": rejected["response"]}]
        assert pair["prompt"] == chosen["prompt"]
        assert (pair["chosen_reward"], pair["rejected_reward"]) == (chosen["reward"], rejected["reward"])
        assert pair["margin"] == chosen["reward"] - rejected["reward"] > 0
    if strategy == "best-vs-worst":
        # chosen-row order: p4's best (r0) is in file 0, the other prompts' best (r2) in file 2
        assert out.get_column("chosen_id").to_list() == ["p4-r0"] + [f"p{i}-r2" for i in range(9) if i != 4]
    assert not (tmp_path / "dpo" / ".pair-rows").exists()


def test_copies_in_a_prompt_bigger_than_the_neighbour_window_are_found(tmp_path: Path) -> None:
    """One prompt of 12 responses (more than SMALL_PROMPT = 8): r0 (reward 11, best) and r11 (reward 0, last)
    share a text, as do r3 and r4; the lower-ranked copies, r11 and r4, are the duplicates."""
    assert ranking.SMALL_PROMPT < 12
    texts = {0: "same-a", 11: "same-a", 3: "same-b", 4: "same-b"}
    rows = [row("p", f"r{j:02d}", float(11 - j), texts.get(j)) for j in range(12)]
    rows += [row("q", "q1", 1.0, "same-a"), row("q", "q2", 0.0, "same-a")]  # a small prompt: the window path
    table = tmp_path / "scores.parquet"
    pl.DataFrame(rows).with_columns(pl.col("reward").cast(pl.Float32)).write_parquet(table)
    run_filter([table], ScoreOptions(), FilterRules(), tmp_path / "sft", tmp_path / "rejects.jsonl")
    assert rejects(tmp_path / "rejects.jsonl") == {
        "r11": "duplicate_response", "r04": "duplicate_response", "q2": "duplicate_response",
    }  # fmt: skip
    ranks = read_dir(tmp_path / "sft").filter(pl.col("prompt_id") == "p").sort("rank")
    assert ranks.get_column("response_id").to_list() == [f"r{j:02d}" for j in range(11) if j != 4]


def test_long_tie_runs_order_by_response_id_then_input_row(tmp_path: Path) -> None:
    """All 6 responses of p tie at 1.0 and arrive in scrambled id order (two share id "b"): ranks follow the id,
    then the input row; q's two rows tie too."""
    ids = ["d", "b", "f", "a", "b", "c"]
    rows = [row("p", rid, 1.0, f"t{n}") for n, rid in enumerate(ids)] + [row("q", "z", 2.0), row("q", "y", 2.0)]
    table = tmp_path / "scores.parquet"
    pl.DataFrame(rows).with_columns(pl.col("reward").cast(pl.Float32)).write_parquet(table)
    run_filter([table], ScoreOptions(), FilterRules(), tmp_path / "sft")
    out = read_dir(tmp_path / "sft").sort("prompt_id", "rank")
    assert out.select("response_id", "rank").rows() == [
        ("a", 1), ("b", 2), ("b", 3), ("c", 4), ("d", 5), ("f", 6), ("y", 1), ("z", 2),
    ]  # fmt: skip
    b_texts = out.filter(pl.col("response_id") == "b").get_column("messages").list.last().struct.field("content")
    assert b_texts.to_list() == ["t1", "t4"]  # the earlier input row ranks first


def test_shards_read_from_the_table_only_when_that_costs_about_one_pass(tmp_path: Path, tiny_chunks: None) -> None:
    """3 chunks of 5 rows, 3 pairs a shard. Two shards touching 2 chunks each (4 reads <= 3 chunks + 2 shards)
    read straight from the table; three shards touching 3, 3 and 2 chunks (8 > 3 + 3) are staged."""
    path = tmp_path / "t.parquet"
    pl.DataFrame([row("p", f"r{i}", 0.0) for i in range(15)]).write_parquet(path, row_group_size=5)
    table = source.open_scores([path])
    near = pl.DataFrame({"chosen_row": [0, 1, 5, 6, 10, 11], "rejected_row": [2, 3, 7, 8, 12, 13]})
    assert [r.tolist() for r in write._local_shards(table, near) or []] == [[0, 1, 2, 3, 5, 7], [6, 8, 10, 11, 12, 13]]
    far = pl.DataFrame({"chosen_row": [0, 1, 2, 3, 4, 9, 10, 11, 12], "rejected_row": [5, 6, 14, 7, 8, 13, 1, 2, 3]})
    assert write._local_shards(table, far) is None
