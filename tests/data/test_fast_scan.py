"""The fast pass 1: orjson decoding gives json's values and messages, block reading keeps line numbers,
whole-batch checks accept only valid records, and worker processes give what one process gives."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

import rmdata.data.jsonl as jsonl
import rmdata.data.workers as workers
from rmdata.data.batch import RawRecord
from rmdata.data.carried import JSON_TEXT
from rmdata.data.detect import normalize
from rmdata.data.drops import Drop
from rmdata.data.formats import FORMATS
from rmdata.data.inputs import resolve_input
from rmdata.data.json_values import parse_line_exactly
from rmdata.data.readers import iter_batches
from rmdata.data.rules import Problems
from rmdata.data.stream import scan, stream
from rmdata.errors import RmdataError

TRICKY_LINES = [
    b'{"prompt": "p", "response": "r", "n": 123456789012345678901234567890}',  # orjson: a float
    b'{"prompt": "p", "response": "r", "n": -9223372036854775809}',
    b'{"prompt": "p", "response": "r", "n": 18446744073709551615, "f": 1e19}',
    b'{"prompt": "p", "response": "r", "n": NaN}',  # orjson refuses, json reads
    b'{"prompt": "p", "response": "r", "n": 1e400}',
    b'{"prompt": "\\ud800", "response": "r"}',  # a lone surrogate
    b'{"prompt": "p", "response": "r", "\\udc00": 1}',
    b'{"prompt": "p", "response": "r", "deep": ' + b"[" * 64 + b"]" * 64 + b"}",  # 65 levels
    b'{"prompt": "p", "response": "r", "deep": ' + b"[" * 63 + b"]" * 63 + b"}",  # 64 levels: fine
    b'{"prompt": "p", "response": "r", "deep": ' + b"[" * 2000 + b"]" * 2000 + b"}",
    b'{"prompt": "p", "response": "r\xff"}',  # not UTF-8
    b'{"prompt": "p", "response": "a\tb"}',  # a raw control character
    b'{"prompt": "p", "response": "r", "response": "last wins"}',
    b'["not", "an", "object"]',
    b"   ",
    b'{"prompt": "caf\\u00e9 \\ud83d\\ude00", "response": "r", "x": [1.5, {"y": null}], "b": true}',
    b'{"prompt": "p", "response": "r"} trailing',
    b'{"prompt": "p", "response": "r", "m": -0.0, "e": 2.2250738585072011e-308}',
    b'{"prompt": "truncated", "response": "r"',  # the file's last line, without a newline
]


def exact(path: Path, lines: list[bytes]) -> list[RawRecord]:
    """The reference: every line read by the standard library's json, as before orjson."""
    out = []
    for number, line in enumerate(lines, 1):
        record = parse_line_exactly(str(path), number, line, last=number == len(lines))
        if record is not None:
            out.append(record)
    return out


def read(path: Path, batch_size: int = 3) -> list[RawRecord]:
    return [r for batch in iter_batches(resolve_input(str(path)), batch_size) for r in batch.records]


