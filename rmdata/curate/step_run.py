"""``rmdata filter-steps``: a step-score output -> SFT data kept or cut by the first predicted error.

Reads ``rmdata score-steps`` output (a directory's ``data/*.parquet``, or Parquet files), applies
``rmdata.curate.steps.curate_by_first_error`` and writes a dataset directory: the kept rows (``messages``
for SFT, plus the step columns), ``manifest.json`` with the counts by reason, and the dropped rows with their
``reason`` in ``rejects.jsonl`` when any was dropped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from rmdata.curate.steps import CUT, KEEP, STEP_REWARDS, curate_by_first_error, split_by_reason
from rmdata.dataset_dir import dataset_card, shard_path
from rmdata.errors import RmdataError
from rmdata.io import atomic_directory, write_jsonl, write_parquet, write_text_atomic

KIND = "step-sft"
NEEDED = ("prompt", "completions", STEP_REWARDS)


def _inputs(path: Path) -> list[Path]:
    files = sorted((path / "data").glob("*.parquet")) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise RmdataError(f"{path}: no Parquet files; give a `rmdata score-steps` output directory")
    for f in files:
        try:
            schema = pl.read_parquet_schema(f)
        except Exception as err:  # polars raises several types for a broken file
            raise RmdataError(f"{f}: not a readable Parquet file ({err}); make one with `rmdata score-steps`") from err
        if missing := [c for c in NEEDED if c not in schema]:
            raise RmdataError(f"{f} has no {', '.join(missing)} column(s); make one with `rmdata score-steps`")
    return files


def run_filter_steps(
    scores: Path, output: Path, *, threshold: float, cut: bool, overwrite: bool = False
) -> dict[str, Any]:
    """Keep (or ``cut`` at the first error) the solutions of ``scores``; returns the manifest."""
    mode = CUT if cut else KEEP
    marked = curate_by_first_error(pl.scan_parquet(_inputs(scores)), threshold=threshold, mode=mode).collect()
    kept, dropped = split_by_reason(marked)
    reasons = dropped["reason"].value_counts(sort=True)
    manifest = {
        "rows_in": marked.height,
        "rows_kept": kept.height,
        "rows_dropped": dropped.height,
        "dropped": dict(zip(reasons["reason"].to_list(), reasons["count"].to_list(), strict=True)),
        "mode": mode,
        "threshold": threshold,
        "scores": str(scores),
    }
    if kept.height == 0:
        raise RmdataError(f"{scores}: no solution kept at --threshold {threshold} ({manifest['dropped']})")
    with atomic_directory(output, overwrite=overwrite, kind=KIND) as tmp:
        shard = shard_path(tmp, 0)
        shard.parent.mkdir(parents=True)
        write_parquet(kept, shard)
        how = "cut at their first predicted error" if cut else "with no predicted error"
        body = f"Solutions of `{scores}` {how} (threshold {threshold}).\n\n```json\n{json.dumps(manifest)}\n```\n"
        write_text_atomic(tmp / "README.md", dataset_card("rmdata step-filtered SFT data", body))
        write_text_atomic(tmp / "manifest.json", json.dumps(manifest, indent=2) + "\n")
        if dropped.height:
            write_jsonl(tmp / "rejects.jsonl", dropped.to_dicts())
    return manifest
