"""The InternLM2 loss claims, measured: ranking vs focal + log barrier (and l2), same steps, pairs and split.

    python benchmarks/loss_study.py                       # tiny model, bundled pairs, ~190 CPU-s (~4 min)
    python benchmarks/loss_study.py --data /work/shared/data/alpaca_eval_gpt4_prefs.jsonl \
        --backbone /work/cache/smollm2-135m-instruct      # real pairs, SmolLM2-135M-Instruct + LoRA

XTuner says the InternLM2 loss (focal ranking term + log barrier on every score) "stabilizes the numerical
range of reward scores and reduces overfitting on simple samples". Every run here is rmdata's own training
(``rmdata.train.loop``: ``setup`` + ``run_steps``, the recipe ``tiny-cpu`` or ``recipes/smollm2-135m-lora.yaml``
with ``--set``-style overrides), on one fixed split (``benchmarks/_claims.py``): the same training pairs, the same
held-out pairs and the same number of optimizer steps for every loss and seed; only ``loss.*`` and
``train.seed`` (initialization, packing order, dropout) change. Losses (``--losses``):

- ``ranking``: ``loss.kind=ranking loss.penalty=none`` (Bradley-Terry, what TRL trains);
- ``focal_log_barrier``: ``loss.kind=focal loss.penalty=log_barrier`` (InternLM2: gamma 2, w 0.01, b 5);
- ``focal_l2``: ``loss.kind=focal loss.penalty=l2`` (w 0.01); ``ranking_log_barrier`` is also available.

Per run:

- ``eval_accuracy``: held-out pairs with s_chosen > s_rejected;
- ``score_range``: mean / std / max |s| of the scores the training forwards produced (a forward hook on the
  reward model records them, so nothing is recomputed), every ``--log-every`` steps, and of the final
  held-out scores: the "range" claim;
- ``train_accuracy`` on ``--gap-pairs`` pairs the run trained on (scored after training) and ``gap`` =
  train - held-out accuracy;
- ``by_difficulty``: held-out accuracy and mean margin in three equal buckets of the *reference* model's
  held-out margin (hard = lowest third, some negative; easy = highest third). The reference is a separate
  ranking-loss run with ``--reference-seed`` (not one of the compared runs, so no run is bucketed by its own
  scores; the ranking runs share its loss, which if anything favours them on its easy pairs): the
  "overfitting on simple samples" claim;
- ``calibration``: held-out log-loss of P(chosen wins) = sigmoid(margin), and the Brier score.

``by_loss`` averages each figure over seeds (mean and the spread min..max). Prints one JSON line and writes a
PNG of max |s| and std of the training scores over steps, one line per loss (``--out``). ~350 lines: the
runs, the figures of each claim and the plot stay in the one script a reader opens.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: import this checkout's rmdata and benchmarks
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from benchmarks._claims import (
    PairScores,
    SplitFiles,
    base_recipe,
    calibration,
    load_average,
    make_split,
    peak_rss_mb,
    score_range,
    score_split,
    tokenizer_and_reward,
)

LOSSES = {
    "ranking": ["loss.kind=ranking", "loss.penalty=none"],
    "focal_log_barrier": ["loss.kind=focal", "loss.penalty=log_barrier"],
    "focal_l2": ["loss.kind=focal", "loss.penalty=l2"],
    "ranking_log_barrier": ["loss.kind=ranking", "loss.penalty=log_barrier"],
}
DEFAULT_LOSSES = "ranking,focal_log_barrier,focal_l2"
BUCKETS = ("hard", "medium", "easy")
# With --backbone (recipes/smollm2-135m-lora.yaml): one row per step, so a short run still sees every pair
# about once; gradient checkpointing keeps a 1k-token SmolLM2 row well under 5 GB. --set overrides them.
BACKBONE_OVERRIDES = ["train.grad_accum=1", "model.gradient_checkpointing=true"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="preference pairs (any format rmdata reads; default: builtin:tiny-prefs)")
    p.add_argument("--backbone", help="HF model directory trained with LoRA (default: the tiny from-config model)")
    p.add_argument("--losses", default=DEFAULT_LOSSES, help=f"comma-separated, of {', '.join(LOSSES)}")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated train.seed values, one run per loss and seed")
    p.add_argument("--reference-seed", type=int, default=1000, help="seed of the ranking run that defines buckets")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps per run (default 120; backbone 40)")
    p.add_argument("--train-pairs", type=int, default=None, help="training pairs (default 1500; backbone 96)")
    p.add_argument("--eval-pairs", type=int, default=None, help="held-out pairs (default 300; backbone 48)")
    p.add_argument("--gap-pairs", type=int, default=None, help="trained pairs scored for the gap (= --eval-pairs)")
    p.add_argument("--max-length", type=int, default=None, help="data.max_length (default 256; backbone 512)")
    p.add_argument("--max-packed-length", type=int, default=None, help="data.max_packed_length (default 2048; 1024)")
    p.add_argument("--log-every", type=int, default=5, help="steps per score-range point")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the train / held-out split")
    p.add_argument("--set", action="append", default=[], help="extra recipe override for every run, a.b=value")
    p.add_argument("--threads", type=int, default=1, help="torch threads (0 = torch's default)")
    p.add_argument("--out", default="rmdata-out/bench/loss_study", help="folder for the PNG, split and run dirs")
    args = p.parse_args(argv)
    real = args.backbone is not None
    defaults = {
        "steps": 40 if real else 120,
        "train_pairs": 96 if real else 1500,
        "eval_pairs": 48 if real else 300,
        "max_length": 512 if real else 256,
        "max_packed_length": 1024 if real else 2048,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.gap_pairs is None:
        args.gap_pairs = args.eval_pairs
    unknown = [x for x in args.losses.split(",") if x not in LOSSES]
    if unknown:
        p.error(f"--losses: unknown {', '.join(unknown)}; choose from {', '.join(LOSSES)}")
    return args


class ScoreRecorder:
    """Forward hook + step hook: the training forwards' scores, summarized every ``every`` steps."""

    def __init__(self, every: int, total: int) -> None:
        self.every, self.total = every, total
        self.window: list[torch.Tensor] = []
        self.points: list[dict[str, Any]] = []

    def hook(self, module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> None:
        if module.training:  # training forwards only (held-out scoring runs in eval mode)
            self.window.append(output.detach().float().cpu())

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        if step % self.every and step not in (1, self.total):
            return
        scores = torch.cat(self.window).numpy() if self.window else np.zeros(0)
        self.window = []
        if scores.size:
            margin = scores[0::2] - scores[1::2]  # a row's scores are chosen, rejected per pair
            point = {"step": step, **score_range(scores), "train_accuracy": round(float((margin > 0).mean()), 4)}
            self.points.append({**point, "loss": round(metrics["loss"], 5)})


def run_one(args: argparse.Namespace, split: SplitFiles, loss: str, seed: int, out: Path) -> tuple[dict, PairScores]:
    """One rmdata training run; returns its figures and its per-pair held-out scores."""
    from rmdata.train.loop import run_steps, setup
    from rmdata.train.runs import RunDir

    overrides = [
        f"name={loss}-seed{seed}",
        f"data.train=[{split.train}]",
        f"data.eval=[{split.eval}]",
        f"data.max_length={args.max_length}",
        f"data.max_packed_length={args.max_packed_length}",
        f"train.seed={seed}",
        f"train.max_steps={args.steps}",
        "train.eval_steps=0",
        "train.save_steps=0",
        "train.device=cpu",
        *LOSSES[loss],
        *(BACKBONE_OVERRIDES if args.backbone else []),
        *args.set,
    ]
    recipe = base_recipe(args.backbone, overrides)
    began = time.perf_counter()
    session = setup(recipe, RunDir(out / "runs" / f"{loss}-seed{seed}"), resume=False, overwrite=True)
    if session.data.eval is None:
        raise SystemExit("loss_study: the held-out split is empty after rmdata's filtering")
    recorder = ScoreRecorder(args.log_every, len(session.steps))
    model = session.built.model
    handle = model.register_forward_hook(recorder.hook)
    try:
        steps, _ = run_steps(session, recorder.on_step, show_progress=False)
    finally:
        handle.remove()
    train_s = time.perf_counter() - began
    held = score_split(model, session.data.eval, session.device, session.autocast)
    trained = trained_rows(session, args.gap_pairs, seed)
    train_split = dataclasses.replace(
        session.data.train, plan=dataclasses.replace(session.data.train.plan, rows=trained)
    )
    on_train = score_split(model, train_split, session.device, session.autocast)
    train_margin = on_train.margin[~np.isnan(on_train.margin)]
    eval_accuracy = float((held.margin > 0).mean())
    train_accuracy = float((train_margin > 0).mean())
    result = {
        "loss": loss,
        "seed": seed,
        "steps": steps,
        "eval_accuracy": round(eval_accuracy, 4),
        "train_accuracy": round(train_accuracy, 4),
        "gap": round(train_accuracy - eval_accuracy, 4),
        "train_pairs_scored": int(train_margin.size),
        "calibration": calibration(held.margin),
        "eval_scores": score_range(np.concatenate([held.chosen, held.rejected])),
        "score_range": recorder.points,
        "train_s": round(train_s, 1),
    }
    del session, model
    return result, held


def trained_rows(session: Any, n_pairs: int, seed: int) -> tuple[Any, ...]:
    """A seeded sample of packed rows the run trained on, holding at least ``n_pairs`` pairs (or all of them)."""
    seen = {row.units: row for step in range(len(session.steps)) for row in session.steps[step]}
    rows = list(seen.values())
    picked, pairs = [], 0
    for k in np.random.default_rng(seed).permutation(len(rows)):
        if pairs >= n_pairs:
            break
        picked.append(rows[int(k)])
        pairs += len(rows[int(k)].units)
    return tuple(picked)


def buckets(reference_margin: np.ndarray) -> np.ndarray:
    """Bucket index (0 hard, 1 medium, 2 easy) per held-out pair: thirds of the reference margin."""
    order = np.argsort(reference_margin, kind="stable")
    index = np.empty(len(order), dtype=np.int64)
    index[order] = np.arange(len(order)) * 3 // len(order)
    return index


def by_difficulty(held: PairScores, bucket: np.ndarray) -> dict[str, dict[str, float]]:
    out = {}
    for b, name in enumerate(BUCKETS):
        m = held.margin[bucket == b]
        out[name] = {
            "pairs": int(m.size),
            "accuracy": round(float((m > 0).mean()), 4),
            "margin": round(float(m.mean()), 4),
        }
    return out


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per loss: mean and [min, max] over seeds of each headline figure."""
    figures = {
        "eval_accuracy": lambda r: r["eval_accuracy"],
        "train_accuracy": lambda r: r["train_accuracy"],
        "gap": lambda r: r["gap"],
        "log_loss": lambda r: r["calibration"]["log_loss"],
        "train_max_abs_score": lambda r: max(p["max_abs"] for p in r["score_range"]),
        "final_train_score_std": lambda r: r["score_range"][-1]["std"],
        "eval_score_std": lambda r: r["eval_scores"]["std"],
        "eval_max_abs_score": lambda r: r["eval_scores"]["max_abs"],
        **{f"{b}_accuracy": (lambda r, b=b: r["by_difficulty"][b]["accuracy"]) for b in BUCKETS},
        **{f"{b}_margin": (lambda r, b=b: r["by_difficulty"][b]["margin"]) for b in BUCKETS},
    }
    out: dict[str, Any] = {}
    for loss in dict.fromkeys(r["loss"] for r in runs):
        mine = [r for r in runs if r["loss"] == loss]
        out[loss] = {"seeds": len(mine)}
        for name, get in figures.items():
            values = [float(get(r)) for r in mine]
            out[loss][name] = {"mean": round(float(np.mean(values)), 4), "min": min(values), "max": max(values)}
    return out


def plot(runs: list[dict[str, Any]], path: Path) -> Path:
    """max |s| and std of the training scores over steps, one colour per loss, one line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    colours = dict(
        zip(dict.fromkeys(r["loss"] for r in runs), plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False)
    )
    for r in runs:
        steps = [p["step"] for p in r["score_range"]]
        for ax, key in zip(axes, ("max_abs", "std"), strict=True):
            label = r["loss"] if r["seed"] == min(x["seed"] for x in runs if x["loss"] == r["loss"]) else None
            ax.plot(steps, [p[key] for p in r["score_range"]], color=colours[r["loss"]], alpha=0.8, label=label)
    axes[0].set(title="max |score| of training scores", xlabel="optimizer step")
    axes[1].set(title="std of training scores", xlabel="optimizer step")
    axes[0].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from rmdata.progress import logger

    logger().setLevel("WARNING")
    load_before, began = load_average(), time.perf_counter()
    cpu_before = time.process_time()
    out = Path(args.out)
    tokenizer, reward = tokenizer_and_reward(args.backbone)
    with tempfile.TemporaryDirectory(prefix="loss-study-") as tmp:
        split = make_split(
            args.data,
            Path(tmp),
            tokenizer=tokenizer,
            reward=reward,
            max_length=args.max_length,
            n_train=args.train_pairs,
            n_eval=args.eval_pairs,
            seed=args.split_seed,
        )
        reference, ref_held = run_one(args, split, "ranking", args.reference_seed, out)
        bucket = buckets(ref_held.margin)
        runs = []
        for loss in args.losses.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                result, held = run_one(args, split, loss, seed, out)
                result["by_difficulty"] = by_difficulty(held, bucket)
                runs.append(result)
                print(f"loss_study: {loss} seed {seed}: eval accuracy {result['eval_accuracy']}", file=sys.stderr)
    png = plot(runs, out / "loss_study_score_range.png")
    record = {
        "benchmark": "loss_study",
        "setup": {
            "backbone": args.backbone or "tiny (recipe tiny-cpu, from config)",
            "finetune": "lora" if args.backbone else "full",
            "steps": args.steps,
            "max_length": args.max_length,
            "max_packed_length": args.max_packed_length,
            "seeds": args.seeds,
            "extra_overrides": args.set,
            "threads": torch.get_num_threads(),
        },
        "split": split.info,
        "reference": {
            "loss": "ranking",
            "seed": args.reference_seed,
            "eval_accuracy": reference["eval_accuracy"],
            "bucket_margin_edges": [round(float(x), 4) for x in np.quantile(ref_held.margin, [1 / 3, 2 / 3])],
        },
        "by_loss": summarize(runs),
        "runs": runs,
        "plot": str(png),
        "wall_s": round(time.perf_counter() - began, 1),
        "cpu_s": round(time.process_time() - cpu_before, 1),
        "peak_rss_mb": peak_rss_mb(),
        "load_avg_1m": [load_before, load_average()],
    }
    print(json.dumps(record))
    return record


if __name__ == "__main__":
    main()
