"""Chat templates and tokens: normalized rows -> token sequences that end with the reward token.

Every sequence is ``render(prompt + [assistant response])`` tokenized with ``add_special_tokens=False``
(the template already writes BOS and other specials where the model wants them; letting the tokenizer add
its own would give a second BOS), followed by the reward token id.

Where the prompt ends: the prompt is rendered alone with ``add_generation_prompt=True`` and tokenized; it
normally is a token prefix of the full rendering. When it is not (a template that renders the assistant
header differently once a reply follows, or a BPE merge across the boundary), the prompt is taken to be
the longest common token prefix of the two, and the rest counts as response. ``prefix_mismatch`` counts
such sequences; they are still exact renderings of the conversation.

Truncation to ``max_length`` (reward token included) keeps the whole response and the reward token and
cuts the prompt from the left, keeping a leading BOS token if the rendering starts with one (and it does
not recur: some tokenizers call the ChatML turn marker their BOS). A row whose response alone (plus the
reward token) does not fit is dropped with the reason ``response_too_long``; a pair whose chosen and
rejected token sequences are identical is dropped as ``identical_after_truncation`` (replies that render
the same, e.g. through a template that trims, or a longer reply that equals the shorter one preceded by
the tail of the prompt, once both are cut to the same length). Drops are :class:`rmdata.data.drops.Drop`
values holding the row and its ``source``, so the caller can count, report and write them.
The reward token itself is decided in ``rmdata.tokens.reward_token``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from rmdata.data.drops import IDENTICAL_AFTER_TRUNCATION, RESPONSE_TOO_LONG, Drop, count_by_reason
from rmdata.errors import RmdataError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from rmdata.tokens.reward_token import RewardToken

Row = Mapping[str, Any]


def render_conversation(
    tokenizer: PreTrainedTokenizerBase,
    messages: list[dict[str, str]],
    *,
    chat_template: str | None = None,
    add_generation_prompt: bool = False,
    source: str = "",
) -> str:
    """Render messages to text with ``chat_template`` (a Jinja string) or the tokenizer's own template."""
    if not chat_template and not tokenizer.chat_template:
        name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
        raise RmdataError(
            f"tokenizer {name!r} has no chat template and data.chat_template is not set; set "
            "data.chat_template to a Jinja chat template string in the recipe, or use a tokenizer that "
            "ships one"
        )
    from jinja2 import TemplateError

    try:
        text = tokenizer.apply_chat_template(
            messages, chat_template=chat_template, tokenize=False, add_generation_prompt=add_generation_prompt
        )
    except TemplateError as err:
        origin = "data.chat_template" if chat_template else "the tokenizer's chat template"
        where = f"{source}: " if source else ""
        raise RmdataError(
            f"{where}{origin} failed to render this conversation: {err} (fix the template or the record)"
        ) from err
    if not isinstance(text, str):
        raise TypeError(f"apply_chat_template(tokenize=False) returned {type(text).__name__}, not str")
    return text


class TokenSequences:
    """Many token sequences stored flat: ``tokens`` int32 ``[total]`` and ``offsets`` int64 ``[n + 1]``.

    ``seqs[i]`` is a numpy view; ``lengths`` is what the packing planner takes.
    """

    def __init__(self, tokens: np.ndarray, offsets: np.ndarray) -> None:
        self.tokens = tokens
        self.offsets = offsets

    @classmethod
    def from_arrays(cls, arrays: list[np.ndarray]) -> TokenSequences:
        offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
        np.cumsum([len(a) for a in arrays], out=offsets[1:])
        tokens = np.concatenate(arrays).astype(np.int32) if arrays else np.zeros(0, dtype=np.int32)
        return cls(tokens, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i] : self.offsets[i + 1]]

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[i] for i in range(len(self)))

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


