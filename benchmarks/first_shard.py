"""Time to the first committed shard of ``rmdata score`` on a multi-million-row input, and the scan behind it.

    python benchmarks/first_shard.py                                   # 1M synthetic AlpacaEval-like rows
    python benchmarks/first_shard.py --data /work/shared/data/alpaca_eval --rows 3000000   # ~4.5 GB

Writes a JSON lines file of ``--rows`` AlpacaEval-style records (as ``benchmarks/stream_memory.py`` does,
every instruction distinct) into ``--tmp`` (deleted afterwards) and measures, each in its own process:

- ``json_loads`` (the baseline): ``json.loads`` of every line, nothing else: what any reader built on the
  standard library pays before it validates anything;
- ``scan``: ``rmdata.data.stream.scan`` (pass 1: read, detect, validate every record), its records/s
  (wall and CPU) and peak RSS;
- ``score``: ``python -m rmdata score FILE`` (default ``--on-error fail``: every record is validated before
  anything is scored) with a from-config tiny Llama reward model (hidden 32, 2 layers, the tiny byte-level
  ChatML tokenizer, context ``--max-length``): seconds from its start to the first shard file under
  ``data/`` and the process's peak RSS then; it is stopped there. ``--threads 1`` sets ``OMP_NUM_THREADS``
  for it: on a machine other jobs keep busy, torch's default two threads made the tiny model's forward
  passes ~13x slower here (a thread waiting on a descheduled one), hiding the data layer's time.
- ``score_small``: the same on the input's first tenth, so that memory bounded means the two peaks are close.

Prints one JSON line: every figure, the ratios, the load average, and whether the targets hold (first
shard within 60 s; the score process's peak grows at most 1.25x for 10x the rows).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.stream_memory import alpaca_records, write_file  # noqa: E402

MEASURE = r"""
import json, resource, sys, time
kind, path = sys.argv[1], sys.argv[2]
wall, cpu = time.perf_counter(), time.process_time()
if kind == "json_loads":
    loads = json.loads
    records = 0
    with open(path, "rb") as lines:
        for line in lines:
            loads(line)
            records += 1
else:
    from rmdata.data.stream import scan
    records = scan([path]).records
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
workers = resource.getrusage(resource.RUSAGE_CHILDREN)  # scan's worker processes, ended by now
total = cpu + workers.ru_utime + workers.ru_stime
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent (here a process that imported torch)
peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) / 1024
print(json.dumps({"records": records, "wall_s": round(wall, 2), "cpu_s": round(total, 2),
                  "worker_cpu_s": round(total - cpu, 2), "records_per_s": round(records / wall),
                  "records_per_cpu_s": round(records / total), "peak_rss_mb": round(peak, 1),
                  "worker_peak_rss_mb": round(workers.ru_maxrss / 1024, 1)}))
"""


def measure(kind: str, path: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", MEASURE, kind, str(path)], capture_output=True, text=True, env=_env())
    if done.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def build_model(out: Path, max_length: int) -> Path:
    """A random tiny Llama reward model (num_labels=1) with the tiny ChatML tokenizer, saved as safetensors."""
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from rmdata.model.tiny import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_length,
        pad_token_id=tokenizer.pad_token_id, num_labels=1,
    )  # fmt: skip
    LlamaForSequenceClassification(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def first_shard(path: Path, model: Path, out: Path, timeout: float, threads: int | None = None) -> dict[str, Any]:
    """Start ``rmdata score``; poll ``out/data`` for a committed shard; stop the run there."""
    command = [sys.executable, "-m", "rmdata", "score", str(path), "--model", str(model), "--output", str(out)]
    env = _env() if threads is None else {**_env(), "OMP_NUM_THREADS": str(threads)}
    began = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    seconds = peak = None
    try:
        while proc.poll() is None and time.perf_counter() - began < timeout:
            peak = _peak_rss_mb(proc.pid) or peak
            if any(not p.name.startswith(".") for p in (out / "data").glob("*.parquet")):
                seconds = time.perf_counter() - began
                break
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate()
    if seconds is None:
        tail = (err or "").strip().splitlines()[-3:]
        raise SystemExit(f"no shard within {timeout:.0f} s (exit {proc.returncode}): {' | '.join(tail)}")
    return {"first_shard_s": round(seconds, 1), "peak_rss_mb": peak}


def _count_lines(path: Path) -> int:
    with path.open("rb") as lines:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: lines.read(1 << 24), b""))


def _head_lines(path: Path, out: Path, count: int) -> None:
    with path.open("rb") as lines, out.open("wb") as head:
        for _, line in zip(range(count), lines, strict=False):
            head.write(line)


def _peak_rss_mb(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="records in the generated input")
    parser.add_argument("--data", type=Path, default=None, help="a directory of AlpacaEval output .json files")
    parser.add_argument("--max-length", type=int, default=256, help="the tiny model's context (rows are cut to it)")
    parser.add_argument("--input", type=Path, default=None, help="an existing JSON lines file instead (kept)")
    parser.add_argument("--tmp", type=Path, default=None, help="where the input goes (default: the system's)")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up on the first shard after this")
    parser.add_argument(
        "--threads", type=int, default=None, help="OMP_NUM_THREADS for rmdata score (default: torch's own choice)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rmdata-first-shard-", dir=args.tmp) as tmp:
        path = args.input or Path(tmp) / "input.jsonl"
        if args.input is None:
            write_file(path, alpaca_records(args.data, args.seed), args.rows)
        model = build_model(Path(tmp) / "model", args.max_length)
        result: dict[str, Any] = {
            "benchmark": "first_shard",
            "data": str(args.data) if args.data else "synthetic AlpacaEval-like records",
            "input": str(args.input) if args.input else "generated",
            "rows": args.rows if args.input is None else None,
            "file_mb": round(path.stat().st_size / 2**20, 1),
            "load_avg_1m_start": round(os.getloadavg()[0], 2),
        }
        result["json_loads"] = measure("json_loads", path)
        result["scan"] = measure("scan", path)
        small = Path(tmp) / "small.jsonl"
        _head_lines(path, small, _count_lines(path) // 10)
        result["score_small"] = first_shard(small, model, Path(tmp) / "scores-small", args.timeout, args.threads)
        result["score"] = first_shard(path, model, Path(tmp) / "scores", args.timeout, args.threads)
        result["omp_num_threads"] = args.threads
        result["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    result["scan_vs_json_loads_cpu"] = round(
        result["scan"]["records_per_cpu_s"] / result["json_loads"]["records_per_cpu_s"], 2
    )
    result["score_peak_growth_10x_rows"] = round(
        (result["score"]["peak_rss_mb"] or 0) / (result["score_small"]["peak_rss_mb"] or 1), 3
    )
    result["targets"] = {
        "first_shard<=60s": result["score"]["first_shard_s"] <= 60,
        "score_peak_growth<=1.25_for_10x_rows": result["score_peak_growth_10x_rows"] <= 1.25,
    }
    result["targets_met"] = all(result["targets"].values())
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
