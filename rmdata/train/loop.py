"""`rmdata train`: one readable loop, setup -> train -> evaluate -> save. No Trainer subclassing.

Each optimizer step runs ``train.grad_accum`` packed rows. Every row's loss is divided by the number of
pairs in the whole step, so a pair weighs the same whatever it was packed with. Checkpoints hold everything
a resumed run needs to replay the remaining steps bit for bit on CPU.
"""

from __future__ import annotations

import dataclasses
import math
import signal
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from rmdata.config import Recipe
from rmdata.progress import TrainProgress
from rmdata.train.checkpoint import list_checkpoints
from rmdata.train.data import describe, plan_steps, prepare_training_data
from rmdata.train.evaluate import evaluate_pairs
from rmdata.train.losses import LossSpec, metric_means, reward_loss, reward_metric_sums
from rmdata.train.optim import build_optimizer, lr_factor, set_lr
from rmdata.train.parallel import setup_parallel  # parallel
from rmdata.train.runs import (
    RunDir,
    append_metrics,
    check_run_dir,
    environment_info,
    point_latest,
    start_run,
    truncate_metrics,
    write_json,
)

StepHook = Callable[[int, dict[str, float]], None]


@dataclass
class TrainResult:
    run: RunDir
    steps: int  # optimizer steps completed
    eval: dict[str, float] | None  # final held-out metrics (None when interrupted or without eval data)
    interrupted: bool


