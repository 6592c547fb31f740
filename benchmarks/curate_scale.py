"""`rmdata filter --top-k 1` and `rmdata build-dpo` at scale, against a plain pandas group-by of the same rules.

    python benchmarks/curate_scale.py                      # 200k rows (40k prompts x 5), about a minute
    python benchmarks/curate_scale.py --rows 10000000      # the target: 2M prompts x 5, each command < 30 s, < 4 GB

Generates a seeded score table (Parquet, the columns `rmdata score` writes, short synthetic texts, rewards
rounded to 0.01 so ties occur, ~1% of responses repeating the text of their prompt's first response under
another response_id) in a temp
dir; runs each command and its pandas baseline as a subprocess (wall time, and peak RSS from the child's
rusage via ``os.wait4``); checks both kept the same ids; prints one JSON line.

The baseline is what a careful one-off script does: ``pandas.read_parquet`` (pyarrow dtypes), drop
missing rewards, stable sort by (prompt_id, reward desc, response_id), ``drop_duplicates`` of
(prompt_id, response), ``groupby().head(1)`` (filter) or best/worst merge with the tie and margin rule
(build-dpo), build the TRL columns, ``to_parquet``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BASE_TEXT = " ".join(f"word{i % 97} token{i % 13} lorem ipsum dolor" for i in range(200))


def generate(path: Path, rows: int, responses: int, seed: int) -> None:
    """A score table of ``rows`` rows, ``responses`` per prompt, in shards of 1M rows."""
    import numpy as np
    import polars as pl

    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    prompts = rows // responses
    shard_rows = 1_000_000 - 1_000_000 % responses
    for shard, start in enumerate(range(0, prompts * responses, shard_rows)):
        n = min(shard_rows, prompts * responses - start)
        index = np.arange(start, start + n)
        prompt, variant = index // responses, index % responses
        duplicate = (rng.random(n) < 0.01) & (variant > 0)
        text_variant = np.where(duplicate, 0, variant)
        reward = np.round(rng.normal(0.0, 2.0, n), 2).astype(np.float32)
        reward[duplicate] = reward[duplicate] - 0.5  # the copy scores lower, as a real model might not
        # the text is a function of (prompt, text variant), so a duplicate repeats its original exactly
        offset, length = (prompt * 7919 + text_variant * 104729) % 2000, 20 + (prompt * 31 + text_variant * 17) % 380
        frame = pl.DataFrame({"p": prompt, "v": text_variant, "i": variant, "reward": reward,
                              "offset": offset, "length": length})  # fmt: skip
        frame.with_columns(
            pl.format("{}", pl.col("p")).str.zfill(16).alias("prompt_id"),
            pl.format("{}-{}", pl.col("p"), pl.col("i")).str.zfill(16).alias("response_id"),
            pl.concat_list(pl.struct(pl.lit("user").alias("role"),
                                     pl.format("Question {}: {}", pl.col("p"), pl.lit(BASE_TEXT).str.slice(
                                         pl.col("offset") // 3, 80)).alias("content"))).alias("prompt"),
            pl.format("Answer {} {}: {}", pl.col("p"), pl.col("v"),
                      pl.lit(BASE_TEXT).str.slice(pl.col("offset"), pl.col("length"))).alias("response"),
            (pl.col("length") // 4 + 8).alias("num_tokens"),
            pl.lit(False).alias("truncated"),
            pl.lit("bench-model").alias("model"),
            pl.format("gen{}", pl.col("i")).alias("generator"),
            pl.col("i").alias("response_index"),
        ).select("prompt_id", "response_id", "prompt", "response", "reward", "num_tokens", "truncated", "model",
                 "generator", "response_index").write_parquet(path / f"train-{shard:05d}.parquet")  # fmt: skip


def baseline(command: str, scores: Path, out: Path, margin: float) -> None:
    """The pandas implementation of `filter --top-k 1` / `build-dpo --strategy best-vs-worst --margin M`."""
    import pandas as pd

    df = pd.read_parquet(scores)
    df = df[df["reward"].notna()]
    df = df.sort_values(["prompt_id", "reward", "response_id"], ascending=[True, False, True], kind="stable")
    df = df.drop_duplicates(["prompt_id", "response"])
    out.mkdir(parents=True, exist_ok=True)
    if command == "filter":
        top = df.groupby("prompt_id", sort=False).head(1).copy()
        top["messages"] = [
            list(p) + [{"role": "assistant", "content": r}] for p, r in zip(top["prompt"], top["response"], strict=True)
        ]
        top.drop(columns=["prompt", "response"]).to_parquet(out / "train.parquet")
        return
    size = df.groupby("prompt_id", sort=False)["response_id"].transform("size")
    df = df[size >= 2]
    group = df.groupby("prompt_id", sort=False)
    cols = ["prompt_id", "prompt", "response", "response_id", "reward"]
    pairs = group.head(1)[cols].merge(group.tail(1)[cols[0:1] + cols[2:]], on="prompt_id", suffixes=("_c", "_r"))
    gap = pairs["reward_c"].astype("float64") - pairs["reward_r"].astype("float64")
    pairs = pairs[(gap > 0) & (gap >= margin)].copy()
    pairs["chosen"] = [[{"role": "assistant", "content": t}] for t in pairs["response_c"]]
    pairs["rejected"] = [[{"role": "assistant", "content": t}] for t in pairs["response_r"]]
    pairs = pairs.rename(columns={"response_id_c": "chosen_id", "response_id_r": "rejected_id"})
    pairs.drop(columns=["response_c", "response_r"]).to_parquet(out / "train.parquet")


def timed(argv: list[str]) -> dict[str, Any]:
    """Run ``argv``; wall seconds and the child's peak RSS (ru_maxrss, KiB on Linux)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{err[-2000:]}")
    return {"seconds": round(wall, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 2)}  # fmt: skip


