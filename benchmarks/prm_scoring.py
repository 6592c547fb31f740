"""Step scoring: one forward per solution (rmdata) vs the per-prefix loop common in PRM scripts, same model.

    python benchmarks/prm_scoring.py                   # ~1-2 minutes on one CPU core
    python benchmarks/prm_scoring.py --steps 4 8 16 32 --solutions 8 --hidden-size 256 --layers 4

One random process reward model in the Qwen2.5-Math-PRM layout (``rmdata.model.tiny.save_tiny_qwen_prm``:
Qwen2 trunk, two-class head, ``<extra_0>`` after each step) is saved once and loaded as ``rmdata score-steps``
loads it. For each step count, ``--solutions`` random solutions (a prompt of ``--prompt-chars`` and steps of
``--step-chars`` byte tokens each) are scored three ways, one after the other in this process:

- ``one_forward``: ``rmdata.score.steps.score_steps`` with one solution per forward (``batch_tokens=1``): every
  step's score from the hidden states at the separators;
- ``packed``: the same with ``--batch-tokens`` per forward (several solutions per packed row);
- ``per_prefix``: ``score_steps_per_prefix``, one forward per step over the prefix ending at its separator
  (what scripts do when they score step k by feeding steps 1..k), the baseline.

Times are process CPU seconds with one torch thread (robust to other jobs on a shared machine).
``ratio_vs_per_prefix`` = per-prefix CPU s / one-forward CPU s per step count; the issue's goal is >= 8 at 16
steps. ``max_abs_diff`` is the largest step-score difference between the per-prefix loop and each method.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: import this checkout's rmdata
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch


def _solutions(
    count: int, steps: int, prompt_chars: int, step_chars: int, seed: int
) -> list[tuple[str, tuple[str, ...]]]:
    rng = np.random.default_rng([seed, steps])
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz0123456789 +-=."))

    def text(n: int) -> str:
        return "".join(rng.choice(letters, size=n).tolist()).strip() or "x"

    return [(text(prompt_chars), tuple(text(step_chars) for _ in range(steps))) for _ in range(count)]


def _cpu(fn: Any) -> tuple[Any, float]:
    start = time.process_time()
    out = fn()
    return out, time.process_time() - start


def _measure(model: Any, solutions: list[Any], batch_tokens: int) -> list[tuple[list[np.ndarray], float]]:
    """(scores, CPU s) of one forward per solution, of packed rows, and of the per-prefix loop."""
    from rmdata.score.steps import score_steps, score_steps_per_prefix

    score_steps(model, solutions[:1], batch_tokens=1)  # warm-up
    return [
        _cpu(lambda: score_steps(model, solutions, batch_tokens=1)),
        _cpu(lambda: score_steps(model, solutions, batch_tokens=batch_tokens)),
        _cpu(lambda: [score_steps_per_prefix(model, s) for s in solutions]),
    ]


def run(args: argparse.Namespace) -> dict[str, Any]:
    from rmdata.config import TinyModelConfig
    from rmdata.data.stepwise import StepRow
    from rmdata.model.step_model import load_step_model
    from rmdata.model.tiny import save_tiny_qwen_prm
    from rmdata.tokens.steps import StepTokens, tokenize_steps

    torch.set_num_threads(args.threads)
    sizes = TinyModelConfig(
        arch="qwen2",
        hidden_size=args.hidden_size,
        num_layers=args.layers,
        num_heads=args.heads,
        num_kv_heads=args.heads // 2 or 1,
        intermediate_size=args.hidden_size * 2,
        max_position_embeddings=8192,
    )
    with tempfile.TemporaryDirectory(prefix="rmdata-prm-bench-") as tmp:
        model = load_step_model(save_tiny_qwen_prm(Path(tmp) / "prm", sizes))
    params = sum(p.numel() for p in model.trunk.parameters())
    results: dict[str, Any] = {}
    for steps in args.steps:
        rows = [
            StepRow(p, s, None, f"synthetic:{i}")
            for i, (p, s) in enumerate(_solutions(args.solutions, steps, args.prompt_chars, args.step_chars, args.seed))
        ]
        tokens = [tokenize_steps(model.tokenizer, model.template, row) for row in rows]
        assert all(isinstance(t, StepTokens) for t in tokens)
        solutions: list[StepTokens] = tokens  # type: ignore[assignment]
        (one, one_s), (packed, packed_s), (prefix, prefix_s) = _measure(model, solutions, args.batch_tokens)
        reference = np.concatenate(prefix)
        results[str(steps)] = {
            "solutions": len(solutions),
            "tokens_per_solution": int(np.mean([len(s.input_ids) for s in solutions])),
            "one_forward_cpu_s": round(one_s, 3),
            "packed_cpu_s": round(packed_s, 3),
            "per_prefix_cpu_s": round(prefix_s, 3),
            "ratio_vs_per_prefix": round(prefix_s / one_s, 2),
            "packed_ratio_vs_per_prefix": round(prefix_s / packed_s, 2),
            "max_abs_diff_one_forward": float(np.abs(np.concatenate(one) - reference).max()),
            "max_abs_diff_packed": float(np.abs(np.concatenate(packed) - reference).max()),
        }
    at16 = results.get("16")
    return {
        "benchmark": "prm_scoring",
        "device": "cpu",
        "threads": args.threads,
        "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__},
        "model": {"layout": model.layout, "params": params, "hidden_size": args.hidden_size, "layers": args.layers},
        "attention": model.attention.name,
        "batch_tokens": args.batch_tokens,
        "by_steps": results,
        "targets": {
            "ratio_at_16_steps>=8": None if at16 is None else at16["ratio_vs_per_prefix"] >= 8,
            "scores_agree_1e-5": all(
                r["max_abs_diff_one_forward"] <= 1e-5 and r["max_abs_diff_packed"] <= 1e-5 for r in results.values()
            ),
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[4, 8, 16, 32], help="step counts to measure")
    parser.add_argument("--solutions", type=int, default=8, help="solutions per step count")
    parser.add_argument("--prompt-chars", type=int, default=120, help="prompt length (byte tokens)")
    parser.add_argument("--step-chars", type=int, default=48, help="step length (byte tokens)")
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--batch-tokens", type=int, default=4096, help="tokens per packed forward (packed)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    print(json.dumps(run(parser.parse_args(argv))))


if __name__ == "__main__":
    main()
