"""The scoring engine: token sequences -> float32 scores, in token-budget batches, exact in every layout.

The caller hands over one window of sequences (a shard, see ``rmdata.score.shards``); the engine orders
them by length inside it and fills batches of at most ``batch_tokens`` tokens (a sequence longer than the
budget gets a batch of its own). Two layouts, both exact (every real token attends to exactly the tokens
it would attend to alone):

- ``packed``: sequences back to back in one ``[1, T]`` row, best-fit decreasing
  (``rmdata.tokens.packing.plan_singles``); the varlen attention backend keeps each sequence to itself.
- ``padded``: length-sorted, right-padded ``[b, L]`` batches with *no* attention mask. Under a causal
  mask no real token attends to a later position, so the pads after a sequence cannot change it; their
  hidden states are never read. Sorting keeps the padding small.

The head is applied only at each sequence's last position (its score token). No gradients are built. A
batch's composition is a pure function of the window's lengths, so a re-run gives bit-identical scores.
``DEFAULT_LAYOUT`` holds the per-device choice measured by ``benchmarks/score_throughput.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rmdata.errors import RmdataError
from rmdata.model.attention import varlen_kwargs
from rmdata.model.loading import ScoringModel
from rmdata.tokens.batching import pack_sequences
from rmdata.tokens.packing import plan_singles

LAYOUTS = ("packed", "padded")
# Measured on CPU (benchmarks/RESULTS.md, score_throughput, 2026-12-01): packed 932 vs padded 732 real
# tokens per CPU-second (1.27x): padded batches computed 24% padding. CUDA was not measured (no GPU in that
# session); packed rows are the default there too (no padding; one flash-attn varlen kernel per layer when
# flash-attn is installed).
DEFAULT_LAYOUT = {"cpu": "packed", "cuda": "packed"}
# Tokens per forward when --batch-tokens is not given. CPU (same benchmark): packed rows of 1024 tokens scored
# 2061 real tokens per CPU-second, 2048: 1801, 8192: 1734 (activations of small rows stay in cache). CUDA: not
# measured; large rows keep the GPU busy.
DEFAULT_BATCH_TOKENS = {"cpu": 1024, "cuda": 16384}

Progress = Callable[[int, int], None]  # (sequences, tokens) just scored


@dataclass(frozen=True)
class Batch:
    """Indices (into the window) of the sequences scored together, in batch order."""

    members: tuple[int, ...]
    tokens: int  # real tokens


def resolve_layout(layout: str, device: torch.device) -> str:
    """``auto`` -> the measured default for the device; else the named layout."""
    if layout == "auto":
        return DEFAULT_LAYOUT.get(device.type, "packed")
    if layout not in LAYOUTS:
        raise RmdataError(f"layout {layout!r}: use auto, {', '.join(LAYOUTS)}")
    return layout


def resolve_batch_tokens(batch_tokens: int | None, device: torch.device) -> int:
    """The given budget, or the measured default for the device."""
    if batch_tokens is None:
        return DEFAULT_BATCH_TOKENS.get(device.type, 16384)
    if batch_tokens < 1:
        raise RmdataError(f"--batch-tokens {batch_tokens}: must be a positive number of tokens")
    return batch_tokens


def plan_batches(lengths: np.ndarray, batch_tokens: int, layout: str) -> list[Batch]:
    """Group sequences into batches of at most ``batch_tokens`` (padded: rows x longest) tokens."""
    if len(lengths) == 0:
        return []
    budget = max(int(batch_tokens), int(lengths.max()))
    if layout == "packed":
        plan = plan_singles(lengths, budget)
        return [Batch(row.units, row.num_tokens) for row in plan.rows]
    order = np.argsort(-lengths, kind="stable").tolist()
    batches: list[Batch] = []
    start = 0
    while start < len(order):
        width = int(lengths[order[start]])
        members = tuple(order[start : start + max(1, budget // width)])
        batches.append(Batch(members, int(lengths[list(members)].sum())))
        start += len(members)
    return batches


def score_sequences(
    model: ScoringModel,
    sequences: Sequence[np.ndarray],
    *,
    batch_tokens: int,
    layout: str,
    progress: Progress | None = None,
    sources: Sequence[str] = (),
) -> np.ndarray:
    """Scores ``[n]`` float32 of ``sequences`` (each ends with its score token), index-aligned.

    A NaN or infinite score is an error naming the model and (from ``sources``, index-aligned) the row.
    """
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    scores = np.empty(len(sequences), dtype=np.float32)
    forward = _forward_packed if layout == "packed" else _forward_padded
    with torch.inference_mode():
        for batch in plan_batches(lengths, batch_tokens, layout):
            members = list(batch.members)
            values = forward(model, [sequences[i] for i in members])
            scores[members] = values.cpu().numpy()
            if progress is not None:
                progress(len(members), batch.tokens)
    check_finite(scores, model, sources)
    return scores


def check_finite(scores: np.ndarray, model: ScoringModel, sources: Sequence[str] = ()) -> None:
    """Refuse NaN or infinite scores: the model (its weights, dtype or head) is broken, not the data."""
    bad = np.flatnonzero(~np.isfinite(scores))
    if not len(bad):
        return
    first = int(bad[0])
    where = f"{sources[first]}: " if first < len(sources) else ""
    dtype = str(model.dtype).removeprefix("torch.")
    raise RmdataError(
        f"{where}model {model.path} gave a non-finite score ({scores[first]}) to this row ({len(bad)} of "
        f"{len(scores)} in the batch): its weights or head hold NaN/inf, or {dtype} overflows; check the model "
        "(or try --dtype float32)"
    )


def _forward_packed(model: ScoringModel, seqs: list[np.ndarray]) -> torch.Tensor:
    batch = pack_sequences(seqs).to(model.device)
    out = model.trunk(
        input_ids=batch.input_ids,
        position_ids=batch.position_ids,
        use_cache=False,
        **varlen_kwargs(batch.cu_seqlens, batch.max_seqlen),
    )
    return model.score_hidden(out.last_hidden_state[0, batch.reward_index])


def _forward_padded(model: ScoringModel, seqs: list[np.ndarray]) -> torch.Tensor:
    lengths = [len(s) for s in seqs]
    width = max(lengths)
    ids = np.zeros((len(seqs), width), dtype=np.int64)  # the pad id never matters: pads are never attended
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = seq
    input_ids = torch.from_numpy(ids).to(model.device)
    out = model.trunk(input_ids=input_ids, use_cache=False)
    last = torch.tensor(lengths, device=model.device) - 1
    return model.score_hidden(out.last_hidden_state[torch.arange(len(seqs), device=model.device), last])
