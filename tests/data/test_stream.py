"""The streaming layer: scan (pass 1: counts, errors, schema) and stream (pass 2: the rows), and what
load_dataset_records builds on them: repeated inputs, duplicates, per-record keys, Hub dataset ids."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from rmdata.data import drops
from rmdata.data.carried import MAX_CARRIED_COLUMNS
from rmdata.data.drops import Drop
from rmdata.data.load import load_dataset_records
from rmdata.data.stream import scan, stream
from rmdata.errors import RmdataError

PAIR = {"prompt": "Say hi.", "chosen": "Hi!", "rejected": "Go away."}


def pairs(count: int, /, **extra: Any) -> list[dict[str, Any]]:
    return [{**PAIR, "chosen": f"Hi {i}!", **{k: v(i) for k, v in extra.items()}} for i in range(count)]


def test_stream_gives_the_loaders_frame_in_fixed_schema_batches(write_jsonl) -> None:
    rows = pairs(10, n=lambda i: i if i < 5 else i + 0.5, tag=lambda i: None if i < 7 else f"t{i}")
    path = write_jsonl("p.jsonl", [*rows[:3], '{"prompt": 1}', *rows[3:]])
    dropped: list[Drop] = []
    report = scan([path], on_error="skip", on_drop=dropped.append, batch_size=3)
    assert (report.kind, report.records, report.valid_rows, report.invalid) == ("pairs", 11, 10, 1)
    assert report.formats == {str(path): "pairs"} and report.carried == {"n": pl.Float64, "tag": pl.String}
    assert [d.location for d in dropped] == [f"{path}:4"] and dropped[0].reason == drops.INVALID_RECORD
    batches = list(stream(report, batch_rows=4))
    assert [b.height for b in batches] == [4, 4, 2]
    assert all(b.schema == batches[0].schema for b in batches)
    loaded = load_dataset_records([path], on_error="skip", batch_size=3)
    assert pl.concat(batches).equals(loaded.frame)
    assert loaded.frame["n"].to_list() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.5, 6.5, 7.5, 8.5, 9.5]
    assert loaded.frame["source"].to_list()[3] == f"{path}:5"  # rows keep their own line


def test_scan_fail_policy_raises_listing_the_errors(write_jsonl) -> None:
    path = write_jsonl("p.jsonl", [PAIR, {**PAIR, "rejected": ""}])
    with pytest.raises(
        RmdataError, match=r"1 of 2 records are invalid \(pairs format\):\n  .*p\.jsonl:2: rejected is empty"
    ):
        scan([path])
    with pytest.raises(RmdataError, match="holds pairs records"):
        scan([path], kind="corpus", on_error="skip")


def test_a_repeated_input_is_read_once_with_a_note(write_jsonl) -> None:
    path = write_jsonl("p.jsonl", pairs(3))
    loaded = load_dataset_records([path, path, str(path)])
    assert (loaded.records, loaded.frame.height) == (3, 3)
    assert loaded.notes == [f"{path} is given 3 times; it is read once"]


def test_duplicates_are_counted_and_dropped_with_dedup(write_jsonl) -> None:
    rows = [*pairs(2), *pairs(1), {**PAIR, "chosen": "Hi 1!", "id": 9}]  # rows 3 and 4 repeat rows 1 and 2
    path = write_jsonl("p.jsonl", rows)
    kept = load_dataset_records([path])
    assert (kept.frame.height, kept.duplicates, kept.counts) == (4, 2, {})
    deduped = load_dataset_records([path], dedup=True)
    assert deduped.frame["source"].to_list() == [f"{path}:1", f"{path}:2"]
    assert (deduped.duplicates, deduped.counts, deduped.invalid) == (2, {"duplicate": 2}, 0)
    assert [d.to_json()["source"] for d in deduped.rejects] == [f"{path}:3", f"{path}:4"]
    assert deduped.rejects[0].to_json()["record"]["chosen"] == "Hi 0!"
    report = scan([path], dedup=True)
    assert sum(b.height for b in stream(report)) == 2 and report.drops == {"duplicate": 2}


def test_per_record_keys_become_one_json_column(write_jsonl) -> None:
    n = MAX_CARRIED_COLUMNS + 50
    rows = [{**PAIR, "chosen": f"Hi {i}!", "id": i, f"key{i}": i} for i in range(n)]
    loaded = load_dataset_records([write_jsonl("p.jsonl", rows)], batch_size=64)
    assert loaded.frame.columns[-2:] == ["id", "extra"]
    assert loaded.frame["id"].to_list() == list(range(n))
    assert [json.loads(x) for x in loaded.frame["extra"].to_list()[:2]] == [{"key0": 0}, {"key1": 1}]
    assert any("one JSON object per row in column extra" in note for note in loaded.notes)


def test_few_sparse_keys_stay_columns(write_jsonl) -> None:
    rows = [{**PAIR, "chosen": f"Hi {i}!", f"k{i % 3}": i} for i in range(6)]
    loaded = load_dataset_records([write_jsonl("p.jsonl", rows)])
    expected = [(0, None, None), (None, 1, None), (None, None, 2), (3, None, None), (None, 4, None), (None, None, 5)]
    assert loaded.frame.select("k0", "k1", "k2").rows() == expected


def test_inputs_of_different_formats_share_one_schema(write_jsonl, tmp_path: Path) -> None:
    hh = {"chosen": "\n\nHuman: Say hi.\n\nAssistant: Hi!", "rejected": "\n\nHuman: Say hi.\n\nAssistant: No."}
    a = write_jsonl("a.jsonl", pairs(2, score=lambda i: i))
    pl.DataFrame([{**hh, "score": 1.5}]).write_parquet(tmp_path / "b.parquet")
    report = scan([a, tmp_path / "b.parquet"])
    assert report.format == "pairs+hh" and report.carried == {"score": pl.Float64}
    frame = pl.concat(stream(report))
    assert frame["score"].to_list() == [0.0, 1.0, 1.5] and frame["rejected"].to_list()[-1] == "No."


class FakeDataset:
    """Stands in for a cached ``datasets.Dataset``: the reader asks only for Arrow batches."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def with_format(self, kind: str) -> FakeDataset:
        assert kind == "arrow"
        return self

    def iter(self, batch_size: int):  # noqa: ANN201 - mirrors datasets.Dataset.iter
        for start in range(0, len(self.rows), batch_size):
            yield pl.DataFrame(self.rows[start : start + batch_size]).to_arrow()


