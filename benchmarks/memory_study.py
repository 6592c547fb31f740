"""Where the memory of reward-model training goes: full vs LoRA vs QLoRA, checkpointing, packing, long rows.

    python benchmarks/memory_study.py                     # from-config Llama, synthetic pairs (~8.4 CPU min)
    python benchmarks/memory_study.py --backbone /work/cache/smollm2-135m-instruct \\
        --data /work/shared/data/alpaca_eval_gpt4_prefs.jsonl --max-length 512 --max-packed-length 2048

``configs``: each of ``--configs`` (``full``, ``lora``, ``qlora``, each also ``+gc`` = ``model.
gradient_checkpointing``) trains in its own subprocess through rmdata's own loop (``rmdata.train.loop``: the
recipe, data, model, optimizer, evaluation and export code ``rmdata train`` runs) on the same backbone, pairs,
packed rows and seed: ``--steps`` timed optimizer steps of one packed row after one untimed step, then the
held-out evaluation and the export of ``final/``. Memory per phase: the peak resident memory of the process
(sampled every 10 ms from ``/proc/self/statm``; ``ru_maxrss`` is the whole run's peak) on CPU, and
``torch.cuda.max_memory_allocated`` on CUDA. ``tokens_per_s``: real tokens (every chosen and rejected token,
no padding exists) / wall time of the timed steps; ``cpu_s`` beside it, because the machine may be shared.

``packing``: ``benchmarks/train_packing.py`` (packed rows vs TRL-style padded batches, each in its own
subprocess) at the same sizes. ``long_text``: ``benchmarks/parallel_cpu.py --part sp``, the longest packed
row whose saved activations fit under ``--cap-mib`` per rank with SP=1 and with SP=2 (two gloo ranks).

Without ``--backbone`` the model is a Llama built from ``--hidden-size`` etc. (random weights; memory and
speed do not depend on the values) with rmdata's tiny byte tokenizer; without ``--data`` the pairs are text
drawn from the log-normal length fit of ``benchmarks/_lengths.py``. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: import this checkout's rmdata and benchmarks
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

HERE = Path(__file__).resolve().parent
CONFIGS = ("full", "lora", "qlora", "full+gc", "lora+gc", "qlora+gc")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", help="a Hugging Face model directory (default: a from-config Llama)")
    p.add_argument("--data", help="preference pairs file (default: synthetic text pairs)")
    p.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, of {', '.join(CONFIGS)}")
    p.add_argument("--parts", default="configs,packing,long_text", help="configs, packing, long_text")
    p.add_argument("--pairs", type=int, default=160, help="pairs read (synthetic or sampled from --data)")
    p.add_argument("--steps", type=int, default=3, help="timed optimizer steps of one packed row each")
    p.add_argument("--max-length", type=int, default=1024, help="data.max_length")
    p.add_argument("--max-packed-length", type=int, default=2048, help="data.max_packed_length")
    p.add_argument("--eval-fraction", type=float, default=0.05, help="data.eval_fraction")
    p.add_argument("--lora-dropout", type=float, default=0.05, help="model.lora_dropout")
    p.add_argument("--hidden-size", type=int, default=256)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--intermediate-size", type=int, default=704, help="a multiple of 64 (QLoRA)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker; 0 = torch's default")
    p.add_argument("--packing-pairs", type=int, default=48, help="packing: pairs per mode")
    p.add_argument("--sp-lengths", default="2048,4096,6144,8192", help="long_text: row lengths, increasing")
    p.add_argument("--sp-segment", type=int, default=1024, help="long_text: tokens per sequence")
    p.add_argument("--cap-mib", type=float, default=128.0, help="long_text: activation memory cap per rank")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--worker", help=argparse.SUPPRESS)  # run one config in this process
    p.add_argument("--pairs-file", help=argparse.SUPPRESS)  # the worker's pairs
    return p.parse_args(argv)


def write_synthetic_pairs(path: Path, n: int, max_length: int, seed: int) -> Path:
    """``n`` text pairs whose lengths (characters = tokens of the tiny tokenizer) follow the AlpacaEval fit."""
    from benchmarks._lengths import ALPACA_EVAL_PREFS

    rng = np.random.default_rng(seed)
    budget = max_length - 32  # room for the chat template and the reward token
    lengths = {k: ALPACA_EVAL_PREFS[k].sample(rng, n) for k in ("prompt", "chosen", "rejected")}
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz    "))

    def text(k: int) -> str:
        return "".join(rng.choice(letters, max(1, int(k))))

    with path.open("w", encoding="utf-8") as out:
        for i in range(n):
            prompt = min(int(lengths["prompt"][i]), budget // 4)
            row = {
                "prompt": f"q{i} " + text(prompt),
                "chosen": text(min(int(lengths["chosen"][i]), budget - prompt)),
                "rejected": text(min(int(lengths["rejected"][i]), budget - prompt)),
            }
            out.write(json.dumps(row) + "\n")
    return path


def recipe_overrides(args: argparse.Namespace, config: str, pairs: str, out: str) -> list[str]:
    """The ``--set`` overrides of one config: the same data, rows, seed and schedule for every config."""
    mode, _, gc = config.partition("+")
    sets = [
        f"data.train={pairs}",
        f"data.max_length={args.max_length}",
        f"data.max_packed_length={args.max_packed_length}",
        f"data.eval_fraction={args.eval_fraction}",
        f"model.finetune={mode}",
        f"model.lora_dropout={args.lora_dropout}",
        f"model.gradient_checkpointing={'true' if gc else 'false'}",
        f"train.max_steps={args.steps + 1}",
        "train.grad_accum=1",
        "train.lr=1e-4",
        "train.head_lr=1e-3",
        "train.log_steps=1000",
        f"train.seed={args.seed}",
        f"output_dir={out}",
    ]
    if args.backbone:
        return [f"model.name_or_path={args.backbone}", "model.reward_token=null", *sets]  # its own rule: EOS
    tiny = {
        "arch": "llama",
        "hidden_size": args.hidden_size,
        "num_layers": args.layers,
        "num_heads": args.heads,
        "num_kv_heads": args.kv_heads,
        "intermediate_size": args.intermediate_size,
        "max_position_embeddings": args.max_packed_length,
    }
    return ["model.name_or_path=tiny", *(f"model.tiny.{k}={v}" for k, v in tiny.items()), *sets]


class PeakSampler:
    """The peak resident memory (MiB) of this process since the last :meth:`take`, sampled every 10 ms."""

    def __init__(self) -> None:
        from rmdata.train.memory import rss_mib

        self._rss, self._peak, self._stop = rss_mib, rss_mib(), False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            self._peak = max(self._peak, self._rss())
            time.sleep(0.01)

    def take(self) -> float:
        peak, self._peak = max(self._peak, self._rss()), self._rss()
        return round(peak, 1)

    def close(self) -> None:
        self._stop = True


def run_config(args: argparse.Namespace, config: str) -> dict[str, Any]:
    """Train one config through rmdata's loop in this process; returns its phase memory and speed."""
    import torch

    from rmdata.config import load_recipe
    from rmdata.train import loop
    from rmdata.train.memory import peak_rss_mib
    from rmdata.train.runs import RunDir

    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available()
    sampler = PeakSampler()
    phases: dict[str, float] = {"start": sampler.take()}

    def phase(name: str) -> None:
        if cuda:
            torch.cuda.synchronize()
            phases[name] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
            torch.cuda.reset_peak_memory_stats()
        else:
            phases[name] = sampler.take()

    with tempfile.TemporaryDirectory(prefix="rmdata-memory-") as tmp:
        recipe = load_recipe(None, recipe_overrides(args, config, args.pairs_file, f"{tmp}/run"))
        session = loop.setup(recipe, RunDir(Path(f"{tmp}/run")), resume=False, overwrite=False)
        phase("setup")
        session.built.model.train()
        loop.optimizer_step(session, 0)  # untimed: first-call costs
        phase("first_step")
        timed = range(1, len(session.steps))
        tokens = sum(session.data.train.batch(row).num_tokens for s in timed for row in session.steps[s])
        began, cpu_began = time.perf_counter(), time.process_time()
        losses = [loop.optimizer_step(session, s)["loss"] for s in timed]
        if cuda:
            torch.cuda.synchronize()
        wall, cpu = time.perf_counter() - began, time.process_time() - cpu_began
        phase("train_steps")
        held_out = loop.evaluate(session, len(session.steps))
        phase("eval")
        loop.save(session, len(session.steps), held_out)
        phase("export")
    sampler.close()
    built = session.built
    return {
        "finetune": recipe.model.finetune,
        "gradient_checkpointing": recipe.model.gradient_checkpointing,
        "parameters": {"total": built.total_params, "trainable": built.trainable_params},
        "attention": built.attention.name,
        "device": str(session.device),
        "steps": len(losses),
        "real_tokens": tokens,
        "tokens_per_s": round(tokens / wall, 1),
        "wall_s": round(wall, 4),
        "cpu_s": round(cpu, 4),
        "tokens_per_cpu_s": round(tokens / cpu, 1),
        "threads": torch.get_num_threads(),
        "peak_mib_by_phase": phases,  # CPU: peak RSS within each phase; CUDA: max allocated within each phase
        "peak_mib": max(phases.values()) if cuda else round(peak_rss_mib(), 1),
        # what training adds to the model and data already there: activations, gradients, optimizer state
        "training_over_setup_mib": round(max(phases["first_step"], phases["train_steps"]) - phases["setup"], 1),
        "memory_measure": "torch.cuda.max_memory_allocated" if cuda else "peak RSS of the worker process",
        "loss_first_last": [round(losses[0], 4), round(losses[-1], 4)],
        "eval_pairs": int(held_out["pairs"]) if held_out else 0,
    }


