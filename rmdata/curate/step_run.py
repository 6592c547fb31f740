"""``rmdata filter-steps`` and ``build-step-dpo``: a step-score output -> SFT data or step-level DPO pairs.

Both read ``rmdata score-steps`` output (a directory's ``data/*.parquet``, or Parquet files) and write a
dataset directory: the rows kept, ``manifest.json`` with the counts by reason, and the dropped rows with their
``reason`` in ``rejects.jsonl`` when any was dropped. ``filter-steps`` applies
``rmdata.curate.steps.curate_by_first_error`` (``messages`` for SFT, plus the step columns);
``build-step-dpo`` applies ``rmdata.curate.step_pairs.step_pairs``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from rmdata.curate.step_pairs import step_pairs
from rmdata.curate.steps import CUT, KEEP, STEP_REWARDS, curate_by_first_error, split_by_reason
from rmdata.dataset_dir import atomic_directory, dataset_card, shard_path
from rmdata.errors import RmdataError
from rmdata.io import write_jsonl, write_parquet, write_text_atomic

KIND = "step-sft"
DPO_KIND = "step-dpo"
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
    manifest = {"rows_in": marked.height, "rows_kept": kept.height, **_counts(dropped)}
    manifest.update(mode=mode, threshold=threshold, scores=str(scores))
    if kept.height == 0:
        raise RmdataError(f"{scores}: no solution kept at --threshold {threshold} ({manifest['dropped']})")
    how = "cut at their first predicted error" if cut else "with no predicted error"
    title = "rmdata step-filtered SFT data"
    _write(output, kept, dropped, manifest, title, f"Solutions of `{scores}` {how} (threshold {threshold}).", overwrite)
    return manifest


def run_build_step_dpo(
    scores: Path, output: Path, *, threshold: float, max_pairs_per_prompt: int | None, overwrite: bool = False
) -> dict[str, Any]:
    """Step-level DPO pairs from the solutions of ``scores``; returns the manifest."""
    if max_pairs_per_prompt is not None and max_pairs_per_prompt < 1:
        raise RmdataError(f"--max-pairs-per-prompt {max_pairs_per_prompt}: must be >= 1 (leave it out for no cap)")
    scored = pl.read_parquet(_inputs(scores))
    pairs, dropped = step_pairs(scored, threshold=threshold, max_pairs_per_prompt=max_pairs_per_prompt)
    manifest = {"rows_in": scored.height, "pairs": pairs.height, **_counts(dropped)}
    manifest.update(threshold=threshold, max_pairs_per_prompt=max_pairs_per_prompt, scores=str(scores))
    if pairs.height == 0:
        raise RmdataError(
            f"{scores}: no step pair at --threshold {threshold} ({manifest['dropped']}); pairs need two solutions of "
            "one prompt sharing a correct prefix, then a step at or over the threshold vs one under it"
        )
    body = f"Step-level preference pairs from `{scores}` (threshold {threshold})."
    _write(output, pairs, dropped, manifest, "rmdata step-level DPO pairs", body, overwrite, kind=DPO_KIND)
    return manifest


def _counts(dropped: pl.DataFrame) -> dict[str, Any]:
    if dropped.height == 0:
        return {"rows_dropped": 0, "dropped": {}}
    reasons = dropped["reason"].cast(pl.String).value_counts(sort=True)
    counts = dict(zip(reasons["reason"].to_list(), reasons["count"].to_list(), strict=True))
    return {"rows_dropped": dropped.height, "dropped": counts}


def _write(
    output: Path,
    kept: pl.DataFrame,
    dropped: pl.DataFrame,
    manifest: dict[str, Any],
    title: str,
    body: str,
    overwrite: bool,
    kind: str = KIND,
) -> None:
    with atomic_directory(output, overwrite=overwrite, kind=kind) as tmp:
        shard = shard_path(tmp, 0)
        shard.parent.mkdir(parents=True)
        write_parquet(kept, shard)
        card = f"{body}\n\n```json\n{json.dumps(manifest)}\n```\n"
        write_text_atomic(tmp / "README.md", dataset_card(title, card, tmp))
        write_text_atomic(tmp / "manifest.json", json.dumps(manifest, indent=2) + "\n")
        if dropped.height:
            write_jsonl(tmp / "rejects.jsonl", dropped.to_dicts())
