"""``rmdata score --model A --model B ...``: one table with a ``reward_<name>`` column per model.

Each model is scored by the one-model run (``rmdata.score.run``) into ``OUTPUT/models/<name>/``, a complete
score directory of its own (card, manifest, resumable shards, ``--reuse`` as usual), so each model scores each
distinct row once and its column equals a separate ``rmdata score`` run bit for bit. Then shard ``k`` of every
model (the same input rows in the same order: the shard rule does not depend on the model) is joined column
by column into ``OUTPUT/data/train-k.parquet``::

    prompt_id, response_id, prompt, response, reward_<a>, reward_<b>, ..., num_tokens_<a>, ...,
    truncated_<a>, ..., then every input column

The manifest lists each model's fingerprint, rule and totals; the card adds per-model statistics and the
rank correlation of every pair of models. ``--reuse`` directories are matched per model (a directory need
only hold one of the models; one holding none is ignored, and named in the manifest, card and summary).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import polars as pl

from rmdata.dataset_dir import DATA_DIR, check_replaceable, dataset_card, markdown_table, shard_path, write_marker
from rmdata.distributed import launch_ranks
from rmdata.errors import RmdataError
from rmdata.io import write_parquet, write_text_atomic
from rmdata.score.config import ScoreConfig
from rmdata.score.output import CORE, SCORED
from rmdata.score.reuse import MODELS_DIR, candidates, score_key
from rmdata.score.run import ScoreResult, score
from rmdata.score.shards import MANIFEST

NAME = re.compile(r"[A-Za-z0-9_]+")
PER_MODEL = ("reward", "num_tokens", "truncated")  # the columns each model adds, suffixed with _<name>


@dataclass
class SeveralResult:
    output: Path
    rows: int
    models: dict[str, ScoreResult]
    reuse_ignored: list[str]  # --reuse directories holding none of the models' scores (noted, not used)


def parse_models(specs: Sequence[str]) -> list[tuple[str, str]]:
    """``NAME=PATH`` or ``PATH`` (named after its directory, non-alphanumerics as ``_``) -> ``(name, path)``."""
    parsed = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not NAME.fullmatch(name) or Path(spec).exists():
            path = spec
            name = re.sub(r"[^A-Za-z0-9_]", "_", Path(spec.rstrip("/")).name) or "model"
        parsed.append((name, path))
    names = [n for n, _ in parsed]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise RmdataError(
            f"--model: two models are named {repeated[0]!r} (column reward_{repeated[0]}); name them: "
            f"--model a=PATH --model b=PATH"
        )
    return parsed


def score_several(
    cfg: ScoreConfig, models: Sequence[tuple[str, str]], command: str, *, show_progress: bool = True
) -> SeveralResult:
    """Score ``cfg.inputs`` with every model into ``cfg.output/models/<name>/``, then join them into one table."""
    launched = launch_ranks()
    if launched is not None and launched[1] > 1:
        raise RmdataError(
            "several --model under torchrun is not supported: run one torchrun `rmdata score` per model "
            "(one --model each), or score them together in one process"
        )
    out = Path(cfg.output)
    check_replaceable(out, ["scores"], flag="--no-resume")
    for name, path in models:
        if not Path(path).is_dir():
            raise RmdataError(f"--model {name}={path}: no such model directory")
    out.mkdir(parents=True, exist_ok=True)
    write_marker(out, "scores", models={name: None for name, _ in models})  # a killed run's directory resumes
    for directory in cfg.reuse:
        if not candidates(Path(directory)):
            raise RmdataError(f"--reuse {directory}: not an rmdata score output (no manifest.json of kind scores)")
    results: dict[str, ScoreResult] = {}
    for name, path in models:
        sub = replace(cfg, model=path, output=str(out / MODELS_DIR / name), save_to_disk=None)
        results[name] = score(sub, command, show_progress=show_progress, strict_reuse=False)
    keys = [score_key(r.manifest) for r in results.values()]
    ignored = [d for d in cfg.reuse if not any(score_key(m) in keys for _, m in candidates(Path(d)))]
    if not cfg.resume:
        for stale in [out / DATA_DIR, *(p for p in (out / MODELS_DIR).glob("*") if p.name not in results)]:
            shutil.rmtree(stale, ignore_errors=True)
    rows = _join(out, results)
    _write_summary(out, results, rows, command, ignored)
    if cfg.save_to_disk:
        from rmdata.dataset_dir import save_arrow_copy

        save_arrow_copy(out, Path(cfg.save_to_disk))
    return SeveralResult(out, rows, results, ignored)


def _join(out: Path, results: dict[str, ScoreResult]) -> int:
    """``OUTPUT/data/train-k.parquet`` from shard ``k`` of every model; the number of rows."""
    first, *_ = results.values()
    shards = len(first.manifest["shards"])
    (out / DATA_DIR).mkdir(parents=True, exist_ok=True)
    for stray in (out / DATA_DIR).glob("*.parquet"):
        stray.unlink()
    rows = 0
    for k in range(shards):
        frames = {n: pl.read_parquet(shard_path(r.output, k)) for n, r in results.items()}
        base = next(iter(frames.values()))
        for n, frame in frames.items():
            if not frame["response_id"].equals(base["response_id"]):
                raise RmdataError(
                    f"{out}: shard {k} of model {n} holds other rows than the first model's; this is a bug"
                )
        scores = [frames[n][c].alias(f"{c}_{n}") for c in PER_MODEL for n in frames]
        carried = [c for c in base.columns if c not in CORE and c not in SCORED]
        joined = pl.concat([base.select(CORE), pl.DataFrame(scores), base.select(carried)], how="horizontal")
        write_parquet(joined, shard_path(out, k))
        rows += joined.height
    return rows


def _model_entry(result: ScoreResult) -> dict[str, Any]:
    manifest = result.manifest
    return {
        **manifest["model"],
        "max_length": manifest["settings"]["max_length"],
        "directory": str(result.output),
        "totals": manifest.get("totals", {}),
    }


def model_stats(out: Path, names: Sequence[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per-model reward statistics, and per pair of models the Spearman correlation over all rows and the
    mean Spearman correlation within prompts (prompts with at least 3 distinct responses)."""
    frame = pl.scan_parquet(out / DATA_DIR / "*.parquet")
    stats = []
    for n in names:
        r = pl.col(f"reward_{n}")
        row = frame.select(r.mean().alias("mean"), r.std().alias("std"), r.min().alias("min"), r.max().alias("max"))
        stats.append({"model": n, **row.collect().to_dicts()[0]})
    pairs = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            ra, rb = pl.col(f"reward_{a}"), pl.col(f"reward_{b}")
            overall = frame.select(pl.corr(ra, rb, method="spearman")).collect().item()
            per_prompt = (
                frame.unique("response_id")
                .group_by("prompt_id")
                .agg(pl.corr(ra, rb, method="spearman").alias("rho"), pl.len().alias("n"))
                .filter(pl.col("n") >= 3)
                .select(pl.col("rho").mean())
                .collect()
                .item()
            )
            pairs.append({"models": f"{a} vs {b}", "spearman": overall, "spearman_per_prompt": per_prompt})
    return stats, pairs


