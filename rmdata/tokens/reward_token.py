"""The reward token: the token appended to every sequence, whose hidden state the value head scores.

Decided here once (``model.reward_token_id``, else ``model.reward_token``, else the tokenizer's EOS) and
carried as a :class:`RewardToken` to the templates that append it, the model that checks every packed
sequence ends with it, and the export that writes it into the model's config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rmdata.errors import RmdataError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class RewardToken:
    """The token appended to every sequence; the score is read at its position."""

    id: int
    text: str
    rule: str  # how it was chosen, e.g. "model.reward_token='<|reward|>'"


def resolve_reward_token(
    tokenizer: PreTrainedTokenizerBase, token: str | None = None, token_id: int | None = None
) -> RewardToken:
    """Pick the reward token: ``token_id`` if given, else ``token``, else the tokenizer's EOS.

    Both given must name the same token. Errors name the value, the vocabulary size and the fix.
    """
    vocab_size = len(tokenizer)
    if token_id is not None:
        if not 0 <= token_id < vocab_size:
            raise RmdataError(
                f"model.reward_token_id={token_id} is outside the tokenizer's vocabulary of {vocab_size} "
                f"tokens (ids 0..{vocab_size - 1}); set an id inside it, or set model.reward_token to a "
                "token string the tokenizer knows"
            )
        text = str(tokenizer.convert_ids_to_tokens(token_id))
        if token is not None and token != text:
            raise RmdataError(
                f"model.reward_token={token!r} and model.reward_token_id={token_id} disagree: id {token_id} "
                f"is {text!r}; set only one of them"
            )
        return RewardToken(token_id, text, f"model.reward_token_id={token_id}")
    if token is not None:
        found = tokenizer.convert_tokens_to_ids(token)
        if not isinstance(found, int) or tokenizer.convert_ids_to_tokens(found) != token:
            raise RmdataError(
                f"model.reward_token={token!r} is not a single token of this tokenizer (vocabulary of "
                f"{vocab_size}); use a token it has, set model.reward_token_id, or add the token to the "
                "tokenizer (tokenizer.add_special_tokens) and save it"
            )
        return RewardToken(found, token, f"model.reward_token={token!r}")
    eos_id = tokenizer.eos_token_id
    if eos_id is None:
        raise RmdataError(
            "no reward token configured and the tokenizer has no EOS token; set model.reward_token "
            "or model.reward_token_id"
        )
    eos = str(tokenizer.eos_token)
    return RewardToken(int(eos_id), eos, f"tokenizer eos {eos!r} (no reward token configured)")
