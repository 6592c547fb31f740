"""Serving under load: ``rmdata serve`` vs an OpenRLHF-style server, same model, same requests, one run.

    nice python benchmarks/serve_load.py                       # clients 1, 8, 64; ~3 min on 2 cores
    python benchmarks/serve_load.py --clients 1,4 --hidden-size 64 --requests 8   # a toy run

One from-config Llama reward model (``--hidden-size`` ... flags) and the tiny byte-level ChatML tokenizer (one
token per byte, so a text's length in characters is its length in tokens) are saved once. Requests hold 1 to
``--max-rows`` conversations each, prompt and reply lengths drawn from the log-normal fits to real preference
data in ``benchmarks/_lengths.py`` (long tail), cut to ``--max-length`` tokens; every request is a
``POST /get_reward`` with OpenRLHF's body (``query``: the rendered conversations).

Servers, each a real uvicorn in its own process (``--threads`` torch threads) on a free loopback port, run one
after the other while this process plays the clients:
- ``openrlhf_baseline``: what OpenRLHF's ``serve_rm`` does: an ``async`` handler that tokenizes the request's
  queries into one right-padded batch and runs transformers' ``AutoModelForSequenceClassification`` on it in the
  event loop, so requests are scored one at a time;
- ``rmdata``: ``rmdata serve --device cpu``: continuous batching across requests, packed rows.

Load: for each of ``--clients`` C, C closed-loop clients (each sends its next request when its answer arrives)
share ``max(--requests, 2 C)`` requests. Figures per server and C: rows/s and real tokens/s (wall clock), p50/p99
latency, the fraction of the matmul ceiling (model FLOPs per wall second over the best fp32 matmul timed here,
``benchmarks.score_throughput``) and the server process's RSS after the level. ``direct``: the same requests
scored one by one in this process with no HTTP (``Scorer.encode_texts`` + ``Scorer.score``), per level: the floor
for latency at C = 1 (``p99_vs_direct_at_1`` compares the same requests).
``exact``: every reward rmdata served, at every C, equals the direct call's bit for bit; ``max_abs_diff_baseline``
compares the baseline's rewards with rmdata's. One torch thread (``--threads``) unless told otherwise.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: import this checkout's rmdata and benchmarks
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from benchmarks._lengths import ALPACA_EVAL_PREFS
from benchmarks.score_throughput import matmul_ceiling, model_flops


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clients", default="1,8,64", help="comma-separated concurrency levels")
    p.add_argument("--requests", type=int, default=24, help="requests per level (at least 2 per client)")
    p.add_argument("--max-rows", type=int, default=16, help="rows per request: uniform in 1..max-rows")
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--batch-tokens", type=int, help="rmdata's tokens per forward (default: rmdata's for the device)")
    p.add_argument("--max-wait-ms", type=float, default=2.0)
    p.add_argument("--hidden-size", type=int, default=256)
    p.add_argument("--intermediate-size", type=int, default=768)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--baseline-server", metavar="MODEL_DIR", help=argparse.SUPPRESS)  # the baseline's own process
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def build_model(args: argparse.Namespace, out: Path) -> Path:
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from rmdata.model.tiny import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    torch.manual_seed(args.seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=args.hidden_size,
        intermediate_size=args.intermediate_size,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        max_position_embeddings=max(args.max_length, 2048),
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,  # transformers pools at the last non-pad token
        tie_word_embeddings=False,
    )
    model = LlamaForSequenceClassification(config)
    with torch.no_grad():
        model.score.weight.normal_(0, 1.0)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def make_requests(tokenizer: Any, args: argparse.Namespace, n: int, rng: np.random.Generator) -> list[list[str]]:
    """``n`` requests of 1..max_rows rendered conversations, long-tail lengths, each at most max_length tokens."""
    from rmdata.tokens.templates import render_conversation

    letters = np.array(list("abcdefghijklmnopqrstuvwxyz      "))

    def text(length: int) -> str:
        return "".join(rng.choice(letters, max(1, length)).tolist()).strip() or "x"

    requests = []
    for _ in range(n):
        rows = []
        for _ in range(int(rng.integers(1, args.max_rows + 1))):
            prompt_len = int(ALPACA_EVAL_PREFS["prompt"].sample(rng, 1)[0])
            reply_len = int(ALPACA_EVAL_PREFS["chosen"].sample(rng, 1)[0])
            budget = args.max_length - 40  # the template's tokens around them
            prompt_len = min(prompt_len, budget // 2)
            reply_len = min(reply_len, budget - prompt_len)
            messages = [
                {"role": "user", "content": text(prompt_len)},
                {"role": "assistant", "content": text(reply_len)},
            ]
            rows.append(render_conversation(tokenizer, messages))
        requests.append(rows)
    return requests


def baseline_app(model_dir: Path, max_length: int) -> Any:
    """OpenRLHF's serve_rm, reduced to its scoring path: one padded batch per request, in the event loop."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)

    async def get_reward(request: Request) -> JSONResponse:
        queries = (await request.json())["query"]
        batch = tokenizer(
            queries, return_tensors="pt", add_special_tokens=False, max_length=max_length, padding=True, truncation=True
        )
        with torch.no_grad():
            rewards = model(**batch).logits[:, 0].tolist()
        return JSONResponse({"rewards": rewards, "scores": rewards, "extra_logs": {"dummy_scores": rewards}})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ready"})

    return Starlette(routes=[Route("/get_reward", get_reward, methods=["POST"]), Route("/health", health)])


