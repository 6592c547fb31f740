"""Ulysses sequence parallelism: ``P`` ranks share one packed row, each holding ``T / P`` of its tokens.

Everything outside attention (embeddings, RoPE from ``position_ids``, MLPs, norms) works token by token, so a
rank runs it on its own contiguous chunk. Around attention an all-to-all trades the split: queries, keys and
values go from ``[1, h, T/P, d]`` (sequence-sharded, all heads) to ``[1, h/P, T, d]`` (head-sharded, the whole
row), the varlen backend runs with the row's global ``cu_seqlens`` and so sees every segment whole, and a
second all-to-all brings the output back to ``[1, T/P, h, d]``. The backward of an all-to-all is the same
all-to-all on the gradients, so gradients are exact.

Padding. A row of ``T`` tokens, ``T`` not divisible by ``P``, gets one extra segment of ``(-T) mod P`` pad
tokens at its end (:func:`pad_to_multiple`). It is a segment of its own in ``cu_seqlens``, so no real token
attends to it or is attended by it, and it has no reward token, so no score, loss or gradient reads it:
it adds nothing (``tests/distributed`` checks SP=2 against SP=1 on odd-length rows).

Scores. Each rank scores the reward tokens that fall in its chunk; :class:`_SumScores` adds the ranks'
partial score vectors so every rank holds all ``n`` scores and computes the same loss. Its backward is the
identity: each rank's loss is the whole loss, so the gradient of a score is the same on every rank, and only
the rank that computed a score passes it on. The ranks' parameter gradients are partial sums over their
tokens; summing them over the group (``rmdata.train.parallel``) gives the single-process gradient.

Heads. Each rank gets whole heads: ``num_attention_heads`` must be divisible by ``P`` (else a clear error).
When only the key/value heads are not (grouped-query attention with few KV heads), keys and values are
repeated to one per query head before the all-to-all: exact, at the cost of the repeated K/V traffic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from rmdata.errors import RmdataError
from rmdata.model.attention import padding_mask_only, varlen_kwargs
from rmdata.tokens.batching import PackedBatch

if TYPE_CHECKING:
    from rmdata.model.reward_model import RewardModel


class _AllToAll(torch.autograd.Function):
    """``x[i]`` goes to rank ``i`` of ``group``; ``out[j]`` came from rank ``j``. Its own backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, group: Any) -> torch.Tensor:
        import torch.distributed as dist

        ctx.group = group
        x = x.contiguous()
        out = torch.empty_like(x, memory_format=torch.contiguous_format)  # empty_like alone keeps x's strides
        dist.all_to_all_single(out, x, group=group)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        import torch.distributed as dist

        grad = grad.contiguous()
        out = torch.empty_like(grad, memory_format=torch.contiguous_format)
        dist.all_to_all_single(out, grad, group=ctx.group)
        return out, None


class _SumScores(torch.autograd.Function):
    """Forward: sum the ranks' partial score vectors. Backward: identity (see the module docstring)."""

    @staticmethod
    def forward(ctx: Any, partial: torch.Tensor, group: Any) -> torch.Tensor:
        import torch.distributed as dist

        total = partial.clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM, group=group)
        return total

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


