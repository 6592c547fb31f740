"""Reward-model training on packed rows (rmdata) vs TRL-style right-padded batches: real tokens/s and memory.

    python benchmarks/train_packing.py                    # synthetic long-tail lengths, ~4 min on a CPU core
    python benchmarks/train_packing.py --data prefs.jsonl --tokenizer DIR   # real pairs, any pairs format

Both modes train the same model (a Llama-style trunk built from the size flags, same seed, same weights;
fp32 on CPU, bf16 autocast on CUDA) on the same pairs, with the same loss (rmdata.train.losses: focal + log
barrier), AdamW and gradient clipping, and about the same number of pairs per optimizer step:

- packed (rmdata): ``rmdata.tokens.packing.plan_pairs`` puts whole pairs into rows of ``--max-packed-length``
  tokens, ``rmdata.tokens.batching.pack_sequences`` builds each row, and ``rmdata.model.reward_model``'s reward
  model scores every sequence at its reward token with varlen attention (no token attends across sequences). A step is
  ``--rows-per-step`` rows.
- padded (the baseline, collated as TRL's RewardTrainer does): a batch of B pairs is one tensor of 2B rows,
  chosen_1..chosen_B then rejected_1..rejected_B, right-padded to its longest row, with an
  ``attention_mask``; a transformers ``AutoModel`` trunk (``attn_implementation="sdpa"``) plus a linear head
  reads each row's last real token. Pairs come in a seeded random order, as TRL's default sampler gives
  them (it groups by length only with ``group_by_length``; ``--padded-order length_grouped`` does what
  that does). B = the packed run's pairs per step, rounded.

Lengths without ``--data``: a log-normal fit to real preference data plus the chat template's tokens (see
``benchmarks/_lengths.py``). Each mode runs in its own subprocess, one after the other, and is timed over
every step after ``--warmup-steps`` untimed ones. Peak memory: the subprocess's
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` on CPU (the whole process: Python, torch, model and optimizer
included; ``rss_before_train_mb`` is what was resident before the first step), ``torch.cuda.
max_memory_allocated`` on CUDA. ``real_token_fraction`` = real tokens / tokens the model computed, padding
included. Prints one JSON line.

Threads: one per mode by default (``--threads``). On a machine shared with other jobs a second torch thread
stalls at every parallel op while the scheduler runs someone else, which made both modes several times
slower and the comparison a measure of the neighbours (RESULTS.md, 2026-11-23); ``--threads 0`` uses torch's
default (one per core) on a machine of your own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: import this checkout's rmdata and benchmarks
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from benchmarks._pairs import Pairs, load_pairs, load_tokenizer
from rmdata.config import LossConfig, TinyModelConfig
from rmdata.model.tiny import tiny_backbone_config
from rmdata.tokens.batching import pack_sequences
from rmdata.tokens.packing import PackRow, plan_pairs, rows_for_epoch
from rmdata.train.losses import reward_loss

MODES = ("packed", "padded")
LOSS = LossConfig(kind="focal", penalty="log_barrier")  # the recipes' default loss


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=int, default=64, help="preference pairs trained on in each mode")
    p.add_argument("--data", help="pairs JSONL (prompt, chosen, rejected) to sample --pairs real pairs from")
    p.add_argument("--tokenizer", help="tokenizer directory (default: rmdata's tiny byte-level tokenizer)")
    p.add_argument("--max-length", type=int, default=2048, help="tokens per sequence, reward token included")
    p.add_argument("--max-packed-length", type=int, default=4096, help="token budget of one packed row")
    p.add_argument("--rows-per-step", type=int, default=1, help="packed rows per optimizer step")
    p.add_argument(
        "--padded-order",
        choices=("shuffled", "length_grouped"),
        default="shuffled",
        help="padded batches: shuffled (TRL's default sampler) or length_grouped (as group_by_length)",
    )
    p.add_argument("--hidden-size", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--intermediate-size", type=int, default=688)
    p.add_argument("--warmup-steps", type=int, default=2, help="untimed steps before the timed pass")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads in both modes; 0 = torch's default")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda[:N]")
    p.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)  # run one mode in this process
    return p.parse_args(argv)


class PaddedRewardModel(torch.nn.Module):
    """The baseline: a transformers trunk over right-padded rows, scored at each row's last real token."""

    def __init__(self, trunk: torch.nn.Module, head: torch.nn.Linear) -> None:
        super().__init__()
        self.trunk, self.head = trunk, head

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``input_ids``, ``attention_mask``: ``[r, L]`` -> scores ``[r]``."""
        hidden = self.trunk(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
        last = attention_mask.sum(dim=1) - 1
        return self.head(hidden[torch.arange(len(last), device=last.device), last]).squeeze(-1).float()


def build_model(args: argparse.Namespace, tokenizer: Any, reward_id: int, mode: str) -> tuple[torch.nn.Module, str]:
    """rmdata's reward model for ``packed``; for ``padded``, its weights in a plain sdpa trunk + linear head.

    Returns the model on ``args.device`` and the attention it runs.
    """
    from transformers import AutoModel

    from rmdata.config import ModelConfig
    from rmdata.model.reward_model import build_reward_model
    from rmdata.tokens.reward_token import resolve_reward_token

    sizes = TinyModelConfig(
        arch="llama",
        hidden_size=args.hidden_size,
        num_layers=args.layers,
        num_heads=args.heads,
        num_kv_heads=args.kv_heads,
        intermediate_size=args.intermediate_size,
        max_position_embeddings=args.max_length,
    )
    torch.manual_seed(args.seed)
    reward = resolve_reward_token(tokenizer, token_id=reward_id)
    built = build_reward_model(ModelConfig(name_or_path="tiny", tiny=sizes), tokenizer, reward, device=args.device)
    if mode == "packed":
        return built.model, f"rmdata {built.attention.name} ({built.attention.reason})"
    config = tiny_backbone_config(sizes, len(tokenizer), tokenizer.pad_token_id)
    trunk = AutoModel.from_config(config, attn_implementation="sdpa")
    trunk.load_state_dict(built.model.trunk.state_dict())
    head = torch.nn.Linear(args.hidden_size, 1, bias=False)
    head.load_state_dict(built.model.value_head.state_dict())
    return PaddedRewardModel(trunk, head).to(args.device), "transformers sdpa with a padding mask"


def make_steps(pairs: Pairs, args: argparse.Namespace) -> dict[str, Any]:
    """Each mode's optimizer steps over the same pairs: lists of packed rows, and padded batches of B pairs."""
    plan = plan_pairs([len(s) for s in pairs.chosen], [len(s) for s in pairs.rejected], args.max_packed_length)
    rows = rows_for_epoch(plan, epoch=0, seed=args.seed)
    if not rows:
        raise ValueError(f"no pair fits --max-packed-length {args.max_packed_length}; nothing to train on")
    packed = [rows[i : i + args.rows_per_step] for i in range(0, len(rows), args.rows_per_step)]
    kept = np.array(sorted(u for row in rows for u in row.units))  # a pair over the budget is in neither mode
    batch_pairs = max(1, round(len(kept) / len(packed)))
    order = np.random.default_rng(args.seed).permutation(kept)
    if args.padded_order == "length_grouped":  # as transformers' LengthGroupedSampler: sort megabatches of 50 B
        longest = np.array([max(len(pairs.chosen[u]), len(pairs.rejected[u])) for u in order])
        mega = 50 * batch_pairs
        order = np.concatenate(
            [order[i : i + mega][np.argsort(-longest[i : i + mega], kind="stable")] for i in range(0, len(order), mega)]
        )
    padded = [order[i : i + batch_pairs].tolist() for i in range(0, len(order), batch_pairs)]
    return {"packed": packed, "padded": padded, "pairs": len(kept), "row_fill": plan.efficiency}


