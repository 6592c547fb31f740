"""`rmdata train`: one readable loop, setup -> train -> evaluate -> save. No Trainer subclassing.

Each optimizer step runs ``train.grad_accum`` packed rows. Every row's loss is divided by the number of
pairs in the whole step, so a pair weighs the same whatever it was packed with. Checkpoints hold everything
a resumed run needs to replay the remaining steps bit for bit on CPU, plus the step count and the recipe
they were planned with, which a resume checks.

Everything that can fail on bad input (recipe, data, model, the resume's checkpoint) runs before the run
directory is written. A step whose loss is not finite stops the run with one line naming the step.
"""

from __future__ import annotations

import json
import math
import signal
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch

from rmdata.config import Recipe, recipe_to_dict
from rmdata.errors import RmdataError
from rmdata.model.reward_model import BuiltModel, autocast_for, pick_device
from rmdata.progress import TrainProgress, logger
from rmdata.train.checkpoint import list_checkpoints
from rmdata.train.data import StepPlan, TrainingData, describe, prepare_training_data
from rmdata.train.evaluate import evaluate_pairs
from rmdata.train.losses import metric_means, reward_loss, reward_metric_sums, zero_metric_sums
from rmdata.train.memory import release_freed_memory
from rmdata.train.optim import build_optimizer, lr_factor, set_lr
from rmdata.train.parallel import Parallel, setup_parallel
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

log = logger()
StepHook = Callable[[int, dict[str, float]], None]


@dataclass
class TrainResult:
    run: RunDir
    steps: int  # optimizer steps completed
    eval: dict[str, float] | None  # final held-out metrics (None when interrupted or without eval data)
    interrupted: bool


@dataclass
class Session:
    """Everything a run needs once set up: the model, its data, the step plan and where it writes."""

    recipe: Recipe
    run: RunDir
    device: torch.device
    built: BuiltModel
    data: TrainingData
    steps: StepPlan
    warmup: int
    optimizer: torch.optim.Optimizer
    autocast: AbstractContextManager[object]
    start_step: int
    run_info: dict[str, Any]
    par: Parallel  # this process's place under torchrun (one process: a no-op)

    def checkpoint(self, step: int) -> None:
        state = {"total_steps": len(self.steps), "recipe": recipe_to_dict(self.recipe)}
        cfg = self.recipe.train
        self.par.save_checkpoint(  # rank 0 writes; the full state under FSDP
            self.run.checkpoints, step, self.built.model, self.optimizer, state, cfg.keep_checkpoints
        )


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
    session = setup(recipe, run, resume=resume, overwrite=overwrite)
    step, interrupted = run_steps(session, on_step, show_progress)
    if interrupted:
        session.run_info["interrupted_at"] = step
        write_json(run.run_json, session.run_info)
        return TrainResult(run, step, None, interrupted=True)
    final_eval = evaluate(session, step)
    save(session, step, final_eval)
    return TrainResult(run, step, final_eval, interrupted=False)


def setup(recipe: Recipe, run: RunDir, *, resume: bool, overwrite: bool) -> Session:
    """Check, read, build and (on resume) restore everything, then create the run directory and run.json."""
    from rmdata.model.reward_model import build_reward_model, load_tokenizer
    from rmdata.tokens.reward_token import resolve_reward_token

    check_run_dir(run, recipe, resume=resume, overwrite=overwrite)
    if resume:
        check_resumable(run)
    par = setup_parallel(recipe, pick_device(recipe.train.device))  # joins the process group under torchrun
    par.barrier()  # every rank checked the run directory before rank 0 writes to it
    device = par.device
    tokenizer = load_tokenizer(recipe.model)
    reward_token = resolve_reward_token(tokenizer, recipe.model.reward_token, recipe.model.reward_token_id)
    data = prepare_training_data(recipe, tokenizer, reward_token)
    cfg = recipe.train
    steps = StepPlan(
        data.train.plan, epochs=cfg.epochs, max_steps=cfg.max_steps, grad_accum=cfg.grad_accum, seed=cfg.seed
    )
    torch.manual_seed(cfg.seed)
    built = build_reward_model(recipe.model, tokenizer, reward_token, device=device)
    par.wrap(built)  # sequence parallel and/or FSDP2, in place, before the optimizer sees the parameters
    optimizer = build_optimizer(built.model, cfg.lr, cfg.head_lr, cfg.weight_decay)
    start_step = restore(run, built, optimizer, recipe, len(steps), par) if resume else 0

    if par.is_main:  # rank 0 writes the run files
        start_run(run, recipe, overwrite=overwrite)
        if data.drops:
            from rmdata.io import write_rejects

            write_rejects(run.rejects / "train.jsonl", [d.to_json() for d in data.drops])
        if resume:
            truncate_metrics(run, start_step)
        elif run.metrics.exists():
            run.metrics.unlink()
    par.barrier()
    autocast, dtype, dtype_reason = autocast_for(recipe.model.dtype, device)
    warmup = math.ceil(cfg.warmup_ratio * len(steps))
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
        "resumed_from": start_step if resume else None,
        "parallel": par.describe(),
    }
    if par.is_main:
        write_json(run.run_json, run_info)
        log.info(describe(data.summary, str(run.rejects / "train.jsonl") if data.drops else None))
        log.info(f"compute: {dtype_reason}")
        if par.world.distributed:
            log.info(f"parallel: {par.describe()}")
        if resume:
            log.info(f"resumed from step {start_step} of {len(steps)}")
    return Session(recipe, run, device, built, data, steps, warmup, optimizer, autocast, start_step, run_info, par)


