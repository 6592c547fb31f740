"""Every recipe trains for two steps on a tiny stand-in of its architecture, with its own finetune mode,
loss, schedule and checkpointing settings; only the model size, data and reward token are swapped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rmdata.config import load_recipe
from rmdata.train.loop import train
from rmdata.train.runs import RunDir
from tests.helpers import write_pairs
from tests.internlm2_helpers import tiny_internlm2_dir

REPO = Path(__file__).resolve().parents[2]
ARCH = {"qwen2.5-1.5b-lora": "qwen2"}  # the rest are Llama-style


@pytest.mark.parametrize("path", sorted((REPO / "recipes").rglob("*.yaml")), ids=lambda p: p.stem)
def test_recipe_trains_on_a_tiny_stand_in(tmp_path: Path, path: Path) -> None:
    data = write_pairs(tmp_path / "pairs.jsonl", n=24)
    stand_in = "tiny"
    if path.stem.startswith("internlm2-"):  # a tiny InternLM2-layout directory (fused wqkv, SentencePiece)
        stand_in = str(tiny_internlm2_dir(tmp_path / "internlm2"))
    recipe = load_recipe(
        path,
        [
            f"model.name_or_path={stand_in}",
            f"model.tiny.arch={ARCH.get(path.stem, 'llama')}",
            "model.tiny.hidden_size=64",  # multiples of 64: QLoRA refuses other widths
            "model.tiny.intermediate_size=128",
            "model.reward_token=<|reward|>",
            "model.reward_token_id=null",
            f"data.train={data}",
            "data.eval_fraction=0.25",
            "data.max_length=128",
            "data.max_packed_length=256",
            "train.max_steps=2",
            "train.grad_accum=1",
            "train.eval_steps=0",
            "train.save_steps=1",
        ],
    )
    run = RunDir(tmp_path / "run")
    result = train(recipe, run, show_progress=False)
    assert result.steps == 2
    info = json.loads(run.run_json.read_text())
    assert info["parameters"]["trainable"] > 0
    if recipe.model.finetune != "full":
        assert info["parameters"]["trainable"] < info["parameters"]["total"]
    assert (run.final / "config.json").exists()