def _write_summary(out: Path, results: dict[str, ScoreResult], rows: int, command: str, ignored: list[str]) -> None:
    """The marker, ``manifest.json`` (each model's fingerprint and totals) and the card."""
    names = list(results)
    first = next(iter(results.values())).manifest
    models = {n: _model_entry(r) for n, r in results.items()}
    files = sorted((out / DATA_DIR).glob("*.parquet"))
    manifest = {
        "kind": "scores",
        "command": command,
        "models": models,
        "input": first["input"],
        "shards": [f"{DATA_DIR}/{f.name}" for f in files],
        "rows": rows,
        "reuse_ignored": ignored,
        "complete": True,
    }
    import json

    write_marker(out, "scores", models={n: m["fingerprint"] for n, m in models.items()})
    write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    stats, pairs = model_stats(out, names)
    listing = [
        {"model": n, "column": f"reward_{n}", "path": m["path"], "fingerprint": m["fingerprint"], "rule": m["rule"],
         "scored": m["totals"].get("scored", 0), "reused": m["totals"].get("reused", 0)}
        for n, m in models.items()
    ]  # fmt: skip
    lines = [
        f"Rewards of {len(names)} models for {rows} responses from {', '.join(first['input']['paths'])}, "
        "scored by rmdata.",
        "",
        f"- command: `{command}`",
        f"- each model's own score directory: `{MODELS_DIR}/<name>/`",
        *(
            [f"- --reuse directories holding none of these models' scores (ignored): {', '.join(ignored)}"]
            if ignored
            else []
        ),
        "",
        "## Models",
        "",
        markdown_table(listing),
        "",
        "## Reward statistics",
        "",
        markdown_table(stats),
        "",
        "## Agreement (Spearman rank correlation)",
        "",
        markdown_table(pairs) if pairs else "one model",
    ]
    card = dataset_card("Scored responses, several models", "\n".join(lines), out, tags=["rmdata", "reward-scores"])
    write_text_atomic(out / "README.md", card)
