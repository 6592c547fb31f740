"""Memory savers change no number: gradient checkpointing (with LoRA dropout, on packed rows) gives the same
loss and gradients, a checkpointed run resumes bit for bit, and returning freed pages to the OS works."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from rmdata.tokens.batching import pack_sequences
from rmdata.train.loop import train
from rmdata.train.memory import peak_rss_mib, release_freed_memory, rss_mib
from rmdata.train.runs import RunDir
from tests.core_helpers import build_tiny, pair_loss, random_sequences, randomize_head
from tests.helpers import write_pairs
from tests.train.test_loop import crash_at_step, metrics_lines, tiny_recipe


def _loss_and_grads(finetune: str, checkpointing: bool, dropout: float) -> tuple[float, dict[str, torch.Tensor]]:
    built = build_tiny(
        "llama", finetune=finetune, lora_dropout=dropout, gradient_checkpointing=checkpointing, lora_rank=4
    )
    model = built.model.train()
    randomize_head(model)
    with torch.no_grad():  # LoRA B starts at zero: give it values so that the adapters' gradients flow everywhere
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=torch.Generator().manual_seed(len(name))) * 0.1)
    batch = pack_sequences(random_sequences((9, 14, 5, 11, 7, 3), built.reward_token.id, seed=3))
    torch.manual_seed(7)  # the same dropout masks in both runs, unless checkpointing disturbed the RNG
    loss = pair_loss(model(batch))
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return float(loss.detach()), grads


@pytest.mark.parametrize(("finetune", "dropout"), [("lora", 0.3), ("lora", 0.0), ("full", 0.0)])
def test_gradient_checkpointing_gives_the_same_loss_and_gradients(finetune: str, dropout: float) -> None:
    """Non-reentrant recompute on a packed row: the recomputed layers see the same segment boundaries and,
    with LoRA dropout on, the same dropout masks (the RNG state is replayed), so every gradient matches."""
    loss_plain, plain = _loss_and_grads(finetune, checkpointing=False, dropout=dropout)
    loss_ckpt, ckpt = _loss_and_grads(finetune, checkpointing=True, dropout=dropout)
    assert loss_ckpt == pytest.approx(loss_plain, abs=1e-6)
    assert plain.keys() == ckpt.keys() and len(plain) > 2
    for name, expected in plain.items():
        assert expected.abs().max() > 0, name
        assert (ckpt[name] - expected).abs().max() <= 1e-6 * max(1.0, float(expected.abs().max())), name


def test_lora_dropout_really_drops_in_that_comparison() -> None:
    """The equality above would be empty if dropout did nothing: another seed gives another loss."""
    built = build_tiny("llama", finetune="lora", lora_dropout=0.3, lora_rank=4)
    model = built.model.train()
    randomize_head(model)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.fill_(0.1)
    batch = pack_sequences(random_sequences((9, 14, 5), built.reward_token.id, seed=3))
    losses = []
    for seed in (7, 8):
        torch.manual_seed(seed)
        losses.append(float(pair_loss(model(batch))))
    assert abs(losses[0] - losses[1]) > 1e-4


def test_a_checkpointed_lora_run_resumed_after_a_crash_matches_the_plain_run(tmp_path: Path) -> None:
    """Crash at step 5, resume from step-4: every logged metric and the held-out figures equal the run without
    checkpointing (LoRA dropout on, so the recompute must replay the RNG and the resume must restore it)."""
    pairs = write_pairs(tmp_path / "pairs.jsonl")
    lora = ("model.finetune=lora", "model.lora_dropout=0.1", "model.lora_rank=4")
    plain = RunDir(tmp_path / "plain")
    train(tiny_recipe(pairs, *lora), plain, show_progress=False)
    recipe = tiny_recipe(pairs, *lora, "model.gradient_checkpointing=true")
    crashed = RunDir(tmp_path / "crashed")
    crash_at_step(recipe, crashed, 5)
    resumed = train(recipe, crashed, resume=True, show_progress=False)
    assert resumed.steps == 8
    expected = json.loads(plain.eval_json.read_text())
    assert resumed.eval is not None and resumed.eval.keys() == expected.keys()
    for key, value in expected.items():
        assert resumed.eval[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    for got, want in zip(metrics_lines(crashed), metrics_lines(plain), strict=True):
        assert got.keys() == want.keys()
        for key, value in want.items():
            same = got[key] == value if isinstance(value, str) else got[key] == pytest.approx(value, rel=1e-5, abs=1e-6)
            assert same, (got["step"], key)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc_trim and /proc are Linux")
def test_release_freed_memory_gives_fragmented_pages_back() -> None:
    """Keep every other 1 MiB tensor of 256 and free the rest: ~128 MiB of holes the heap cannot shrink
    from its top. malloc_trim must hand most of them back (a first 16 MiB free raises glibc's mmap
    threshold, so the 1 MiB tensors come from the heap, as activations do in training)."""
    big = torch.ones(16 * 2**18)  # 16 MiB, mmap-ed; freeing it raises the threshold to its size
    del big
    tensors = [torch.ones(2**18) for _ in range(256)]  # 1 MiB each, touched
    kept = tensors[::2]
    del tensors
    before = rss_mib()
    assert release_freed_memory()
    after = rss_mib()
    assert before - after > 64, (before, after)
    assert sum(float(t[0]) for t in kept) == 128  # the kept tensors are intact
    assert peak_rss_mib() >= 0.99 * before  # ru_maxrss saw the fragmented peak (within its accounting)


def test_the_trunk_has_no_lm_head_so_no_vocabulary_logits_are_computed() -> None:
    """A reward model reads hidden states: the [T, vocab] logits of a causal LM (49k wide for SmolLM2, more
    than every activation of a layer) must never be built. The trunk is the bare decoder, and a forward
    produces no tensor with a vocabulary-sized dimension beyond the embedding table itself."""
    built = build_tiny("llama", finetune="lora", lora_rank=4)
    model = built.model.train()
    vocab = int(model.trunk.get_input_embeddings().weight.shape[0])
    assert not any("lm_head" in name for name, _ in model.named_parameters())
    assert not hasattr(model.trunk, "lm_head")
    shapes: list[tuple[int, ...]] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        shapes.append(tuple(t.shape))
        return t

    batch = pack_sequences(random_sequences((40, 30, 20, 10), built.reward_token.id))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(batch)
    assert shapes and not [
        s for s in shapes if vocab in s and s != tuple(model.trunk.get_input_embeddings().weight.shape)
    ]