@dataclass
class TokenizedPairs:
    """Pairs that fit, index-aligned: ``chosen[i]``, ``rejected[i]``, ``margin[i]``, ``prompt_id[i]``..."""

    chosen: TokenSequences
    rejected: TokenSequences
    margin: list[float | None]
    prompt_id: list[str]
    chosen_id: list[str]
    rejected_id: list[str]
    source: list[str]
    reward_token: RewardToken
    row_index: list[int] = field(default_factory=list)  # position of each kept pair among the input rows
    drops: list[Drop] = field(default_factory=list)  # input rows left out, with their reasons
    prompt_truncated: int = 0  # sequences whose prompt was cut from the left
    prefix_mismatch: int = 0  # sequences whose prompt rendering was not a token prefix (see module doc)

    def __len__(self) -> int:
        return len(self.chosen)

    @property
    def dropped(self) -> dict[str, int]:
        """Drops counted by reason."""
        return count_by_reason(self.drops)


def fit_to_length(
    full: np.ndarray, prompt_len: int, max_length: int, reward_id: int, bos_id: int | None = None
) -> np.ndarray | None:
    """``full`` (a rendering, no reward token) + reward token within ``max_length``, or None if it cannot fit.

    The prompt (``full[:prompt_len]``) is cut from the left; a leading ``bos_id`` found only there is kept.
    """
    n_response = len(full) - prompt_len
    if n_response + 1 > max_length:
        return None
    reward = np.array([reward_id], dtype=full.dtype)
    if len(full) + 1 <= max_length:
        return np.concatenate([full, reward])
    room = max_length - 1 - n_response  # prompt tokens that fit, 0 <= room < prompt_len
    # a BOS that starts the rendering and never recurs marks the document start: keep it. (Some tokenizers
    # declare a turn marker such as <|im_start|> as BOS; that recurs and is cut like any prompt token.)
    if bos_id is not None and room >= 1 and full[0] == bos_id and not (full[1:] == bos_id).any():
        head = full[:1]
        room -= 1
    else:
        head = full[:0]
    return np.concatenate([head, full[prompt_len - room :], reward])


class _Encoder:
    """Renders and tokenizes one chunk of conversations with a single batched tokenizer call."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, chat_template: str | None, max_length: int):
        if max_length < 2:
            raise RmdataError(
                f"data.max_length={max_length} leaves no room for a response and the reward token; use >= 2"
            )
        self.tokenizer = tokenizer
        self.chat_template = chat_template
        self.max_length = max_length
        backend = getattr(tokenizer, "backend_tokenizer", None)
        self._fast = getattr(backend, "encode_batch_fast", None)
        self._fast_checked = False
        bos = tokenizer.bos_token_id
        self.bos_id = int(bos) if bos is not None else None

    def render(self, messages: list[dict[str, str]], source: str, generation_prompt: bool) -> str:
        return render_conversation(
            self.tokenizer,
            messages,
            chat_template=self.chat_template,
            add_generation_prompt=generation_prompt,
            source=source,
        )

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text, no specials added. The backend's ``encode_batch_fast`` (no offsets, ~2x
        faster) is used once its ids match the tokenizer's own call on the first text of the run."""
        if self._fast is not None and texts:
            fast = [enc.ids for enc in self._fast(texts, add_special_tokens=False)]
            if self._fast_checked or fast[0] == self._call(texts[:1])[0]:
                self._fast_checked = True
                return fast
            self._fast = None  # a tokenizer that post-processes in Python: trust only its own call
        return self._call(texts)

    def _call(self, texts: list[str]) -> list[list[int]]:
        ids: list[list[int]] = self.tokenizer(texts, add_special_tokens=False, return_attention_mask=False)["input_ids"]
        return ids


def _prompt_length(prompt: list[int], full: list[int]) -> tuple[int, bool]:
    """Tokens of ``full`` that belong to the prompt, and whether ``prompt`` was an exact token prefix."""
    if full[: len(prompt)] == prompt:
        return len(prompt), True
    n = min(len(prompt), len(full))
    same = np.asarray(prompt[:n]) == np.asarray(full[:n])
    return (int(np.argmin(same)) if not same.all() else n), False


