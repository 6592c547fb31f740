"""Packed rows as tensors: what the reward model's forward consumes.

A packed row holds several token sequences back to back in one ``[1, T]`` row. ``position_ids`` restart at
0 for each sequence and ``cu_seqlens`` marks where each one starts, so attention can stay inside each
sequence. The reward token is the last token of every sequence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class PackedBatch:
    """One packed row of ``n`` sequences and ``T`` tokens in total."""

    input_ids: torch.Tensor  # [1, T] int64
    position_ids: torch.Tensor  # [1, T] int64, 0..len-1 within each sequence
    cu_seqlens: torch.Tensor  # [n + 1] int32, cumulative sequence lengths starting at 0
    max_seqlen: int  # longest sequence in the row
    reward_index: torch.Tensor  # [n] int64, position in T of each sequence's reward token

    @property
    def num_sequences(self) -> int:
        return int(self.reward_index.numel())

    @property
    def num_tokens(self) -> int:
        return int(self.input_ids.shape[1])

    def to(self, device: torch.device | str) -> PackedBatch:
        return PackedBatch(
            input_ids=self.input_ids.to(device),
            position_ids=self.position_ids.to(device),
            cu_seqlens=self.cu_seqlens.to(device),
            max_seqlen=self.max_seqlen,
            reward_index=self.reward_index.to(device),
        )


def pack_sequences(sequences: Sequence[Sequence[int] | np.ndarray]) -> PackedBatch:
    """Concatenate token sequences (lists or numpy arrays) into one packed row; each ends with its reward token."""
    if not sequences or any(len(s) == 0 for s in sequences):
        raise ValueError("pack_sequences needs at least one sequence and no empty sequence")
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.int64)
    ends = torch.cumsum(lengths, 0)
    cu_seqlens = torch.zeros(len(sequences) + 1, dtype=torch.int32)
    cu_seqlens[1:] = ends.to(torch.int32)
    flat = np.concatenate([np.asarray(seq, dtype=np.int64) for seq in sequences])
    input_ids = torch.from_numpy(flat).unsqueeze(0)
    starts = torch.repeat_interleave(ends - lengths, lengths)
    position_ids = (torch.arange(int(ends[-1])) - starts).unsqueeze(0)
    return PackedBatch(
        input_ids=input_ids,
        position_ids=position_ids,
        cu_seqlens=cu_seqlens,
        max_seqlen=int(lengths.max()),
        reward_index=ends - 1,
    )
