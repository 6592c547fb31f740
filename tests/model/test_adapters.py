"""LoRA and QLoRA: what trains, what an export writes, and that the head survives the round trip."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForSequenceClassification

from rmdata.config import TinyModelConfig
from rmdata.errors import RmdataError
from rmdata.model.adapters import quantization_config, set_packed_cpu_path
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
    assert not any(m.support_avx512bf16_for_cpu for m in quantized)  # training model: no packed CPU path
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


def test_qlora_weights_survive_the_packed_cpu_layout_round_trip() -> None:
    """Runs on every CPU: each 4-bit layer of the tiny QLoRA model converts to bitsandbytes' packed CPU
    layout (what failed with ``shape '[32, 0]' is invalid`` on 32-wide stand-ins) and back, bit for bit."""
    import bitsandbytes as bnb
    from bitsandbytes.functional import (
        _convert_weight_packed_for_cpu,
        _convert_weight_packed_for_cpu_inverse,
        dequantize_4bit,
    )

    built = build_tiny("llama", finetune="qlora", lora_rank=4, lora_alpha=8, lora_dropout=0.0)
    layers = [m for m in built.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(layers) == 2 * len(PROJECTIONS)
    for layer in layers:
        dense = dequantize_4bit(layer.weight.data, layer.weight.quant_state).float()
        state = copy.deepcopy(layer.weight.quant_state)
        packed, packed_state = _convert_weight_packed_for_cpu(layer.weight.data.clone(), state)
        assert packed_state.packing_format_for_cpu and packed.shape == (layer.out_features, layer.in_features // 2)
        weight, restored = _convert_weight_packed_for_cpu_inverse(packed, packed_state)
        assert torch.equal(weight.view(-1), layer.weight.data.view(-1))
        again = dequantize_4bit(weight, restored).float()
        assert (again - dense).abs().max() < 1e-2 * dense.abs().max()  # absmax went through bf16


@pytest.mark.parametrize("packed", [False, True], ids=["dequantize-path", "packed-avx512bf16-path"])
def test_qlora_eval_scores_agree_on_both_bitsandbytes_cpu_paths(tmp_path: Path, packed: bool) -> None:
    """Eval-mode QLoRA scores with the packed fast path forced on or off match the dequantized export.

    (rmdata builds its training model with the path off; scoring may turn it on with set_packed_cpu_path.)

    The dequantize path runs on every CPU and must match the exported float32 model to float32 rounding.
    The packed path's kernel is registered by bitsandbytes only on CPUs with AVX512-BF16; forced on elsewhere
    it runs the generic kernel on the packed layout and returns wrong numbers (measured: off by ~28 on a
    layer whose outputs are ~3), so there it is skipped. It computes in bf16 (inputs and absmax), hence the
    looser tolerance."""
    import bitsandbytes as bnb

    if packed and not bnb.functional.has_avx512bf16():
        pytest.skip("this CPU has no AVX512-BF16: bitsandbytes registers its packed 4-bit CPU kernel only there")
    built = build_tiny("llama", finetune="qlora", lora_rank=4, lora_alpha=8, lora_dropout=0.0)
    model = built.model
    train_steps(model, rows(built.reward_token.id), steps=2)  # non-zero adapters and head
    sequences = random_sequences((14, 3, 8, 21), built.reward_token.id, seed=7)
    reference = load_reward_model(save_reward_model(built, tmp_path / "final")).model
    with torch.no_grad():
        expected = reference(pack_sequences(sequences))

    model.eval()
    assert set_packed_cpu_path(model, packed) == 2 * len(PROJECTIONS)
    with torch.no_grad():
        scores = model(pack_sequences(sequences))
    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert all(getattr(m.weight.quant_state, "packing_format_for_cpu", False) == packed for m in layers)
    scale = float(expected.abs().max())
    assert scale > 0
    tolerance = 0.05 * scale if packed else 1e-4 * scale
    assert (scores - expected).abs().max() <= tolerance
    set_packed_cpu_path(model, False)  # unpacks: the dequantize path again, on scales rounded to bf16 if packed
    with torch.no_grad():
        assert (model(pack_sequences(sequences)) - expected).abs().max() <= tolerance


def test_qlora_refuses_widths_its_4bit_layers_cannot_run() -> None:
    """A 32-wide stand-in (in-features 32, not a multiple of the 64-wide quantization block) is refused when
    built, with the layer named and the fix; LoRA on the same width is fine."""
    with pytest.raises(RmdataError) as err:
        build_tiny(
            "llama",
            finetune="qlora",
            tiny=TinyModelConfig(hidden_size=32, num_heads=4, num_kv_heads=2, intermediate_size=64),
        )
    message = str(err.value)
    assert "\n" not in message
    assert "cannot use layer layers.0.self_attn.q_proj (32 -> 32 features)" in message
    assert "in-features divisible by 64" in message and "model.finetune=lora" in message
    build_tiny("llama", finetune="lora", tiny=TinyModelConfig(hidden_size=32, num_heads=4, intermediate_size=64))
