"""Templates and tokens on the tiny byte-level tokenizer: one token per byte, so lengths are predictable.

With the ChatML template a user turn ``u`` and a reply ``r`` render as
``<|im_start|>user\\n{u}<|im_end|>\\n<|im_start|>assistant\\n{r}<|im_end|>\\n``: every special is one token,
every other byte one token, and the response part (after ``assistant\\n``) is ``len(r) + 2`` tokens.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest

from rmdata.data.drops import IDENTICAL_AFTER_TRUNCATION, RESPONSE_TOO_LONG
from rmdata.errors import RmdataError
from rmdata.model.tiny import build_tiny_tokenizer
from rmdata.tokens.reward_token import resolve_reward_token
from rmdata.tokens.templates import (
    _Encoder,
    fit_to_length,
    render_conversation,
    tokenize_pairs,
)

REWARD_ID = 260


@pytest.fixture(scope="module")
def tok() -> Any:
    return build_tiny_tokenizer()


def pair(i: int, prompt: str, chosen: str, rejected: str, margin: float | None = None) -> dict[str, Any]:
    return {
        "prompt": [{"role": "user", "content": prompt}],
        "chosen": chosen,
        "rejected": rejected,
        "margin": margin,
        "prompt_id": f"p{i}",
        "chosen_id": f"c{i}",
        "rejected_id": f"r{i}",
        "source": f"pairs.jsonl:{i}",
    }


def chatml(prompt: str, reply: str) -> str:
    return f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n{reply}<|im_end|>\n"


def test_sequence_is_hf_tokenization_of_the_template_plus_reward_token(tok: Any) -> None:
    rows = [pair(1, "What is 2+2?", "4", "5"), pair(2, "héllo wörld", "ça va", "no")]
    out = tokenize_pairs(rows, tok, max_length=512, reward_token=resolve_reward_token(tok, "<|reward|>"))
    assert len(out) == 2 and not out.dropped and out.prompt_truncated == 0 and out.prefix_mismatch == 0
    for i, row in enumerate(rows):
        for seqs, key in ((out.chosen, "chosen"), (out.rejected, "rejected")):
            conv = [*row["prompt"], {"role": "assistant", "content": row[key]}]
            expected = tok.apply_chat_template(conv, tokenize=True)["input_ids"] + [REWARD_ID]
            assert seqs[i].tolist() == expected
            assert tok.decode(seqs[i]) == chatml(row["prompt"][0]["content"], row[key]) + "<|reward|>"
    # byte-level: the length is the UTF-8 byte count of the text plus one token per special
    plain = chatml("héllo wörld", "ça va").replace("<|im_start|>", "").replace("<|im_end|>", "")
    assert len(out.chosen[1]) == len(plain.encode()) + 4 + 1  # bytes + 4 specials + reward token
    assert out.prompt_id == ["p1", "p2"] and out.rejected_id == ["r1", "r2"]
    assert [seq.tolist() for seq in out.chosen] == [out.chosen[0].tolist(), out.chosen[1].tolist()]
    assert out.source == ["pairs.jsonl:1", "pairs.jsonl:2"] and out.margin == [None, None]


def test_prompt_is_cut_from_the_left_and_response_kept_whole(tok: Any) -> None:
    prompt = "".join(chr(ord("a") + i % 26) for i in range(200))
    rows = [pair(1, prompt, "the chosen reply", "rejected")]
    reward = resolve_reward_token(tok, token_id=REWARD_ID)
    out = tokenize_pairs(rows, tok, max_length=40, reward_token=reward)
    assert out.prompt_truncated == 2 and not out.dropped
    for seqs, reply in ((out.chosen, "the chosen reply"), (out.rejected, "rejected")):
        seq = seqs[0]
        assert len(seq) == 40 and seq[-1] == REWARD_ID
        full = tok.apply_chat_template([*rows[0]["prompt"], {"role": "assistant", "content": reply}], tokenize=True)[
            "input_ids"
        ]
        assert seq[:-1].tolist() == full[-39:]  # the last 39 tokens of the rendering: left cut only
        assert tok.decode(seq).endswith(f"<|im_start|>assistant\n{reply}<|im_end|>\n<|reward|>")


def test_response_that_cannot_fit_is_dropped_and_counted_at_the_exact_boundary(tok: Any) -> None:
    """Reply "0123456789" is 10 bytes + <|im_end|> + "\\n" = 12 response tokens; + reward = 13.

    max_length=13 keeps it (prompt cut away entirely); 12 drops it as response_too_long.
    """
    rows = [pair(1, "q", "0123456789", "x"), pair(2, "q", "y", "z")]
    reward = resolve_reward_token(tok, "<|reward|>")
    kept = tokenize_pairs(rows, tok, max_length=13, reward_token=reward)
    assert len(kept) == 2 and not kept.dropped
    assert tok.decode(kept.chosen[0]) == "0123456789<|im_end|>\n<|reward|>"
    out = tokenize_pairs(rows, tok, max_length=12, reward_token=reward)
    assert out.dropped == {RESPONSE_TOO_LONG: 1}
    assert len(out) == 1 and out.prompt_id == ["p2"] and out.chosen_id == ["c2"]
    drop = out.drops[0]
    assert drop.reason == RESPONSE_TOO_LONG and drop.location == "pairs.jsonl:1"
    assert out.row_index == [1]  # the kept pair is the second input row
    assert drop.row is not None and drop.row["chosen_id"] == "c1"
    assert "chosen has 12 tokens" in drop.message and "data.max_length=12" in drop.message


def test_pair_identical_after_rendering_is_dropped_with_a_custom_template(tok: Any) -> None:
    """The custom template trims content, so "same" and "same   " render to the same tokens."""
    template = (
        "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] | trim }}\n{% endfor %}"
        "{% if add_generation_prompt %}[assistant] {% endif %}"
    )
    rows = [pair(1, "hi", "same", "same   "), pair(2, "hi", "good", "bad")]
    reward = resolve_reward_token(tok, "<|reward|>")
    out = tokenize_pairs(rows, tok, max_length=64, reward_token=reward, chat_template=template)
    assert out.dropped == {IDENTICAL_AFTER_TRUNCATION: 1}
    assert out.drops[0].location == "pairs.jsonl:1" and out.prompt_id == ["p2"]
    assert tok.decode(out.chosen[0]) == "[user] hi\n[assistant] good\n<|reward|>"
    prompt_text = render_conversation(tok, rows[1]["prompt"], chat_template=template, add_generation_prompt=True)
    assert prompt_text == "[user] hi\n[assistant] "


def test_pair_that_becomes_identical_after_truncation_is_dropped(tok: Any) -> None:
    """A bare template concatenates contents. Prompt "aaaaaaaa" with chosen "ab" renders "aaaaaaaaab" and
    with rejected "b" renders "aaaaaaaab": different in full, but cut to 4 tokens + reward both are
    "aaab<|reward|>" (rejected keeps one more prompt "a"), so the pair no longer says anything."""
    template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    rows = [pair(1, "aaaaaaaa", "ab", "b"), pair(2, "aaaaaaaa", "good", "bad")]
    reward = resolve_reward_token(tok, "<|reward|>")
    whole = tokenize_pairs(rows, tok, max_length=64, reward_token=reward, chat_template=template)
    assert len(whole) == 2 and not whole.dropped
    cut = tokenize_pairs(rows, tok, max_length=5, reward_token=reward, chat_template=template)
    assert cut.dropped == {IDENTICAL_AFTER_TRUNCATION: 1} and cut.prompt_id == ["p2"]
    drop = cut.drops[0]
    assert drop.location == "pairs.jsonl:1" and drop.row is not None and drop.row["chosen"] == "ab"
    assert "data.max_length=5" in drop.message


def test_no_chat_template_is_a_clear_error(tok: Any) -> None:
    bare = build_tiny_tokenizer()
    bare.chat_template = None
    with pytest.raises(RmdataError, match="data.chat_template"):
        tokenize_pairs([pair(1, "q", "a", "b")], bare, max_length=64, reward_token=resolve_reward_token(bare))
    given = "{{ messages[0].content }}"
    assert render_conversation(bare, [{"role": "user", "content": "q"}], chat_template=given) == "q"


def test_a_template_that_fails_names_the_record(tok: Any) -> None:
    template = "{{ raise_exception('roles must alternate') }}"
    with pytest.raises(RmdataError, match=r"pairs.jsonl:7: data.chat_template failed .*roles must alternate"):
        tokenize_pairs(
            [pair(7, "q", "a", "b")],
            tok,
            max_length=64,
            reward_token=resolve_reward_token(tok),
            chat_template=template,
        )


def test_reward_token_rules(tok: Any) -> None:
    by_id = resolve_reward_token(tok, token_id=260)
    assert (by_id.id, by_id.text, by_id.rule) == (260, "<|reward|>", "model.reward_token_id=260")
    by_text = resolve_reward_token(tok, "<|reward|>")
    assert (by_text.id, by_text.rule) == (260, "model.reward_token='<|reward|>'")
    default = resolve_reward_token(tok)
    assert (default.id, default.text) == (256, "<|endoftext|>")
    assert default.rule == "tokenizer eos '<|endoftext|>' (no reward token configured)"
    assert resolve_reward_token(tok, "<|reward|>", 260).id == 260


def test_reward_token_errors(tok: Any) -> None:
    with pytest.raises(RmdataError, match=r"model.reward_token_id=92527 is outside .* 261 tokens"):
        resolve_reward_token(tok, token_id=92527)
    with pytest.raises(RmdataError, match="model.reward_token_id=-1"):
        resolve_reward_token(tok, token_id=-1)
    with pytest.raises(RmdataError, match=r"'<\|not-there\|>' is not a single token"):
        resolve_reward_token(tok, "<|not-there|>")
    with pytest.raises(RmdataError, match="disagree"):
        resolve_reward_token(tok, "<|reward|>", 256)
    no_eos = build_tiny_tokenizer()
    no_eos.eos_token = None
    with pytest.raises(RmdataError, match="no EOS token"):
        resolve_reward_token(no_eos)


def test_bos_written_by_the_template_appears_once_and_survives_truncation() -> None:
    tok = build_tiny_tokenizer()
    tok.add_special_tokens({"bos_token": "<s>"})
    bos = tok.bos_token_id
    template = "{{ bos_token }}" + tok.chat_template
    rows = [pair(1, "x" * 100, "reply", "other")]
    reward = resolve_reward_token(tok, "<|reward|>")
    whole = tokenize_pairs(rows, tok, max_length=512, reward_token=reward, chat_template=template)
    assert whole.chosen[0][0] == bos and int((whole.chosen[0] == bos).sum()) == 1
    cut = tokenize_pairs(rows, tok, max_length=30, reward_token=reward, chat_template=template)
    seq = cut.chosen[0]
    assert len(seq) == 30 and seq[0] == bos and int((seq == bos).sum()) == 1
    assert seq[1:].tolist() == whole.chosen[0][-29:].tolist()


def test_prompt_not_a_token_prefix_uses_the_longest_common_prefix(tok: Any) -> None:
    """The generation prompt writes "<A>:" but a rendered reply is headed "<A>>": the common prefix ends
    after "<A>", so ">" counts as response and truncation never cuts into it."""
    template = (
        "{% for m in messages %}{% if m['role'] == 'user' %}<U>{{ m['content'] }}{% else %}<A>>"
        "{{ m['content'] }}{% endif %}{% endfor %}{% if add_generation_prompt %}<A>:{% endif %}"
    )
    rows = [pair(1, "abcdefgh", "yes", "no")]
    reward = resolve_reward_token(tok, "<|reward|>")
    out = tokenize_pairs(rows, tok, max_length=9, reward_token=reward, chat_template=template)
    assert out.prefix_mismatch == 2 and not out.dropped
    assert tok.decode(out.chosen[0]) == "h<A>>yes<|reward|>"  # 9 tokens: prompt "<U>abcdefgh<A>" cut left
    assert tok.decode(out.rejected[0]) == "gh<A>>no<|reward|>"


def test_fit_to_length_cases() -> None:
    full = np.arange(10, dtype=np.int32)  # prompt = first 6, response = last 4
    assert fit_to_length(full, 6, 20, 99).tolist() == [*range(10), 99]
    assert fit_to_length(full, 6, 7, 99).tolist() == [4, 5, 6, 7, 8, 9, 99]
    assert fit_to_length(full, 6, 5, 99).tolist() == [6, 7, 8, 9, 99]
    assert fit_to_length(full, 6, 4, 99) is None
    assert fit_to_length(full, 6, 7, 99, bos_id=0).tolist() == [0, 5, 6, 7, 8, 9, 99]
    assert fit_to_length(full, 6, 5, 99, bos_id=0).tolist() == [6, 7, 8, 9, 99]  # no room for BOS
    marker = np.array([0, 1, 0, 2, 3, 4, 5, 6, 7, 8], dtype=np.int32)  # "BOS" 0 recurs: a turn marker
    assert fit_to_length(marker, 6, 7, 99, bos_id=0).tolist() == [3, 4, 5, 6, 7, 8, 99]


def test_polars_input_and_margin(tok: Any) -> None:
    rows = [pair(1, "q", "a", "b", margin=1.5), pair(2, "r", "c", "d", margin=None)]
    reward = resolve_reward_token(tok)
    from_dicts = tokenize_pairs(rows, tok, max_length=64, reward_token=reward, batch_size=1)
    from_frame = tokenize_pairs(pl.DataFrame(rows), tok, max_length=64, reward_token=reward)
    assert from_frame.margin == [1.5, None] == from_dicts.margin
    assert from_frame.chosen.tokens.tolist() == from_dicts.chosen.tokens.tolist()
    assert from_frame.rejected.lengths.tolist() == from_dicts.rejected.lengths.tolist()
    assert from_frame.rejected_id == ["r1", "r2"]


def test_max_length_too_small_is_an_error(tok: Any) -> None:
    with pytest.raises(RmdataError, match="data.max_length=1"):
        tokenize_pairs([], tok, max_length=1, reward_token=resolve_reward_token(tok))


def test_fast_batch_encode_is_used_only_when_it_matches_the_tokenizer(tok: Any) -> None:
    """The backend's encode_batch_fast is checked against tokenizer(...) once; a mismatch falls back."""
    texts = ["<|im_start|>user\nhé<|im_end|>\n", "plain"]
    expected = [tok(text, add_special_tokens=False)["input_ids"] for text in texts]
    encoder = _Encoder(tok, None, 64)
    assert encoder.encode(texts) == expected and encoder._fast is not None

    class Wrong:
        def __init__(self, ids: list[int]) -> None:
            self.ids = ids

    lying = _Encoder(tok, None, 64)
    lying._fast = lambda batch, add_special_tokens: [Wrong([0]) for _ in batch]
    assert lying.encode(texts) == expected and lying._fast is None
