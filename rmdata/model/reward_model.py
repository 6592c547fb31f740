"""The reward model: a Hugging Face causal-LM trunk (``AutoModel``, no LM head) plus a float32 value head.

``RewardModel(batch)`` scores every sequence of a packed row: the trunk runs the row once with a varlen
attention backend (``rmdata.model.attention``), and the head reads the hidden state at each sequence's reward token.
Nothing here assumes Llama: the width comes from the config, adapters find linear layers by type, and the
only requirement on the backbone is that its attention dispatches through transformers' ``AttentionInterface``
(checked when the model is built). Save and load live in ``rmdata.model.export``.

Dtypes. ``model.dtype=auto`` keeps float32 weights (the training loop autocasts to bfloat16 on CUDA);
``bfloat16`` stores the trunk in bfloat16; ``float32`` forces float32 compute. QLoRA computes in bfloat16 on
CUDA and float32 on CPU. The value head and the scores are float32 in every case, with autocast switched off
around the head. An export writes the trunk in the dtype it computed in (``RewardModel.export_dtype``).
"""

from __future__ import annotations

import tempfile
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import nn

from rmdata.config import DtypeName, FinetuneMode
from rmdata.errors import RmdataError
from rmdata.model.attention import AttentionChoice, choose_attention, register_varlen_attention, varlen_kwargs
from rmdata.options import choices
from rmdata.progress import logger

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from rmdata.config import ModelConfig
    from rmdata.tokens.batching import PackedBatch
    from rmdata.tokens.reward_token import RewardToken

log = logger()


class SplitRow(Protocol):
    """Scores a packed row from this rank's chunk of it (Ulysses): ``rmdata.model.sequence_parallel`` sets one."""

    def forward(self, model: RewardModel, batch: PackedBatch) -> torch.Tensor: ...


