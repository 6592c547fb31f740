"""Tiny random process reward models saved in each third-party layout, and their plain-transformers references."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Model

from rmdata.config import TinyModelConfig
from rmdata.data.stepwise import StepRow
from rmdata.model.step_model import QWEN_SEPARATOR, QWEN_SYSTEM
from rmdata.model.tiny import build_tiny_tokenizer, save_tiny_qwen_prm
from rmdata.tokens.steps import SEPARATOR, StepTemplate, StepTokens, tokenize_steps
from rmdata.train.steps import StepExample

SIZES = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)


def save_qwen_prm(path: Path, seed: int = 0) -> Path:
    """A Qwen2.5-Math-PRM-layout directory (``rmdata.model.tiny.save_tiny_qwen_prm``), with the real one's auto_map."""
    save_tiny_qwen_prm(path, TinyModelConfig(hidden_size=32, intermediate_size=64, max_position_embeddings=512), seed)
    config = json.loads((path / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_qwen2_rm.Qwen2ForProcessRewardModel"}  # never run: no such file
    (path / "config.json").write_text(json.dumps(config))
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


SOLUTIONS = [
    ("What is 2+3?", ("2+3 = 5.", "The answer is 5."), (1.0, 1.0)),
    ("Add 10 and 7.", ("10+7 = 18.", "So 18.", "Done."), (0.0, 0.0, 0.0)),
    ("Is 9 prime?", ("9 = 3*3, so no.",), (1.0,)),
    ("Halve 8.", ("8/2 = 4.", "Then 5."), (1.0, 0.0)),
]


def step_examples(built) -> list[StepExample]:  # type: ignore[no-untyped-def]
    """``SOLUTIONS`` rendered with the built model's reward token after every step, as training examples."""
    token = built.reward_token
    template = StepTemplate(SEPARATOR, token.text, token.id)
    out = []
    for i, (prompt, steps, labels) in enumerate(SOLUTIONS):
        tokens = tokenize_steps(built.tokenizer, template, StepRow(prompt, steps, labels, f"x:{i}"))
        assert isinstance(tokens, StepTokens)
        out.append(StepExample(tokens.input_ids, tokens.step_positions, np.asarray(labels, dtype=np.float32)))
    return out
