"""Scoring throughput: rmdata's engine vs Hugging Face ``AutoModelForSequenceClassification``, same model and corpus.

    python benchmarks/score_throughput.py                  # synthetic long-tail lengths, a few minutes on 2 cores
    python benchmarks/score_throughput.py --data FILE      # real texts (any corpus or pairs file rmdata reads)

One from-config Llama reward model (``--hidden-size`` ... flags; default ~22M parameters, 9.7M outside the
embedding) is saved once and scored four ways, one after the other in this process, on the same sequences:

- ``rmdata_packed`` / ``rmdata_padded``: ``rmdata.score.engine.score_sequences`` on the model as ``rmdata score``
  loads it (``rmdata.model.loading``), ``--batch-tokens`` per forward, packed varlen rows / length-sorted
  right-padded batches with no mask. ``rmdata`` in the ratios is the layout ``DEFAULT_LAYOUT`` picks for
  the device (the layout ``rmdata score`` runs).
- ``hf_padded16``: transformers' own model (sdpa) on right-padded batches of 16 in input order with an
  ``attention_mask``, as a scoring script with a DataLoader does; ``hf_batch1``: one sequence per forward
  (what HF pipelines do).

Lengths without ``--data``: the log-normal fit to real preference data in ``benchmarks/_lengths.py`` (prompt +
a reply drawn from the chosen or the rejected fit, + the chat template's overhead), clipped to
``--max-length``; token ids are random. With ``--data``: every row rendered with the tiny byte-level
tokenizer's chat template (one token per byte) and cut to ``--max-length`` from the left.

Figures: ``tokens_per_s`` (real tokens; wall clock) and ``tokens_per_cpu_s`` (process CPU time: with one
thread it is robust to other jobs on a shared machine, so the ratios use it); ``flops_per_s`` = model FLOPs
(2 x non-embedding parameters per real token + causal attention 2 x layers x hidden x sum(len^2)) / CPU s,
and its fraction of ``matmul_ceiling_flops_per_s``, the best of a few fp32 ``[4096, h] x [h, intermediate]``
matmuls timed in this run. ``max_abs_diff_vs_hf`` compares rmdata's scores with HF batch size 1 (fp32).
CPU bfloat16 is measured only where the CPU has AVX512-BF16/AMX (``/proc/cpuinfo``); else the JSON says why not.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: import this checkout's rmdata and benchmarks
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from benchmarks._lengths import ALPACA_EVAL_PREFS

TEMPLATE_OVERHEAD = 22  # tokens the tiny ChatML template adds around one prompt and one reply (benchmarks/_lengths)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", help="score the texts of this corpus or pairs file instead of synthetic lengths")
    p.add_argument("--sequences", type=int, default=64, help="sequences scored by each method")
    p.add_argument("--max-length", type=int, default=1024)
    p.add_argument("--batch-tokens", type=int, help="tokens per rmdata forward (default: rmdata's for the device)")
    p.add_argument("--hidden-size", type=int, default=384)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--heads", type=int, default=6)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--intermediate-size", type=int, default=1024)
    p.add_argument("--vocab-size", type=int, default=32000)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: fair on a shared machine)")
    p.add_argument("--skip-batch1", action="store_true", help="leave out the slow batch-size-1 baseline")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def synthetic_sequences(n: int, max_length: int, vocab: int, seed: int) -> list[np.ndarray]:
    """Random token ids with long-tailed lengths: prompt + chosen-or-rejected reply + template overhead."""
    rng = np.random.default_rng(seed)
    prompt = ALPACA_EVAL_PREFS["prompt"].sample(rng, n)
    reply = np.where(
        rng.random(n) < 0.5, ALPACA_EVAL_PREFS["chosen"].sample(rng, n), ALPACA_EVAL_PREFS["rejected"].sample(rng, n)
    )
    lengths = np.minimum(prompt + reply + TEMPLATE_OVERHEAD, max_length)
    return [rng.integers(0, vocab, size=int(length)).astype(np.int64) for length in lengths]


def data_sequences(path: str, n: int, max_length: int) -> list[np.ndarray]:
    """The first ``n`` responses of ``path`` (a pairs file gives chosen then rejected), byte-tokenized."""
    from rmdata.data.stream import scan, stream
    from rmdata.model.tiny import build_tiny_tokenizer
    from rmdata.score.sequences import encode_conversations

    tokenizer = build_tiny_tokenizer()
    report = scan([path], on_error="skip")
    prompts: list[Any] = []
    replies: list[str] = []
    for frame in stream(report):
        keys = ["chosen", "rejected"] if report.kind == "pairs" else ["response"]
        for key in keys:
            prompts += frame["prompt"].to_list()
            replies += frame[key].to_list()
        if len(replies) >= n:
            break
    seqs = encode_conversations(
        tokenizer,
        prompts[:n],
        replies[:n],
        ["data"] * min(n, len(replies)),
        max_length=max_length,
        reward_token_id=None,
    )
    return seqs.tokens


def build_model(args: argparse.Namespace, out: Path) -> Path:
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from rmdata.model.tiny import build_tiny_tokenizer

    torch.manual_seed(args.seed)
    config = LlamaConfig(
        vocab_size=args.vocab_size,
        hidden_size=args.hidden_size,
        intermediate_size=args.intermediate_size,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        max_position_embeddings=max(args.max_length, 2048),
        num_labels=1,
        pad_token_id=0,
        tie_word_embeddings=False,
    )
    LlamaForSequenceClassification(config).save_pretrained(out)
    build_tiny_tokenizer().save_pretrained(out)  # scoring needs a chat template; token ids here are random
    return out


def model_flops(seqs: list[np.ndarray], params: int, layers: int, hidden: int) -> float:
    """Forward FLOPs: 2 per non-embedding weight per token, plus causal attention (QK^T and AV)."""
    tokens = sum(len(s) for s in seqs)
    attention = 2.0 * layers * hidden * sum(float(len(s)) ** 2 for s in seqs)
    return 2.0 * params * tokens + attention


def matmul_ceiling(hidden: int, intermediate: int, repeats: int = 5) -> float:
    """Best fp32 matmul FLOP/s of ``[4096, hidden] x [hidden, intermediate]`` (CPU time)."""
    a, b = torch.randn(4096, hidden), torch.randn(hidden, intermediate)
    torch.mm(a, b)
    best = 0.0
    for _ in range(repeats):
        start = time.process_time()
        torch.mm(a, b)
        best = max(best, 2.0 * 4096 * hidden * intermediate / max(time.process_time() - start, 1e-9))
    return best


def timed(run: Callable[[], np.ndarray], seqs: list[np.ndarray], computed: int, flops: float) -> dict[str, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    scores = run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    real = sum(len(s) for s in seqs)
    return {
        "scores": scores,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "real_tokens": real,
        "computed_tokens": computed,
        "tokens_per_s": round(real / wall, 1),
        "tokens_per_cpu_s": round(real / cpu, 1),
        "sequences_per_s": round(len(seqs) / wall, 2),
        "flops_per_s": flops / cpu,
    }


def hf_padded(model: Any, seqs: list[np.ndarray], batch: int) -> np.ndarray:
    out = []
    with torch.inference_mode():
        for start in range(0, len(seqs), batch):
            part = seqs[start : start + batch]
            width = max(len(s) for s in part)
            ids = torch.zeros(len(part), width, dtype=torch.long)
            mask = torch.zeros(len(part), width, dtype=torch.long)
            for i, s in enumerate(part):
                ids[i, : len(s)] = torch.from_numpy(s)
                mask[i, : len(s)] = 1
            kwargs = {"attention_mask": mask} if batch > 1 else {}
            out.append(model(input_ids=ids, **kwargs).logits[:, 0].float().numpy())
    return np.concatenate(out)


def padded_tokens(seqs: list[np.ndarray], batch: int) -> int:
    return sum(max(len(s) for s in seqs[i : i + batch]) * len(seqs[i : i + batch]) for i in range(0, len(seqs), batch))


def cpu_bf16() -> str | None:
    """None when the CPU has AVX512-BF16 or AMX, else why CPU bfloat16 is not measured."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "no /proc/cpuinfo to check for AVX512-BF16/AMX"
    if "avx512_bf16" in flags or "amx_bf16" in flags:
        return None
    return "this CPU has no AVX512-BF16 or AMX (/proc/cpuinfo): bfloat16 would be emulated, slower than float32"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    from rmdata.model.loading import load_scoring_model
    from rmdata.score.engine import DEFAULT_LAYOUT, plan_batches, resolve_batch_tokens, score_sequences

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    if args.data:
        seqs = data_sequences(args.data, args.sequences, args.max_length)
        source = args.data
    else:
        seqs = synthetic_sequences(args.sequences, args.max_length, args.vocab_size, args.seed)
        source = "synthetic: log-normal fit to alpaca_eval_gpt4_prefs (benchmarks/_lengths.py)"
    lengths = np.array([len(s) for s in seqs])
    args.batch_tokens = resolve_batch_tokens(args.batch_tokens, torch.device("cpu"))
    with tempfile.TemporaryDirectory(prefix="rmdata-bench-") as tmp:
        directory = build_model(args, Path(tmp) / "rm")
        ours = load_scoring_model(directory, device="cpu", dtype="float32")
        hf = AutoModelForSequenceClassification.from_pretrained(directory, dtype=torch.float32).eval()
    params = sum(p.numel() for n, p in hf.named_parameters() if "embed_tokens" not in n)
    total_params = sum(p.numel() for p in hf.parameters())
    flops = model_flops(seqs, params, args.layers, args.hidden_size)
    warm = seqs[:2]
    score_sequences(ours, warm, batch_tokens=args.batch_tokens, layout="packed")
    hf_padded(hf, warm, 2)

    results: dict[str, dict[str, Any]] = {}
    for layout in ("packed", "padded"):
        plan = plan_batches(lengths, args.batch_tokens, layout)
        computed = (
            sum(len(b.members) * max(lengths[list(b.members)]) for b in plan)
            if layout == "padded"
            else int(lengths.sum())
        )
        results[f"rmdata_{layout}"] = timed(
            lambda layout=layout: score_sequences(ours, seqs, batch_tokens=args.batch_tokens, layout=layout),
            seqs,
            int(computed),
            flops,
        )
    results["hf_padded16"] = timed(lambda: hf_padded(hf, seqs, 16), seqs, padded_tokens(seqs, 16), flops)
    if not args.skip_batch1:
        results["hf_batch1"] = timed(lambda: hf_padded(hf, seqs, 1), seqs, int(lengths.sum()), flops)
    default = f"rmdata_{DEFAULT_LAYOUT['cpu']}"
    bf16_skip = cpu_bf16()
    bf16: dict[str, Any] | str = bf16_skip or {}
    if bf16_skip is None:  # CPU bfloat16 is native here: its speed and its score difference from fp32
        with tempfile.TemporaryDirectory(prefix="rmdata-bench-") as tmp:
            half = load_scoring_model(build_model(args, Path(tmp) / "rm"), device="cpu", dtype="bfloat16")
        layout = DEFAULT_LAYOUT["cpu"]
        bf16 = timed(lambda: score_sequences(half, seqs, batch_tokens=args.batch_tokens, layout=layout), seqs,
                     results[default]["computed_tokens"], flops)  # fmt: skip
        fp32_scores = results[default]["scores"]
        bf16["max_abs_diff_vs_fp32"] = float(np.abs(bf16.pop("scores") - fp32_scores).max())
        bf16["speedup_vs_fp32"] = round(bf16["tokens_per_cpu_s"] / results[default]["tokens_per_cpu_s"], 3)
        bf16["flops_per_s"] = round(bf16["flops_per_s"] / 1e9, 2)
    ceiling = matmul_ceiling(args.hidden_size, args.intermediate_size)
    reference = results.get("hf_batch1", results["hf_padded16"])["scores"]
    for r in results.values():
        r["max_abs_diff_vs_hf"] = float(np.abs(r.pop("scores") - reference).max())
        r["flops_fraction_of_ceiling"] = round(r["flops_per_s"] / ceiling, 3)
        r["flops_per_s"] = round(r["flops_per_s"] / 1e9, 2)  # GFLOP/s

    def ratio(base: str) -> float | None:
        if base not in results:
            return None
        return round(results[default]["tokens_per_cpu_s"] / results[base]["tokens_per_cpu_s"], 3)

    targets = {
        "vs_hf_padded16>=2": (ratio("hf_padded16") or 0) >= 2,
        "vs_hf_batch1>=5": None if ratio("hf_batch1") is None else (ratio("hf_batch1") or 0) >= 5,
        "flops_fraction>=0.5": results[default]["flops_fraction_of_ceiling"] >= 0.5,
    }
    report: dict[str, Any] = {
        "benchmark": "score_throughput",
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__},
        "data": {
            "source": source,
            "sequences": len(seqs),
            "tokens": int(lengths.sum()),
            "length_median": int(np.median(lengths)),
            "length_p95": int(np.percentile(lengths, 95)),
            "length_max": int(lengths.max()),
        },
        "model": {
            "params": total_params,
            "non_embedding_params": params,
            "hidden_size": args.hidden_size,
            "layers": args.layers,
            "intermediate_size": args.intermediate_size,
        },  # fmt: skip
        "batch_tokens": args.batch_tokens,
        "rmdata_default_layout": DEFAULT_LAYOUT["cpu"],
        "matmul_ceiling_gflops_per_s": round(ceiling / 1e9, 2),
        **results,
        "packed_over_padded": round(
            results["rmdata_packed"]["tokens_per_cpu_s"] / results["rmdata_padded"]["tokens_per_cpu_s"], 3
        ),
        "ratio_vs_hf_padded16": ratio("hf_padded16"),
        "ratio_vs_hf_batch1": ratio("hf_batch1"),
        "cpu_bfloat16": bf16,
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "targets": targets,
    }
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