def padded_batch(units: list[int], pairs: Pairs) -> tuple[torch.Tensor, torch.Tensor]:
    """``[2B, L]`` input ids and attention mask: the chosen rows, then the rejected rows, right-padded."""
    seqs = [pairs.chosen[u] for u in units] + [pairs.rejected[u] for u in units]
    width = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), width), pairs.pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, seq in enumerate(seqs):
        input_ids[i, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        mask[i, : len(seq)] = 1
    return input_ids, mask


def packed_step(
    model: torch.nn.Module,
    rows: list[PackRow],
    pairs: Pairs,
    device: torch.device,
    autocast: AbstractContextManager[Any],
) -> tuple[int, int, float]:
    """Forward + backward of one step's packed rows; returns real tokens, computed tokens and the loss."""
    num_pairs, tokens, loss_sum = sum(len(row.units) for row in rows), 0, 0.0
    for row in rows:
        batch = pack_sequences([s for u in row.units for s in (pairs.chosen[u], pairs.rejected[u])]).to(device)
        with autocast:
            scores = model(batch)
        loss = reward_loss(scores[0::2], scores[1::2], num_pairs=num_pairs, spec=LOSS)
        loss.backward()
        tokens, loss_sum = tokens + batch.num_tokens, loss_sum + loss.item()
    return tokens, tokens, loss_sum


def padded_step(
    model: torch.nn.Module, units: list[int], pairs: Pairs, device: torch.device, autocast: AbstractContextManager[Any]
) -> tuple[int, int, float]:
    """Forward + backward of one padded batch; returns real tokens, computed tokens and the loss."""
    input_ids, mask = (t.to(device) for t in padded_batch(units, pairs))
    with autocast:
        scores = model(input_ids, mask)
    loss = reward_loss(scores[: len(units)], scores[len(units) :], num_pairs=len(units), spec=LOSS)
    loss.backward()
    return int(mask.sum()), mask.numel(), loss.item()


def run_mode(args: argparse.Namespace, mode: str) -> dict[str, Any]:
    """Train ``mode`` over all its steps after the warmup steps; returns its figures."""
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    tokenizer, reward_id = load_tokenizer(args.tokenizer)
    pairs = load_pairs(tokenizer, reward_id, n=args.pairs, max_length=args.max_length, seed=args.seed, data=args.data)
    steps = make_steps(pairs, args)
    model, attention = build_model(args, tokenizer, reward_id, mode)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    forward_backward = packed_step if mode == "packed" else padded_step

    def train_step(step: Any) -> tuple[int, int, float]:
        figures = forward_backward(model, step, pairs, device, autocast)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return figures

    rss_before, load_before = _rss_mb(), os.getloadavg()[0]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for step in steps[mode][: args.warmup_steps]:
        train_step(step)
    if device.type == "cuda":
        torch.cuda.synchronize()
    began, cpu_began = time.perf_counter(), time.process_time()
    figures = [train_step(step) for step in steps[mode]]
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - began, time.process_time() - cpu_began
    real, computed = sum(f[0] for f in figures), sum(f[1] for f in figures)
    if device.type == "cuda":
        peak, measure = torch.cuda.max_memory_allocated() / 2**20, "torch.cuda.max_memory_allocated"
    else:
        peak, measure = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "ru_maxrss of the subprocess"
    out = {
        "attention": attention,
        "steps": len(steps[mode]),
        "pairs": steps["pairs"],
        "pairs_per_step": round(steps["pairs"] / len(steps[mode]), 2),
        "real_tokens": real,
        "computed_tokens": computed,
        "real_token_fraction": round(real / computed, 4),
        "tokens_per_s": round(real / wall, 1),
        "wall_s": round(wall, 2),
        "threads": torch.get_num_threads(),
        "cpu_s": round(cpu, 2),  # CPU time of the timed pass: ~threads x wall_s when the cores were ours
        "tokens_per_cpu_s": round(real / cpu, 1),  # barely moved by other processes when --threads 1
        "peak_memory_mb": round(peak, 1),
        "memory_measure": measure,
        "rss_before_train_mb": round(rss_before, 1),
        "loss_first_last": [round(figures[0][2], 4), round(figures[-1][2], 4)],
        "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "data": pairs.info,
    }
    if mode == "packed":
        out["row_fill"] = round(steps["row_fill"], 4)  # real tokens / (rows x max_packed_length)
    return out


def _rss_mb() -> float:
    """Resident memory of this process now, in MiB (Linux /proc; 0.0 elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except OSError:
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def summarize(args: argparse.Namespace, packed: dict[str, Any], padded: dict[str, Any]) -> dict[str, Any]:
    """The JSON line: the setup, both modes' figures, their ratios (packed / padded) and the targets."""
    ratio = packed["tokens_per_s"] / padded["tokens_per_s"]
    targets = {
        "tokens_per_s_ratio>=2": ratio >= 2,
        "packed_real_token_fraction>=0.95": packed["real_token_fraction"] >= 0.95,
        "packed_peak_memory<=padded": packed["peak_memory_mb"] <= padded["peak_memory_mb"],
    }
    packed, padded = dict(packed), dict(padded)
    data = packed.pop("data")
    padded.pop("data")  # the same pairs
    return {
        "benchmark": "train_packing",
        "device": args.device,
        "versions": {"torch": torch.__version__, "transformers": _version("transformers")},
        "data": data,
        "model": {
            "hidden_size": args.hidden_size,
            "layers": args.layers,
            "heads": args.heads,
            "kv_heads": args.kv_heads,
            "intermediate_size": args.intermediate_size,
        },
        "max_length": args.max_length,
        "max_packed_length": args.max_packed_length,
        "padded_order": args.padded_order,
        "packed": packed,
        "padded": padded,
        "tokens_per_s_ratio": round(ratio, 3),
        "tokens_per_cpu_s_ratio": round(packed["tokens_per_cpu_s"] / padded["tokens_per_cpu_s"], 3),
        "peak_memory_ratio": round(packed["peak_memory_mb"] / padded["peak_memory_mb"], 3),
        "targets": targets,
        "targets_met": all(targets.values()),
    }


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run both modes in subprocesses and print the JSON line (or, with ``--worker``, one mode's figures)."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.worker:
        figures = run_mode(args, args.worker)
        print(json.dumps(figures))
        return figures
    results = {}
    for mode in MODES:  # one at a time: each has the cores to itself and its own peak memory
        command = [sys.executable, str(Path(__file__).resolve()), *argv, "--worker", mode]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"the {mode} worker failed (exit {done.returncode}):\n{done.stderr}")
        results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    summary = summarize(args, results["packed"], results["padded"])
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