def _subprocess_json(command: list[str]) -> Any:
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} ... failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def run_configs(args: argparse.Namespace, argv: list[str], pairs: Path) -> dict[str, Any]:
    results = {}
    for config in args.configs.split(","):  # one at a time: each has the cores to itself and its own peak
        script = [sys.executable, str(Path(__file__).resolve()), *argv]
        results[config] = _subprocess_json([*script, "--worker", config, "--pairs-file", str(pairs)])[-1]
    return results


def size_flags(args: argparse.Namespace) -> list[str]:
    """The from-config model's size flags for train_packing.py / parallel_cpu.py (the backbone's when given)."""
    if not args.backbone:
        hidden, layers, heads, kv, inter = (
            args.hidden_size, args.layers, args.heads, args.kv_heads, args.intermediate_size
        )  # fmt: skip
    else:
        config = json.loads((Path(args.backbone) / "config.json").read_text())
        hidden, layers = config["hidden_size"], config["num_hidden_layers"]
        heads, kv, inter = config["num_attention_heads"], config["num_key_value_heads"], config["intermediate_size"]
    return [f"--hidden-size={hidden}", f"--layers={layers}", f"--heads={heads}", f"--kv-heads={kv}",
            f"--intermediate-size={inter}"]  # fmt: skip


