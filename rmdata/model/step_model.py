"""Process reward models for scoring: a trunk run with varlen attention, and a head read at each step token.

Three layouts load without remote code (``load_step_model(path, layout=...)``; ``auto`` reads config.json):

- ``qwen-prm`` (Qwen2.5-Math-PRM): a Qwen2 trunk (``model.*`` weights) and a two-class token head
  ``score = Sequential(Linear(d, d), ReLU, Linear(d, 2))``; steps end in ``<extra_0>``; the step's score is
  ``softmax(logits)[1]``. Detected from ``architectures`` ending in ``ForProcessRewardModel``.
- ``math-shepherd``: a causal LM read at the step tag ``ки``; the step's score is the softmax over the LM
  logits of ``+`` and ``-`` (the last token of ``tokenizer.encode("+")``, of ``"-"``), taken for ``+``. Any
  ``*ForCausalLM``.
- ``rmdata``: an rmdata export (``rmdata train``): its value head read at its reward token written after each
  step; the step's score is ``sigmoid(value)``. A ``*ForSequenceClassification`` whose config names
  ``reward_token_id``.

Every head is float32 and maps hidden states ``[m, d]`` to logits ``[m, k]``: ``k = 1`` (value, sigmoid) or
``k = 2`` (wrong, correct; softmax, column 1). The LM head of a Math-Shepherd model is cut to the two rows it
reads, so scoring never builds ``[T, vocab]`` logits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from rmdata.errors import RmdataError
from rmdata.model.attention import AttentionChoice, choose_attention, register_varlen_attention
from rmdata.tokens.steps import SEPARATOR, TAG, StepTemplate, step_token_id

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

QWEN_PRM = "qwen-prm"
MATH_SHEPHERD = "math-shepherd"
RMDATA = "rmdata"
STEP_LAYOUTS = (QWEN_PRM, MATH_SHEPHERD, RMDATA)
QWEN_SEPARATOR = "<extra_0>"
QWEN_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
SHEPHERD_TAG = "ки"


@dataclass
class StepModel:
    """A trunk ``input_ids -> [1, T, d]`` and a float32 head ``[m, d] -> [m, k]`` read at step tokens."""

    layout: str
    trunk: nn.Module
    head: nn.Module
    tokenizer: PreTrainedTokenizerBase
    template: StepTemplate
    device: torch.device
    attention: AttentionChoice

    def step_scores(self, hidden: torch.Tensor) -> torch.Tensor:
        """Hidden states at step tokens ``[m, d]`` -> the probability each step is correct ``[m]`` (float32)."""
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            return step_probability(self.head(hidden.float()))


def step_probability(logits: torch.Tensor) -> torch.Tensor:
    """``[m, 1]`` -> sigmoid; ``[m, 2]`` (wrong, correct) -> softmax's correct column. Shape ``[m]``."""
    if logits.shape[-1] == 1:
        return torch.sigmoid(logits[:, 0])
    return torch.softmax(logits, dim=-1)[:, 1]


def detect_step_layout(config: dict[str, Any]) -> str:
    """The layout of a config.json (see the module docstring); RmdataError naming ``--layout`` otherwise."""
    architectures = [str(a) for a in config.get("architectures") or []]
    if any(a.endswith("ForProcessRewardModel") for a in architectures):
        return QWEN_PRM
    if any(a.endswith("ForCausalLM") for a in architectures):
        return MATH_SHEPHERD
    if any(a.endswith("ForSequenceClassification") for a in architectures) and config.get("reward_token_id"):
        return RMDATA
    raise RmdataError(
        f"cannot tell the step layout of a {', '.join(architectures) or 'model without architectures'}; pass "
        f"--layout {' or '.join(STEP_LAYOUTS)}"
    )


