"""The engine against plain transformers, its batch invariance, determinism, truncation and layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rmdata.model.loading import load_scoring_model
from rmdata.score.engine import plan_batches, score_sequences
from rmdata.score.sequences import encode_conversations
from tests.score.conftest import corpus_rows


def _encode(model, rows, max_length=256):  # type: ignore[no-untyped-def]
    prompts = [[{"role": "user", "content": r["prompt"]}] for r in rows]
    return encode_conversations(
        model.tokenizer,
        prompts,
        [r["response"] for r in rows],
        ["t"] * len(rows),
        max_length=max_length,
        reward_token_id=model.reward_token_id,
    )


def _plain_transformers(model_dir: Path, sequences: list[np.ndarray]) -> np.ndarray:
    from transformers import AutoModelForSequenceClassification

    hf = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    with torch.no_grad():
        return np.array([hf(torch.tensor(s)[None]).logits[0, 0].item() for s in sequences], dtype=np.float32)


@pytest.mark.parametrize("layout", ["packed", "padded"])
def test_scores_match_plain_transformers(hf_model_dir: Path, layout: str) -> None:
    model = load_scoring_model(hf_model_dir, device="cpu")
    seqs = _encode(model, corpus_rows(30))
    ours = score_sequences(model, seqs.tokens, batch_tokens=600, layout=layout)
    reference = _plain_transformers(hf_model_dir, seqs.tokens)
    assert np.abs(ours - reference).max() < 1e-4
    assert ours.dtype == np.float32


@pytest.mark.parametrize("layout", ["packed", "padded"])
def test_batch_invariance_50_rows_alone_vs_together(hf_model_dir: Path, layout: str) -> None:
    """Each row scored alone equals its score inside the full run (within 1e-5, fp32)."""
    model = load_scoring_model(hf_model_dir, device="cpu")
    seqs = _encode(model, corpus_rows(50, seed=1))
    together = score_sequences(model, seqs.tokens, batch_tokens=2048, layout=layout)
    alone = np.array([score_sequences(model, [s], batch_tokens=2048, layout=layout)[0] for s in seqs.tokens])
    assert np.abs(together - alone).max() < 1e-5
    assert len(plan_batches(seqs.lengths, 2048, layout)) < 50  # the full run really batched rows together


def test_rerun_is_bit_identical(hf_model_dir: Path) -> None:
    model = load_scoring_model(hf_model_dir, device="cpu")
    seqs = _encode(model, corpus_rows(40, seed=2))
    first = score_sequences(model, seqs.tokens, batch_tokens=700, layout="packed")
    second = score_sequences(model, seqs.tokens, batch_tokens=700, layout="packed")
    assert first.tobytes() == second.tobytes()


def test_reward_token_is_appended_and_read(reward_token_model_dir: Path) -> None:
    model = load_scoring_model(reward_token_model_dir, device="cpu")
    assert model.reward_token_id is not None and "reward token" in model.rule
    seqs = _encode(model, corpus_rows(6))
    assert all(int(s[-1]) == model.reward_token_id for s in seqs.tokens)
    ours = score_sequences(model, seqs.tokens, batch_tokens=512, layout="packed")
    assert np.abs(ours - _plain_transformers(reward_token_model_dir, seqs.tokens)).max() < 1e-4


def test_truncation_cuts_from_the_left_and_keeps_the_reply_end(hf_model_dir: Path) -> None:
    model = load_scoring_model(hf_model_dir, device="cpu")
    rows = [{"prompt": "p" * 100, "response": "the reply ends here"}]
    full = _encode(model, rows).tokens[0]
    cut = _encode(model, rows, max_length=40)
    assert cut.truncated.tolist() == [True]
    assert len(cut.tokens[0]) == 40
    assert cut.tokens[0].tolist() == full[-40:].tolist()  # no BOS in this template: a plain left cut


def test_pad_equal_to_eos_scores_the_last_real_token(tmp_path: Path) -> None:
    """pad == eos and the template ends with eos: transformers would read before the reply's end; rmdata not."""
    from tests.score.models import save_hf_reward_model

    directory = save_hf_reward_model(tmp_path / "pad-eos", pad_token_id=0)
    model = load_scoring_model(directory, device="cpu")
    seqs = _encode(model, corpus_rows(4))
    eos_seqs = [np.append(s, np.int64(0)) for s in seqs.tokens]  # a template ending with the pad/eos id 0
    ours = score_sequences(model, eos_seqs, batch_tokens=512, layout="padded")
    from transformers import AutoModelForSequenceClassification

    hf = AutoModelForSequenceClassification.from_pretrained(directory).eval()
    with torch.no_grad():
        at_last = [hf.model(torch.tensor(s)[None]).last_hidden_state[0, -1] for s in eos_seqs]
        expected = np.array([hf.score(h).item() for h in at_last], dtype=np.float32)
    assert np.abs(ours - expected).max() < 1e-4


def test_padded_plan_respects_the_token_budget() -> None:
    lengths = np.array([5, 50, 7, 30, 30, 2, 9])
    batches = plan_batches(lengths, 64, "padded")
    assert sorted(i for b in batches for i in b.members) == list(range(7))
    for batch in batches:
        assert len(batch.members) * max(lengths[list(batch.members)]) <= 64
    assert [lengths[b.members[0]] for b in batches] == sorted((lengths[b.members[0]] for b in batches), reverse=True)


def test_rmdata_export_scores_like_the_model_that_trained(tmp_path: Path) -> None:
    from rmdata.model.export import save_reward_model
    from rmdata.tokens.batching import pack_sequences
    from tests.core_helpers import build_tiny

    built = build_tiny(seed=3)
    with torch.no_grad():
        built.model.value_head.weight.normal_(0, 1)
    save_reward_model(built, tmp_path / "export")
    model = load_scoring_model(tmp_path / "export", device="cpu")
    assert model.kind == "rmdata export" and model.reward_token_id == built.reward_token.id
    seqs = _encode(model, corpus_rows(8))
    ours = score_sequences(model, seqs.tokens, batch_tokens=512, layout="padded")
    with torch.no_grad():
        trained = built.model.eval()(pack_sequences(seqs.tokens)).numpy()
    assert np.abs(ours - trained).max() < 1e-5
