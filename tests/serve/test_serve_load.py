"""benchmarks/serve_load.py at toy size: both servers answer every request, rmdata's rewards are exact."""

from __future__ import annotations

import pytest

from benchmarks import serve_load


def test_toy_run_reports_every_level_and_exact_rewards(capsys: pytest.CaptureFixture[str]) -> None:
    toy = "--clients 1,3 --requests 4 --max-rows 3 --hidden-size 32 --intermediate-size 64 --layers 1 --max-length 128"
    result = serve_load.main(toy.split())
    assert result["exact"] is True and result["targets"]["exact"] is True
    assert result["max_abs_diff_baseline"] < 1e-4  # the baseline scores the same model, padded
    for server in ("openrlhf_baseline", "rmdata"):
        assert set(result[server]) == {"1", "3"}
        assert all(level["rows_per_s"] > 0 and level["p99_ms"] >= level["p50_ms"] for level in result[server].values())
    assert result["requests"] == {"1": 4, "3": 6}  # at least two requests per client
    assert capsys.readouterr().out.count("\n") == 1  # one JSON line
