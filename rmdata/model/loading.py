"""Load a reward model for scoring: an rmdata export, or any Hugging Face sequence-classification reward model.

``load_scoring_model(path, device=..., dtype=..., trust_remote_code=...)`` checks the directory (its kind here, its
files with ``rmdata.model.checks``), then dispatches on what it holds (``_LOADERS``, one function per kind of
checkpoint; add a branch there for a new kind). Every loader returns a :class:`ScoringModel`: the trunk (the
backbone, ``model.base_model``, run with rmdata's varlen attention) and the ``score`` head, applied only at the
score positions.

Which directories load:
- ``config.json`` whose ``architectures`` name a ``*ForSequenceClassification`` with ``num_labels == 1`` (an
  rmdata export, or the Skywork-Reward / OpenRLHF / TRL layout: Llama-, Qwen2-, Mistral-style ``score`` head);
- weights in ``*.safetensors`` only (``.bin`` pickles can run code when loaded);
- remote code (``auto_map`` in the config) only with ``trust_remote_code=True``;
- a tokenizer with a chat template (every input is a conversation).

Score position (:attr:`ScoringModel.rule`): ``config.reward_token_id`` appended after the chat-templated
conversation when the config names one (rmdata exports do), else the last token of the chat-templated
conversation. Never a padding position, also when the pad token is the EOS token: the position comes from the
sequence's own length, not from searching for pad ids as transformers' ``*ForSequenceClassification`` does.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from rmdata.errors import RmdataError
from rmdata.model.attention import AttentionChoice, choose_attention, register_varlen_attention
from rmdata.model.checks import check_chat_template, check_model_dir, check_tokenizer_fits, read_config

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger("rmdata")

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
)
CONVERT_BIN = (
    'convert it once: python -c "from transformers import AutoModelForSequenceClassification as M; '
    "M.from_pretrained('DIR').save_pretrained('DIR-safetensors')\" (only for a checkpoint you trust)"
)


@dataclass
class ScoringModel:
    """A trunk that maps ``input_ids`` to hidden states, and a ``[1, d]`` head read at score positions."""

    path: Path
    kind: str  # which loader built it, e.g. "rmdata export", "hf sequence classifier"
    trunk: nn.Module
    head: nn.Linear  # hidden -> 1, float32
    tokenizer: PreTrainedTokenizerBase
    reward_token_id: int | None  # appended to every sequence when set
    context_length: int  # the model's maximum positions: the default max length
    device: torch.device
    dtype: torch.dtype  # what the trunk computes in
    attention: AttentionChoice
    architecture: str
    fingerprint: str = ""  # sha256 prefix of weights + tokenizer + rule (see ``fingerprint_model``)

    @property
    def rule(self) -> str:
        """The score-position rule, recorded in every output."""
        if self.reward_token_id is not None:
            text = self.tokenizer.convert_ids_to_tokens(self.reward_token_id)
            return (
                f"score head at the reward token {text!r} (config.reward_token_id={self.reward_token_id}) "
                "appended after the chat-templated conversation"
            )
        return "score head at the last token of the chat-templated conversation (never a padding position)"

    def score_hidden(self, hidden: torch.Tensor) -> torch.Tensor:
        """The head on hidden states ``[n, d]`` -> scores ``[n]`` in float32.

        A row-wise product and sum, not a matmul: a GEMM's result for one row can depend on how many rows it
        gets (on CPU a 1-row call takes another kernel, ~2e-6 apart), and a score must not depend on what else
        was in its batch (``rmdata serve`` batches unrelated requests together).
        """
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            scores = (hidden.float() * self.head.weight.float()[0]).sum(-1)
            return scores if self.head.bias is None else scores + self.head.bias.float()[0]


def load_scoring_model(
    path: str | Path, *, device: str = "auto", dtype: str = "auto", trust_remote_code: bool = False
) -> ScoringModel:
    """Check ``path`` (see the module docstring), load it on ``device`` in ``dtype``; RmdataError with the fix."""
    path = Path(path)
    config = read_config(path)
    kind = _kind_of(path, config, trust_remote_code)
    check_model_dir(path, config, head=True)
    torch_device = _device(device)
    compute = _compute_dtype(dtype, torch_device)
    model = _LOADERS[kind](path, config, torch_device, compute, trust_remote_code)
    check_tokenizer_fits(path, model.tokenizer, config)
    if not getattr(model.tokenizer, "chat_template", None):
        raise RmdataError(
            f"{path}: the tokenizer has no chat template, and scoring renders every row as a conversation; add "
            "one (tokenizer.chat_template = ...; tokenizer.save_pretrained(DIR)) or use the model's instruct tokenizer"
        )
    check_chat_template(path, model.tokenizer)
    model.fingerprint = fingerprint_model(path, model.rule)
    return model


def _kind_of(path: Path, config: dict[str, Any], trust_remote_code: bool) -> str:
    """Which loader takes ``path``; every refusal names the fix."""
    from rmdata.model.internlm2 import is_internlm2

    if is_internlm2(path):  # read by rmdata's own mapping: no file of the directory runs, auto_map or not
        return "internlm2 reward"
    architectures = config.get("architectures") or []
    if not any(str(a).endswith("ForSequenceClassification") for a in architectures):
        raise RmdataError(
            f"{path} is a {', '.join(architectures) or 'model with no architectures in config.json'}, not a reward "
            "model with a score head (*ForSequenceClassification); train one with `rmdata train`, or give a "
            "reward model directory"
        )
    labels = config.get("num_labels", len(config.get("id2label") or {}) or 2)
    if labels != 1:
        raise RmdataError(
            f"{path}: num_labels={labels}; a reward model has one output (num_labels=1); this is a classifier "
            "with several labels, give a reward model instead"
        )
    if "auto_map" in config and not trust_remote_code:
        raise RmdataError(
            f"{path}: config.json has auto_map, so loading runs Python code from the directory; pass "
            "--trust-remote-code if you trust it"
        )
    if not list(path.glob("*.safetensors")):
        found = [p.name for p in path.glob("*.bin")]
        if not found:
            raise RmdataError(f"{path}: no weight files (*.safetensors); give the directory save_pretrained wrote")
        only = ", ".join(found[:3])
        raise RmdataError(f"{path}: only {only}; rmdata loads weights from .safetensors only; {CONVERT_BIN}")
    return "rmdata export" if config.get("reward_token_id") is not None else "hf sequence classifier"


def _device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda"):
        raise RmdataError(f"--device {device!r}: use auto, cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise RmdataError("--device cuda: no CUDA device is visible to torch; use --device cpu (or auto)")
    return torch.device(device)


def _compute_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto``: bfloat16 on CUDA, float32 on CPU."""
    if dtype not in ("auto", "float32", "bfloat16"):
        raise RmdataError(f"--dtype {dtype!r}: use auto, float32 or bfloat16")
    if dtype == "bfloat16" or (dtype == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return torch.float32


def _load_sequence_classifier(
    path: Path, config: dict[str, Any], device: torch.device, dtype: torch.dtype, trust_remote_code: bool
) -> ScoringModel:
    """Any ``AutoModelForSequenceClassification`` checkpoint with a ``score`` Linear head (rmdata exports too)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        classifier, info = AutoModelForSequenceClassification.from_pretrained(
            path, dtype=dtype, use_safetensors=True, trust_remote_code=trust_remote_code, output_loading_info=True
        )
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as err:
        raise RmdataError(f"{path}: cannot load it with transformers ({str(err).splitlines()[0]})") from err
    head = getattr(classifier, "score", None)
    missing = [k for k in info.get("missing_keys", []) if k.startswith("score.")]
    if not isinstance(head, nn.Linear) or missing:
        what = f"missing {', '.join(missing)}" if missing else "no score Linear layer"
        raise RmdataError(
            f"{path}: the checkpoint has no trained score head ({what}); give a reward model directory, or train "
            "one with `rmdata train`"
        )
    trunk = classifier.base_model
    attention = choose_attention("auto", device, dtype)
    register_varlen_attention()
    trunk.set_attn_implementation(attention.hf_name)
    if trunk.config._attn_implementation != attention.hf_name:
        raise RmdataError(
            f"{path}: {type(trunk).__name__} does not route attention through transformers' AttentionInterface, "
            "so rmdata cannot run it with packed rows; this architecture is not supported for scoring yet"
        )
    head32 = nn.Linear(head.in_features, 1, bias=head.bias is not None, dtype=torch.float32, device=device)
    with torch.no_grad():
        head32.weight.copy_(head.weight.float())
        if head.bias is not None:
            head32.bias.copy_(head.bias.float())
    text_config = classifier.config.get_text_config()
    token_id = config.get("reward_token_id")
    return ScoringModel(
        path=path,
        kind="rmdata export" if token_id is not None else "hf sequence classifier",
        trunk=trunk.to(device).eval().requires_grad_(False),
        head=head32.requires_grad_(False),
        tokenizer=tokenizer,
        reward_token_id=int(token_id) if token_id is not None else None,
        context_length=int(getattr(text_config, "max_position_embeddings", 0) or 4096),
        device=device,
        dtype=dtype,
        attention=attention,
        architecture=type(classifier).__name__,
    )


def _load_internlm2_reward(
    path: Path, config: dict[str, Any], device: torch.device, dtype: torch.dtype, trust_remote_code: bool
) -> ScoringModel:
    """An InternLM2-Reward directory through rmdata's Llama mapping (``rmdata.model.internlm2``)."""
    from rmdata.model.internlm2_reward import load_internlm2_reward

    built = load_internlm2_reward(path, device=device, dtype=dtype)
    model = built.model
    return ScoringModel(
        path=path,
        kind="internlm2 reward",
        trunk=model.trunk.eval().requires_grad_(False),
        head=model.value_head.float().requires_grad_(False),
        tokenizer=built.tokenizer,
        reward_token_id=built.reward_token.id,
        context_length=int(getattr(model.trunk.config, "max_position_embeddings", 0) or 4096),
        device=device,
        dtype=dtype,
        attention=built.attention,
        architecture="InternLM2ForRewardModel (read as Llama)",
    )


# One loader per kind of checkpoint (``_kind_of`` names the kind). An rmdata export is a sequence classifier
# whose config names its reward token, so both load the same way.
_LOADERS: dict[str, Callable[[Path, dict[str, Any], torch.device, torch.dtype, bool], ScoringModel]] = {
    "rmdata export": _load_sequence_classifier,
    "hf sequence classifier": _load_sequence_classifier,
    "internlm2 reward": _load_internlm2_reward,
}


def fingerprint_model(path: Path, rule: str) -> str:
    """First 16 hex chars of sha256 over every weight file, the tokenizer files and the score rule.

    Reads every byte of the weights once (~1 s per GB): two directories share a fingerprint only when they
    would give the same scores.
    """
    digest = hashlib.sha256()
    files = sorted(path.glob("*.safetensors")) + [path / n for n in TOKENIZER_FILES if (path / n).is_file()]
    for file in files:
        digest.update(file.name.encode() + b"\0")
        with file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 22), b""):
                digest.update(chunk)
    digest.update(rule.encode())
    return digest.hexdigest()[:16]