def same_values(a: Any, b: Any) -> bool:
    """Equal, with types (1 is not 1.0) and NaN equal to itself."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same_values(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_values(x, y) for x, y in zip(a, b, strict=True))
    return a == b or (a != a and b != b)


@pytest.mark.parametrize("block", [jsonl.BLOCK_BYTES, 7])
def test_records_are_the_standard_librarys_whatever_the_block_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    monkeypatch.setattr(jsonl, "BLOCK_BYTES", block)  # 7 bytes: every line spans several reads
    path = tmp_path / "tricky.jsonl"
    path.write_bytes(b"\n".join(TRICKY_LINES))
    got, want = read(path), exact(path, TRICKY_LINES)
    assert [r.location for r in got] == [r.location for r in want]
    assert [(r.error, r.text) for r in got] == [(r.error, r.text) for r in want]
    assert all(same_values(g.value, w.value) for g, w in zip(got, want, strict=True))
    assert got[0].value is not None and got[0].value["n"] == 123456789012345678901234567890
    assert "nests arrays or objects more than 64 levels" in str(got[7].error) and got[8].error is None
    assert str(got[-1].error).startswith("truncated last line")


def test_crlf_and_cr_only_line_ends_keep_their_line_numbers(tmp_path: Path) -> None:
    rows = [{"prompt": f"p{i}", "response": "r"} for i in range(4)]
    for name, end in (("crlf.jsonl", b"\r\n"), ("cr.jsonl", b"\r")):
        path = tmp_path / name
        path.write_bytes(end.join([json.dumps(rows[0]).encode(), b"", *(json.dumps(r).encode() for r in rows[1:])]))
        records = read(path)
        assert [r.value for r in records] == rows
        assert [r.location.rsplit(":", 1)[1] for r in records] == ["1", "3", "4", "5"]


VALID = {
    "alpaca": {"instruction": "Say hi.", "output": "Hi!", "input": "", "generator": "m"},
    "prompt-response": {"prompt": "Say hi.", "response": "Hi!"},
    "pairs": {"prompt": "Say hi.", "chosen": "Hi!", "rejected": "Bye.", "margin": 2},
}
BROKEN = {  # each breaks one rule, or is valid in a shape the whole-batch check leaves to normalize
    "alpaca": [{"output": "x"}, {"instruction": " \u3000\n", "output": "x"}, {"instruction": "i", "output": ""},
               {"instruction": "i", "output": 3}, {"instruction": "i", "output": "o", "input": 1},
               {"instruction": "i", "output": None}, {"instruction": "\x1c", "output": "o"}],
    "prompt-response": [{"prompt": [{"role": "user", "content": "hi"}], "response": "r"},
                        {"prompt": "", "response": "r"}, {"prompt": "p", "response": "\u2028"}],
    "pairs": [{"prompt": "p", "chosen": "same", "rejected": "same"}, {**VALID["pairs"], "margin": True},
              {**VALID["pairs"], "margin": float("inf")}, {**VALID["pairs"], "margin": 10**400},
              {**VALID["pairs"], "margin": "1"}, {"prompt": "p", "chosen": "c", "rejected": ["r"]}],
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(VALID))
def test_whole_batch_checks_pass_only_valid_one_row_records(name: str) -> None:
    fmt = FORMATS[name]
    assert fmt.all_valid([VALID[name]] * 5)
    assert fmt.all_valid([{**VALID[name], "margin": float("nan")}])  # NaN: no margin (elsewhere: a carried column)
    for record in BROKEN[name]:
        problems = Problems()
        rows = normalize(record, fmt, problems, None)
        assert not fmt.all_valid([VALID[name], record]) or (len(rows) == 1 and not problems), record
        if problems:
            assert not fmt.all_valid([record, VALID[name]]), record


def spread_file(path: Path, rows: int, end: str = "\n") -> list[dict[str, Any] | str]:
    """Valid rows with broken ones, blank lines and mixed-type carried columns spread through the file."""
    lines: list[dict[str, Any] | str] = []
    for i in range(rows):
        if i % 97 == 5:
            lines.append('{"prompt": "broken"')
        elif i % 89 == 7:
            lines.append({"prompt": "p", "response": " "})
        elif i % 101 == 3:
            lines.append("")
        else:
            extra = {"tag": i} if i % 2 else {"tag": f"t{i}", "score": i / 3}
            lines.append({"prompt": f"p{i}", "response": f"r{i}", **extra})
    text = end.join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    path.write_text(text + end, encoding="utf-8")
    return lines


@pytest.mark.parametrize("end", ["\n", "\r"])
def test_worker_processes_give_what_one_process_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, end: str
) -> None:
    path = tmp_path / "big.jsonl"
    lines = spread_file(path, 3000, end)
    bad = [n for n, line in enumerate(lines, 1) if line == '{"prompt": "broken"' or isinstance(line, dict)
           and line["response"] == " "]  # fmt: skip
    records = sum(1 for line in lines if line != "")
    monkeypatch.setattr(workers, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(workers, "SPAN_BYTES", 4096)  # ~60 spans, most of them handed to the workers

    def run(count: str) -> tuple[Any, list[Drop]]:
        monkeypatch.setenv(workers.WORKERS_ENV, count)
        dropped: list[Drop] = []
        return scan([path], on_error="skip", on_drop=dropped.append, batch_size=64), dropped

    (one, one_drops), (two, two_drops) = run("1"), run("2")
    assert workers.scan_workers(two.inputs[0], per_row=False) == 2
    summary = [
        (r.records, r.valid_rows, r.invalid, r.drops, r.carried, r.errors, r.inputs[0].records) for r in (one, two)
    ]
    assert summary[0] == summary[1]
    assert (two.records, two.invalid, two.inputs[0].records) == (records, len(bad), records)
    assert [d.to_json() for d in two_drops] == [d.to_json() for d in one_drops]
    assert [d.location for d in two_drops] == [f"{path}:{n}" for n in bad]
    assert two.carried["tag"] == JSON_TEXT  # numbers in some spans, strings in others
    frames = [list(stream(r)) for r in (one, two)]
    assert all(a.equals(b) for a, b in zip(*frames, strict=True))
    with pytest.raises(
        RmdataError, match=rf"{len(bad)} of {records} records are invalid .*\n  {re.escape(str(path))}:6: "
    ):
        scan([path])


def test_the_worker_count_setting_is_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a.jsonl"
    spread_file(path, 10)
    monkeypatch.setattr(workers, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setenv(workers.WORKERS_ENV, "two")
    with pytest.raises(RmdataError, match="RMDATA_SCAN_WORKERS='two': must be a whole number"):
        scan([path], on_error="skip")
    monkeypatch.setenv(workers.WORKERS_ENV, "2")
    assert workers.scan_workers(resolve_input(str(path)), per_row=True) == 0  # rows for the caller: in-process