@contextmanager
def running(command: list[str], port: int, threads: int) -> Iterator[tuple[str, int]]:
    """A server process on ``port`` (one torch thread unless told); yields its URL and pid once /health is 200."""
    import subprocess

    import httpx

    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        if proc.poll() is not None:
            raise RuntimeError(f"{command[:4]} exited: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(60)


def free_port_number() -> int:
    from rmdata.serve.server import free_port

    sock = free_port()
    port = int(sock.getsockname()[1])
    sock.close()
    return port


def serve_baseline(model_dir: str, port: int, max_length: int) -> None:
    """``--baseline-server``: run the baseline app in this process until SIGTERM."""
    import uvicorn

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    app = baseline_app(Path(model_dir), max_length)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


async def closed_loop(
    url: str, requests: list[list[str]], clients: int
) -> tuple[list[list[float]], list[float], float]:
    """Rewards per request, latency per request (s) and the wall time of ``clients`` closed-loop clients."""
    import httpx

    rewards: list[list[float]] = [[] for _ in requests]
    latency = [0.0] * len(requests)
    next_index = iter(range(len(requests)))

    async def client(http: httpx.AsyncClient) -> None:
        for i in next_index:
            start = time.perf_counter()
            answer = await http.post("/get_reward", json={"query": requests[i]})
            latency[i] = time.perf_counter() - start
            answer.raise_for_status()
            rewards[i] = answer.json()["rewards"]

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        wall = time.perf_counter() - start
    return rewards, latency, wall


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="utf-8") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def figures(
    latency: list[float], wall: float, rows: int, tokens: int, flops: float, ceiling: float, pid: int
) -> dict[str, Any]:
    return {
        "wall_s": round(wall, 3),
        "rows_per_s": round(rows / wall, 2),
        "tokens_per_s": round(tokens / wall, 1),
        "p50_ms": round(float(np.percentile(latency, 50)) * 1000, 2),
        "p99_ms": round(float(np.percentile(latency, 99)) * 1000, 2),
        "fraction_of_ceiling": round(flops / wall / ceiling, 4),
        "rss_mb": rss_mb(pid),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.baseline_server:
        serve_baseline(args.baseline_server, args.port, args.max_length)
        return {}
    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    from rmdata.model.loading import load_scoring_model
    from rmdata.serve.scorer import Scorer

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    levels = [int(c) for c in args.clients.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_model(args, Path(tmp) / "rm")
        scorer = Scorer.of(load_scoring_model(model_dir, device="cpu"), batch_tokens=args.batch_tokens)
        rng = np.random.default_rng(args.seed)
        work = {c: make_requests(scorer.model.tokenizer, args, max(args.requests, 2 * c), rng) for c in levels}
        params = sum(p.numel() for n, p in scorer.model.trunk.named_parameters() if "embed" not in n)
        ceiling = matmul_ceiling(args.hidden_size, args.intermediate_size)

        def encoded(request: list[str]) -> list[np.ndarray]:
            texts = [scorer.query_rule.canonical(q).text for q in request]
            return scorer.encode_texts(texts).tokens

        direct_latency: dict[int, list[float]] = {}
        direct_rewards: dict[int, list[list[float]]] = {}
        for c in levels:
            direct_rewards[c], direct_latency[c] = [], []
            for request in work[c]:
                start = time.perf_counter()
                direct_rewards[c].append(scorer.score(encoded(request)).tolist())
                direct_latency[c].append(time.perf_counter() - start)
        sizes = {c: [encoded(r) for r in work[c]] for c in levels}
        result: dict[str, Any] = {
            "benchmark": "serve_load",
            "device": "cpu",
            "threads": args.threads,
            "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__},
            "model": {"non_embedding_params": params, "hidden_size": args.hidden_size, "layers": args.layers},
            "batch_tokens": scorer.batch_tokens,
            "max_wait_ms": args.max_wait_ms,
            "matmul_ceiling_gflops_per_s": round(ceiling / 1e9, 2),
            "requests": {str(c): len(work[c]) for c in levels},
            "rows": {str(c): sum(len(r) for r in work[c]) for c in levels},
            "direct": {
                str(c): {
                    "p50_ms": round(float(np.percentile(direct_latency[c], 50)) * 1000, 2),
                    "p99_ms": round(float(np.percentile(direct_latency[c], 99)) * 1000, 2),
                }
                for c in levels
            },
        }
        served: dict[str, dict[int, list[list[float]]]] = {}
        script, port = str(Path(__file__).resolve()), free_port_number()
        commands = {
            "openrlhf_baseline": [sys.executable, script, "--baseline-server", str(model_dir), "--port", str(port)],
            "rmdata": [
                *(sys.executable, "-m", "rmdata", "serve", "--model", str(model_dir), "--port", str(port)),
                *("--device", "cpu", "--max-wait-ms", str(args.max_wait_ms), "--max-request-rows", str(args.max_rows)),
                *(("--batch-tokens", str(args.batch_tokens)) if args.batch_tokens else ()),
            ],
        }
        for name, command in commands.items():
            served[name] = {}
            result[name] = {}
            with running([*command, "--max-length", str(args.max_length)], port, args.threads) as (url, pid):
                for c in levels:
                    rewards, latency, wall = asyncio.run(closed_loop(url, work[c], c))
                    seqs = [s for r in sizes[c] for s in r]
                    flops = model_flops(seqs, params, args.layers, args.hidden_size)
                    tokens = sum(len(s) for s in seqs)
                    result[name][str(c)] = figures(latency, wall, len(seqs), tokens, flops, ceiling, pid)
                    served[name][c] = rewards
    result["exact"] = all(served["rmdata"][c] == direct_rewards[c] for c in levels)
    result["max_abs_diff_baseline"] = max(
        float(
            np.abs(
                np.concatenate(
                    [
                        np.asarray(a) - np.asarray(b)
                        for a, b in zip(served["openrlhf_baseline"][c], served["rmdata"][c], strict=True)
                    ]
                )
            ).max()
        )
        for c in levels
    )
    top, one = str(max(levels)), str(min(levels))
    result["rows_per_s_ratio"] = {
        c: round(result["rmdata"][c]["rows_per_s"] / result["openrlhf_baseline"][c]["rows_per_s"], 3)
        for c in result["rmdata"]
    }
    result["p99_vs_direct_at_1"] = round(result["rmdata"][one]["p99_ms"] / result["direct"][one]["p99_ms"], 3)
    result["targets"] = {
        f"rows_per_s_x{top}>=3": result["rows_per_s_ratio"][top] >= 3,
        "p99_at_1_within_1.2x_direct": result["p99_vs_direct_at_1"] <= 1.2,
        "exact": result["exact"],
    }
    result["load_avg_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
