"""Scale-out on CPU with gloo: data parallel wall time, and the longest row sequence parallel trains under a cap.

    python benchmarks/parallel_cpu.py              # both parts, two JSON lines (~3 min on 2 free cores)
    python benchmarks/parallel_cpu.py --part dp    # DP=2 vs one process
    python benchmarks/parallel_cpu.py --part sp    # activation memory per rank vs row length, SP=1 vs SP=2

``dp``: the same optimizer steps (``--steps`` x ``--rows-per-step`` packed rows of pairs, the same model,
loss, clipping and AdamW) in one process and in two gloo ranks, each process with one torch thread pinned to
one core (``os.sched_setaffinity``). The two ranks split every step's rows (``rmdata.train.parallel``),
all-reduce the pair count and the gradients; wall time covers the timed steps only (after one warmup step;
process start and model build excluded). The ranks' final weights are checked against the single process.

``sp``: one packed row of ``--segment``-token sequences, forward + backward, at growing lengths. Memory per
rank is measured two ways: the bytes autograd saves for backward (``saved_tensors_hooks``, parameters
excluded, each storage counted once: exact and independent of other processes) and the growth of peak RSS
(``ru_maxrss``, lengths in increasing order in one process). The longest length whose saved activations
fit under ``--cap-mib`` is reported for SP=1 and SP=2.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: import this checkout's rmdata
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from rmdata.config import LossConfig, ModelConfig, TinyModelConfig
from rmdata.model.reward_model import build_reward_model
from rmdata.model.tiny import REWARD_TOKEN, build_tiny_tokenizer
from rmdata.tokens.batching import pack_sequences
from rmdata.tokens.packing import PackRow
from rmdata.tokens.reward_token import resolve_reward_token
from rmdata.train.losses import reward_loss

SPEC = LossConfig(kind="focal", penalty="log_barrier")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=("dp", "sp", "all"), default="all")
    p.add_argument("--hidden-size", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--steps", type=int, default=6, help="dp: timed optimizer steps")
    p.add_argument("--rows-per-step", type=int, default=4, help="dp: packed rows per step (split over the ranks)")
    p.add_argument("--row-tokens", type=int, default=1024, help="dp: tokens per packed row")
    p.add_argument("--lengths", default="2048,4096,6144,8192,12288", help="sp: row lengths, increasing")
    p.add_argument("--segment", type=int, default=1024, help="sp: tokens per sequence in the long row")
    p.add_argument("--cap-mib", type=float, default=128.0, help="sp: activation memory cap per rank")
    return p.parse_args(argv)


def build(args: argparse.Namespace) -> Any:
    torch.manual_seed(0)
    tokenizer = build_tiny_tokenizer()
    sizes = TinyModelConfig(
        hidden_size=args.hidden_size,
        num_layers=args.layers,
        num_heads=4,
        num_kv_heads=2,
        intermediate_size=args.hidden_size * 11 // 4,
        max_position_embeddings=65536,
    )
    cfg = ModelConfig(name_or_path="tiny", tiny=sizes, reward_token=REWARD_TOKEN, attention="sdpa_varlen")
    built = build_reward_model(cfg, tokenizer, resolve_reward_token(tokenizer, REWARD_TOKEN, None))
    with torch.no_grad():
        built.model.value_head.weight.normal_(0, 0.1)
    return built


def step_rows(args: argparse.Namespace, reward_id: int) -> list[list[list[list[int]]]]:
    """steps + 1 (warmup) steps of rows; a row is pairs of sequences filling ``--row-tokens``."""
    g = torch.Generator().manual_seed(1)
    steps = []
    for _ in range(args.steps + 1):
        rows = []
        for _ in range(args.rows_per_step):
            seqs, left = [], args.row_tokens
            while left >= 64:
                n = min(left // 2, int(torch.randint(32, 256, (1,), generator=g)))
                seqs += [torch.randint(0, 256, (n - 1,), generator=g).tolist() + [reward_id] for _ in range(2)]
                left -= 2 * n
            rows.append(seqs)
        steps.append(rows)
    return steps


def train_steps(args: argparse.Namespace, par: Any) -> dict[str, Any]:
    built = build(args)
    model = built.model
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    steps = step_rows(args, built.reward_token.id)
    pairs_done, began = 0, 0.0
    for index, rows in enumerate(steps):
        if index == 1:
            began = time.perf_counter()
        packs = [PackRow(tuple(range(len(r) // 2)), tuple(len(s) for s in r)) for r in rows]
        by_id = {id(p): r for p, r in zip(packs, rows, strict=True)}
        micro = par.micro_steps(packs) if par else [(p, 1.0) for p in packs]
        pairs = par.total_pairs(micro) if par else sum(len(p.units) for p in packs)
        for pack, _ in micro:
            scores = model(pack_sequences(by_id[id(pack)]))
            reward_loss(scores[0::2], scores[1::2], num_pairs=pairs, spec=SPEC).backward()
        if par:
            par.sync_grads(params)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if index >= 1:
            pairs_done += pairs
    seconds = time.perf_counter() - began
    checksum = float(sum(p.detach().double().sum() for p in params))
    return {"seconds": seconds, "pairs": pairs_done, "checksum": checksum}


def pin(core: int) -> None:
    torch.set_num_threads(1)
    if hasattr(os, "sched_setaffinity") and core < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {core})


def _dp_rank(rank: int, args: argparse.Namespace, init: str, out: str) -> None:
    from rmdata.distributed import World
    from rmdata.train.parallel import Parallel

    pin(rank)
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=2)
    result = train_steps(args, Parallel(World(rank, 2), fsdp=False, device=torch.device("cpu")))
    if rank == 0:
        Path(out).write_text(json.dumps(result))
    dist.destroy_process_group()


def _single(args: argparse.Namespace, out: str) -> None:
    pin(0)
    Path(out).write_text(json.dumps(train_steps(args, None)))


def run_dp(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        ctx = mp.get_context("spawn")
        proc = ctx.Process(target=_single, args=(args, f"{tmp}/single.json"))
        proc.start()
        proc.join()
        single = json.loads(Path(f"{tmp}/single.json").read_text())
        mp.spawn(_dp_rank, args=(args, f"{tmp}/init", f"{tmp}/dp.json"), nprocs=2, join=True)
        dp = json.loads(Path(f"{tmp}/dp.json").read_text())
    return {
        "benchmark": "parallel_cpu.dp",
        "pairs": single["pairs"],
        "steps": args.steps,
        "rows_per_step": args.rows_per_step,
        "single_process_s": round(single["seconds"], 2),
        "dp2_s": round(dp["seconds"], 2),
        "speedup": round(single["seconds"] / dp["seconds"], 3),
        "weights_match": abs(single["checksum"] - dp["checksum"]) <= 1e-4 * max(1.0, abs(single["checksum"])),
        "threads_per_process": 1,
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def activation_bytes(fn: Any, exclude: set[int]) -> tuple[int, Any]:
    """Run ``fn()`` and sum the storages autograd saves for backward (each once, ``exclude`` skipped)."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in exclude:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return sum(seen.values()), out


