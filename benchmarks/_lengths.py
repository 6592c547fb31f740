"""Sequence lengths for the packing benchmark: a long-tailed distribution fitted to real preference data.

Fitted on ``alpaca_eval_gpt4_prefs.jsonl`` (2,355 real GPT-4-Turbo-judged AlpacaEval pairs: claude-2,
alpaca-7b and falcon-7b-instruct against gpt4_1106_preview), counting tokens as characters / 4 (floored at
1): the log of each part's length is normal with

    part       mu     sigma   real median  real p95   fitted median  fitted p95
    prompt     3.295  0.849        25         129            27           109
    chosen     5.942  0.992       533         950           381          1946
    rejected   4.639  1.121       114         430           103           654

(``python benchmarks/_lengths.py PATH`` re-derives the table from a pairs JSONL file.) The fit matches the
medians of prompts and rejected replies; for both replies its upper tail is longer than the file's, and
chosen replies, skewed left in log space, get too low a median as well. Clipping to ``max_length`` bounds
the tail; the benchmark's ``--data`` mode measures on real lengths instead.

A synthetic pair draws one prompt length p and reply lengths c, r; its sequences are
``min(p + c + overhead, max_length)`` and ``min(p + r + overhead, max_length)`` tokens, where ``overhead`` is
what the chat template adds around a prompt and a reply plus the reward token (:func:`template_overhead`).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class LogNormal:
    """A length distribution: ``log(tokens) ~ Normal(mu, sigma)``."""

    mu: float
    sigma: float

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``[n]`` int64 lengths, at least 1."""
        return np.maximum(1, np.rint(rng.lognormal(self.mu, self.sigma, n))).astype(np.int64)

    def quantile(self, q: float) -> float:
        from statistics import NormalDist

        return float(np.exp(self.mu + self.sigma * NormalDist().inv_cdf(q)))


# Fitted on alpaca_eval_gpt4_prefs.jsonl (see the module docstring).
ALPACA_EVAL_PREFS = {
    "prompt": LogNormal(3.295, 0.849),
    "chosen": LogNormal(5.942, 0.992),
    "rejected": LogNormal(4.639, 1.121),
}


def template_overhead(tokenizer: PreTrainedTokenizerBase, chat_template: str | None = None) -> int:
    """Tokens a one-turn conversation costs beyond its texts: the rendering of empty turns + the reward token."""
    from rmdata.tokens.templates import render_conversation

    empty = [{"role": "user", "content": ""}, {"role": "assistant", "content": ""}]
    text = render_conversation(tokenizer, empty, chat_template=chat_template)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"]) + 1


def synthetic_pair_lengths(
    n: int, overhead: int, max_length: int, seed: int, parts: dict[str, LogNormal] = ALPACA_EVAL_PREFS
) -> tuple[np.ndarray, np.ndarray]:
    """Chosen and rejected sequence lengths ``[n]`` each (template and reward token included, clipped)."""
    rng = np.random.default_rng(seed)
    prompt, chosen, rejected = (parts[k].sample(rng, n) for k in ("prompt", "chosen", "rejected"))
    return (
        np.minimum(prompt + chosen + overhead, max_length),
        np.minimum(prompt + rejected + overhead, max_length),
    )


def fit_lognormal(lengths: np.ndarray) -> LogNormal:
    """Maximum-likelihood log-normal of positive lengths."""
    logs = np.log(np.asarray(lengths, dtype=np.float64))
    return LogNormal(round(float(logs.mean()), 3), round(float(logs.std()), 3))


def fit_pairs_file(path: str | Path) -> dict[str, dict[str, float]]:
    """Fit each part of a pairs JSONL file (string ``prompt``, ``chosen``, ``rejected``), tokens = chars / 4."""
    records = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    table = {}
    for part in ("prompt", "chosen", "rejected"):
        tokens = np.maximum(1.0, np.array([len(r[part]) for r in records]) / CHARS_PER_TOKEN)
        fit = fit_lognormal(tokens)
        table[part] = {
            "mu": fit.mu,
            "sigma": fit.sigma,
            "real_median": round(float(np.median(tokens))),
            "real_p95": round(float(np.percentile(tokens, 95))),
            "fitted_median": round(fit.quantile(0.5)),
            "fitted_p95": round(fit.quantile(0.95)),
        }
    return table


if __name__ == "__main__":
    for name, row in fit_pairs_file(sys.argv[1]).items():
        print(json.dumps({"part": name, **row}))