def run_packing(args: argparse.Namespace) -> dict[str, Any]:
    """train_packing.py at the study's sizes: packed vs padded peak memory and real tokens/s."""
    command = [sys.executable, str(HERE / "train_packing.py"), *size_flags(args), f"--pairs={args.packing_pairs}"]
    command += [f"--max-length={args.max_length}", f"--max-packed-length={args.max_packed_length}"]
    command += [f"--threads={args.threads}", "--warmup-steps=1"]
    if args.data:
        command.append(f"--data={args.data}")
    if args.backbone:
        command.append(f"--tokenizer={args.backbone}")
    out = _subprocess_json(command)[-1]
    keys = ("peak_memory_mb", "rss_before_train_mb", "tokens_per_s", "tokens_per_cpu_s", "real_token_fraction")
    return {
        "command": " ".join(["python", "benchmarks/train_packing.py", *command[2:]]),
        "packed": {k: out["packed"][k] for k in keys},
        "padded": {k: out["padded"][k] for k in keys},
        "peak_memory_ratio": out["peak_memory_ratio"],
        "tokens_per_s_ratio": out["tokens_per_s_ratio"],
    }


def run_long_text(args: argparse.Namespace) -> dict[str, Any]:
    """parallel_cpu.py's SP ladder: the longest row under one activation cap per rank, SP=1 vs SP=2."""
    hidden = size_flags(args)[0]
    command = [sys.executable, str(HERE / "parallel_cpu.py"), "--part=sp", hidden, "--layers=2"]
    command += [f"--lengths={args.sp_lengths}", f"--segment={args.sp_segment}", f"--cap-mib={args.cap_mib}"]
    out = _subprocess_json(command)[-1]
    return {
        "command": " ".join(["python", "benchmarks/parallel_cpu.py", *command[2:]]),
        **{k: out[k] for k in ("cap_mib_per_rank", "longest_row_sp1", "longest_row_sp2", "ratio")},
        "activations_mib_sp1": [r["activations_mib"] for r in out["sp1"]],
        "activations_mib_sp2_per_rank": [r["activations_mib"] for r in out["sp2_per_rank"]],
    }