def test_hub_ids_are_read_through_datasets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import datasets

    calls: list[tuple[str, str | None, str | None]] = []

    def load_dataset(repo: str, split: str | None = None, revision: str | None = None) -> Any:
        calls.append((repo, split, revision))
        return FakeDataset(pairs(3, subset=lambda i: "chat"))

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.chdir(tmp_path)
    loaded = load_dataset_records(["allenai/reward-bench:filtered@main"])
    assert calls == [("allenai/reward-bench", "filtered", "main")]
    assert loaded.inputs[0].layout == "hub-id" and loaded.frame.height == 3
    assert loaded.frame["source"].to_list()[0] == "allenai/reward-bench:filtered@main:0"
    assert loaded.frame["subset"].to_list() == ["chat"] * 3
    (tmp_path / "allenai").mkdir()
    (tmp_path / "allenai" / "reward-bench").write_text(json.dumps(PAIR) + "\n")
    with pytest.raises(RmdataError, match="unknown file type"):  # a local path always wins over an id
        load_dataset_records(["allenai/reward-bench"])


def test_a_hub_id_offline_and_not_cached_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The real datasets library with an empty cache: the error says it is not cached and how to fetch it."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf" / "datasets"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RmdataError) as caught:
        scan(["someone/not-cached:test"])
    message = str(caught.value)
    assert "\n" not in message and "someone/not-cached is not in the local datasets cache" in message
    assert "HF_HUB_OFFLINE=0 python -c \"import datasets; datasets.load_dataset('someone/not-cached')\"" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("org/name", ("org/name", None, None)),
        ("org/name:test", ("org/name", "test", None)),
        ("org/name@v1.0", ("org/name", None, "v1.0")),
        ("org/name:test@abc123", ("org/name", "test", "abc123")),
        ("org/name@abc123:test", ("org/name", "test", "abc123")),
        ("data/train.jsonl", None),
        ("a/b/c", None),
        ("org/name:a:b", None),
        ("./x", None),
    ],
)
def test_hub_id_syntax(text: str, expected: tuple[str, str | None, str | None] | None) -> None:
    from rmdata.data.inputs import parse_hub_id

    ref = parse_hub_id(text)
    assert (None if ref is None else (ref.repo, ref.split, ref.revision)) == expected