def sequence_to_heads(x: torch.Tensor, size: int, group: Any) -> torch.Tensor:
    """``[1, h, T/P, d]`` (this rank's tokens, all heads) -> ``[1, h/P, T, d]`` (this rank's heads, all tokens)."""
    _, h, c, d = x.shape
    received = _AllToAll.apply(x.reshape(size, h // size, c, d), group)  # [P (chunk), h/P, T/P, d]
    return received.permute(1, 0, 2, 3).reshape(1, h // size, size * c, d)


def heads_to_sequence(x: torch.Tensor, size: int, group: Any) -> torch.Tensor:
    """``[1, T, h/P, d]`` (an attention output, this rank's heads) -> ``[1, T/P, h, d]`` (this rank's tokens)."""
    _, t, hp, d = x.shape
    received = _AllToAll.apply(x.reshape(size, t // size, hp, d), group)  # [P (head group), T/P, h/P, d]
    return received.permute(1, 0, 2, 3).reshape(1, t // size, size * hp, d)


def pad_to_multiple(batch: PackedBatch, multiple: int, pad_id: int = 0) -> PackedBatch:
    """``batch`` with one extra segment of pad tokens so its length divides by ``multiple`` (unchanged if it does).

    The pad segment has positions 0.., its own ``cu_seqlens`` entry and no reward index: it carries no loss.
    """
    extra = -batch.num_tokens % multiple
    if extra == 0:
        return batch
    device = batch.input_ids.device
    end = batch.cu_seqlens[-1:] + extra
    pads = torch.full((1, extra), pad_id, dtype=batch.input_ids.dtype, device=device)
    return PackedBatch(
        input_ids=torch.cat([batch.input_ids, pads], 1),
        position_ids=torch.cat([batch.position_ids, torch.arange(extra, device=device).unsqueeze(0)], 1),
        cu_seqlens=torch.cat([batch.cu_seqlens, end.to(batch.cu_seqlens.dtype)]),
        max_seqlen=max(batch.max_seqlen, extra),
        reward_index=batch.reward_index,
    )


def check_heads(num_heads: int, size: int) -> None:
    """Ulysses gives each rank ``num_heads / size`` whole heads; raise when that is not an integer."""
    if num_heads % size:
        divisors = [p for p in range(2, num_heads + 1) if num_heads % p == 0]
        raise RmdataError(
            f"parallel.sequence_parallel={size} does not divide the model's {num_heads} attention heads; "
            f"Ulysses gives each rank whole heads: use one of {divisors} (or 1 to turn it off)"
        )


@dataclass
class SequenceParallel:
    """This rank's place in its sequence-parallel group, and the forward that splits a packed row."""

    size: int
    rank: int
    group: Any  # torch.distributed ProcessGroup
    pad_id: int = 0

    def forward(self, model: RewardModel, batch: PackedBatch) -> torch.Tensor:
        """Scores ``[n]`` of the row's sequences, the same on every rank of the group, computed from one chunk."""
        padded = pad_to_multiple(batch, self.size, self.pad_id)
        chunk = padded.num_tokens // self.size
        start = self.rank * chunk
        out = model.trunk(
            input_ids=padded.input_ids[:, start : start + chunk],
            position_ids=padded.position_ids[:, start : start + chunk],
            use_cache=False,
            **varlen_kwargs(padded.cu_seqlens, padded.max_seqlen),  # global boundaries: attention sees the row
        )
        reward = padded.reward_index
        mine = ((reward >= start) & (reward < start + chunk)).nonzero().squeeze(1)
        local = model.score_hidden(out.last_hidden_state[0, reward[mine] - start])
        partial = torch.zeros(reward.shape[0], dtype=local.dtype, device=local.device).index_put((mine,), local)
        return _SumScores.apply(partial, self.group)


def enable_sequence_parallel(model: RewardModel, size: int, rank: int, group: Any) -> SequenceParallel:
    """Route ``model``'s attention through the all-to-all wrapper and its forward through :class:`SequenceParallel`."""
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    config = model.trunk.config.get_text_config()
    num_heads = int(config.num_attention_heads)
    check_heads(num_heads, size)
    inner = ALL_ATTENTION_FUNCTIONS[model.attention.hf_name]

    def attention(
        module: torch.nn.Module,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: torch.Tensor | None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, None]:
        if key.shape[1] % size:  # too few KV heads to split: one per query head (exact, more traffic)
            groups = query.shape[1] // key.shape[1]
            key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
        q, k, v = (sequence_to_heads(x, size, group) for x in (query, key, value))
        out, _ = inner(module, q, k, v, attention_mask, **kwargs)
        return heads_to_sequence(out, size, group), None

    name = f"rmdata_sp_{model.attention.name}"
    AttentionInterface.register(name, attention)
    AttentionMaskInterface.register(name, padding_mask_only)
    model.trunk.set_attn_implementation(name)
    pad_id = getattr(config, "pad_token_id", None)
    parallel = SequenceParallel(size, rank, group, pad_id=int(pad_id) if pad_id is not None else 0)
    model.sequence_parallel = parallel
    return parallel
