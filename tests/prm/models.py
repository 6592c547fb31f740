"""Tiny random process reward models saved in each third-party layout, and their plain-transformers references."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2Model

from rmdata.model.step_model import QWEN_SEPARATOR, QWEN_SYSTEM
from rmdata.model.tiny import build_tiny_tokenizer

SIZES = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)


def _tokenizer():  # type: ignore[no-untyped-def]
    tokenizer = build_tiny_tokenizer()
    tokenizer.add_tokens([QWEN_SEPARATOR], special_tokens=True)
    return tokenizer


def save_qwen_prm(path: Path, seed: int = 0) -> Path:
    """A Qwen2.5-Math-PRM-layout directory: ``model.*`` Qwen2 weights, ``score.{0,2}`` two-class MLP head."""
    torch.manual_seed(seed)
    tokenizer = _tokenizer()
    config = Qwen2Config(vocab_size=len(tokenizer), max_position_embeddings=512, use_cache=False, **SIZES)
    trunk = Qwen2Model(config)
    head = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 2))
    nn.init.normal_(head[2].weight, std=0.5)
    weights = {f"model.{k}": v.contiguous() for k, v in trunk.state_dict().items()}
    weights.update({f"score.{k}": v.contiguous() for k, v in head.state_dict().items()})
    path.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(path / "model.safetensors"), metadata={"format": "pt"})
    config.architectures = ["Qwen2ForProcessRewardModel"]
    config.auto_map = {"AutoModel": "modeling_qwen2_rm.Qwen2ForProcessRewardModel"}  # as the real one; never run
    config.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def qwen_reference(path: Path, prompt: str, steps: list[str]) -> torch.Tensor:
    """Qwen2.5-Math-PRM's model-card recipe in plain transformers: softmax(head)[1] at every ``<extra_0>``."""
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    messages = [
        {"role": "system", "content": QWEN_SYSTEM},
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": QWEN_SEPARATOR.join(steps) + QWEN_SEPARATOR},
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    ids = torch.tensor([tokenizer.encode(text)])
    weights = load_file(str(path / "model.safetensors"))
    trunk = Qwen2Model.from_pretrained(path).eval()
    head = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 2))
    head.load_state_dict({k.removeprefix("score."): v for k, v in weights.items() if k.startswith("score.")})
    with torch.no_grad():
        logits = head(trunk(input_ids=ids).last_hidden_state)
    separator = tokenizer.encode(QWEN_SEPARATOR)[0]
    return torch.softmax(logits, dim=-1)[..., 1][ids == separator]


def save_math_shepherd(path: Path, seed: int = 0) -> Path:
    """A Math-Shepherd-layout directory: a causal LM whose ``+``/``-`` logits at the tag ``ки`` are the score."""
    torch.manual_seed(seed)
    tokenizer = build_tiny_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), max_position_embeddings=512, use_cache=False, **SIZES)
    model = LlamaForCausalLM(config)
    nn.init.normal_(model.lm_head.weight, std=0.5)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def shepherd_reference(path: Path, prompt: str, steps: list[str]) -> torch.Tensor:
    """Math-Shepherd's README recipe: softmax over the ``+``/``-`` logits, taken for ``+``, at every tag token."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    good, bad = tokenizer.encode("+")[-1], tokenizer.encode("-")[-1]
    tag = tokenizer.encode("ки")[-1]
    output = "".join(f"{step} ки\n" for step in steps).removesuffix("\n")
    ids = torch.tensor([tokenizer.encode(f"{prompt} {output}")])
    model = LlamaForCausalLM.from_pretrained(path).eval()
    with torch.no_grad():
        logits = model(input_ids=ids).logits[:, :, [good, bad]]
    return logits.softmax(dim=-1)[:, :, 0][ids == tag]
