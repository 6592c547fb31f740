"""Readers: every file kind yields the same records with the right locations; broken input is named."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest
import zstandard

from rmdata.data.inputs import file_kind, resolve_input, split_of
from rmdata.data.readers import RawRecord, iter_batches
from rmdata.errors import RmdataError

ROWS = [{"prompt": f"p{i}", "response": f"r{i}", "n": i} for i in range(5)]


def read(path: Path | str, batch_size: int = 2) -> list[RawRecord]:
    info = resolve_input(str(path))
    return [r for batch in iter_batches(info, batch_size) for r in batch.records]


def values(records: list[RawRecord]) -> list[dict]:
    assert all(r.error is None for r in records), [r.error for r in records]
    return [r.value for r in records if r.value is not None]


def jsonl_bytes(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def test_jsonl_lines_are_1_based_and_blank_lines_are_not_records(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + jsonl_bytes(ROWS[:2]) + b"\n   \n" + jsonl_bytes(ROWS[2:3]))
    records = read(path)
    assert values(records) == ROWS[:3]
    assert [r.location for r in records] == [f"{path}:1", f"{path}:2", f"{path}:5"]


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".jsonl.zst", ".json.gz"])
def test_compressed_json_lines_read_like_plain(tmp_path: Path, suffix: str) -> None:
    data = jsonl_bytes(ROWS)
    packed = gzip.compress(data) if suffix.endswith(".gz") else zstandard.ZstdCompressor().compress(data)
    path = tmp_path / f"a{suffix}"
    path.write_bytes(packed)
    records = read(path)
    assert values(records) == ROWS
    assert records[-1].location == f"{path}:5"


def test_truncated_gzip_stream_is_a_file_error(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(gzip.compress(jsonl_bytes(ROWS * 50))[:-30])
    with pytest.raises(
        RmdataError, match=r"a\.jsonl\.gz: the compressed stream ends before its end marker, after line"
    ):
        read(path)


def test_json_array_rows_are_0_based_and_json_lines_named_json_still_read(tmp_path: Path) -> None:
    array = tmp_path / "a.json"
    array.write_text(json.dumps(ROWS, indent=2))
    records = read(array)
    assert values(records) == ROWS
    assert [r.location for r in records] == [f"{array}:{i}" for i in range(5)]
    lines = tmp_path / "b.json"
    lines.write_bytes(jsonl_bytes(ROWS))
    assert [r.location for r in read(lines)][:2] == [f"{lines}:1", f"{lines}:2"]


def test_json_array_that_does_not_parse_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text('[\n {"a": 1},\n {"a": }\n]')
    with pytest.raises(RmdataError, match=r"a\.json: not valid JSON at line 3 column 8"):
        read(path)


def test_non_object_array_items_are_record_errors(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps([{"a": 1}, [1, 2]]))
    bad = read(path)[1]
    assert bad.value is None and bad.location == f"{path}:1"
    assert bad.error == "a record must be a JSON object; got list [1, 2]"


def test_parquet_csv_and_batches_keep_row_numbers(tmp_path: Path) -> None:
    frame = pl.DataFrame(ROWS)
    frame.write_parquet(tmp_path / "a.parquet", row_group_size=2)
    records = read(tmp_path / "a.parquet", batch_size=2)
    assert values(records) == ROWS
    assert [r.location for r in records] == [f"{tmp_path / 'a.parquet'}:{i}" for i in range(5)]
    frame.write_csv(tmp_path / "a.csv")
    records = read(tmp_path / "a.csv")
    assert [r.value["n"] for r in records if r.value] == ["0", "1", "2", "3", "4"]  # CSV cells stay text
    assert records[4].location == f"{tmp_path / 'a.csv'}:4"


def test_csv_margin_is_read_as_a_number_when_it_spells_one(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text('prompt,chosen,rejected,margin\nq,a,b,1.5\nq,a,b,"n/a"\nq,a,b,\n')
    assert [r.value["margin"] for r in read(path) if r.value] == [1.5, "n/a", None]


def test_save_to_disk_dataset_and_dataset_dict(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_list(ROWS)
    ds.save_to_disk(str(tmp_path / "ds"), num_shards=2)
    records = read(tmp_path / "ds", batch_size=10)
    assert values(records) == ROWS
    assert records[3].location == f"{tmp_path / 'ds'}:3"  # row numbers run across shards
    datasets.DatasetDict({"test": ds.select(range(2)), "train": ds.select(range(2, 5))}).save_to_disk(
        str(tmp_path / "dd")
    )
    info = resolve_input(str(tmp_path / "dd"))
    assert (info.layout, info.split, info.splits) == ("save_to_disk", "train", ["test", "train"])
    assert values(read(tmp_path / "dd")) == ROWS[2:]


def test_hub_layout_picks_train_and_says_what_else_there_is(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    pl.DataFrame(ROWS[:3]).write_parquet(tmp_path / "data" / "train-00000-of-00002.parquet")
    pl.DataFrame(ROWS[3:]).write_parquet(tmp_path / "data" / "train-00001-of-00002.parquet")
    pl.DataFrame(ROWS[:1]).write_parquet(tmp_path / "data" / "test-00000-of-00001.parquet")
    (tmp_path / "README.md").write_text("# card")
    (tmp_path / ".cache").mkdir()
    pl.DataFrame(ROWS).write_parquet(tmp_path / ".cache" / "train.parquet")
    info = resolve_input(str(tmp_path))
    assert (info.layout, info.split, info.splits, len(info.files)) == ("hub", "train", ["test", "train"], 2)
    records = read(tmp_path)
    assert values(records) == ROWS
    assert records[3].location.endswith("data/train-00001-of-00002.parquet:0")


def test_hub_layout_with_one_other_split_reads_it_and_several_without_train_is_an_error(tmp_path: Path) -> None:
    one = tmp_path / "one"
    (one / "data").mkdir(parents=True)
    pl.DataFrame(ROWS).write_parquet(one / "data" / "test-00000-of-00001.parquet")
    assert resolve_input(str(one)).split == "test"
    pl.DataFrame(ROWS).write_parquet(one / "data" / "validation-00000-of-00001.parquet")
    with pytest.raises(RmdataError, match="holds splits test, validation and no train split"):
        resolve_input(str(one))


@pytest.mark.parametrize(
    ("relative", "split"),
    [
        ("data/train-00000-of-00001.parquet", "train"),
        ("data/validation-00000-of-00003.parquet", "validation"),
        ("test.jsonl", "test"),
        ("dev/part-0.parquet", "validation"),
        ("train/0000.parquet", "train"),
        ("data/shard-0.parquet", "train"),  # no split word anywhere: everything is train
        ("data/trainer_notes.parquet", "train"),
        ("data/contest-00000.parquet", "train"),  # "contest" is not "test"
    ],
)
def test_split_of(relative: str, split: str) -> None:
    assert split_of(Path(relative)) == split


def test_unknown_file_kind_and_compressed_csv_are_refused() -> None:
    assert file_kind("x.ndjson") == "jsonl" and file_kind("x.JSONL.ZST") == "jsonl"
    with pytest.raises(RmdataError, match="unknown file type"):
        file_kind("x.txt")
    with pytest.raises(RmdataError, match="compression is read for JSON lines files only"):
        file_kind("x.csv.gz")


def test_malformed_line_and_truncated_last_line_are_told_apart(write_jsonl) -> None:
    path = write_jsonl("a.jsonl", [ROWS[0], '{"prompt": "p1", "response" "r1"}', '{"prompt": "p2", "resp'],
                       final_newline=False)  # fmt: skip
    records = read(path)
    assert records[0].value == ROWS[0]
    assert records[1].error == "malformed JSON: Expecting ':' delimiter at column 29"
    assert records[2].error is not None and records[2].error.startswith("truncated last line: Unterminated string")
    assert records[2].text == '{"prompt": "p2", "resp'


def test_a_broken_last_line_that_ends_with_a_newline_is_malformed_not_truncated(write_jsonl) -> None:
    records = read(write_jsonl("a.jsonl", [ROWS[0], '{"prompt": ']))
    assert records[1].error is not None and records[1].error.startswith("malformed JSON")


def test_non_utf8_bytes_name_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(jsonl_bytes(ROWS[:1]) + b'{"prompt": "caf\xe9"}\n' + jsonl_bytes(ROWS[1:2]))
    records = read(path)
    assert [r.value is None for r in records] == [False, True, False]
    assert records[1].location == f"{path}:2"
    assert records[1].error == "not valid UTF-8: byte 0xe9 at byte 16 of the line (re-encode the file as UTF-8)"


def test_non_object_line_is_a_record_error(write_jsonl) -> None:
    records = read(write_jsonl("a.jsonl", ['"just a string"']))
    assert records[0].error == 'a record must be a JSON object; got string "just a string"'


@pytest.mark.parametrize("content", [b"", b"\n\n  \n", b"[]"])
def test_empty_file_is_an_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / ("a.json" if content == b"[]" else "a.jsonl")
    path.write_bytes(content)
    with pytest.raises(RmdataError, match="empty file, no records in it"):
        read(path)


def test_empty_parquet_is_an_error(tmp_path: Path) -> None:
    pl.DataFrame(schema={"prompt": pl.String}).write_parquet(tmp_path / "a.parquet")
    with pytest.raises(RmdataError, match=r"a\.parquet: empty file"):
        read(tmp_path / "a.parquet")


def test_file_that_is_not_parquet_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "a.parquet").write_text("not parquet")
    with pytest.raises(RmdataError, match=r"a\.parquet: cannot read Parquet"):
        read(tmp_path / "a.parquet")