def load_step_model(
    path: str | Path, *, layout: str = "auto", device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> StepModel:
    """Load a PRM directory in ``layout`` (``auto``: from its config.json) for scoring, frozen, in eval mode."""
    path = Path(path)
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise RmdataError(f"{path}: no readable config.json ({err}); give a process reward model directory") from err
    layout = detect_step_layout(config) if layout == "auto" else layout
    if layout not in STEP_LAYOUTS:
        raise RmdataError(f"--layout {layout!r} is not one of auto, {', '.join(STEP_LAYOUTS)}")
    device = torch.device(device)
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        if layout == QWEN_PRM:
            trunk, head, template = _qwen_prm(path, tokenizer, dtype)
        elif layout == MATH_SHEPHERD:
            trunk, head, template = _math_shepherd(path, tokenizer, dtype)
        else:
            trunk, head, template = _rmdata(path, config, tokenizer)
    except (OSError, ValueError, KeyError) as err:
        raise RmdataError(f"{path}: cannot load it as a {layout} PRM ({str(err).splitlines()[0]})") from err
    attention = choose_attention("auto", device, dtype)
    register_varlen_attention()
    trunk.set_attn_implementation(attention.hf_name)
    if trunk.config._attn_implementation != attention.hf_name:
        raise RmdataError(f"{path}: {type(trunk).__name__} does not route attention through AttentionInterface")
    trunk = trunk.to(device).eval().requires_grad_(False)
    head = head.to(device).eval().requires_grad_(False)
    return StepModel(layout, trunk, head, tokenizer, template, device, attention)


def _qwen_prm(
    path: Path, tokenizer: PreTrainedTokenizerBase, dtype: torch.dtype
) -> tuple[Any, nn.Module, StepTemplate]:
    from safetensors import safe_open
    from transformers import AutoModel

    trunk = AutoModel.from_pretrained(path, dtype=dtype, use_safetensors=True, trust_remote_code=False)
    weights: dict[str, torch.Tensor] = {}
    for file in sorted(path.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as handle:
            weights.update({k: handle.get_tensor(k) for k in handle.keys() if k.startswith("score.")})  # noqa: SIM118
    wanted = ("score.0.weight", "score.0.bias", "score.2.weight", "score.2.bias")
    if missing := [k for k in wanted if k not in weights]:
        raise RmdataError(f"{path}: no two-class step head ({', '.join(missing)} missing); not a Qwen2.5-Math-PRM")
    hidden = int(weights["score.0.weight"].shape[1])
    head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 2))
    head.load_state_dict({k.removeprefix("score."): v.float() for k, v in weights.items() if k in wanted})
    template = StepTemplate(SEPARATOR, QWEN_SEPARATOR, step_token_id(tokenizer, QWEN_SEPARATOR), system=QWEN_SYSTEM)
    return trunk, head, template


def _math_shepherd(
    path: Path, tokenizer: PreTrainedTokenizerBase, dtype: torch.dtype
) -> tuple[Any, nn.Module, StepTemplate]:
    from transformers import AutoModelForCausalLM

    lm = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, use_safetensors=True, trust_remote_code=False)
    good, bad = step_token_id(tokenizer, "+"), step_token_id(tokenizer, "-")
    weight = lm.get_output_embeddings().weight.detach()
    head = nn.Linear(weight.shape[1], 2, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.stack([weight[bad], weight[good]]).float())
    template = StepTemplate(TAG, f" {SHEPHERD_TAG}", step_token_id(tokenizer, SHEPHERD_TAG), between="\n")
    return lm.base_model, head, template


def _rmdata(
    path: Path, config: dict[str, Any], tokenizer: PreTrainedTokenizerBase
) -> tuple[Any, nn.Module, StepTemplate]:
    from transformers import AutoModelForSequenceClassification

    classifier = AutoModelForSequenceClassification.from_pretrained(path, use_safetensors=True)
    token_id = int(config["reward_token_id"])
    text = str(tokenizer.convert_ids_to_tokens(token_id))
    score = classifier.score
    head = nn.Linear(score.in_features, 1, bias=score.bias is not None)
    head.load_state_dict({k: v.float() for k, v in score.state_dict().items()})
    return classifier.base_model, head, StepTemplate(SEPARATOR, text, token_id)
