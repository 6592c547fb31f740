"""The training loop's view of scale-out: data parallel, FSDP2 and sequence parallel under one object.

``Parallel`` is built once per run (:func:`setup_parallel`) and answers the loop's few questions:

- which packs of an optimizer step this rank trains on (:meth:`Parallel.micro_steps`, each with a weight:
  0.0 marks a filler pass that FSDP needs so that every rank runs as many forward/backward passes);
- the step's pair count over all ranks (:meth:`Parallel.total_pairs`), the loss's denominator;
- gradient sums over ranks (:meth:`Parallel.sync_grads`: one all-reduce per dtype bucket without FSDP; FSDP
  reduce-scatters in backward, set to sum rather than average);
- metric sums over ranks (:meth:`Parallel.reduce_metrics`), counted once per sequence-parallel group;
- checkpoints, resume and the final export: rank 0 writes; under FSDP the full (unsharded) state is gathered
  first, so a checkpoint or ``final/`` has the same format as a single-process run's.

The step's loss and gradients are sums of per-pack terms divided by the step's pair count, so splitting the
packs over ranks and summing changes only the order of float additions: metrics match the single process
step for step (``tests/distributed``).
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from rmdata.distributed import World, all_reduce_sum, barrier, init_distributed, share_of_step
from rmdata.errors import RmdataError
from rmdata.train import checkpoint

if TYPE_CHECKING:
    from rmdata.config import Recipe
    from rmdata.model.reward_model import BuiltModel
    from rmdata.tokens.packing import PackRow


class Parallel:
    """This rank's world and the parallel knobs of the recipe (``parallel.fsdp``, ``parallel.sequence_parallel``).

    Collectives run on ``device`` tensors (NCCL takes CUDA tensors only; gloo CPU ones).
    """

    def __init__(self, world: World, fsdp: bool, device: torch.device) -> None:
        self.world = world
        self.fsdp = fsdp and world.distributed
        self.device = device

    @property
    def is_main(self) -> bool:
        return self.world.is_main

    def describe(self) -> str:
        w = self.world
        if not w.distributed:
            return "single process"
        return (
            f"{w.world_size} ranks: data parallel {w.dp_size} x sequence parallel {w.sequence_parallel}"
            f"{', FSDP2' if self.fsdp else ''}"
        )

    # ------------------------------------------------------------------ model

    def wrap(self, built: BuiltModel) -> None:
        """Enable sequence parallel and/or shard with FSDP2, in place (``built.model`` stays the model)."""
        w = self.world
        if w.sequence_parallel > 1:
            from rmdata.model.sequence_parallel import enable_sequence_parallel

            enable_sequence_parallel(built.model, w.sequence_parallel, w.sp_rank, w.sp_group)
        if self.fsdp:
            _fully_shard(built.model, self.device, w.world_size)

    # ------------------------------------------------------------------ one optimizer step

    def micro_steps(self, rows: list[PackRow]) -> list[tuple[PackRow, float]]:
        """This rank's packs of the step, as (pack, weight): weight 1.0, or 0.0 for an FSDP filler pass."""
        w = self.world
        if w.dp_size == 1:
            return [(row, 1.0) for row in rows]
        tokens = [row.num_tokens for row in rows]
        mine = [(rows[i], 1.0) for i in share_of_step(tokens, w.dp_rank, w.dp_size)]
        if self.fsdp:  # FSDP gathers/reduces in every pass: all ranks must run as many passes
            most = max(len(share_of_step(tokens, r, w.dp_size)) for r in range(w.dp_size))
            mine += [(rows[0], 0.0)] * (most - len(mine))
        return mine

    def total_pairs(self, micro: list[tuple[PackRow, float]]) -> int:
        """Pairs in the whole step over every rank (each sequence-parallel group counted once)."""
        local = sum(len(row.units) for row, weight in micro if weight) if self.world.sp_rank == 0 else 0
        return int(all_reduce_sum(torch.tensor([local], dtype=torch.int64, device=self.device), self.world).item())

    def sync_grads(self, params: list[torch.nn.Parameter]) -> None:
        """Sum gradients over ranks (DP and SP), so every rank holds the single-process gradient."""
        if not self.world.distributed or self.fsdp:
            return
        for p in params:
            if p.grad is None:  # a rank with no pack this step still takes part in the sum
                p.grad = torch.zeros_like(p)
        buckets: dict[torch.dtype, list[torch.nn.Parameter]] = {}
        for p in params:
            buckets.setdefault(p.grad.dtype, []).append(p)  # type: ignore[union-attr]
        for group in buckets.values():
            flat = torch.cat([p.grad.reshape(-1) for p in group])  # type: ignore[union-attr]
            all_reduce_sum(flat, self.world)
            offset = 0
            for p in group:
                n = p.numel()
                p.grad.copy_(flat[offset : offset + n].view_as(p))  # type: ignore[union-attr]
                offset += n

    def clip_grad_norm(self, params: list[torch.nn.Parameter], max_norm: float) -> float:
        """Clip by the global gradient norm (over every shard under FSDP); returns the norm before clipping."""
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm or float("inf"))
        full = getattr(norm, "full_tensor", None)
        return float(full() if full is not None else norm)

    def reduce_metrics(self, loss: float, sums: torch.Tensor, tokens: int) -> tuple[float, torch.Tensor, int]:
        """Step loss, metric sums and token count over every rank (each sequence-parallel group once)."""
        if not self.world.distributed:
            return loss, sums, tokens
        values = torch.cat([torch.tensor([loss, float(tokens)], dtype=torch.float64), sums.double().cpu()])
        values = all_reduce_sum((values * (self.world.sp_rank == 0)).to(self.device), self.world).cpu()
        return float(values[0]), values[2:], int(values[1])

    def any(self, flag: bool) -> bool:
        """True on every rank when it is true on one (a Ctrl-C seen by one rank stops all at the same step)."""
        if not self.world.distributed:
            return flag
        return bool(all_reduce_sum(torch.tensor([int(flag)], device=self.device), self.world).item())

    def barrier(self) -> None:
        barrier(self.world)

    # ------------------------------------------------------------------ checkpoints and export

    def save_checkpoint(
        self,
        root: Path,
        step: int,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        state: dict[str, Any],
        keep: int,
    ) -> None:
        """``root/step-N`` in the single-process format, written by rank 0 (full state gathered under FSDP)."""
        if not self.fsdp:
            if self.is_main:
                checkpoint.save_checkpoint(root, step, model, optimizer, state, keep)
            self.barrier()
            return
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
            get_optimizer_state_dict,
        )

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        params = get_model_state_dict(model, options=options)
        optim = get_optimizer_state_dict(model, optimizer, options=options)
        if self.is_main:
            from rmdata.dataset_dir import atomic_directory

            with atomic_directory(root / f"step-{step}", overwrite=True) as tmp:
                torch.save({n: v for n, v in params.items() if n in trainable}, tmp / "trainable.pt")
                torch.save(optim, tmp / "optimizer.pt")
                torch.save({"torch": torch.get_rng_state()}, tmp / "rng.pt")
                (tmp / "state.json").write_text(json.dumps({"step": step, "fsdp": True, **state}, indent=2))
            for old in checkpoint.list_checkpoints(root)[:-keep]:
                shutil.rmtree(old)
        self.barrier()

    def load_checkpoint(self, path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """Restore a checkpoint on every rank (each reads the files: a shared file system is assumed)."""
        state: dict[str, Any] = json.loads((path / "state.json").read_text(encoding="utf-8"))
        if bool(state.get("fsdp", False)) != self.fsdp:
            raise RmdataError(
                f"{path} was written {'with' if state.get('fsdp') else 'without'} parallel.fsdp; resume it the "
                "same way (the optimizer state formats differ)"
            )
        if not self.fsdp:
            return checkpoint.load_checkpoint(path, model, optimizer)
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_model_state_dict,
            set_optimizer_state_dict,
        )

        options = StateDictOptions(full_state_dict=True, strict=False)
        saved = torch.load(path / "trainable.pt", map_location="cpu", weights_only=True)
        set_model_state_dict(model, saved, options=options)
        optim = torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True)
        set_optimizer_state_dict(model, optimizer, optim, options=StateDictOptions(full_state_dict=True))
        torch.set_rng_state(torch.load(path / "rng.pt", weights_only=False)["torch"])
        return state

    def export(self, built: BuiltModel, recipe: Recipe, out: Path) -> None:
        """Write ``final/`` on rank 0 in the single-process format (gathering the full state under FSDP)."""
        from rmdata.model.export import save_reward_model

        if not self.fsdp:
            if self.is_main:
                save_reward_model(built, out)
            self.barrier()
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        from rmdata.model.reward_model import build_reward_model

        full = get_model_state_dict(built.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if self.is_main:  # an unsharded copy on CPU, so no GPU holds the whole model
            plain = build_reward_model(recipe.model, built.tokenizer, built.reward_token, device="cpu")
            plain.model.load_state_dict(full)
            plain.model.export_dtype = built.model.export_dtype
            save_reward_model(plain, out)
        self.barrier()


def setup_parallel(recipe: Recipe, device: torch.device) -> Parallel:
    """Join the process group the launcher describes (none for a plain run) and check the recipe fits it."""
    world = init_distributed(device.type, recipe.parallel.sequence_parallel)
    if device.type == "cuda" and world.distributed:
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if recipe.parallel.fsdp and recipe.model.finetune != "full":
        raise RmdataError(
            f"parallel.fsdp shards full fine-tuning; model.finetune={recipe.model.finetune} trains small adapters "
            "that plain data parallel already handles: set parallel.fsdp=false"
        )
    parallel = Parallel(world, recipe.parallel.fsdp, device)
    if world.distributed and world.dp_size > recipe.train.grad_accum and world.is_main:
        import logging

        idle = world.dp_size - recipe.train.grad_accum
        logging.getLogger("rmdata").warning(
            "train.grad_accum=%d packs per step over %d data-parallel ranks: %d rank(s) idle each step; "
            "raise train.grad_accum to a multiple of %d",
            recipe.train.grad_accum,
            world.dp_size,
            idle,
            world.dp_size,
        )
    return parallel


def _fully_shard(model: torch.nn.Module, device: torch.device, world_size: int) -> None:
    """FSDP2 on every decoder layer (``_no_split_modules``) and on the root, with gradients summed."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import FSDPModule, fully_shard

    # RewardModel returns a view ([n, 1] -> [n]); the loop only slices it, never writes into it in place.
    warnings.filterwarnings("ignore", message="FSDP2-wrapped module .* returned a view tensor")
    mesh = init_device_mesh(device.type, (world_size,))
    trunk: Any = getattr(model, "trunk", model)
    layer_names = set(getattr(trunk, "_no_split_modules", None) or [])
    layers = [m for m in trunk.modules() if type(m).__name__ in layer_names]
    if not layers:
        raise RmdataError(f"{type(trunk).__name__} names no decoder layer class (_no_split_modules) to shard")
    for layer in layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    for module in model.modules():
        if isinstance(module, FSDPModule):  # the loss is already divided by the global pair count: sum, not mean
            module.set_gradient_divide_factor(1.0)
            module.set_force_sum_reduction_for_comms(True)
