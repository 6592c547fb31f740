"""Process groups for torchrun and SLURM, rank helpers, and the deterministic split of a step's packs.

Launch. ``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
``srun`` alone sets ``SLURM_PROCID``, ``SLURM_NTASKS`` and ``SLURM_LOCALID`` (then ``MASTER_ADDR`` and
``MASTER_PORT`` must be exported by the batch script). :func:`init_distributed` reads either, joins the group
with NCCL on CUDA and gloo on CPU, and is a no-op for a plain ``python -m rmdata`` (world size 1).

Rank layout. With sequence parallel degree ``sp``, ranks ``[k*sp, (k+1)*sp)`` form sequence-parallel group
``k`` (adjacent ranks, so on one node by default) and share data-parallel rank ``k``. Every rank of a group
takes the same packs; the ``world_size // sp`` groups split each optimizer step's packs between them.

:func:`share_of_step` is pure (no torch): the split depends only on the packs' token counts and the
data-parallel size, so every rank computes the same assignment without communicating.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rmdata.errors import RmdataError

if TYPE_CHECKING:
    import torch

LAUNCH_VARS = (("RANK", "WORLD_SIZE", "LOCAL_RANK"), ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"))


@dataclass
class World:
    """Where this process stands: its rank, the world size and the sequence-parallel layout."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    sequence_parallel: int = 1
    sp_group: Any = None  # torch.distributed ProcessGroup of this rank's sequence-parallel group

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only rank that prints and writes run files."""
        return self.rank == 0

    @property
    def dp_rank(self) -> int:
        return self.rank // self.sequence_parallel

    @property
    def dp_size(self) -> int:
        return self.world_size // self.sequence_parallel

    @property
    def sp_rank(self) -> int:
        return self.rank % self.sequence_parallel


def launch_ranks(env: dict[str, str] | None = None) -> tuple[int, int, int] | None:
    """(rank, world size, local rank) from torchrun's or SLURM's variables, or ``None`` outside a launcher."""
    env = dict(os.environ) if env is None else env
    for rank_var, size_var, local_var in LAUNCH_VARS:
        if rank_var in env and size_var in env:
            return int(env[rank_var]), int(env[size_var]), int(env.get(local_var, "0"))
    return None


def is_main_process() -> bool:
    """Rank 0 of the running process group, or of the launcher's ranks before one exists; True alone."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    launched = launch_ranks()
    return launched is None or launched[0] == 0


def backend_for(device_type: str) -> str:
    """NCCL for CUDA tensors, gloo for CPU tensors."""
    return "nccl" if device_type == "cuda" else "gloo"


def init_distributed(device_type: str, sequence_parallel: int = 1, init_method: str | None = None) -> World:
    """Join (or reuse) the default process group and build the sequence-parallel groups.

    ``init_method`` overrides the launcher's ``env://`` rendezvous (tests pass a ``file://`` path after
    initializing the group themselves). Raises a clear error when ``sequence_parallel`` does not divide the
    world size.
    """
    import torch.distributed as dist

    if sequence_parallel < 1:
        raise RmdataError(f"parallel.sequence_parallel={sequence_parallel} must be >= 1 (1 = off)")
    if dist.is_available() and dist.is_initialized():
        rank, size = dist.get_rank(), dist.get_world_size()
        local = launch_ranks()
        local_rank = local[2] if local is not None else 0
    else:
        launched = launch_ranks()
        if launched is None or launched[1] == 1:
            if sequence_parallel > 1:
                raise RmdataError(
                    f"parallel.sequence_parallel={sequence_parallel} needs that many ranks; launch with "
                    f"torchrun --nproc_per_node {sequence_parallel} -m rmdata train ..."
                )
            return World()
        rank, size, local_rank = launched
        if init_method is None and "MASTER_ADDR" not in os.environ:
            raise RmdataError(
                "WORLD_SIZE > 1 but MASTER_ADDR is not set: launch with torchrun, or export MASTER_ADDR and "
                "MASTER_PORT in the SLURM batch script (docs/scale-out.md)"
            )
        dist.init_process_group(backend_for(device_type), init_method=init_method, rank=rank, world_size=size)
        atexit.register(_destroy)
    if size % sequence_parallel:
        raise RmdataError(
            f"parallel.sequence_parallel={sequence_parallel} must divide the {size} ranks; launch a multiple of "
            f"{sequence_parallel} processes or change it"
        )
    world = World(rank, size, local_rank, sequence_parallel)
    if sequence_parallel > 1:
        for first in range(0, size, sequence_parallel):  # every rank creates every group, in the same order
            group = dist.new_group(list(range(first, first + sequence_parallel)))
            if first == world.dp_rank * sequence_parallel:
                world.sp_group = group
    return world


def _destroy() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def share_of_step(num_tokens: Sequence[int], dp_rank: int, dp_size: int) -> list[int]:
    """Indices of the packs data-parallel rank ``dp_rank`` of ``dp_size`` trains on, in step order.

    Longest pack first, each to the rank with the fewest tokens so far (ties: lowest rank; equal packs: step
    order), so the ranks' loads differ by at most one pack. Every pack goes to exactly one rank.
    """
    if not 0 <= dp_rank < dp_size:
        raise ValueError(f"dp_rank {dp_rank} is outside 0..{dp_size - 1}")
    loads = [0] * dp_size
    owner = [0] * len(num_tokens)
    for index in sorted(range(len(num_tokens)), key=lambda i: (-num_tokens[i], i)):
        rank = min(range(dp_size), key=lambda r: (loads[r], r))
        owner[index] = rank
        loads[rank] += num_tokens[index]
    return [i for i, r in enumerate(owner) if r == dp_rank]


def all_reduce_sum(tensor: torch.Tensor, world: World) -> torch.Tensor:
    """Sum ``tensor`` over every rank in place (a no-op in one process); returns it."""
    if world.distributed:
        import torch.distributed as dist

        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier(world: World) -> None:
    if world.distributed:
        import torch.distributed as dist

        dist.barrier()


def agree(world: World, error: Exception | None, payload: Any = None) -> list[Any]:
    """A collective check point: every rank passes its error (or None) and a small payload.

    When any rank failed, every rank raises: the failed ones their own error, the others an RmdataError
    naming the lowest failed rank and its message, so no rank goes on to a barrier that another will never
    reach. Otherwise returns every rank's payload, by rank. One process: raises ``error`` or returns
    ``[payload]``.
    """
    if not world.distributed:
        if error is not None:
            raise error
        return [payload]
    import torch.distributed as dist

    message = None
    if error is not None:
        message = str(error) if isinstance(error, RmdataError) else f"{type(error).__name__}: {error}"
    gathered: list[Any] = [None] * world.world_size
    dist.all_gather_object(gathered, (message, payload))
    failed = [(rank, text) for rank, (text, _) in enumerate(gathered) if text is not None]
    if failed:
        if error is not None:
            raise error
        rank, text = failed[0]
        raise RmdataError(f"rank {rank} of {world.world_size} stopped: {text}")
    return [item for _, item in gathered]