def memory_ladder(args: argparse.Namespace, size: int, rank: int) -> list[dict[str, float]]:
    built = build(args)
    model = built.model
    if size > 1:
        from rmdata.model.sequence_parallel import enable_sequence_parallel

        enable_sequence_parallel(model, size, rank, dist.group.WORLD)
    exclude = {p.untyped_storage().data_ptr() for p in model.parameters()}
    g = torch.Generator().manual_seed(2)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rows = []
    for length in (int(x) for x in args.lengths.split(",")):
        n = length // args.segment
        seqs = [torch.randint(0, 256, (args.segment - 1,), generator=g).tolist() + [built.reward_token.id]] * n
        batch = pack_sequences(seqs)
        began = time.perf_counter()
        saved, scores = activation_bytes(lambda b=batch: model(b), exclude)
        reward_loss(scores[0::2], scores[1::2], num_pairs=n // 2, spec=SPEC).backward()
        model.zero_grad(set_to_none=True)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rows.append(
            {
                "tokens": length,
                "activations_mib": round(saved / 2**20, 1),
                "peak_rss_growth_mib": round((rss - rss_before) / 1024, 1),
                "seconds": round(time.perf_counter() - began, 2),
            }
        )
    return rows


def _sp_rank(rank: int, args: argparse.Namespace, init: str, out: str) -> None:
    pin(rank)
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=2)
    rows = memory_ladder(args, 2, rank)
    Path(f"{out}.{rank}").write_text(json.dumps(rows))
    dist.destroy_process_group()


def _sp_single(args: argparse.Namespace, out: str) -> None:
    pin(0)
    Path(out).write_text(json.dumps(memory_ladder(args, 1, 0)))


def run_sp(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        proc = mp.get_context("spawn").Process(target=_sp_single, args=(args, f"{tmp}/sp1.json"))
        proc.start()
        proc.join()
        sp1 = json.loads(Path(f"{tmp}/sp1.json").read_text())
        mp.spawn(_sp_rank, args=(args, f"{tmp}/init", f"{tmp}/sp2.json"), nprocs=2, join=True)
        ranks = [json.loads(Path(f"{tmp}/sp2.json.{r}").read_text()) for r in (0, 1)]
    sp2 = [max(pair, key=lambda r: r["activations_mib"]) for pair in zip(*ranks, strict=True)]  # the fuller rank

    def longest(rows: list[dict[str, float]]) -> int:
        fits = [r["tokens"] for r in rows if r["activations_mib"] <= args.cap_mib]
        return int(max(fits)) if fits else 0

    return {
        "benchmark": "parallel_cpu.sp",
        "cap_mib_per_rank": args.cap_mib,
        "segment_tokens": args.segment,
        "longest_row_sp1": longest(sp1),
        "longest_row_sp2": longest(sp2),
        "ratio": round(longest(sp2) / max(1, longest(sp1)), 2),
        "sp1": sp1,
        "sp2_per_rank": sp2,
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.part in ("dp", "all"):
        print(json.dumps(run_dp(args)), flush=True)
    if args.part in ("sp", "all"):
        print(json.dumps(run_sp(args)), flush=True)


if __name__ == "__main__":
    main()