def check_resumable(run: RunDir) -> None:
    """``--resume`` needs a run that has a checkpoint and has not finished."""
    if run.run_json.is_file():
        try:
            completed = json.loads(run.run_json.read_text(encoding="utf-8")).get("completed_steps")
        except (ValueError, AttributeError):
            completed = None
        if completed is not None:
            raise RmdataError(
                f"--resume: {run.path} is a finished run ({completed} steps, model in {run.final}); nothing to "
                "resume: pass --overwrite to train it again, or --output-dir for a new run"
            )
    if not list_checkpoints(run.checkpoints):
        raise RmdataError(
            f"--resume: {run.path} holds no checkpoint to resume from ({run.checkpoints}); drop --resume to start "
            "a new run (with --overwrite if the directory holds an unfinished one)"
        )


def restore(
    run: RunDir, built: BuiltModel, optimizer: torch.optim.Optimizer, recipe: Recipe, total: int, par: Parallel
) -> int:
    """Load the newest checkpoint into the model and optimizer after checking it belongs to this plan."""
    path = list_checkpoints(run.checkpoints)[-1]
    state = par.load_checkpoint(path, built.model, optimizer)
    saved_total = state.get("total_steps")
    if saved_total != total:
        raise RmdataError(
            f"--resume: {path.name} was saved by a run of {saved_total} steps, but this recipe and data plan "
            f"{total} steps (did the training data change?); resume with the same data, or start a new run"
        )
    if "recipe" in state and (differ := _differences(state["recipe"], recipe_to_dict(recipe))):
        raise RmdataError(
            f"--resume: {path.name} was saved with a different recipe ({differ}); resume with the same one"
        )
    return int(state["step"])


def _differences(saved: dict[str, Any], now: dict[str, Any], prefix: str = "") -> str:
    """``a.b: old -> new`` for each leaf that differs, comma-separated."""
    out = []
    for key in sorted(set(saved) | set(now)):
        old, new = saved.get(key), now.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            if inner := _differences(old, new, f"{prefix}{key}."):
                out.append(inner)
        elif old != new:
            out.append(f"{prefix}{key}: {old!r} -> {new!r}")
    return ", ".join(out)


def run_steps(session: Session, on_step: StepHook | None, show_progress: bool) -> tuple[int, bool]:
    """The loop: optimizer steps from ``start_step``, logging, periodic eval and checkpoints, Ctrl-C.

    Returns the steps completed and whether a Ctrl-C stopped the run early (a checkpoint was saved).
    """
    cfg, run, total = session.recipe.train, session.run, len(session.steps)
    step = session.start_step
    session.built.model.train()
    main = session.par.is_main  # only rank 0 prints and writes
    with _StopFlag() as stop, TrainProgress(total, step, enabled=show_progress and main) as progress:
        while step < total:
            metrics = optimizer_step(session, step)
            step += 1
            progress.update(step, metrics)
            if main and (step % cfg.log_steps == 0 or step == total):
                append_metrics(run, {"step": step, "split": "train", **_rounded(metrics)})
            if cfg.eval_steps and step % cfg.eval_steps == 0 and step < total and session.data.eval is not None:
                held_out = evaluate_pairs(
                    session.built.model, session.data.eval, session.recipe.loss, session.device, session.autocast
                )
                if main:
                    append_metrics(run, {"step": step, "split": "eval", **_rounded(held_out)})
                    log.info(f"step {step}: eval accuracy {held_out['accuracy']:.3f}, loss {held_out['loss']:.4f}")
            if on_step is not None:
                on_step(step, metrics)
            periodic = bool(cfg.save_steps) and step % cfg.save_steps == 0
            stopping = session.par.any(stop.requested)  # a Ctrl-C seen by one rank stops all at this step
            if step < total and (periodic or stopping):
                session.checkpoint(step)
                if stopping:
                    return step, True
    return step, False


