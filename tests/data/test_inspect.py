"""inspect_paths: counts, errors and the token-free length summary, checked against numbers worked by hand."""

from __future__ import annotations

from rmdata.data.inspect import inspect_paths, render_report


def test_length_summary_worked_by_hand(write_jsonl) -> None:
    """Prompts: "a b" (3 chars, 2 words), "abcd" (4, 1), and system "ab" + user "cd" joined as "ab\\ncd" (5, 2).

    Responses: 1, 10 and 100 characters of one word each. Linear p95 over three sorted values v0..v2 sits at
    position 1.9: v1 + 0.9 * (v2 - v1); for responses 10 + 0.9 * 90 = 91.
    """
    rows = [
        {"prompt": "a b", "response": "x"},
        {"prompt": "abcd", "response": "y" * 10},
        {"prompt": [{"role": "system", "content": "ab"}, {"role": "user", "content": "cd"}], "response": "z" * 100},
    ]
    report = inspect_paths([str(write_jsonl("c.jsonl", rows))])
    assert report.lengths == {
        "prompt": {"chars": {"min": 3.0, "median": 4.0, "p95": 4.9, "max": 5.0},
                   "words": {"min": 1.0, "median": 2.0, "p95": 2.0, "max": 2.0}},
        "response": {"chars": {"min": 1.0, "median": 10.0, "p95": 91.0, "max": 100.0},
                     "words": {"min": 1.0, "median": 1.0, "p95": 1.0, "max": 1.0}},
    }  # fmt: skip


def test_report_counts_and_json_keys(write_jsonl, capsys) -> None:
    rows = [{"prompt": "q", "chosen": "a", "rejected": "b"}, {"prompt": "q", "chosen": "a", "rejected": "a"}, "{"]
    path = write_jsonl("p.jsonl", rows)
    report = inspect_paths([str(path)])
    out = report.to_dict()
    assert {k: out[k] for k in ("format", "kind", "records", "valid", "invalid", "rows")} == {
        "format": "pairs", "kind": "pairs", "records": 3, "valid": 1, "invalid": 2, "rows": 1,
    }  # fmt: skip
    assert [e["location"] for e in out["errors"]] == [f"{path}:2", f"{path}:3"]
    assert out["errors"][0]["field"] == "rejected"
    assert set(out["lengths"]) == {"prompt", "chosen", "rejected"}
    assert out["inputs"] == [
        {"path": str(path), "layout": "file", "split": None, "splits": [], "files": 1, "records": 3,
         "format": "pairs", "detection": "detected from the keys of 2 of the first 2 records"},
    ]  # fmt: skip
    render_report(report, max_errors=1)
    text = capsys.readouterr().out
    assert "format pairs (detected), kind pairs" in text
    assert "records 3: 1 valid, 2 invalid" in text
    assert f"{path}:2: chosen and rejected are the same text" in text
    assert f"{path}:3:" not in text  # capped at max_errors


def test_inspect_counts_duplicates_and_drops_by_reason(write_jsonl) -> None:
    pair = {"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."}
    path = write_jsonl("p.jsonl", [pair, pair, {**pair, "id": 3}, "{oops", {**pair, "rejected": ""}])
    out = inspect_paths([str(path)]).to_dict()
    assert (out["records"], out["valid"], out["invalid"], out["duplicates"]) == (5, 3, 2, 2)
    assert out["dropped"] == {"invalid_record": 1, "unreadable_record": 1}
    assert out["notes"] == ["2 rows repeat an earlier row's prompt and response(s)"]
