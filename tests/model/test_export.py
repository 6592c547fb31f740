"""Export: transformers' AutoModelForSequenceClassification reads an rmdata model and scores like it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import rmdata.model.adapters
from rmdata.errors import RmdataError
from rmdata.model.export import load_reward_model, save_reward_model
from rmdata.model.reward_model import BuiltModel
from rmdata.tokens.batching import pack_sequences
from tests.core_helpers import build_tiny, random_sequences, train_steps

CONVERSATIONS = [
    [{"role": "user", "content": "Name a prime."}, {"role": "assistant", "content": "7"}],
    [
        {"role": "user", "content": "Say hi in French."},
        {"role": "assistant", "content": "Bonjour, comment allez-vous ?"},
    ],
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
    ],
    [{"role": "user", "content": "Spell cat backwards."}, {"role": "assistant", "content": "tac"}],
]


def trained(arch: str = "llama", **overrides: object) -> BuiltModel:
    built = build_tiny(arch, **overrides)
    rows = [random_sequences((9, 5, 12, 6), built.reward_token.id, seed=s) for s in range(3)]
    train_steps(built.model, rows, steps=6)
    assert built.model.value_head.weight.abs().min() > 0
    return built


def token_ids(tokenizer: object, reward_id: int) -> list[list[int]]:
    """Each conversation rendered with the chat template, tokenized as is, plus the reward token."""
    texts = [tokenizer.apply_chat_template(c, tokenize=False) for c in CONVERSATIONS]  # type: ignore[attr-defined]
    return [tokenizer(t, add_special_tokens=False)["input_ids"] + [reward_id] for t in texts]  # type: ignore[operator]


def hf_scores(directory: Path) -> torch.Tensor:
    """Scores of transformers alone: right-padded batch of text + reward token, pooled by transformers."""
    model = AutoModelForSequenceClassification.from_pretrained(directory)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    tokenizer.padding_side = "right"
    batch = tokenizer.pad({"input_ids": token_ids(tokenizer, model.config.reward_token_id)}, return_tensors="pt")
    assert (batch["attention_mask"] == 0).any()  # the batch really is padded
    with torch.no_grad():
        return model(**batch).logits.squeeze(-1)


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_transformers_scores_the_export_like_the_packed_model(tmp_path: Path, arch: str) -> None:
    built = trained(arch)
    out = save_reward_model(built, tmp_path / "final")
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == [f"{'Llama' if arch == 'llama' else 'Qwen2'}ForSequenceClassification"]
    assert config["reward_token_id"] == 260 and config["reward_token"] == "<|reward|>"
    assert config["pad_token_id"] == 259 and "pad_token_id=259" in config["scoring_rule"]
    assert "id 260" in config["scoring_rule"] and "quantization_config" not in config

    classifier = AutoModelForSequenceClassification.from_pretrained(out)
    assert classifier.num_labels == 1
    assert torch.equal(classifier.score.weight, built.model.value_head.weight)
    with torch.no_grad():
        packed = built.model(pack_sequences(token_ids(built.tokenizer, built.reward_token.id)))
    assert packed.abs().min() > 1e-3
    assert (hf_scores(out) - packed).abs().max() < 1e-4


def test_a_pad_token_equal_to_the_reward_token_is_replaced(tmp_path: Path) -> None:
    """EOS as pad and as (default) reward token: transformers would pool the token before the reward token.
    The export pads with the next special token instead, in config.json and in the saved tokenizer."""
    built = build_tiny("llama", reward_token=None)
    built.tokenizer.pad_token = built.tokenizer.eos_token
    assert built.reward_token.id == built.tokenizer.pad_token_id == 256
    rows = [random_sequences((9, 5, 12, 6), 256, seed=s) for s in range(3)]
    train_steps(built.model, rows, steps=6)
    out = save_reward_model(built, tmp_path / "final")

    config = json.loads((out / "config.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert config["reward_token_id"] == 256 and config["pad_token_id"] != 256
    assert tokenizer.pad_token_id == config["pad_token_id"]
    assert built.tokenizer.pad_token_id == 256  # the caller's tokenizer is left as it was
    with torch.no_grad():
        packed = built.model(pack_sequences(token_ids(built.tokenizer, 256)))
    assert (hf_scores(out) - packed).abs().max() < 1e-4

    config["pad_token_id"] = 256  # what a naive export would have written
    (out / "config.json").write_text(json.dumps(config))
    assert (hf_scores(out) - packed).abs().max() > 1e-3


def test_load_reward_model_gives_back_identical_scores(tmp_path: Path) -> None:
    built = trained("qwen2")
    out = save_reward_model(built, tmp_path / "final")
    loaded = load_reward_model(out, attention="eager_varlen")
    assert loaded.reward_token.id == 260 and loaded.reward_token.text == "<|reward|>"
    assert loaded.attention.name == "eager_varlen" and not loaded.model.training
    sequences = random_sequences((14, 3, 8, 21), 260, seed=7)
    with torch.no_grad():
        expected = built.model(pack_sequences(sequences))
        again = loaded.model(pack_sequences(sequences))
    assert (again - expected).abs().max() < 1e-5


def test_saving_is_atomic_and_never_overwrites_by_accident(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built = build_tiny("llama")
    out = save_reward_model(built, tmp_path / "final")
    with pytest.raises(RmdataError, match="already exists"):
        save_reward_model(built, out)
    (out / "marker").write_text("old")
    save_reward_model(built, out, overwrite=True)
    assert not (out / "marker").exists() and (out / "config.json").exists()

    def broken(*args: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(rmdata.model.adapters, "plain_state_dict", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        save_reward_model(built, tmp_path / "other")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final"]


def test_loading_a_directory_that_is_not_an_rmdata_export_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RmdataError, match="has no config.json"):
        load_reward_model(tmp_path)
    built = build_tiny("llama")
    out = save_reward_model(built, tmp_path / "final")
    config = json.loads((out / "config.json").read_text())
    del config["reward_token_id"]
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(RmdataError, match="reward_token_id=None"):
        load_reward_model(out)
