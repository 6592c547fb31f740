"""Memory and time of the streaming data layer against the in-memory loader, on one generated file.

    python benchmarks/stream_memory.py                      # 500k AlpacaEval-style rows, synthetic text
    python benchmarks/stream_memory.py --data /work/shared/data/alpaca_eval --rows 500000

Writes a JSON lines file of ``--rows`` records (``instruction``, ``output``, ``generator``, ``dataset``; from
the AlpacaEval output files in ``--data``, cycled, else synthetic text of AlpacaEval-like lengths) into a
temporary directory, deleted afterwards. Each measurement runs in its own Python process (peak RSS is that
process's ``ru_maxrss``):

- ``inspect``: ``rmdata.data.inspect.inspect_paths`` (one streaming pass);
- ``in_memory``: the baseline, what inspect did before: ``load_dataset_records`` (every row in one frame)
  and the same length summary over it;
- ``stream_small`` / ``stream_large``: ``scan`` then a full ``stream`` pass over ``--rows // 5`` and
  ``--rows`` rows: flat memory means the two peaks are close.

Prints one JSON line with every figure, the ratios and whether the targets hold.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]

MEASURE = r"""
import json, resource, sys, time
kind, path = sys.argv[1], sys.argv[2]
began = time.perf_counter()
if kind == "inspect":
    from rmdata.data.inspect import inspect_paths
    report = inspect_paths([path])
    rows = report.rows
elif kind == "in_memory":
    import polars as pl
    from rmdata.data.load import load_dataset_records
    loaded = load_dataset_records([path], on_error="skip")
    frame = loaded.frame
    prompt = pl.col("prompt").list.eval(pl.element().struct.field("content")).list.join("\n")
    exprs = []
    for name, text in (("prompt", prompt), ("response", pl.col("response"))):
        for measure in (text.str.len_chars(), text.str.count_matches(r"\S+")):
            m = measure.cast(pl.Float64)
            exprs += [m.min(), m.median(), m.quantile(0.95, "linear"), m.max()]
    frame.select([e.alias(str(i)) for i, e in enumerate(exprs)])
    rows = frame.height
else:
    from rmdata.data.stream import scan, stream
    report = scan([path], on_error="skip")
    rows = sum(batch.height for batch in stream(report))
wall = time.perf_counter() - began
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"rows": rows, "wall_s": round(wall, 2), "peak_rss_mb": round(peak, 1)}))
"""


def alpaca_records(data: Path | None, seed: int) -> list[dict[str, Any]]:
    """The records to cycle through: real AlpacaEval outputs, or synthetic ones of similar lengths."""
    if data is not None:
        records: list[dict[str, Any]] = []
        for path in sorted(data.glob("*.json")):
            records += json.loads(path.read_text(encoding="utf-8"))
        return records
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(5000)]
    out = []
    for i in range(4000):
        n_in, n_out = int(rng.lognormal(3.0, 0.9)) + 3, int(rng.lognormal(5.2, 0.7)) + 5  # ~1.5 KB per record
        out.append({
            "dataset": "helpful_base", "generator": f"model-{i % 8}",
            "instruction": " ".join(rng.choice(words, n_in)), "output": " ".join(rng.choice(words, n_out)),
        })  # fmt: skip
    return out


def write_file(path: Path, records: list[dict[str, Any]], rows: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        for i in range(rows):
            r = records[i % len(records)]
            row = {k: r[k] for k in ("dataset", "instruction", "output", "generator") if k in r}
            row["instruction"] = f"{row['instruction']} (#{i})"  # distinct rows, as in a real scoring input
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


def measure(kind: str, path: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "POLARS_MAX_THREADS": os.environ.get("POLARS_MAX_THREADS", "2")}
    done = subprocess.run([sys.executable, "-c", MEASURE, kind, str(path)], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=500_000, help="rows of the large file (the small one: 1/5)")
    parser.add_argument("--data", type=Path, default=None, help="a directory of AlpacaEval output .json files")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    records = alpaca_records(args.data, args.seed)
    with tempfile.TemporaryDirectory(prefix="rmdata-stream-") as tmp:
        large, small = Path(tmp) / "large.jsonl", Path(tmp) / "small.jsonl"
        write_file(large, records, args.rows)
        write_file(small, records, args.rows // 5)
        result: dict[str, Any] = {
            "benchmark": "stream_memory",
            "data": str(args.data) if args.data else "synthetic AlpacaEval-like records",
            "rows": args.rows,
            "file_mb": round(large.stat().st_size / 2**20, 1),
            "small_rows": args.rows // 5,
            "small_file_mb": round(small.stat().st_size / 2**20, 1),
            "load_avg_1m": round(os.getloadavg()[0], 2),
        }
        began = time.perf_counter()
        for kind, path in (("inspect", large), ("in_memory", large), ("stream_small", small), ("stream_large", large)):
            result[kind] = measure(kind, path)
        result["measure_s"] = round(time.perf_counter() - began, 1)
    result["inspect_peak_ratio"] = round(result["inspect"]["peak_rss_mb"] / result["in_memory"]["peak_rss_mb"], 3)
    result["inspect_time_ratio"] = round(result["inspect"]["wall_s"] / result["in_memory"]["wall_s"], 3)
    result["stream_peak_growth"] = round(
        result["stream_large"]["peak_rss_mb"] / result["stream_small"]["peak_rss_mb"], 3
    )
    result["targets"] = {
        "inspect_peak<=0.5x_in_memory": result["inspect_peak_ratio"] <= 0.5,
        "stream_peak_growth<=1.25_for_5x_rows": result["stream_peak_growth"] <= 1.25,
    }
    result["targets_met"] = all(result["targets"].values())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