def table_rows(scores: Path) -> int:
    import polars as pl

    files = sorted(scores.glob("*.parquet"))
    return pl.scan_parquet(files).select(pl.len()).collect().item() if files else 0


def kept_ids(directory: Path, columns: list[str]) -> set[tuple[str, ...]]:
    import polars as pl

    frame = pl.read_parquet(sorted(directory.rglob("*.parquet")), columns=columns)
    return set(frame.iter_rows())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="score rows (prompts = rows / responses)")
    parser.add_argument("--responses", type=int, default=5, help="responses per prompt")
    parser.add_argument("--margin", type=float, default=0.0, help="build-dpo --margin")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="keep the table and outputs here (a table already there with --rows rows is reused)",
    )
    parser.add_argument(
        "--skip-baseline", action="store_true", help="time rmdata only (the pandas baseline needs ~1.6 GB per 1M rows)"
    )
    parser.add_argument("--baseline", choices=["filter", "build-dpo"], help=argparse.SUPPRESS)
    parser.add_argument("--scores", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.baseline:  # the child process of one baseline run
        baseline(args.baseline, args.scores, args.out, args.margin)
        return
    work = Path(tempfile.mkdtemp(prefix="rmdata-curate-bench-")) if args.keep is None else args.keep
    try:
        scores = work / "scores"
        start = time.perf_counter()
        if table_rows(scores) != args.rows:
            shutil.rmtree(scores, ignore_errors=True)
            generate(scores, args.rows, args.responses, args.seed)
        result: dict[str, Any] = {"benchmark": "curate_scale", "rows": args.rows, "responses": args.responses,
                                  "generate_s": round(time.perf_counter() - start, 1),
                                  "load_avg_1m_before": round(os.getloadavg()[0], 2)}  # fmt: skip
        me = [sys.executable, "-m", "rmdata"]
        bench = [sys.executable, str(Path(__file__).resolve()), "--scores", str(scores), "--margin", str(args.margin)]
        runs = {
            "filter": (me + ["filter", str(scores), "--top-k", "1", "--output", str(work / "sft")],
                       bench + ["--baseline", "filter", "--out", str(work / "sft-pandas")],
                       ["prompt_id", "response_id"], ("sft", "sft-pandas")),
            "build_dpo": (me + ["build-dpo", str(scores), "--margin", str(args.margin), "--output", str(work / "dpo")],
                          bench + ["--baseline", "build-dpo", "--out", str(work / "dpo-pandas")],
                          ["prompt_id", "chosen_id", "rejected_id"], ("dpo", "dpo-pandas")),
        }  # fmt: skip
        for name, (ours, theirs, ids, (a, b)) in runs.items():
            for path in (work / a, work / b):
                shutil.rmtree(path, ignore_errors=True)
            rmdata_run = timed(ours)
            entry: dict[str, Any] = {"rmdata": rmdata_run, "rows_out": len(kept_ids(work / a, ids))}
            if not args.skip_baseline:
                pandas_run = timed(theirs)
                entry["pandas"] = pandas_run
                entry["same_kept_ids"] = kept_ids(work / a, ids) == kept_ids(work / b, ids)
                entry["speedup"] = round(pandas_run["seconds"] / rmdata_run["seconds"], 2)
                entry["memory_ratio"] = round(rmdata_run["peak_rss_mb"] / pandas_run["peak_rss_mb"], 3)
                # under load, wall time measures the neighbours too: CPU seconds compare the work itself
                entry["cpu_ratio"] = round(rmdata_run["cpu_s"] / max(pandas_run["cpu_s"], 1e-9), 3)
            entry["targets"] = {
                "seconds<30": rmdata_run["seconds"] < 30,
                "peak_rss<4GB": rmdata_run["peak_rss_mb"] < 4096,
            }
            result[name] = entry
        result["load_avg_1m_after"] = round(os.getloadavg()[0], 2)
        if not args.skip_baseline:
            result["all_same_kept_ids"] = all(result[n]["same_kept_ids"] for n in runs)
        print(json.dumps(result))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
