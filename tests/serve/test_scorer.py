"""The server's scoring core: the floats ``rmdata score`` writes, whatever shares the batch, and query texts."""

from __future__ import annotations

import numpy as np

from rmdata.serve.queries import QueryRule
from rmdata.serve.scorer import Scorer
from rmdata.tokens.templates import render_conversation


def _encode(scorer: Scorer, rows: list[dict[str, object]]):  # type: ignore[no-untyped-def]
    prompts = [[{"role": "user", "content": str(r["prompt"])}] for r in rows]
    return scorer.encode_rows(prompts, [str(r["response"]) for r in rows])


def test_rewards_are_the_floats_rmdata_score_writes(
    scorer: Scorer, rows: list[dict[str, object]], offline_rewards: np.ndarray
) -> None:
    ours = scorer.score(_encode(scorer, rows).tokens)
    assert ours.dtype == np.float32
    assert ours.tobytes() == offline_rewards.tobytes()


def test_a_reward_does_not_depend_on_its_batch(scorer: Scorer, rows: list[dict[str, object]]) -> None:
    tokens = _encode(scorer, rows).tokens
    together = scorer.score(tokens)
    alone = np.array([scorer.score([t])[0] for t in tokens], dtype=np.float32)
    reversed_mix = scorer.score(tokens[::-1] + tokens[:5])[: len(tokens)][::-1]
    assert alone.tobytes() == together.tobytes()
    assert reversed_mix.tobytes() == together.tobytes()
    assert len(set(together.tolist())) > 1  # the rows really differ


def _render(scorer: Scorer, prompt: str, reply: str, *, asking: bool = False) -> str:
    tok = scorer.model.tokenizer
    if asking:
        return render_conversation(tok, [{"role": "user", "content": prompt}], add_generation_prompt=True) + reply
    return render_conversation(tok, [{"role": "user", "content": prompt}, {"role": "assistant", "content": reply}])


def test_the_template_probe_finds_the_chatml_header_and_turn_end(scorer: Scorer) -> None:
    rule = scorer.query_rule
    assert rule.header == "<|im_start|>assistant\n"
    assert rule.turn_end == "<|im_end|>\n"
    assert set(rule.strip) == {"<|pad|>", "<|endoftext|>"}


def test_policy_renderings_with_eos_and_pads_become_the_full_rendering(scorer: Scorer) -> None:
    rule = scorer.query_rule
    full = _render(scorer, "What is 2+2?", "Four.")
    generated = _render(scorer, "What is 2+2?", "Four.<|im_end|><|endoftext|><|pad|><|pad|>", asking=True)
    unfinished = _render(scorer, "What is 2+2?", "Four.", asking=True)  # cut by max_tokens: no end marker
    for query in (full, generated, unfinished, full + "<|pad|>"):
        canonical = rule.canonical(query)
        assert canonical.text == full and canonical.matched
        assert full[canonical.reply_start :].startswith("Four.")


def test_the_prompt_field_sets_the_boundary_and_pads_are_never_cut_from_it() -> None:
    rule = QueryRule(header="A:", turn_end="\n", strip=("<pad>",))
    assert rule.canonical("Q<pad>A: x<pad>", prompt="Q<pad>A: ").text == "Q<pad>A: x\n"
    # the reply's own last header is the boundary when no prompt is sent
    assert rule.canonical("Q A: say A: ok<pad>").reply_start == len("Q A: say A:")


def test_a_query_without_the_header_is_scored_as_sent_and_flagged(scorer: Scorer) -> None:
    canonical = scorer.query_rule.canonical("plain text, another template<|endoftext|>")
    assert not canonical.matched
    assert canonical.text == "plain text, another template<|im_end|>\n"


def test_query_texts_score_like_the_rows(scorer: Scorer, rows: list[dict[str, object]]) -> None:
    queries = [_render(scorer, str(r["prompt"]), f"{r['response']}<|im_end|><|endoftext|>", asking=True) for r in rows]
    texts = [scorer.query_rule.canonical(q).text for q in queries]
    from_queries = scorer.score(scorer.encode_texts(texts).tokens)
    assert from_queries.tobytes() == scorer.score(_encode(scorer, rows).tokens).tobytes()
