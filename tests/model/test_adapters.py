"""LoRA and QLoRA: what trains, what an export writes, and that the head survives the round trip."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForSequenceClassification

from rmdata.errors import RmdataError
from rmdata.model.adapters import quantization_config
from rmdata.model.export import load_reward_model, save_reward_model
from rmdata.tokens.batching import pack_sequences
from tests.core_helpers import build_tiny, random_sequences, train_steps

PROJECTIONS = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def rows(reward_id: int) -> list[list[list[int]]]:
    return [random_sequences((9, 5, 12, 6), reward_id, seed=s) for s in range(3)]


def exported_keys(directory: Path) -> set[str]:
    with safe_open(str(directory / "model.safetensors"), "pt") as f:
        return set(f.keys())


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_lora_trains_adapters_and_head_and_exports_them_merged(tmp_path: Path, arch: str) -> None:
    built = build_tiny(arch, finetune="lora", lora_rank=4, lora_alpha=8, lora_dropout=0.0)
    model = built.model
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    adapted = {name.split(".lora_A")[0] for name in trainable if ".lora_A." in name}
    assert {name.rsplit(".", 1)[-1] for name in adapted} == PROJECTIONS  # every linear layer, found by type
    assert len(adapted) == 2 * len(PROJECTIONS)  # in both layers
    assert trainable == {n for n in trainable if "lora_" in n} | {"value_head.weight"}
    before = {name: p.detach().clone() for name, p in model.named_parameters()}

    losses = train_steps(model, rows(built.reward_token.id), steps=8)
    assert all(torch.isfinite(torch.tensor(losses)))
    for name, p in model.named_parameters():
        changed = not torch.equal(p, before[name])
        assert changed == (name in trainable), name
    assert model.value_head.weight.abs().min() > 0

    sequences = random_sequences((14, 3, 8, 21), built.reward_token.id, seed=7)
    with torch.no_grad():
        expected = model(pack_sequences(sequences))
    out = save_reward_model(built, tmp_path / "final")
    with torch.no_grad():
        assert torch.equal(model(pack_sequences(sequences)), expected)  # saving left the adapters alone
    keys = exported_keys(out)
    assert "score.weight" in keys and not any("lora" in k or "base_layer" in k for k in keys)

    loaded = load_reward_model(out)
    assert torch.equal(loaded.model.value_head.weight, model.value_head.weight)
    with torch.no_grad():
        again = loaded.model(pack_sequences(sequences))
    assert (again - expected).abs().max() < 1e-5


def test_qlora_trains_on_cpu_and_exports_a_plain_model(tmp_path: Path) -> None:
    """4-bit nf4 trunk + LoRA; the export dequantizes to float32, merges, and loads without bitsandbytes."""
    import bitsandbytes as bnb

    built = build_tiny("llama", finetune="qlora", lora_rank=4, lora_alpha=8, lora_dropout=0.0)
    model = built.model
    quantized = [m for m in model.trunk.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(quantized) == 2 * len(PROJECTIONS)
    assert quantized[0].weight.quant_type == "nf4" and quantized[0].weight.quant_state.nested  # double quant
    assert built.trainable_params < built.total_params

    losses = train_steps(model, rows(built.reward_token.id), steps=4)
    assert all(torch.isfinite(torch.tensor(losses)))
    sequences = random_sequences((14, 3, 8, 21), built.reward_token.id, seed=7)
    with torch.no_grad():
        expected = model(pack_sequences(sequences))
    assert torch.isfinite(expected).all() and expected.abs().min() > 0

    out = save_reward_model(built, tmp_path / "final")
    assert "quantization_config" not in json.loads((out / "config.json").read_text())
    classifier = AutoModelForSequenceClassification.from_pretrained(out)
    assert classifier.model.layers[0].self_attn.q_proj.weight.dtype == torch.float32
    assert torch.equal(classifier.score.weight, model.value_head.weight)
    with torch.no_grad():
        again = load_reward_model(out).model(pack_sequences(sequences))
    assert (again - expected).abs().max() < 1e-4


def test_qlora_without_bitsandbytes_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # makes `import bitsandbytes` fail
    with pytest.raises(RmdataError, match=r"needs bitsandbytes.*pip install 'bitsandbytes>=0\.45'"):
        quantization_config(torch.float32)
