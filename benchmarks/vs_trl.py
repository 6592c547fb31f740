"""rmdata train vs TRL's RewardTrainer: same backbone, tokens, pairs, optimizer, steps; one shared evaluator.

    python benchmarks/vs_trl.py                          # tiny model, bundled pairs, 5 seeds, ~150 CPU-s each
    python benchmarks/vs_trl.py --data /work/shared/data/alpaca_eval_gpt4_prefs.jsonl \
        --backbone /work/cache/smollm2-135m-instruct     # real pairs, SmolLM2-135M-Instruct, LoRA for both

Needs TRL (``pip install 'rmdata[bench]'``); rmdata itself never imports it. What is held equal:

- **backbone and tokenizer**: one model directory (``--backbone``, or the tiny from-config model saved once
  to a directory) loaded by both; TRL as ``AutoModelForSequenceClassification`` (its new ``score`` head is
  transformers' init, normal with std ``config.initializer_range``, rmdata's value head starts at zero: each tool's
  own default; ``--trl-head-init zero`` starts TRL's at zero too, to measure what the init changes);
- **pairs and tokens**: one fixed split (``benchmarks/_claims.py``). Both tools train on every training pair
  exactly once (one epoch). TRL is given the token ids rmdata's ``tokenize_pairs`` makes (chat template,
  prompt cut from the left, reward token appended; TRL skips its own tokenization for pre-tokenized
  ``chosen_ids``/``rejected_ids``), so both see the same tokens and read the score at the same token. Each
  worker reports the content ids (``prompt_id:chosen_id:rejected_id``) and a digest of the token ids of the
  pairs it actually trained on; ``same_pairs`` / ``same_tokens`` compare them;
- **loss**: TRL's ``-logsigmoid(s_c - s_r)`` averaged over the step's pairs; rmdata runs ``loss.kind=ranking
  loss.penalty=none`` (the same function, normalized by the step's pairs), not its default focal + barrier;
- **optimizer and schedule**: AdamW (betas 0.9/0.95, eps 1e-8, no weight decay), one lr for every
  parameter (rmdata's ``train.head_lr`` is unset), gradient clipping 1.0, the same warmup steps then cosine
  to 0 (HF's warmup starts at lr 0, rmdata's at lr/w: the one schedule difference);
- **steps and pairs per step**: rmdata packs whole pairs into rows of ``--max-packed-length`` tokens,
  ``--grad-accum`` rows per step, so its pairs per step vary; TRL's batch B is chosen so that its step
  count equals rmdata's when some B gives it (else the closest), so both take the same mean pairs per step;
- **fine-tuning**: ``--finetune full`` (tiny default) or ``lora`` (backbone default: rank 16, alpha 32,
  dropout 0.05 on every linear layer of the trunk, the head fully trained; TRL's ``disable_dropout`` is off
  so its LoRA dropout matches), ``--gradient-checkpointing`` for both or neither;
- **precision**: float32 on CPU for both. TRL's ``RewardConfig`` defaults to bf16 autocast, turned off here
  (``bf16=False``): rmdata computes in float32 on CPU, and a CPU without AVX512-BF16 runs bf16 matmuls on a
  slow fallback (one SmolLM2 step took minutes).

Each tool trains in its own subprocess: ``wall_s`` is the whole process (imports, loading, tokenizing, the loop,
the export; for TRL merging the adapters and saving), ``train_s`` the training loop alone (``run_steps`` /
``trainer.train()``), ``tokens_per_s`` = real tokens trained (every chosen and rejected token once, no padding)
/ ``train_s``, ``tokens_per_cpu_s`` the same per CPU-second of the loop (robust to other jobs on a shared
machine; ``cpu_s`` is the whole process's user + system time), ``peak_rss_mb`` the subprocess's ``ru_maxrss``
from ``os.wait4``. The shared evaluator then loads both exported models with plain transformers
(``AutoModelForSequenceClassification``, one sequence at a time, so no padding) and scores the same held-out
token ids. Prints one JSON line; ``targets``: accuracy within 1 point, less wall time, less memory.

~440 lines on purpose: both workers, the parent and the shared evaluator live in one file, so the benchmark
runs as one script that re-invokes itself per tool (``--worker``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: import this checkout's rmdata and benchmarks
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from benchmarks._claims import (
    base_recipe,
    calibration,
    id_digest,
    load_average,
    make_split,
    pair_ids,
    peak_rss_mb,
    token_digest,
    tokenize,
    tokenizer_and_reward,
)

TOOLS = ("rmdata", "trl")


def seed_list(text: str) -> list[int]:
    """``0,1,2`` -> [0, 1, 2] (distinct seeds, at least one)."""
    seeds = [int(x) for x in text.split(",") if x.strip()]
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"--seeds {text!r}: give distinct integers, e.g. 0,1,2,3,4")
    return seeds


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="preference pairs (any format rmdata reads; default: builtin:tiny-prefs)")
    p.add_argument("--backbone", help="HF model directory (default: the tiny from-config model, saved once)")
    p.add_argument("--train-pairs", type=int, default=None, help="training pairs, one epoch (default 1200; 96)")
    p.add_argument("--eval-pairs", type=int, default=None, help="held-out pairs (default 300; backbone 64)")
    p.add_argument("--max-length", type=int, default=None, help="tokens per sequence (default 256; backbone 512)")
    p.add_argument("--max-packed-length", type=int, default=None, help="rmdata row budget (default 2048; 1024)")
    p.add_argument("--grad-accum", type=int, default=None, help="rmdata rows per step (default 1; backbone 2)")
    p.add_argument("--lr", type=float, default=None, help="peak lr for both (default 3e-3; backbone 1e-4)")
    p.add_argument("--warmup-ratio", type=float, default=0.05, help="warmup steps = ceil(ratio x steps)")
    p.add_argument("--finetune", choices=("full", "lora"), default=None, help="default full; backbone lora")
    p.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=None,
                   help="for both tools (default off; backbone on, to stay under ~5 GB)")  # fmt: skip
    p.add_argument("--seeds", type=seed_list, default=[0, 1, 2, 3, 4],
                   help="comma-separated, default 0,1,2,3,4; per seed: split, tiny init, training seed")  # fmt: skip
    p.add_argument("--trl-head-init", choices=("trl", "zero"), default="trl",
                   help="TRL's new score head: its own init (default) or zeros, as rmdata's (an ablation)")  # fmt: skip
    p.add_argument("--threads", type=int, default=1, help="torch threads per tool (0 = torch's default)")
    p.add_argument("--out", default="rmdata-out/bench/vs_trl", help="folder for the split, models and runs")
    p.add_argument("--worker", choices=TOOLS, help=argparse.SUPPRESS)
    p.add_argument("--spec", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    real = args.backbone is not None
    defaults = {
        "train_pairs": 96 if real else 1200,
        "eval_pairs": 64 if real else 300,
        "max_length": 512 if real else 256,
        "max_packed_length": 1024 if real else 2048,
        "grad_accum": 2 if real else 1,
        "lr": 1e-4 if real else 3e-3,
        "finetune": "lora" if real else "full",
        "gradient_checkpointing": real,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


# ---------------------------------------------------------------- workers (one subprocess per tool)


def set_threads(threads: int) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)


def rmdata_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """``rmdata train``'s own calls (setup, run_steps, save) on the spec's recipe overrides."""
    from rmdata.progress import logger
    from rmdata.train.loop import run_steps, save, setup
    from rmdata.train.runs import RunDir

    logger().setLevel("WARNING")
    recipe = base_recipe(spec["recipe_backbone"], spec["rmdata_overrides"])
    session = setup(recipe, RunDir(Path(spec["out"]) / "rmdata-run"), resume=False, overwrite=True)
    began, cpu = time.perf_counter(), time.process_time()
    steps, _ = run_steps(session, None, show_progress=False)
    train_s, train_cpu_s = time.perf_counter() - began, time.process_time() - cpu
    save(session, steps, None)
    pairs, plan = session.data.train.pairs, session.data.train.plan
    packed = sorted(u for row in plan.rows for u in row.units)
    ids = [pair_ids(pairs)[u] for u in packed]
    return {
        "steps": steps,
        "train_s": train_s,
        "train_cpu_s": train_cpu_s,
        "pairs_trained": len(ids),
        "pairs_per_step": len(ids) / steps,
        "ids_digest": id_digest(ids),
        "token_digest": token_digest(pairs) if len(packed) == len(pairs) else "some pairs were not packed",
        "real_tokens": int(plan.real_tokens),
        "model_dir": str(session.run.final),
    }


def trl_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """TRL's RewardTrainer on the same token ids, optimizer, schedule and batch; the merged model is saved."""
    import datasets
    import torch
    from transformers import AutoModelForSequenceClassification, set_seed
    from trl import RewardConfig, RewardTrainer

    from rmdata.model.export import export_pad_token

    tokenizer, reward = tokenizer_and_reward(spec["tokenizer_backbone"])
    train = tokenize_file(spec["train"], tokenizer, reward, spec["max_length"])
    ids = pair_ids(train)
    dataset = datasets.Dataset.from_dict(
        {
            "chosen_ids": [list(map(int, s)) for s in train.chosen],
            "rejected_ids": [list(map(int, s)) for s in train.rejected],
            "pair_id": ids,
        }
    )
    set_seed(spec["seed"])
    model = AutoModelForSequenceClassification.from_pretrained(spec["model_dir"], num_labels=1, dtype=torch.float32)
    if spec["trl_head_init"] == "zero":  # the ablation: TRL's head starts where rmdata's does
        torch.nn.init.zeros_(model.score.weight)
    tokenizer.pad_token = export_pad_token(tokenizer, reward.id)[1]  # not the reward token, as rmdata exports
    peft_config = None
    if spec["finetune"] == "lora":
        from peft import LoraConfig

        lora = spec["lora"]
        targets = sorted(
            {n.split(".")[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n != "score"}
        )
        peft_config = LoraConfig(
            task_type="SEQ_CLS", r=lora["rank"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
            target_modules=targets, bias="none",
        )  # fmt: skip
    config = RewardConfig(
        output_dir=str(Path(spec["out"]) / "trl-run"),
        per_device_train_batch_size=spec["trl_batch"],
        gradient_accumulation_steps=1,
        num_train_epochs=1,
        learning_rate=spec["lr"],
        lr_scheduler_type="cosine",
        warmup_steps=spec["warmup_steps"],
        weight_decay=0.0,
        adam_beta1=0.9,
        adam_beta2=0.95,
        adam_epsilon=1e-8,
        max_grad_norm=1.0,
        optim="adamw_torch",
        seed=spec["seed"],
        max_length=spec["max_length"],
        disable_dropout=False,
        bf16=False,  # TRL's default is bf16 autocast; rmdata computes in float32 on CPU (see the docstring)
        gradient_checkpointing=spec["gradient_checkpointing"],
        gradient_checkpointing_kwargs={"use_reentrant": False},
        save_strategy="no",
        report_to="none",
        logging_steps=10**6,
        use_cpu=True,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = RewardTrainer(
        model=model, args=config, train_dataset=dataset, processing_class=tokenizer, peft_config=peft_config
    )
    kept_rows = trainer.train_dataset
    began, cpu = time.perf_counter(), time.process_time()
    output = trainer.train()
    train_s, train_cpu_s = time.perf_counter() - began, time.process_time() - cpu
    trained = trainer.model
    if spec["finetune"] == "lora":
        trained = trained.merge_and_unload()
    model_dir = Path(spec["out"]) / "trl-final"
    trained.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    kept = [ids.index(x) for x in kept_rows["pair_id"]]
    return {
        "steps": int(output.global_step),
        "train_s": train_s,
        "train_cpu_s": train_cpu_s,
        "pairs_trained": len(kept),
        "pairs_per_step": len(kept) / max(1, int(output.global_step)),
        "batch": spec["trl_batch"],
        "ids_digest": id_digest(list(kept_rows["pair_id"])),
        "token_digest": token_digest_of(kept_rows["pair_id"], kept_rows["chosen_ids"], kept_rows["rejected_ids"]),
        "real_tokens": int(
            sum(len(c) + len(r) for c, r in zip(kept_rows["chosen_ids"], kept_rows["rejected_ids"], strict=True))
        ),
        "trl_counted_tokens": int(trainer._total_train_tokens),
        "model_dir": str(model_dir),
    }


def token_digest_of(pids: list[str], chosen: list[list[int]], rejected: list[list[int]]) -> str:
    """:func:`benchmarks._claims.token_digest` of plain lists (what TRL holds after its preprocessing)."""
    import hashlib

    h = hashlib.sha256()
    for _, i in sorted((pid, i) for i, pid in enumerate(pids)):
        for seq in (chosen[i], rejected[i]):
            h.update(np.asarray(seq, dtype=np.int64).tobytes() + b"|")
    return h.hexdigest()[:16]


def tokenize_file(path: str, tokenizer: Any, reward: Any, max_length: int) -> Any:
    from rmdata.data.load import load_dataset_records

    return tokenize(load_dataset_records([path]).frame, tokenizer, reward, max_length)


def worker_main(args: argparse.Namespace) -> None:
    spec = json.loads(Path(args.spec).read_text())
    set_threads(spec["threads"])
    result = (rmdata_worker if args.worker == "rmdata" else trl_worker)(spec)
    result["peak_rss_self_mb"] = peak_rss_mb()
    Path(spec["result"]).write_text(json.dumps(result))


def run_worker(tool: str, spec: dict[str, Any], out: Path) -> dict[str, Any]:
    """Run one tool's worker in a fresh process: its result, wall time, CPU time and peak RSS."""
    spec = {**spec, "result": str(out / f"{tool}-result.json")}
    spec_path = out / f"{tool}-spec.json"
    spec_path.write_text(json.dumps(spec))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    began = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--worker", tool, "--spec", str(spec_path)], env=env
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - began
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"vs_trl: the {tool} worker failed (exit {os.waitstatus_to_exitcode(status)})")
    result = json.loads(Path(spec["result"]).read_text())
    result.update(
        wall_s=round(wall, 1),
        cpu_s=round(usage.ru_utime + usage.ru_stime, 1),
        peak_rss_mb=round(usage.ru_maxrss / 1024, 1),
        tokens_per_s=round(result["real_tokens"] / result["train_s"], 1),
        tokens_per_cpu_s=round(result["real_tokens"] / result["train_cpu_s"], 1),
        train_s=round(result["train_s"], 1),
        train_cpu_s=round(result["train_cpu_s"], 1),
    )
    return result


# ---------------------------------------------------------------- the parent: split, plan, workers, evaluator


def save_tiny_backbone(path: Path, seed: int) -> Path:
    """The tiny from-config model of recipe ``tiny-cpu`` as a causal-LM directory both tools can load."""
    import torch
    from transformers import AutoModelForCausalLM

    from rmdata.model.tiny import build_tiny_tokenizer, tiny_backbone_config

    recipe = base_recipe(None, [])
    tokenizer = build_tiny_tokenizer()
    torch.manual_seed(seed)
    config = tiny_backbone_config(recipe.model.tiny, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id)
    AutoModelForCausalLM.from_config(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def trl_batch(n_pairs: int, steps: int) -> int:
    """The batch B whose step count ceil(n / B) is closest to ``steps`` (then whose n / B is closest to n / steps)."""
    return min(
        range(1, n_pairs + 1), key=lambda b: (abs(math.ceil(n_pairs / b) - steps), abs(n_pairs / b - n_pairs / steps))
    )


def shared_eval(model_dir: str, sequences: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Held-out margins s_c - s_r of a saved model, scored by plain transformers one sequence at a time."""
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=torch.float32).eval()
    margins = []
    with torch.no_grad():
        for chosen, rejected in sequences:
            s = [float(model(input_ids=torch.tensor([seq.tolist()])).logits[0, 0]) for seq in (chosen, rejected)]
            margins.append(s[0] - s[1])
    del model
    return np.array(margins)


def mean_se(values: list[float]) -> dict[str, float | None]:
    """Mean and standard error of the mean (sample std / sqrt(n); None for one value) of per-seed figures."""
    x = np.asarray(values, dtype=float)
    se = float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else None
    return {"mean": round(float(x.mean()), 4), "se": round(se, 4) if se is not None else None}


def run_seed(args: argparse.Namespace, seed: int, tmp: Path) -> dict[str, Any]:
    """One paired run: this seed's split, tiny-backbone init and training seed, shared by both tools."""
    from rmdata.tokens.packing import plan_pairs

    tmp.mkdir(parents=True)
    model_dir = args.backbone or str(save_tiny_backbone(tmp / "tiny-backbone", seed))
    tokenizer_backbone = args.backbone  # None: the tiny tokenizer, as the tiny-cpu recipe resolves it
    tokenizer, reward = tokenizer_and_reward(tokenizer_backbone)
    split = make_split(
        args.data, tmp / "split", tokenizer=tokenizer, reward=reward, max_length=args.max_length,
        n_train=args.train_pairs, n_eval=args.eval_pairs, seed=seed,
    )  # fmt: skip
    train = tokenize_file(str(split.train), tokenizer, reward, args.max_length)
    plan = plan_pairs(train.chosen.lengths, train.rejected.lengths, args.max_packed_length)
    steps = math.ceil(len(plan.rows) / args.grad_accum)
    warmup = math.ceil(args.warmup_ratio * steps)
    recipe_backbone = args.backbone or None
    overrides = [
        f"data.train=[{split.train}]", "data.eval=[]", "data.eval_fraction=0",
        f"data.max_length={args.max_length}", f"data.max_packed_length={args.max_packed_length}",
        "loss.kind=ranking", "loss.penalty=none", "loss.use_margin=false",
        "train.epochs=1", "train.max_steps=null", f"train.grad_accum={args.grad_accum}", f"train.lr={args.lr}",
        "train.head_lr=null", "train.weight_decay=0", f"train.warmup_ratio={args.warmup_ratio}",
        "train.min_lr_ratio=0", "train.max_grad_norm=1.0", f"train.seed={seed}", "train.eval_steps=0",
        "train.save_steps=0", "train.device=cpu", "model.dtype=float32", f"model.finetune={args.finetune}",
        f"model.gradient_checkpointing={str(args.gradient_checkpointing).lower()}",
    ]  # fmt: skip
    if args.backbone is None:
        overrides.append(f"model.name_or_path={model_dir}")  # the saved tiny model; tiny-cpu's reward token
    recipe = base_recipe(recipe_backbone, overrides)
    lora = {"rank": recipe.model.lora_rank, "alpha": recipe.model.lora_alpha, "dropout": recipe.model.lora_dropout}
    spec = {
        "out": str(tmp), "recipe_backbone": recipe_backbone, "rmdata_overrides": overrides,
        "tokenizer_backbone": tokenizer_backbone, "model_dir": model_dir, "train": str(split.train),
        "max_length": args.max_length, "seed": seed, "lr": args.lr, "warmup_steps": warmup,
        "trl_batch": trl_batch(len(train), steps), "finetune": args.finetune, "lora": lora,
        "gradient_checkpointing": args.gradient_checkpointing, "threads": args.threads,
        "trl_head_init": args.trl_head_init,
    }  # fmt: skip
    tools = {tool: run_worker(tool, spec, tmp) for tool in TOOLS}
    held = tokenize_file(str(split.eval), tokenizer, reward, args.max_length)
    sequences = list(zip(held.chosen, held.rejected, strict=True))
    eval_began = time.perf_counter()
    for result in tools.values():
        margin = shared_eval(result.pop("model_dir"), sequences)
        result["eval_accuracy"] = round(float((margin > 0).mean()), 4)
        result["calibration"] = calibration(margin)
    r, t = tools["rmdata"], tools["trl"]
    return {
        "seed": seed,
        "split": split.info,
        "lora": lora,
        "warmup_steps": warmup,
        "rmdata_rows": f"{len(plan.rows)} rows of <= {args.max_packed_length} tokens, {args.grad_accum}/step",
        "trl_batch": spec["trl_batch"],
        "same_pairs": r["ids_digest"] == t["ids_digest"] == split.info["train_ids_digest"],
        "same_tokens": r["token_digest"] == t["token_digest"],
        "eval_pairs": len(sequences),
        "rmdata": r,
        "trl": t,
        "accuracy_diff_points": round(100 * (r["eval_accuracy"] - t["eval_accuracy"]), 2),  # 0.59 - 0.60: -1.0
        "shared_eval_s": round(time.perf_counter() - eval_began, 1),
    }


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per tool mean and SE over seeds; the paired difference rmdata - TRL per seed, its mean and SE."""

    def per_seed(tool: str, key: str) -> list[float]:
        return [run[tool]["calibration"]["log_loss"] if key == "log_loss" else run[tool][key] for run in runs]

    def ratio(key: str) -> dict[str, float | None]:
        return mean_se([run["rmdata"][key] / run["trl"][key] for run in runs])

    diffs = [run["accuracy_diff_points"] for run in runs]
    paired = mean_se(diffs)
    n_eval = min(run["eval_pairs"] for run in runs)
    return {
        "accuracy": {tool: mean_se(per_seed(tool, "eval_accuracy")) for tool in TOOLS},
        "log_loss": {tool: mean_se(per_seed(tool, "log_loss")) for tool in TOOLS},
        "accuracy_diff_points": {"per_seed": diffs, **paired},
        "log_loss_diff": mean_se(list(np.subtract(per_seed("rmdata", "log_loss"), per_seed("trl", "log_loss")))),
        "one_run_standard_error_points": round(100 * math.sqrt(0.25 / max(1, n_eval)), 2),  # binomial, at 50%
        "wall_ratio": ratio("wall_s"),
        "train_time_ratio": ratio("train_s"),
        "tokens_per_cpu_s_ratio": ratio("tokens_per_cpu_s"),
        "peak_memory_ratio": ratio("peak_rss_mb"),
        "targets": {
            "accuracy_within_1_point": abs(paired["mean"]) <= 1.0,
            "gap_within_one_se": paired["se"] is not None and abs(paired["mean"]) <= paired["se"],
            "less_wall_time": all(run["rmdata"]["wall_s"] < run["trl"]["wall_s"] for run in runs),
            "less_memory": all(run["rmdata"]["peak_rss_mb"] < run["trl"]["peak_rss_mb"] for run in runs),
        },
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.worker:
        worker_main(args)
        return {}
    try:
        import trl  # noqa: F401
    except ImportError:
        raise SystemExit("vs_trl: TRL is not installed; pip install 'rmdata[bench]'") from None

    set_threads(args.threads)
    load_before, began = load_average(), time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vs-trl-", dir=out) as tmp_dir:
        runs = [run_seed(args, seed, Path(tmp_dir) / f"seed-{seed}") for seed in args.seeds]
    record = {
        "benchmark": "vs_trl",
        "setup": {
            "backbone": args.backbone or "tiny (recipe tiny-cpu sizes, from config, saved once per seed)",
            "finetune": args.finetune,
            "gradient_checkpointing": args.gradient_checkpointing,
            "loss": "ranking: -logsigmoid(s_c - s_r), mean over the step's pairs (rmdata loss.kind=ranking)",
            "optimizer": "AdamW betas 0.9/0.95 eps 1e-8 wd 0, clip 1.0, warmup then cosine to 0",
            "lr": args.lr,
            "max_length": args.max_length,
            "max_packed_length": args.max_packed_length,
            "grad_accum": args.grad_accum,
            "seeds": args.seeds,
            "seed_sets": "each seed: its own split (whole prompts held out), tiny-backbone init and training seed, "
            "the same for both tools (a paired comparison)",
            "threads": args.threads,
            "trl_head_init": args.trl_head_init,
            "evaluator": "transformers AutoModelForSequenceClassification, one sequence at a time, same token ids",
        },
        "same_pairs": all(run["same_pairs"] for run in runs),
        "same_tokens": all(run["same_tokens"] for run in runs),
        **summarize(runs),
        "runs": runs,
        "wall_s": round(time.perf_counter() - began, 1),
        "load_avg_1m": [load_before, load_average()],
    }
    print(json.dumps(record))
    return record


if __name__ == "__main__":
    main()
