"""load_dataset_records: detection, schema and ids, carried columns, error policy, several inputs."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import polars as pl
import pytest

from rmdata.data.formats import guess_format
from rmdata.data.load import load_dataset_records
from rmdata.data.schema import CORPUS_SCHEMA, PAIRS_SCHEMA, prompt_id, response_id
from rmdata.errors import RmdataError

PAIR = {"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."}
ALPACA = {"instruction": "Say hi.", "output": "Hi"}


def test_ids_follow_the_contract_worked_by_hand() -> None:
    canonical = '[["system","S"],["user","Héllo"]]'  # [[role, content], ...], no spaces, non-ASCII kept
    expected = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
    pid = prompt_id([{"role": "system", "content": "S"}, {"role": "user", "content": "Héllo"}])
    assert pid == expected
    assert response_id(pid, "ok") == hashlib.sha256(f"{expected}\nok".encode()).hexdigest()[:16]


def test_pairs_frame_has_the_normalized_schema_and_ids(write_jsonl) -> None:
    path = write_jsonl("p.jsonl", [PAIR, {**PAIR, "chosen": "Hey."}])
    got = load_dataset_records([path])
    assert (got.format, got.kind, got.records, got.valid, got.invalid) == ("pairs", "pairs", 2, 2, 0)
    assert dict(got.frame.schema) == PAIRS_SCHEMA
    row = got.frame.row(0, named=True)
    pid = prompt_id([{"role": "user", "content": "Hi"}])
    assert (row["prompt_id"], row["chosen_id"], row["rejected_id"]) == (
        pid, response_id(pid, "Hello!"), response_id(pid, "Go away."),
    )  # fmt: skip
    assert got.frame["source"].to_list() == [f"{path}:1", f"{path}:2"]
    assert got.frame["prompt_id"].n_unique() == 1  # same prompt, same id, wherever it appears


def test_corpus_frame_schema(write_jsonl) -> None:
    got = load_dataset_records([write_jsonl("c.jsonl", [ALPACA])])
    assert dict(got.frame.schema) == CORPUS_SCHEMA


@pytest.mark.parametrize(
    ("record", "name"),
    [
        (PAIR, "pairs"),
        ({**PAIR, "messages": []}, "pairs"),
        ({"chosen": [{"role": "user", "content": "x"}], "rejected": []}, "pairs-implicit"),
        ({"chosen": "\n\nHuman: x", "rejected": "y"}, "hh"),
        ({"messages": [], "prompt": "x"}, "messages"),
        ({"prompt": "x", "responses": ["a"]}, "multi-response"),
        ({"prompt": "x", "response": "a"}, "prompt-response"),
        (ALPACA, "alpaca"),
        ({"prompt": "x", "chosen": "a", "rejected": None}, None),  # null keys do not count
        ({"text": "x"}, None),
    ],
)
def test_guess_format(record: dict, name: str | None) -> None:
    assert guess_format(record) == name


def test_mixed_formats_in_one_file_flag_the_minority(write_jsonl) -> None:
    path = write_jsonl("m.jsonl", [PAIR, ALPACA, PAIR, {"text": "x"}])
    got = load_dataset_records([path], on_error="skip")
    assert got.format == "pairs" and got.frame.height == 2
    assert [str(e) for e in got.errors] == [
        f"{path}:2: record is in the alpaca format (keys instruction, output), not pairs like the rest of {path}; "
        "one input holds one format",
        f'{path}:4: missing key "prompt" (pairs records need prompt, chosen, rejected)',
        f'{path}:4: missing key "chosen" (pairs records need prompt, chosen, rejected)',
        f'{path}:4: missing key "rejected" (pairs records need prompt, chosen, rejected)',
    ]
    assert (got.inputs[0].format, got.inputs[0].detection) == (
        "pairs",
        "detected from the keys of 2 of the first 4 records",
    )


def test_given_format_wins_over_detection_and_reports_missing_keys(write_jsonl) -> None:
    path = write_jsonl("p.jsonl", [PAIR, {"prompt": "Hi", "chosen": "x", "rejected": None}])
    got = load_dataset_records([path], format="prompt-response", on_error="skip")
    assert got.format == "prompt-response" and not got.detected
    assert [e.message for e in got.errors] == [
        'missing key "response" (prompt-response records need prompt, response)'
    ] * 2


def test_unknown_format_name_and_undetectable_records_are_errors(write_jsonl) -> None:
    path = write_jsonl("t.jsonl", [{"text": "a", "id": 1}])
    with pytest.raises(RmdataError, match=r"format 'chat' is not one rmdata reads; choose one of pairs, "):
        load_dataset_records([path], format="chat")
    with pytest.raises(RmdataError, match=r"t\.jsonl: cannot tell the format: records have keys id, text; "):
        load_dataset_records([path])


def test_raise_policy_lists_every_error_capped(write_jsonl) -> None:
    rows = [PAIR] + [{**PAIR, "chosen": ""} for _ in range(25)] + ["{not json"]
    path = write_jsonl("p.jsonl", rows)
    with pytest.raises(RmdataError) as caught:
        load_dataset_records([path])
    lines = str(caught.value).splitlines()
    assert lines[0] == "26 of 27 records are invalid (pairs format):"
    assert lines[1] == f"  {path}:2: chosen is empty"
    assert lines[20] == f"  {path}:21: chosen is empty"
    assert lines[21] == "  ... and 6 more"
    assert "--on-error skip" in lines[22]


MALFORMED = "malformed JSON: Expecting property name enclosed in double quotes at column 2"


def test_skip_policy_returns_rejects_with_reasons_and_raw_records(write_jsonl) -> None:
    path = write_jsonl("p.jsonl", [PAIR, {**PAIR, "rejected": 5}, "{broken", PAIR], final_newline=True)
    got = load_dataset_records([path], on_error="skip")
    assert (got.records, got.valid, got.invalid, got.frame.height) == (4, 2, 2, 2)
    assert [r.to_json() for r in got.rejects] == [
        {
            "source": f"{path}:2",
            "reason": "invalid_record",
            "message": "rejected must be a string or a list of messages; got number 5",
            "errors": [
                {"field": "rejected", "message": "rejected must be a string or a list of messages; got number 5"}
            ],
            "record": {**PAIR, "rejected": 5},
        },
        {
            "source": f"{path}:3",
            "reason": "unreadable_record",
            "message": MALFORMED,
            "errors": [{"field": None, "message": MALFORMED}],
            "raw": "{broken",
        },
    ]  # fmt: skip


def test_skip_with_no_valid_rows_still_has_the_schema(write_jsonl) -> None:
    got = load_dataset_records([write_jsonl("p.jsonl", [{**PAIR, "chosen": "Go away."}])], on_error="skip")
    assert got.frame.height == 0 and dict(got.frame.schema) == PAIRS_SCHEMA


def test_other_columns_are_carried_and_clashing_names_renamed(write_jsonl) -> None:
    rows = [{**PAIR, "source": "evol", "prompt_id": "x1", "meta": {"a": 1, "tags": ["t"]}, "score": 0.5}]
    got = load_dataset_records([write_jsonl("p.jsonl", rows)])
    row = got.frame.row(0, named=True)
    assert (row["source_input"], row["prompt_id_input"], row["meta"], row["score"]) == (
        "evol", "x1", {"a": 1, "tags": ["t"]}, 0.5,
    )  # fmt: skip
    assert row["source"].endswith("p.jsonl:1") and len(row["prompt_id"]) == 16
    assert "input column source is carried as source_input (source is a normalized column)" in got.notes


def test_carried_column_with_mixed_types_becomes_json_text(write_jsonl) -> None:
    rows = [{**PAIR, "extra": {"a": 1}}, {**PAIR, "chosen": "x", "extra": [1, 2]},
            {**PAIR, "chosen": "y", "extra": "s"}, {**PAIR, "chosen": "z", "extra": {"a": 2}}]  # fmt: skip
    got = load_dataset_records([write_jsonl("p.jsonl", rows)], batch_size=2)
    assert got.frame["extra"].to_list() == ['{"a": 1}', "[1, 2]", '"s"', '{"a": 2}']
    assert any("extra" in note and "JSON text" in note for note in got.notes)


def test_carried_types_are_inferred_over_every_batch(write_jsonl) -> None:
    rows = [{**PAIR, "chosen": c, "n": n, "meta": m} for c, n, m in
            [("a", 1, {"x": 1}), ("b", 2, None), ("c", 2.5, {"y": "s"}), ("d", None, {"x": 3})]]  # fmt: skip
    got = load_dataset_records([write_jsonl("p.jsonl", rows)], batch_size=2)
    assert got.frame.schema["n"] == pl.Float64 and got.frame["n"].to_list() == [1.0, 2.0, 2.5, None]
    assert got.frame["meta"].to_list() == [{"x": 1, "y": None}, None, {"x": None, "y": "s"}, {"x": 3, "y": None}]
    assert not any("JSON text" in note for note in got.notes)


def test_parquet_columns_keep_their_types(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {**{k: [v] * 3 for k, v in PAIR.items()}, "when": [dt.date(2024, 1, i) for i in (1, 2, 3)],
         "n": pl.Series([1, 2, 3], dtype=pl.Int16), "margin": pl.Series([1.0, None, 0.5], dtype=pl.Float32)}
    )  # fmt: skip
    frame = frame.with_columns(pl.Series("chosen", ["a", "b", "c"]))
    frame.write_parquet(tmp_path / "p.parquet")
    got = load_dataset_records([tmp_path / "p.parquet"], batch_size=2)
    assert got.frame.schema["when"] == pl.Date and got.frame.schema["n"] == pl.Int16
    assert got.frame["n"].to_list() == [1, 2, 3] and got.frame["margin"].to_list() == [1.0, None, 0.5]
    assert got.frame["source"].to_list() == [f"{tmp_path / 'p.parquet'}:{i}" for i in range(3)]


def test_each_input_has_its_own_format_and_kinds_must_agree(write_jsonl) -> None:
    pairs = write_jsonl("a.jsonl", [PAIR])
    transcript = "\n\nHuman: Hi\n\nAssistant: "
    hh = write_jsonl("b.jsonl", [{"chosen": transcript + "Hey", "rejected": transcript + "No"}])
    got = load_dataset_records([pairs, hh])
    assert (got.format, got.kind, got.frame.height) == ("pairs+hh", "pairs", 2)
    assert got.frame["prompt_id"].n_unique() == 1  # the same prompt from two formats gets one id
    corpus = write_jsonl("c.jsonl", [ALPACA])
    with pytest.raises(RmdataError, match=r"c\.jsonl holds corpus records \(alpaca\) but .*a\.jsonl holds pairs"):
        load_dataset_records([pairs, corpus])


def test_several_inputs_read_as_one(tmp_path: Path, write_jsonl) -> None:
    a = write_jsonl("a.jsonl", [PAIR])
    pl.DataFrame([{**PAIR, "chosen": "Yo."}]).write_parquet(tmp_path / "b.parquet")
    got = load_dataset_records([a, tmp_path / "b.parquet"])
    assert got.records == 2 and [i.records for i in got.inputs] == [1, 1]
    assert got.frame["source"].to_list() == [f"{a}:1", f"{tmp_path / 'b.parquet'}:0"]


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RmdataError, match="nope.jsonl: no such file or directory"):
        load_dataset_records([tmp_path / "nope.jsonl"])