def ratios(configs: dict[str, Any]) -> dict[str, float]:
    """Peak memory and tokens/s of each config over ``full`` (and of +gc over its plain config)."""
    out = {}
    for name, figures in configs.items():
        base = configs.get("full") if "+" not in name else configs.get(name.split("+")[0])
        if base is None or base is figures:
            continue
        key = f"{name}/{'full' if '+' not in name else name.split('+')[0]}"
        out[f"{key}.peak"] = round(figures["peak_mib"] / base["peak_mib"], 3)
        out[f"{key}.tokens_per_cpu_s"] = round(figures["tokens_per_cpu_s"] / base["tokens_per_cpu_s"], 3)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.worker:
        figures = run_config(args, args.worker)
        print(json.dumps(figures))
        return figures
    unknown = set(args.configs.split(",")) - set(CONFIGS)
    if unknown:
        raise SystemExit(f"--configs: {', '.join(sorted(unknown))} not among {', '.join(CONFIGS)}")
    import torch

    parts = set(args.parts.split(","))
    load_before = os.getloadavg()[0]
    summary: dict[str, Any] = {
        "benchmark": "memory_study",
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "backbone": args.backbone or "from-config llama " + " ".join(size_flags(args)),
        "data": args.data or "synthetic text pairs (log-normal fit, benchmarks/_lengths.py)",
        "max_length": args.max_length,
        "max_packed_length": args.max_packed_length,
    }
    with tempfile.TemporaryDirectory(prefix="rmdata-memory-study-") as tmp:
        if args.data:
            from benchmarks._pairs import read_pairs

            pairs = Path(tmp) / "pairs.jsonl"
            with pairs.open("w", encoding="utf-8") as out:
                for row in read_pairs(args.data, args.pairs, args.seed):
                    out.write(json.dumps({k: row[k] for k in ("prompt", "chosen", "rejected")}) + "\n")
        else:
            pairs = write_synthetic_pairs(Path(tmp) / "pairs.jsonl", args.pairs, args.max_length, args.seed)
        if "configs" in parts:
            summary["configs"] = run_configs(args, argv, pairs)
            summary["ratios"] = ratios(summary["configs"])
    if "packing" in parts:
        summary["packing"] = run_packing(args)
    if "long_text" in parts:
        summary["long_text"] = run_long_text(args)
    summary["load_avg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
