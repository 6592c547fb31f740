"""Every GPU check of the scale-out work in one run (< 8 minutes on one recent GPU), torch + transformers only.

    python benchmarks/gpu_checks.py                 # all parts; one JSON line per part, then a summary
    python benchmarks/gpu_checks.py --parts mfu     # only the throughput / MFU part

Parts (``--parts``, comma-separated):

- ``tests``: ``pytest tests/gpu`` (torch_varlen and flash_varlen parity with per-sequence SDPA, train and
  score, bf16). Needs pytest; a machine without it gets it from ``--wheels DIR`` (``pip download pytest -d
  DIR`` beforehand) or the part is reported as skipped, never faked.
- ``mfu``: bf16 training throughput of a ~0.5B-parameter Llama-style reward model built from config
  (``--hidden-size``, ``--layers``) on packed rows of ``--row-tokens`` tokens, per attention backend that can
  run here (torch_varlen, sdpa_varlen, flash_varlen when installed): tokens/s, ``torch.cuda.max_memory_
  allocated``, and MFU = achieved FLOP/s / the bf16 matmul ceiling measured in the same run (a large
  ``torch.matmul`` loop, not the datasheet). FLOPs per token = 6 x (non-embedding parameters) + 12 x layers x
  hidden x (mean causal context); the embedding lookup costs no matmul.
- ``packing``: ``benchmarks/train_packing.py`` (packed rows vs TRL-style padded batches) on CUDA, bf16 autocast.
- ``sp``: ``torchrun -m rmdata train`` with ``parallel.sequence_parallel=2`` on 2 GPUs (NCCL) when the machine
  has 2, else on its CPU with gloo (reported as such), against the single-process run's losses.

Nothing here downloads anything: the models are built from config, the data is rmdata's bundled set.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", default="tests,mfu,packing,sp")
    p.add_argument("--wheels", help="directory of wheels to install pytest from when it is missing")
    p.add_argument("--hidden-size", type=int, default=1536)
    p.add_argument("--layers", type=int, default=16)
    p.add_argument("--row-tokens", type=int, default=16384, help="mfu: tokens per packed row")
    p.add_argument("--segment", type=int, default=2048, help="mfu: tokens per sequence in a row")
    p.add_argument("--steps", type=int, default=6, help="mfu: timed steps per backend (after 2 warmup steps)")
    return p.parse_args(argv)


def emit(record: dict[str, Any]) -> dict[str, Any]:
    print(json.dumps(record), flush=True)
    return record


def run(cmd: list[str], timeout: int) -> tuple[int, str, float]:
    began = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)
    return done.returncode, (done.stdout + done.stderr)[-4000:], time.perf_counter() - began


def part_tests(args: argparse.Namespace) -> dict[str, Any]:
    try:
        import pytest  # noqa: F401
    except ImportError:
        if not args.wheels:
            return {"part": "tests", "skipped": "pytest is not installed; pass --wheels DIR holding its wheel"}
        run([sys.executable, "-m", "pip", "install", "--no-index", "--find-links", args.wheels, "pytest"], 120)
    code, tail, seconds = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/gpu"], 300)
    summary = [line for line in tail.splitlines() if " passed" in line or " failed" in line or " skipped" in line]
    return {"part": "tests", "exit": code, "summary": summary[-1:] or tail[-600:], "seconds": round(seconds, 1)}


def matmul_ceiling(n: int = 8192, repeats: int = 20) -> float:
    """bf16 FLOP/s of a square matmul loop on this GPU: the denominator of MFU."""
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    began = time.perf_counter()
    for _ in range(repeats):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * repeats / (time.perf_counter() - began)


def part_mfu(args: argparse.Namespace) -> dict[str, Any]:
    from rmdata.config import LossConfig, ModelConfig, TinyModelConfig
    from rmdata.model.attention import choose_attention
    from rmdata.model.reward_model import build_reward_model
    from rmdata.model.tiny import REWARD_TOKEN, build_tiny_tokenizer
    from rmdata.tokens.batching import pack_sequences
    from rmdata.tokens.reward_token import resolve_reward_token
    from rmdata.train.losses import reward_loss

    ceiling = matmul_ceiling()
    tokenizer = build_tiny_tokenizer()
    reward = resolve_reward_token(tokenizer, REWARD_TOKEN, None)
    heads = args.hidden_size // 128
    sizes = TinyModelConfig(
        hidden_size=args.hidden_size,
        num_layers=args.layers,
        num_heads=heads,
        num_kv_heads=max(1, heads // 4),
        intermediate_size=args.hidden_size * 8 // 3 // 128 * 128,
        max_position_embeddings=max(args.segment, 4096),
    )
    g = torch.Generator().manual_seed(0)
    n = args.row_tokens // args.segment
    seqs = [torch.randint(0, 256, (args.segment - 1,), generator=g).tolist() + [reward.id] for _ in range(n)]
    batch = pack_sequences(seqs).to("cuda")
    backends = ["torch_varlen", "sdpa_varlen"]
    if choose_attention("auto", "cuda", torch.bfloat16).name == "flash_varlen":
        backends.append("flash_varlen")
    results: dict[str, Any] = {}
    non_embedding = 0
    for name in backends:
        torch.manual_seed(0)
        cfg = ModelConfig(name_or_path="tiny", tiny=sizes, reward_token=REWARD_TOKEN, attention=name)
        try:
            built = build_reward_model(cfg, tokenizer, reward, device="cuda")
        except Exception as err:  # a backend this machine cannot run is reported, not hidden
            results[name] = {"error": f"{type(err).__name__}: {err}"}
            continue
        model = built.model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        non_embedding = sum(p.numel() for n_, p in model.named_parameters() if "embed_tokens" not in n_)
        optimizer = torch.optim.AdamW(params, lr=1e-5, fused=True)
        torch.cuda.reset_peak_memory_stats()
        for step in range(args.steps + 2):
            if step == 2:
                torch.cuda.synchronize()
                began = time.perf_counter()
            with torch.autocast("cuda", dtype=torch.bfloat16):
                scores = model(batch)
            reward_loss(scores[0::2], scores[1::2], num_pairs=n // 2, spec=LossConfig()).backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        seconds = (time.perf_counter() - began) / args.steps
        tokens_per_s = args.row_tokens / seconds
        flops_per_token = 6 * non_embedding + 12 * args.layers * args.hidden_size * (args.segment / 2)
        results[name] = {
            "tokens_per_s": round(tokens_per_s),
            "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
            "mfu": round(tokens_per_s * flops_per_token / ceiling, 4),
        }
        del model, built, optimizer, params
        torch.cuda.empty_cache()
    return {
        "part": "mfu",
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "bf16_matmul_ceiling_tflops": round(ceiling / 1e12, 1),
        "model": {
            "hidden": args.hidden_size,
            "layers": args.layers,
            "heads": heads,
            "non_embedding_params": non_embedding,
        },
        "row_tokens": args.row_tokens,
        "segment_tokens": args.segment,
        "backends": results,
    }


def part_packing(args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, "benchmarks/train_packing.py", "--device", "cuda", "--pairs", "256", "--hidden-size", "1024"]
    cmd += ["--layers", "8", "--heads", "8", "--kv-heads", "2", "--intermediate-size", "2816", "--rows-per-step", "2"]
    code, tail, seconds = run(cmd, 300)
    lines = [line for line in tail.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else tail[-600:]
    return {"part": "packing", "exit": code, "result": result, "seconds": round(seconds, 1)}


def part_sp(args: argparse.Namespace) -> dict[str, Any]:
    gpus = torch.cuda.device_count()
    device = "cuda" if gpus >= 2 else "cpu"
    common = ["-m", "rmdata", "train", "--overwrite", "--set", "train.max_steps=6", "--set", "train.log_steps=1"]
    common += ["--set", f"train.device={device}", "--set", "train.eval_steps=0", "--set", "data.eval_fraction=0"]
    out = Path("/tmp/rmdata-gpu-checks")
    single = run([sys.executable, *common, "-o", str(out / "single")], 300)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    sp = run([*torchrun, *common, "-o", str(out / "sp2"), "--set", "parallel.sequence_parallel=2"], 300)

    def losses(run_dir: Path) -> list[float]:
        lines = (run_dir / "metrics.jsonl").read_text().splitlines() if (run_dir / "metrics.jsonl").exists() else []
        return [json.loads(line)["loss"] for line in lines if json.loads(line)["split"] == "train"]

    a, b = losses(out / "single"), losses(out / "sp2")
    return {
        "part": "sp",
        "device": device if gpus >= 2 else "cpu (gloo): this machine has fewer than 2 GPUs",
        "exit": [single[0], sp[0]],
        "max_loss_difference": max((abs(x - y) for x, y in zip(a, b, strict=False)), default=None),
        "steps_compared": min(len(a), len(b)),
        "tail": sp[1][-400:] if sp[0] else "",
    }


PARTS = {"tests": part_tests, "mfu": part_mfu, "packing": part_packing, "sp": part_sp}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit("gpu_checks: no CUDA device here; run it on a GPU machine")
    began = time.perf_counter()
    for name in args.parts.split(","):
        try:
            emit(PARTS[name](args))
        except Exception as err:  # one failing part must not hide the others' figures
            emit({"part": name, "error": f"{type(err).__name__}: {err}"})
    emit({"part": "summary", "seconds": round(time.perf_counter() - began, 1)})


if __name__ == "__main__":
    main()