class RewardModel(nn.Module):
    """``trunk`` (any ``AutoModel`` decoder) + ``value_head`` ``Linear(hidden, 1, bias=False)`` in float32.

    ``export_dtype`` is the dtype an export writes the trunk in (the dtype it computes in).
    """

    def __init__(
        self,
        trunk: PreTrainedModel,
        reward_token: RewardToken,
        attention: AttentionChoice,
        export_dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        embeddings: Any = trunk.get_input_embeddings()
        vocab = int(embeddings.weight.shape[0])
        if not 0 <= reward_token.id < vocab:
            raise RmdataError(
                f"reward token {reward_token.text!r} has id {reward_token.id}, outside the model's embedding "
                f"table of {vocab} rows; set model.reward_token_id to an id below {vocab} (or resize the "
                "model's embeddings to the tokenizer and save it)"
            )
        register_varlen_attention()
        trunk.set_attn_implementation(attention.hf_name)
        if trunk.config._attn_implementation != attention.hf_name:
            raise RmdataError(
                f"{type(trunk).__name__} does not route attention through transformers' AttentionInterface, so "
                "packed sequences would attend to each other; this backbone is not supported yet"
            )
        self.trunk = trunk
        self.reward_token = reward_token
        self.attention = attention
        self.export_dtype = export_dtype
        hidden = trunk.config.get_text_config().hidden_size
        device = embeddings.weight.device
        self.value_head = nn.Linear(hidden, 1, bias=False, device=device, dtype=torch.float32)
        nn.init.zeros_(self.value_head.weight)
        self.sequence_parallel: SplitRow | None = None  # set by rmdata.model.sequence_parallel

    def forward(self, batch: PackedBatch) -> torch.Tensor:
        """Scores ``[n]`` (float32) of the ``n`` sequences of one packed row ``[1, T]``."""
        at_reward = batch.input_ids[0, batch.reward_index]
        if not bool((at_reward == self.reward_token.id).all()):
            raise RmdataError(
                f"a packed sequence does not end with the reward token {self.reward_token.text!r} "
                f"(id {self.reward_token.id}); append it to every sequence before packing"
            )
        if self.sequence_parallel is not None:  # this rank runs its chunk of the row (Ulysses)
            return self.sequence_parallel.forward(self, batch)
        out = self.trunk(
            input_ids=batch.input_ids,
            position_ids=batch.position_ids,
            use_cache=False,  # with a cache, transformers' own masks ignore packed position_ids
            **varlen_kwargs(batch.cu_seqlens, batch.max_seqlen),
        )
        return self.score_hidden(out.last_hidden_state[0, batch.reward_index])

    def score_hidden(self, hidden: torch.Tensor) -> torch.Tensor:
        """The value head on hidden states ``[n, d]`` -> scores ``[n]``, in float32 even under autocast."""
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            return nn.functional.linear(hidden.float(), self.value_head.weight).squeeze(-1)


@dataclass
class BuiltModel:
    """A reward model with everything a run records about it."""

    model: RewardModel
    tokenizer: PreTrainedTokenizerBase
    reward_token: RewardToken
    attention: AttentionChoice
    total_params: int  # stored elements: a 4-bit QLoRA weight counts as the bytes that pack it
    trainable_params: int


def built(model: RewardModel, tokenizer: PreTrainedTokenizerBase) -> BuiltModel:
    params = list(model.parameters())
    return BuiltModel(
        model=model,
        tokenizer=tokenizer,
        reward_token=model.reward_token,
        attention=model.attention,
        total_params=sum(p.numel() for p in params),
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
    )


def compute_dtype(requested: str, device: torch.device) -> torch.dtype:
    """What the trunk computes in: bfloat16 for ``dtype=bfloat16``, or ``auto`` on CUDA (autocast); else fp32."""
    if requested not in choices(DtypeName):
        raise RmdataError(f"model.dtype={requested!r} is not one of {', '.join(choices(DtypeName))}")
    if requested == "bfloat16" or (requested == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return torch.float32


def pick_device(requested: str) -> torch.device:
    """``train.device``: ``auto`` = CUDA when torch sees it, else CPU; a CUDA device that is absent is an error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RmdataError(f"train.device={requested} but torch sees no CUDA device; use train.device=cpu (or auto)")
    return torch.device(requested)


def autocast_for(requested: str, device: torch.device) -> tuple[AbstractContextManager[object], torch.dtype, str]:
    """For ``model.dtype``: the autocast context, the compute dtype (:func:`compute_dtype` decides it) and why."""
    dtype = compute_dtype(requested, device)
    if dtype == torch.bfloat16 and device.type == "cuda":
        return (
            torch.autocast("cuda", dtype=dtype),
            dtype,
            f"bfloat16 autocast on CUDA (model.dtype={requested})",
        )
    if dtype == torch.bfloat16:
        return nullcontext(), dtype, "bfloat16 weights (model.dtype=bfloat16)"
    return (
        nullcontext(),
        dtype,
        f"float32 (model.dtype={requested} on {device.type}; bf16 autocast is CUDA-only)",
    )


def load_tokenizer(cfg: ModelConfig) -> PreTrainedTokenizerBase:
    """The tokenizer of ``model.name_or_path`` (the tiny byte-level one for ``tiny``)."""
    if cfg.name_or_path == "tiny":
        from rmdata.model.tiny import build_tiny_tokenizer

        return build_tiny_tokenizer()
    from rmdata.model.checks import check_backbone
    from rmdata.model.internlm2 import internlm2_tokenizer  # InternLM2 hook: its tokenizer, no remote code

    check_backbone(cfg.name_or_path, cfg.gguf_file)  # the first read of the directory: a bad one stops here

    if (tokenizer := internlm2_tokenizer(cfg.name_or_path)) is not None:
        return tokenizer
    from transformers import AutoTokenizer

    return _from_hub(AutoTokenizer, cfg, "tokenizer")


def _from_hub(loader: Any, cfg: ModelConfig, what: str, **kwargs: Any) -> Any:
    try:
        return loader.from_pretrained(cfg.name_or_path, gguf_file=cfg.gguf_file, **kwargs)
    except (OSError, ValueError) as err:
        raise RmdataError(
            f"model.name_or_path={cfg.name_or_path!r}: cannot load its {what} ({err}); give a local Hugging Face "
            "model directory (or a hub id already in the HF cache), with model.gguf_file for GGUF checkpoints"
        ) from err


def _load_trunk(
    cfg: ModelConfig,
    tokenizer: PreTrainedTokenizerBase,
    dtype: torch.dtype,
    device: torch.device,
    quantization: Any = None,
) -> PreTrainedModel:
    from transformers import AutoModel

    from rmdata.model.internlm2 import is_internlm2, load_trunk  # InternLM2 hook: Llama trunk, mapped weights

    if cfg.name_or_path != "tiny" and is_internlm2(cfg.name_or_path):
        return load_trunk(cfg.name_or_path, dtype=dtype, device=device, quantization=quantization)[0]
    if cfg.name_or_path != "tiny":
        placement = {"device_map": {"": str(device)}} if quantization is not None else {}
        trunk = _from_hub(AutoModel, cfg, "weights", dtype=dtype, quantization_config=quantization, **placement)
        return trunk if quantization is not None else trunk.to(device)

    from rmdata.model.tiny import tiny_backbone_config

    config = tiny_backbone_config(cfg.tiny, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id)
    trunk = AutoModel.from_config(config, dtype=dtype)
    if quantization is None:
        return trunk.to(device)
    with tempfile.TemporaryDirectory(prefix="rmdata-tiny-") as tmp:  # bitsandbytes quantizes while loading
        trunk.save_pretrained(tmp)
        return AutoModel.from_pretrained(tmp, quantization_config=quantization, device_map={"": str(device)})


def build_reward_model(
    cfg: ModelConfig,
    tokenizer: PreTrainedTokenizerBase,
    reward_token: RewardToken,
    device: torch.device | str = "cpu",
) -> BuiltModel:
    """Build the trunk per ``cfg`` (the recipe's ``model`` section), add the head and the fine-tuning mode.

    full: every weight trains. lora: adapters on every linear layer of the trunk, the trunk frozen.
    qlora: 4-bit nf4 trunk (double quantization) + LoRA. The value head always trains.
    """
    device = torch.device(device)
    dtype = compute_dtype(cfg.dtype, device)
    attention = choose_attention(cfg.attention, device, dtype)
    log.info("attention: %s (%s)", attention.name, attention.reason)
    if cfg.finetune not in choices(FinetuneMode):
        raise RmdataError(f"model.finetune={cfg.finetune!r} is not one of {', '.join(choices(FinetuneMode))}")

    if cfg.finetune == "qlora":
        from rmdata.model.adapters import check_quantizable, prepare_quantized, quantization_config, set_packed_cpu_path

        trunk = _load_trunk(cfg, tokenizer, dtype, device, quantization_config(dtype))
        check_quantizable(trunk)
        set_packed_cpu_path(trunk, False)  # eval during training must see the weights training uses
        prepare_quantized(trunk)
    else:
        weights = torch.bfloat16 if cfg.dtype == "bfloat16" else torch.float32
        trunk = _load_trunk(cfg, tokenizer, weights, device)
    model = RewardModel(trunk, reward_token, attention, export_dtype=dtype)
    if cfg.finetune != "full":
        from rmdata.model.adapters import add_lora

        targets = add_lora(trunk, cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout)
        log.info("%s: adapters on %d linear layers", cfg.finetune, len(targets))
    if cfg.gradient_checkpointing:  # non-reentrant: segment kwargs reach the recomputed layers unchanged
        enable = getattr(trunk, "activation_checkpointing_enable", None) or trunk.gradient_checkpointing_enable
        enable({"use_reentrant": False})  # the first is the newer transformers name of the second
    return built(model, tokenizer)