def optimizer_step(session: Session, step: int) -> dict[str, float]:
    """One optimizer step (0-based ``step``) over its packed rows; returns the step's metrics."""
    began = time.perf_counter()
    model, data, device, cfg = session.built.model, session.data.train, session.device, session.recipe.train
    par = session.par
    micro = par.micro_steps(session.steps[step])  # this rank's share of the step's packed rows
    step_pairs = par.total_pairs(micro)  # pairs in the whole step, over every rank
    params = [p for p in model.parameters() if p.requires_grad]
    sums = zero_metric_sums()
    step_loss, tokens = 0.0, 0
    for row, weight in micro:  # weight 0.0: a filler pass that keeps FSDP ranks in step
        batch = data.batch(row).to(device)
        margin = torch.tensor(data.margins(row), device=device)
        with session.autocast:
            scores = model(batch)
        chosen, rejected = scores[0::2], scores[1::2]
        loss = reward_loss(chosen, rejected, num_pairs=step_pairs, spec=session.recipe.loss, margin=margin) * weight
        loss.backward()
        step_loss += float(loss.detach())
        sums += reward_metric_sums(chosen, rejected).cpu() * weight
        tokens += batch.num_tokens * int(weight)
        del batch, scores, chosen, rejected, loss  # the row's graph is gone: hand its pages back
        if device.type == "cpu":
            release_freed_memory()
    par.sync_grads(params)  # sum gradients over ranks
    step_loss, sums, tokens = par.reduce_metrics(step_loss, sums, tokens)
    if not math.isfinite(step_loss):
        raise RmdataError(
            f"step {step + 1}: the training loss is {step_loss} (not finite); the run stopped without saving a "
            f"model: lower train.lr (now {cfg.lr:g}) or check the data (margins, duplicated pairs)"
        )
    grad_norm = par.clip_grad_norm(params, cfg.max_grad_norm)  # the global norm (over shards under FSDP)
    lr = set_lr(session.optimizer, lr_factor(step, len(session.steps), session.warmup, cfg.min_lr_ratio))
    session.optimizer.step()
    session.optimizer.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - began
    metrics = {"loss": step_loss, **metric_means(sums), "lr": lr, "grad_norm": float(grad_norm)}
    metrics["tokens_per_s"] = tokens / seconds
    return metrics


def evaluate(session: Session, step: int) -> dict[str, float] | None:
    """Final held-out metrics (None without eval pairs); a non-finite loss fails the run."""
    if session.data.eval is None:
        return None
    metrics = evaluate_pairs(
        session.built.model, session.data.eval, session.recipe.loss, session.device, session.autocast
    )
    if not all(math.isfinite(v) for v in metrics.values()):
        bad = ", ".join(f"{k}={v}" for k, v in metrics.items() if not math.isfinite(v))
        raise RmdataError(f"step {step}: the held-out evaluation is not finite ({bad}); no model was saved")
    if session.par.is_main:
        append_metrics(session.run, {"step": step, "split": "eval", **_rounded(metrics)})
        write_json(session.run.eval_json, metrics)
    return metrics


def save(session: Session, step: int, final_eval: dict[str, float] | None) -> None:
    """Export the model to ``final/``, mark the run finished in run.json and point ``latest`` at it."""
    session.par.export(session.built, session.recipe, session.run.final)  # rank 0 (the full state under FSDP)
    session.run_info["completed_steps"] = step
    if session.par.is_main:
        write_json(session.run.run_json, session.run_info)
        point_latest(session.run)


def _rounded(metrics: dict[str, float]) -> dict[str, float]:
    return {k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v) for k, v in metrics.items()}
