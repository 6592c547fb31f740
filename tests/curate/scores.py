"""Small score tables for curation tests: the columns `rmdata score` writes, built by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from rmdata.curate.pairs import PairRules
from rmdata.curate.ranking import ScoreOptions
from rmdata.curate.rules import FilterRules
from rmdata.curate.run import Result, run_build_dpo, run_filter


def row(prompt: str, rid: str, reward: float | None, text: str | None = None, **extra: Any) -> dict[str, Any]:
    """One scored response; the response text defaults to the id (so texts differ unless asked)."""
    out = {
        "prompt_id": prompt,
        "response_id": rid,
        "prompt": [{"role": "user", "content": f"question {prompt}"}],
        "response": text if text is not None else f"answer {rid}",
        "reward": reward,
        "num_tokens": extra.pop("num_tokens", 10),
        "truncated": False,
        "model": "m0",
    }
    return {**out, **extra}


def write_scores(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Rows -> a Parquet file with reward as float32, as `rmdata score` writes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(rows).with_columns(pl.col("reward").cast(pl.Float32)).write_parquet(path)
    return path


def read_dir(directory: Path) -> pl.DataFrame:
    return pl.read_parquet(sorted((directory / "data").glob("*.parquet")))


def filter_rows(tmp: Path, rows: list[dict[str, Any]], options: ScoreOptions | None = None, **rules: Any) -> Result:
    table = write_scores(tmp / "scores.parquet", rows)
    return run_filter([table], options or ScoreOptions(), FilterRules(**rules), tmp / "sft", tmp / "rejects.jsonl")


def dpo_rows(tmp: Path, rows: list[dict[str, Any]], options: ScoreOptions | None = None, **rules: Any) -> Result:
    table = write_scores(tmp / "scores.parquet", rows)
    return run_build_dpo([table], options or ScoreOptions(), PairRules(**rules), tmp / "dpo", tmp / "rejects.parquet")


def rejects(path: Path) -> dict[str, str]:
    """``{response_id: reason}`` of a rejects file."""
    frame = pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_ndjson(path)
    return dict(zip(frame.get_column("response_id"), frame.get_column("reason"), strict=True))