class _StopFlag:
    """First Ctrl-C asks the loop to checkpoint and stop after the current step; a second one aborts."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> _StopFlag:
        self._previous = signal.getsignal(signal.SIGINT)
        try:
            signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: leave Ctrl-C alone
            self._previous = None
        return self

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def pick_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def autocast_for(recipe: Recipe, device: torch.device) -> tuple[AbstractContextManager[object], torch.dtype, str]:
    """The autocast context, the compute dtype (``rmdata.model.reward_model.compute_dtype`` decides it) and why."""
    from rmdata.model.reward_model import compute_dtype

    dtype = compute_dtype(recipe.model.dtype, device)
    if dtype == torch.bfloat16 and device.type == "cuda":
        return (
            torch.autocast("cuda", dtype=dtype),
            dtype,
            f"bfloat16 autocast on CUDA (model.dtype={recipe.model.dtype})",
        )
    if dtype == torch.bfloat16:
        return nullcontext(), dtype, "bfloat16 weights (model.dtype=bfloat16)"
    return (
        nullcontext(),
        dtype,
        f"float32 (model.dtype={recipe.model.dtype} on {device.type}; bf16 autocast is CUDA-only)",
    )


def loss_spec(recipe: Recipe) -> LossSpec:
    return LossSpec(**dataclasses.asdict(recipe.loss))


def train(
    recipe: Recipe,
    run: RunDir,
    *,
    resume: bool = False,
    overwrite: bool = False,
    on_step: StepHook | None = None,
    show_progress: bool = True,
) -> TrainResult:
    """Run (or resume) training as the recipe says; returns where it stopped and the final metrics."""
    from rmdata.model.reward_model import build_reward_model, load_tokenizer
    from rmdata.tokens.templates import resolve_reward_token

    # Everything that can fail on bad input runs before the run directory is touched.
    check_run_dir(run, recipe, resume=resume, overwrite=overwrite)
    par = setup_parallel(recipe, pick_device(recipe.train.device))  # parallel: process group (torchrun)
    par.barrier()  # parallel: every rank checked the run directory before rank 0 writes to it
    device = par.device  # parallel: cuda:LOCAL_RANK under torchrun
    tokenizer = load_tokenizer(recipe.model)
    reward_token = resolve_reward_token(tokenizer, recipe.model.reward_token, recipe.model.reward_token_id)
    data = prepare_training_data(recipe, tokenizer, reward_token)
    torch.manual_seed(recipe.train.seed)
    built = build_reward_model(recipe.model, tokenizer, reward_token, device=device)
    model = built.model
    par.wrap(built)  # parallel: sequence parallel and/or FSDP2, in place

    if par.is_main:  # parallel: rank 0 writes run files
        start_run(run, recipe, overwrite=overwrite)
    par.barrier()  # parallel
    if data.rejects and par.is_main:  # parallel: rank 0
        from rmdata.io import write_rejects

        write_rejects(run.rejects / "train.jsonl", data.rejects)
    spec = loss_spec(recipe)
    autocast, dtype, dtype_reason = autocast_for(recipe, device)
    cfg = recipe.train
    steps = plan_steps(
        data.train.plan, epochs=cfg.epochs, max_steps=cfg.max_steps, grad_accum=cfg.grad_accum, seed=cfg.seed
    )
    warmup = math.ceil(cfg.warmup_ratio * len(steps))
    optimizer = build_optimizer(model, cfg.lr, cfg.head_lr, cfg.weight_decay)

    start_step, resumed_from = 0, None
    if resume and (found := list_checkpoints(run.checkpoints)):
        start_step = resumed_from = int(par.load_checkpoint(found[-1], model, optimizer)["step"])  # parallel
        if par.is_main:  # parallel: rank 0
            truncate_metrics(run, start_step)
    elif run.metrics.exists() and par.is_main:  # parallel: rank 0
        run.metrics.unlink()

    run_info: dict[str, Any] = {
        "recipe": recipe.name,
        "environment": environment_info(),
        "device": str(device),
        "attention": {"backend": built.attention.name, "reason": built.attention.reason},
        "dtype": {"compute": str(dtype).removeprefix("torch."), "reason": dtype_reason},
        "reward_token": {"id": reward_token.id, "text": reward_token.text, "rule": reward_token.rule},
        "parameters": {"total": built.total_params, "trainable": built.trainable_params},
        "data": data.summary,
        "steps": {"total": len(steps), "warmup": warmup, "grad_accum": cfg.grad_accum},
        "resumed_from": resumed_from,
        "parallel": par.describe(),  # parallel
    }
    if par.is_main:  # parallel: rank 0
        write_json(run.run_json, run_info)

    model.train()
    step = start_step
    interrupted = False
    params = [p for p in model.parameters() if p.requires_grad]
    with _StopFlag() as stop, TrainProgress(len(steps), start_step, enabled=show_progress and par.is_main) as progress:
        progress.note(describe(data.summary, str(run.rejects / "train.jsonl") if data.rejects else None))
        progress.note(f"attention: {built.attention.name} ({built.attention.reason}); {dtype_reason}")
        progress.note(f"parallel: {par.describe()}")  # parallel
        if resumed_from is not None:
            progress.note(f"resumed from step {resumed_from}")
        while step < len(steps):
            began = time.perf_counter()
            micro = par.micro_steps(steps[step])  # parallel: this rank's share of the step's packs
            step_pairs = par.total_pairs(micro)  # parallel: all-reduced pair count
            sums = torch.zeros(5, dtype=torch.float64)
            step_loss, tokens = 0.0, 0
            for row, weight in micro:  # parallel: weight 0.0 = FSDP filler pass
                batch = data.train.batch(row).to(device)
                margin = torch.tensor(data.train.margins(row), device=device)
                with autocast:
                    scores = model(batch)
                chosen, rejected = scores[0::2], scores[1::2]
                loss = reward_loss(chosen, rejected, num_pairs=step_pairs, spec=spec, margin=margin) * weight
                loss.backward()
                step_loss += float(loss.detach())
                sums += reward_metric_sums(chosen, rejected).cpu() * weight  # parallel: weight
                tokens += batch.num_tokens * int(weight)  # parallel: weight
            par.sync_grads(params)  # parallel: sum gradients over ranks
            step_loss, sums, tokens = par.reduce_metrics(step_loss, sums, tokens)  # parallel
            grad_norm = par.clip_grad_norm(params, cfg.max_grad_norm)  # parallel: global norm (FSDP shards)
            lr = set_lr(optimizer, lr_factor(step, len(steps), warmup, cfg.min_lr_ratio))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            seconds = time.perf_counter() - began
            metrics = {"loss": step_loss, **metric_means(sums), "lr": lr, "grad_norm": float(grad_norm)}
            metrics["tokens_per_s"] = tokens / seconds
            progress.update(step, metrics)
            if (step % cfg.log_steps == 0 or step == len(steps)) and par.is_main:  # parallel: rank 0
                append_metrics(run, {"step": step, "split": "train", **_rounded(metrics)})
            if data.eval is not None and cfg.eval_steps and step % cfg.eval_steps == 0 and step < len(steps):
                held_out = evaluate_pairs(model, data.eval, spec, device, autocast)
                if par.is_main:  # parallel: rank 0
                    append_metrics(run, {"step": step, "split": "eval", **_rounded(held_out)})
                progress.note(f"step {step}: eval accuracy {held_out['accuracy']:.3f}, loss {held_out['loss']:.4f}")
            if cfg.save_steps and step % cfg.save_steps == 0 and step < len(steps):
                par.save_checkpoint(  # parallel: rank 0 writes (full state under FSDP)
                    run.checkpoints, step, model, optimizer, {"total_steps": len(steps)}, cfg.keep_checkpoints
                )
            if on_step is not None:
                on_step(step, metrics)
            if par.any(stop.requested) and step < len(steps):  # parallel: all ranks stop together
                par.save_checkpoint(  # parallel
                    run.checkpoints, step, model, optimizer, {"total_steps": len(steps)}, cfg.keep_checkpoints
                )
                interrupted = True
                break

    if interrupted:
        run_info["interrupted_at"] = step
        if par.is_main:  # parallel: rank 0
            write_json(run.run_json, run_info)
        return TrainResult(run, step, None, interrupted=True)

    final_eval = evaluate_pairs(model, data.eval, spec, device, autocast) if data.eval is not None else None
    if final_eval is not None and par.is_main:  # parallel: rank 0
        append_metrics(run, {"step": step, "split": "eval", **_rounded(final_eval)})
        write_json(run.eval_json, final_eval)
    par.export(built, recipe, run.final)  # parallel: rank 0 writes final/ (full state under FSDP)
    run_info["completed_steps"] = step
    if par.is_main:  # parallel: rank 0
        write_json(run.run_json, run_info)
        point_latest(run)
    return TrainResult(run, step, final_eval, interrupted=False)


def _rounded(metrics: dict[str, float]) -> dict[str, float]:
    return {k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v) for k, v in metrics.items()}
