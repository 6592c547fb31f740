"""Hostile inputs through the real CLI entry point (``rmdata.cli.main``): one parametrized test per class.

Every case: exit code 2 (a user error) or the documented report, exactly one ``error:`` line on stderr,
no traceback, nothing written. This is the regression net for every reader: add a case for each new one.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
import zstandard

from tests.hostile.cli import run_cli

PAIR = {"prompt": "Say hi.", "chosen": "Hi!", "rejected": "Go away."}


def pair_lines(n: int) -> bytes:
    return b"".join(json.dumps({**PAIR, "chosen": f"Hi {i}!"}).encode() + b"\n" for i in range(n))


def zstd_cut_at_block_boundary(path: Path) -> None:
    """Two zstd blocks flushed separately, the file cut right after the first: a clean-looking end."""
    data = pair_lines(400)
    buf = io.BytesIO()
    writer = zstandard.ZstdCompressor().stream_writer(buf, closefd=False)
    writer.write(data[: len(data) // 2])
    writer.flush(zstandard.FLUSH_BLOCK)
    cut = buf.tell()
    writer.write(data[len(data) // 2 :])
    writer.flush(zstandard.FLUSH_FRAME)
    path.write_bytes(buf.getvalue()[:cut])


def zstd_cut_mid_block(path: Path) -> None:
    whole = zstandard.ZstdCompressor().compress(pair_lines(400))
    path.write_bytes(whole[: len(whole) - 9])


def parquet_truncated(path: Path) -> None:
    buffer = io.BytesIO()
    pl.DataFrame([PAIR] * 50).write_parquet(buffer)
    path.write_bytes(buffer.getvalue()[:-40])


def saved_dataset(state: str | None, dataset_dict: str | None) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        path.mkdir()
        if state is not None:
            (path / "state.json").write_text(state)
        if dataset_dict is not None:
            (path / "dataset_dict.json").write_text(dataset_dict)

    return make


def text(content: str | bytes) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))

    return make


UNREADABLE: dict[str, tuple[str, Callable[[Path], None], str]] = {
    # name: (file name, builder, what the error line must say)
    "gzip truncated": ("p.jsonl.gz", text(gzip.compress(pair_lines(300))[:-25]), "ends before its end marker"),
    "zstd cut at a block boundary": ("p.jsonl.zst", zstd_cut_at_block_boundary, "ends before its end marker"),
    "zstd cut mid-block": ("p.jsonl.zst", zstd_cut_mid_block, "ends before its end marker"),
    "not gzip at all": ("p.jsonl.gz", text(b"plain text, not gzip\n"), "not a valid gzip stream"),
    "not zstd at all": ("p.jsonl.zst", text(b"plain text, not zstd\n"), "not a valid zstd stream"),
    "parquet truncated": ("p.parquet", parquet_truncated, "cannot read Parquet"),
    "UTF-16 with BOM": ("p.jsonl", text((json.dumps(PAIR) + "\n").encode("utf-16")), "UTF-16"),
    "UTF-16 without BOM": ("p.jsonl", text((json.dumps(PAIR) + "\n").encode("utf-16-le")), "UTF-16"),
    "integer with 5000 digits": ("p.jsonl", text('{"prompt": "x", "chosen": "a", "rejected": "b", "n": '
                                                 + "9" * 5000 + "}\n"), "more than 4,300 digits"),
    "100k-deep nested arrays": ("p.jsonl", text('{"prompt": "x", "chosen": "a", "rejected": "b", "n": '
                                                + "[" * 100_000 + "]" * 100_000 + "}\n"), "levels deep"),
    "900-deep nested arrays": ("p.jsonl", text('{"prompt": "x", "chosen": "a", "rejected": "b", "n": '
                                               + "[" * 900 + "]" * 900 + "}\n"), "levels deep"),
    "deep JSON array file": ("p.json", text("[" * 100_000 + "]" * 100_000), "levels deep"),
    "lone surrogate, only record": ("p.jsonl", text('{"prompt": "\\ud800", "chosen": "a", "rejected": "b"}\n'),
                                    "lone surrogate"),
    "corrupt state.json": ("ds", saved_dataset("{not json", None), "state.json: not valid JSON"),
    "state.json of the wrong shape": ("ds", saved_dataset('{"_data_files": 7}', None), "_data_files must be"),
    "state.json naming a file elsewhere": ("ds", saved_dataset('{"_data_files": [{"filename": "../x.arrow"}]}', None),
                                           "not a file in"),
    "corrupt dataset_dict.json": ("ds", saved_dataset(None, '{"splits": '), "dataset_dict.json: not valid JSON"),
    "dataset_dict.json of the wrong shape": ("ds", saved_dataset(None, '{"splits": 5}'), "splits must be a list"),
    "dataset_dict.json naming a missing split": ("ds", saved_dataset(None, '{"splits": ["train"]}'),
                                                 "is not a directory"),
    "JSON array that does not parse": ("p.json", text('[{"prompt": "x",'), "not valid JSON at line 1"),
    "JSON file holding a number": ("p.json", text("[1, 2]"), "cannot tell the format"),
    "empty file": ("p.jsonl", text(""), "empty file"),
    "no record has known keys": ("p.jsonl", text('{"question": "x", "answer": "y"}\n'), "cannot tell the format"),
    "unknown file type": ("p.txt", text("hello\n"), "unknown file type"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(UNREADABLE), ids=list(UNREADABLE))
def test_unreadable_inputs_are_one_error_line(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name, build, expected = UNREADABLE[case]
    path = tmp_path / name
    build(path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = run_cli(["inspect", str(path)], monkeypatch, tmp_path)
    assert result.code == 2, result.err
    assert result.error_lines == 1 and result.err.startswith("error: "), result.err
    assert expected in result.err.splitlines()[0] or expected in result.err, result.err
    assert str(path) in result.err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing left behind


RECORD_ERRORS: dict[str, tuple[list[str], str, str]] = {
    # name: (lines, field, message part): a file whose other records are fine; the bad one is named by line
    "lone surrogate in the prompt": (['{"prompt": "\\ud800 hi", "chosen": "a", "rejected": "b"}'], None,
                                     "lone surrogate"),
    "lone surrogate in a carried column": (['{"prompt": "x", "chosen": "a", "rejected": "b", "note": "\\udfff"}'],
                                           None, "note holds a lone surrogate"),
    "lone surrogate in a key": (['{"prompt": "x", "chosen": "a", "rejected": "b", "\\ud800": 1}'], None,
                                "lone surrogate"),
    "integer with 5000 digits": (['{"prompt": "x", "chosen": "a", "rejected": "b", "n": ' + "1" * 5000 + "}"],
                                 None, "more than 4,300 digits"),
    "100k-deep nesting": (['{"prompt": "x", "chosen": "a", "rejected": "b", "n": ' + "[" * 100_000
                           + "]" * 100_000 + "}"], None, "levels deep"),
    "null prompt": (['{"prompt": null, "chosen": "a", "rejected": "b"}'], "prompt", "prompt is null"),
    "margin of 10**400": (['{"prompt": "x", "chosen": "a", "rejected": "b", "margin": 1' + "0" * 400 + "}"],
                          "margin", "margin must be a finite number"),
    "a record that is a list": (['[1, 2, 3]'], None, "must be a JSON object"),
    "bytes that are not UTF-8": (['{"prompt": "\udcff", "chosen": "a", "rejected": "b"}'], None, "not valid UTF-8"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(RECORD_ERRORS), ids=list(RECORD_ERRORS))
def test_bad_records_are_named_by_line_and_field(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad, field, message = RECORD_ERRORS[case]
    good = [json.dumps({**PAIR, "chosen": f"ok {i}"}) for i in range(3)]
    path = tmp_path / "p.jsonl"
    raw = "\n".join([good[0], *bad, *good[1:]]) + "\n"
    path.write_bytes(raw.encode("utf-8", "surrogateescape"))  # \udcff -> the byte 0xff
    result = run_cli(["inspect", "--json", str(path)], monkeypatch, tmp_path)
    assert result.code == 1 and not result.err, result.err  # inspect reports invalid records, exit 1
    report = json.loads(result.out)
    assert (report["records"], report["valid"], report["invalid"]) == (4, 3, 1)
    (error,) = report["errors"]
    assert error["location"] == f"{path}:2" and error["field"] == field and message in error["message"], error
    assert "hh" not in error["message"]  # a null prompt is a broken pair, not another format

    train = run_cli(["train", "--set", f"data.train={path}", "-o", str(tmp_path / "run")], monkeypatch, tmp_path)
    assert train.code == 2 and train.error_lines == 1 and f"{path}:2" in train.err, train.err
    assert not (tmp_path / "run").exists()


ODD_BUT_READABLE: dict[str, tuple[str, Callable[[Path], None]]] = {
    "CR-only line ends": ("p.jsonl", text(pair_lines(5).replace(b"\n", b"\r"))),
    "CRLF line ends": ("p.jsonl", text(pair_lines(5).replace(b"\n", b"\r\n"))),
    "upper-case .JSONL.GZ": ("P.JSONL.GZ", text(gzip.compress(pair_lines(5)))),
    "upper-case .JSONL.ZST": ("P.JSONL.ZST", text(zstandard.ZstdCompressor().compress(pair_lines(5)))),
    "two concatenated zstd frames": ("p.jsonl.zst", text(zstandard.ZstdCompressor().compress(pair_lines(2))
                                                         + zstandard.ZstdCompressor().compress(pair_lines(3)))),
    "leading whitespace before a JSON array": ("p.json", text(" \n\t\n" * 30_000 + json.dumps(
        [{**PAIR, "chosen": f"Hi {i}!"} for i in range(5)]))),
    "UTF-8 byte-order mark": ("p.jsonl", text(b"\xef\xbb\xbf" + pair_lines(5))),
    "no newline at the end": ("p.jsonl", text(pair_lines(5).rstrip(b"\n"))),
}  # fmt: skip


@pytest.mark.parametrize("case", list(ODD_BUT_READABLE), ids=list(ODD_BUT_READABLE))
def test_odd_but_valid_files_are_read_whole(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name, build = ODD_BUT_READABLE[case]
    path = tmp_path / name
    build(path)
    result = run_cli(["inspect", "--json", str(path)], monkeypatch, tmp_path)
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert (report["format"], report["records"], report["invalid"]) == ("pairs", 5, 0)


def test_detection_failure_shows_the_closest_formats_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "x", "chosen": "a"}\n{"prompt": "y", "chosen": "b", "reject": "c"}\n')
    result = run_cli(["inspect", str(path)], monkeypatch, tmp_path)
    assert result.code == 2 and result.error_lines == 1
    lines = result.err.splitlines()
    assert "cannot tell the format" in lines[0] and "as pairs records (the closest)" in lines[0]
    assert lines[1:] == [
        f'  {path}:1: missing key "rejected" (pairs records need prompt, chosen, rejected)',
        f'  {path}:2: missing key "rejected" (pairs records need prompt, chosen, rejected)',
    ]


@pytest.mark.parametrize("value", ["", " "])
def test_an_empty_input_path_reads_nothing(value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "stray.jsonl").write_bytes(pair_lines(3))  # would be read if "" meant "the working directory"
    result = run_cli(["train", "--set", f"data.train={value}", "-o", str(tmp_path / "run")], monkeypatch, tmp_path)
    assert result.code == 2 and result.error_lines == 1 and "data.train[0] is an empty path" in result.err, result.err
    assert not (tmp_path / "run").exists()


def test_the_data_layer_refuses_an_empty_path_too() -> None:
    """Callers other than recipes (score, eval, inspect) reach the data layer's own check."""
    from rmdata.data.inputs import resolve_input
    from rmdata.errors import RmdataError

    with pytest.raises(RmdataError, match="an input path is empty"):
        resolve_input(" ")


def test_unexpected_errors_while_reading_name_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader bug reaches the user as one line naming the file; RMDATA_DEBUG=1 shows the traceback."""
    import rmdata.data.jsonl as jsonl

    path = tmp_path / "p.jsonl"
    path.write_bytes(pair_lines(3))

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(jsonl, "_json_lines", broken)
    result = run_cli(["inspect", str(path)], monkeypatch, tmp_path)
    assert result.code == 2 and result.error_lines == 1
    assert f"{path}: cannot be read (KeyError: 'boom')" in result.err and "RMDATA_DEBUG=1" in result.err
    monkeypatch.setenv("RMDATA_DEBUG", "1")
    with pytest.raises(KeyError, match="boom"):
        run_cli(["inspect", str(path)], monkeypatch, tmp_path)


def test_the_console_script_prints_one_line_without_a_traceback(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "p.jsonl.zst"
    zstd_cut_at_block_boundary(path)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run([sys.executable, "-m", "rmdata", "inspect", str(path)], capture_output=True, text=True,
                          env=env, timeout=120)  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1