def _chunks(rows: Iterable[Row] | Any, size: int) -> Iterator[list[Row]]:
    it: Iterable[Row] = rows.iter_rows(named=True) if hasattr(rows, "iter_rows") else rows
    chunk: list[Row] = []
    for row in it:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _fit_rows(
    rows: Iterable[Row] | Any,
    encoder: _Encoder,
    response_keys: tuple[str, ...],
    reward_id: int,
    batch_size: int,
    stats: Counter[str],
) -> Iterator[tuple[Row, list[np.ndarray] | Drop, int]]:
    """Per row: its fitted sequences (one per response key, reward token last) or why it was dropped, and
    how many of its sequences had their prompt cut. ``stats["prefix_mismatch"]`` counts as it goes."""
    width = 1 + len(response_keys)
    for chunk in _chunks(rows, batch_size):
        texts: list[str] = []
        for row in chunk:
            prompt, source = list(row["prompt"]), str(row["source"])
            texts.append(encoder.render(prompt, source, generation_prompt=True))
            for key in response_keys:
                turn = {"role": "assistant", "content": row[key]}
                texts.append(encoder.render([*prompt, turn], source, generation_prompt=False))
        ids = encoder.encode(texts)
        for i, row in enumerate(chunk):
            prompt_ids = ids[i * width]
            fitted: list[np.ndarray] = []
            truncated = 0
            for k, key in enumerate(response_keys):
                full = ids[i * width + 1 + k]
                prompt_len, exact = _prompt_length(prompt_ids, full)
                stats["prefix_mismatch"] += not exact
                full_arr = np.asarray(full, dtype=np.int32)
                seq = fit_to_length(full_arr, prompt_len, encoder.max_length, reward_id, encoder.bos_id)
                if seq is None:
                    n = len(full) - prompt_len
                    message = (
                        f"{row['source']}: {key} has {n} tokens plus the reward token, over "
                        f"data.max_length={encoder.max_length} (raise data.max_length to keep such rows)"
                    )
                    yield row, Drop(RESPONSE_TOO_LONG, message, str(row["source"]), row), 0
                    break
                truncated += len(seq) < len(full) + 1
                fitted.append(seq)
            else:
                yield row, fitted, truncated


def tokenize_pairs(
    rows: Iterable[Row] | Any,
    tokenizer: PreTrainedTokenizerBase,
    *,
    max_length: int,
    reward_token: RewardToken,
    chat_template: str | None = None,
    batch_size: int = 512,
) -> TokenizedPairs:
    """Normalized pair rows (dicts, or a polars DataFrame) -> chosen/rejected token sequences.

    Rows need ``prompt`` (message list), ``chosen``, ``rejected``, ``prompt_id``, ``chosen_id``,
    ``rejected_id``, ``source``; ``margin`` is optional (None when absent). Texts are rendered first, then
    tokenized ``batch_size`` rows at a time in one batched call.
    """
    encoder = _Encoder(tokenizer, chat_template, max_length)
    chosen: list[np.ndarray] = []
    rejected: list[np.ndarray] = []
    margin: list[float | None] = []
    keys: dict[str, list[str]] = {"prompt_id": [], "chosen_id": [], "rejected_id": [], "source": []}
    row_index: list[int] = []
    dropped: list[Drop] = []
    stats: Counter[str] = Counter()
    fitted = _fit_rows(rows, encoder, ("chosen", "rejected"), reward_token.id, batch_size, stats)
    for index, (row, result, truncated) in enumerate(fitted):
        if isinstance(result, Drop):
            dropped.append(result)
            continue
        seq_c, seq_r = result
        if np.array_equal(seq_c, seq_r):
            message = (
                f"{row['source']}: chosen and rejected are the same {len(seq_c)} tokens after rendering and "
                f"truncation to data.max_length={max_length}"
            )
            dropped.append(Drop(IDENTICAL_AFTER_TRUNCATION, message, str(row["source"]), row))
            continue
        stats["prompt_truncated"] += truncated
        row_index.append(index)
        chosen.append(seq_c)
        rejected.append(seq_r)
        value = row.get("margin")
        margin.append(None if value is None else float(value))
        for name, values in keys.items():
            values.append(str(row[name]))
    return TokenizedPairs(
        chosen=TokenSequences.from_arrays(chosen),
        rejected=TokenSequences.from_arrays(rejected),
        margin=margin,
        prompt_id=keys["prompt_id"],
        chosen_id=keys["chosen_id"],
        rejected_id=keys["rejected_id"],
        source=keys["source"],
        reward_token=reward_token,
        row_index=row_index,
        drops=dropped,
        prompt_truncated=stats["prompt_truncated"],
        prefix_mismatch=stats["prefix_mismatch"],
    )
