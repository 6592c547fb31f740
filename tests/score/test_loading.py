"""Model directories that cannot be scored with are refused with one line that names the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rmdata.errors import RmdataError
from rmdata.model.loading import load_scoring_model


def _edit_config(directory: Path, **changes: object) -> None:
    path = directory / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_loads_and_fingerprints(hf_model_dir: Path, tmp_path: Path) -> None:
    model = load_scoring_model(hf_model_dir, device="cpu")
    assert model.kind == "hf sequence classifier" and model.context_length == 256
    assert len(model.fingerprint) == 16
    other = _copy(hf_model_dir, tmp_path / "copy")
    assert load_scoring_model(other, device="cpu").fingerprint == model.fingerprint  # content, not path
    (other / "tokenizer_config.json").write_text((other / "tokenizer_config.json").read_text() + " ")
    assert load_scoring_model(other, device="cpu").fingerprint != model.fingerprint


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"architectures": ["LlamaForCausalLM"]}, "not a reward model with a score head"),
        ({"num_labels": 3, "id2label": {"0": "a", "1": "b", "2": "c"}}, "num_labels=3"),
        ({"auto_map": {"AutoModelForSequenceClassification": "x.Y"}}, "--trust-remote-code"),
    ],
)
def test_bad_configs_are_refused(hf_model_dir: Path, tmp_path: Path, change: dict, expected: str) -> None:
    directory = _copy(hf_model_dir, tmp_path / "bad")
    _edit_config(directory, **change)
    with pytest.raises(RmdataError, match=expected):
        load_scoring_model(directory, device="cpu")


def test_bin_only_weights_are_refused(hf_model_dir: Path, tmp_path: Path) -> None:
    directory = _copy(hf_model_dir, tmp_path / "bin")
    (directory / "model.safetensors").rename(directory / "pytorch_model.bin")
    with pytest.raises(RmdataError, match=r"only pytorch_model.bin; .*safetensors only.*convert"):
        load_scoring_model(directory, device="cpu")


def test_missing_score_head_is_refused(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    from tests.score.models import save_hf_reward_model

    directory = save_hf_reward_model(tmp_path / "headless")
    weights = load_file(directory / "model.safetensors")
    save_file({k: v for k, v in weights.items() if not k.startswith("score.")}, directory / "model.safetensors")
    with pytest.raises(RmdataError, match="no trained score head"):
        load_scoring_model(directory, device="cpu")


def test_tokenizer_without_chat_template_is_refused(hf_model_dir: Path, tmp_path: Path) -> None:
    directory = _copy(hf_model_dir, tmp_path / "no-template")
    for name in ("chat_template.jinja",):
        (directory / name).unlink(missing_ok=True)
    config = json.loads((directory / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (directory / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(RmdataError, match="no chat template"):
        load_scoring_model(directory, device="cpu")


def test_missing_directory_names_the_command_that_makes_one(tmp_path: Path) -> None:
    with pytest.raises(RmdataError, match="rmdata train"):
        load_scoring_model(tmp_path / "absent", device="cpu")
