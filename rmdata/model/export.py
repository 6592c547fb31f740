"""Export a reward model as a Hugging Face ``*ForSequenceClassification`` directory, and load it back.

The directory loads with ``transformers.AutoModelForSequenceClassification.from_pretrained(dir)`` as a
``num_labels=1`` model whose ``score`` layer is rmdata's value head; the tokenizer is saved beside it.
``config.json`` records ``reward_token_id``, ``reward_token`` and ``scoring_rule``.

How transformers scores a row: it reads ``score`` at the last token that is not ``config.pad_token_id``. A
sequence scored the rmdata way ends with the reward token, so that token is the one read, as long as the pad
token differs from it. When the tokenizer's pad token *is* the reward token (common when EOS is both, and the
reward token defaults to EOS), or there is no pad token, the export uses another token as pad: the first of the
tokenizer's pad, EOS, BOS, UNK and other special tokens that is not the reward token. ``config.pad_token_id``
and the saved tokenizer's ``pad_token`` are both set to it, so ``tokenizer(texts, padding=True)`` pads with it.

Adapters are merged and 4-bit weights dequantized on the way out (``rmdata.model.adapters.plain_state_dict``): the
directory is a plain model in ``RewardModel.export_dtype``. The head is always written. The directory is
written beside its destination and renamed into place, so it is either complete or absent.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from rmdata.dataset_dir import atomic_directory
from rmdata.errors import RmdataError
from rmdata.model.attention import choose_attention
from rmdata.model.reward_model import BuiltModel, RewardModel, built

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def export_pad_token(tokenizer: PreTrainedTokenizerBase, reward_token_id: int) -> tuple[int, str]:
    """The pad token (id, text) of an export: the tokenizer's own unless it is the reward token (see above)."""
    named = [tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id, tokenizer.unk_token_id]
    for token_id in [*named, *tokenizer.all_special_ids]:
        if token_id is not None and token_id != reward_token_id:
            return int(token_id), str(tokenizer.convert_ids_to_tokens(int(token_id)))
    raise RmdataError(
        f"the tokenizer has no special token other than the reward token (id {reward_token_id}) to pad with; "
        "add a pad token to the tokenizer (tokenizer.add_special_tokens({'pad_token': ...})) and resize the model"
    )


def scoring_rule(reward_token_id: int, reward_token: str, pad_token_id: int) -> str:
    return (
        f"score = score(h[last token that is not pad_token_id={pad_token_id}]); append the reward token "
        f"{reward_token!r} (id {reward_token_id}) to every chat-templated sequence"
    )


def save_reward_model(result: BuiltModel, out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``result`` as an ``AutoModelForSequenceClassification`` directory at ``out_dir``; returns it."""
    with atomic_directory(Path(out_dir), overwrite=overwrite, kind="model") as tmp:
        _write(result.model, result.tokenizer, tmp)
    return Path(out_dir)


def _write(model: RewardModel, tokenizer: PreTrainedTokenizerBase, path: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    from rmdata import __version__
    from rmdata.model.adapters import plain_state_dict

    token = model.reward_token
    pad_id, pad_text = export_pad_token(tokenizer, token.id)
    config = copy.deepcopy(model.trunk.config)
    for attr in ("quantization_config", "_pre_quantization_dtype"):  # the export holds plain weights
        if hasattr(config, attr):
            delattr(config, attr)
    config._attn_implementation = None  # let transformers pick its default when the directory is loaded
    config.num_labels = 1
    config.get_text_config().pad_token_id = pad_id
    config.reward_token_id = token.id
    config.reward_token = token.text
    config.scoring_rule = scoring_rule(token.id, token.text, pad_id)
    config.rmdata_version = __version__

    with torch.device("meta"):  # no random init of weights that are replaced right away
        classifier = AutoModelForSequenceClassification.from_config(config, dtype=model.export_dtype)
    trunk_state = plain_state_dict(model.trunk, model.export_dtype)
    prefix = classifier.base_model_prefix
    state = {f"{prefix}.{key}": value for key, value in trunk_state.items()}
    state["score.weight"] = model.value_head.weight.detach().to(model.export_dtype)
    classifier.load_state_dict(state, strict=True, assign=True)
    classifier.save_pretrained(path)

    saved_tokenizer = copy.deepcopy(tokenizer)
    if saved_tokenizer.pad_token_id != pad_id:
        saved_tokenizer.pad_token = pad_text
    saved_tokenizer.save_pretrained(path)


def load_reward_model(path: str | Path, *, attention: str = "auto", device: torch.device | str = "cpu") -> BuiltModel:
    """Load an export back into rmdata: the same trunk and head, so the same scores."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rmdata.model.checks import check_chat_template, check_model_dir, read_config
    from rmdata.model.internlm2 import is_internlm2  # InternLM2 hook: no remote code
    from rmdata.model.internlm2_reward import load_internlm2_reward
    from rmdata.tokens.reward_token import RewardToken

    path = Path(path)
    if path.is_dir():
        check_model_dir(path, read_config(path), head=True)
    if is_internlm2(path):  # InternLM2 hook (a directory, or a hub id in the HF cache)
        return load_internlm2_reward(path, device=device, attention=attention)
    if not (path / "config.json").is_file():
        raise RmdataError(f"{path} has no config.json; give a directory written by rmdata train (its final/)")
    device = torch.device(device)
    classifier = AutoModelForSequenceClassification.from_pretrained(path, dtype="auto").to(device)
    config = classifier.config
    token_id = getattr(config, "reward_token_id", None)
    if config.num_labels != 1 or token_id is None:
        raise RmdataError(
            f"{path}: config.json has num_labels={config.num_labels} and reward_token_id={token_id}; an rmdata "
            "reward model has num_labels=1 and a reward_token_id (export it with rmdata)"
        )
    tokenizer = AutoTokenizer.from_pretrained(path)
    check_chat_template(path, tokenizer)
    text = getattr(config, "reward_token", None) or str(tokenizer.convert_ids_to_tokens(token_id))
    trunk = classifier.base_model
    dtype = trunk.get_input_embeddings().weight.dtype
    choice = choose_attention(attention, device, dtype)
    model = RewardModel(trunk, RewardToken(token_id, text, f"{path}/config.json reward_token_id"), choice, dtype)
    with torch.no_grad():
        model.value_head.weight.copy_(classifier.score.weight.float())
    return built(model.eval(), tokenizer)
