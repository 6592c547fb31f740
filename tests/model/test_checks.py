"""Bad model directories are refused by ``rmdata.model.checks`` with one RmdataError naming the file and field.

Each case copies a tiny rmdata export (or a backbone directory) and damages one thing in it, the way a failed
download, a hand-edited config or a mismatched save would.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from rmdata.errors import RmdataError
from rmdata.model.checks import check_backbone, check_gguf, check_model_dir, read_config, safetensors_shapes
from rmdata.model.export import load_reward_model, save_reward_model
from rmdata.model.loading import load_scoring_model
from rmdata.model.reward_model import load_tokenizer
from tests.core_helpers import build_tiny, randomize_head, tiny_config
from tests.score.models import save_hf_reward_model

torch.set_num_threads(1)
HIDDEN = tiny_config().tiny.hidden_size  # 64


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    built = build_tiny("llama")
    randomize_head(built.model)
    return save_reward_model(built, tmp_path_factory.mktemp("models") / "export")


def _edit_json(path: Path, **changes: object) -> None:
    value = json.loads(path.read_text())
    value.update(changes)
    path.write_text(json.dumps(value))


def _edit_tensors(path: Path, edit: Callable[[dict[str, torch.Tensor]], None]) -> None:
    tensors = load_file(path)
    edit(tensors)
    save_file(tensors, path, metadata={"format": "pt"})


def _truncate(d: Path) -> None:
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) * 2 // 3])


def _two_score_rows(d: Path) -> None:
    _edit_tensors(d / "model.safetensors", lambda t: t.update({"score.weight": torch.randn(2, HIDDEN)}))


def _wider_embedding(d: Path) -> None:
    def edit(tensors: dict[str, torch.Tensor]) -> None:
        name = next(n for n in tensors if n.endswith("embed_tokens.weight"))
        tensors[name] = torch.randn(tensors[name].shape[0] + 5, HIDDEN)

    _edit_tensors(d / "model.safetensors", edit)


def _no_model_type(d: Path) -> None:
    config = json.loads((d / "config.json").read_text())
    del config["model_type"]
    (d / "config.json").write_text(json.dumps(config))


def _no_tokenizer(d: Path) -> None:
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"):
        (d / name).unlink(missing_ok=True)


def _sharded_index_naming_a_missing_shard(d: Path) -> None:
    names = list(load_file(d / "model.safetensors"))
    weight_map = {n: "model.safetensors" for n in names} | {names[0]: "model-00002-of-00002.safetensors"}
    (d / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


def _overlapping_tensors(d: Path) -> None:
    """Two same-shape tensors pointed at the same bytes: every size adds up, the layout does not."""
    raw = (d / "model.safetensors").read_bytes()
    length = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + length])
    first, second = sorted(n for n in header if n.endswith("layernorm.weight"))[:2]
    header[second]["data_offsets"] = header[first]["data_offsets"]
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (length - len(text))  # the same header length: the data stays where it was
    (d / "model.safetensors").write_bytes(raw[:8] + text + raw[8 + length :])


CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated weights": (_truncate, r"model\.safetensors: truncated: tensor \S+ ends at data byte \d+, the file"),
    "8 bytes of weights": (
        lambda d: (d / "model.safetensors").write_bytes(b"\xff" * 8),
        r"model\.safetensors: truncated or not a safetensors file \(8 bytes",
    ),
    "bytes after the last tensor": (
        lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes() + b"\0" * 16),
        r"model\.safetensors: 16 bytes after the last tensor",
    ),
    "score head [2, hidden]": (
        _two_score_rows,
        rf"model\.safetensors: score head score\.weight has shape \[2, {HIDDEN}\]; config\.json \(num_labels=1, "
        rf"hidden_size={HIDDEN}\) needs \[1, {HIDDEN}\]",
    ),
    "embedding wider than vocab_size": (
        _wider_embedding,
        r"model\.safetensors: tensor model\.embed_tokens\.weight has shape \[\d+, 64\], but config\.json .*vocab_size",
    ),
    "overlapping tensors": (_overlapping_tensors, r"model\.safetensors: tensor \S+ starts at data byte \d+, not"),
    "config.json is []": (lambda d: (d / "config.json").write_text("[]"), r"config\.json: holds a JSON list"),
    "architectures a string": (
        lambda d: _edit_json(d / "config.json", architectures="LlamaForSequenceClassification"),
        r"config\.json: architectures='LlamaForSequenceClassification'; it must be a list",
    ),
    "max_position_embeddings a string": (
        lambda d: _edit_json(d / "config.json", max_position_embeddings="512"),
        r"config\.json: max_position_embeddings='512'; it must be a positive integer",
    ),
    "num_attention_heads not dividing hidden_size": (
        lambda d: _edit_json(d / "config.json", num_attention_heads=5),
        r"config\.json: transformers cannot build the model it describes \(.*not a multiple of the number of attention",
    ),
    "chat template with a syntax error": (
        lambda d: (d / "chat_template.jinja").write_text("{% for m in messages %}{{ m.content }"),
        r"chat_template\.jinja: the chat template fails on a plain user / assistant exchange",
    ),
    "config.json not JSON": (lambda d: (d / "config.json").write_text("{'a': 1"), r"config\.json: not readable JSON"),
    "config.json without model_type": (_no_model_type, r"config\.json: no model_type"),
    "hidden_size a string": (
        lambda d: _edit_json(d / "config.json", hidden_size="32"),
        r"config\.json: hidden_size='32'; it must be a positive integer",
    ),
    "reward_token_id outside the vocabulary": (
        lambda d: _edit_json(d / "config.json", reward_token_id=10**6),
        r"config\.json: reward_token_id=1000000 is outside the vocabulary \(vocab_size=\d+",
    ),
    "reward_token_id negative": (
        lambda d: _edit_json(d / "config.json", reward_token_id=-1),
        r"config\.json: reward_token_id=-1 is outside the vocabulary",
    ),
    "reward_token_id not an integer": (
        lambda d: _edit_json(d / "config.json", reward_token_id="<|reward|>"),
        r"config\.json: reward_token_id='<\|reward\|>'; it must be a token id",
    ),
    "no tokenizer files": (_no_tokenizer, r"no tokenizer files \(none of tokenizer\.json"),
    "tokenizer.json not JSON": (
        lambda d: (d / "tokenizer.json").write_text('{"version": '),
        r"tokenizer\.json: not readable JSON",
    ),
    "no weights": (lambda d: (d / "model.safetensors").unlink(), r"no weight files \(\*\.safetensors\)"),
    "index naming a missing shard": (
        _sharded_index_naming_a_missing_shard,
        r"model\.safetensors\.index\.json: weight_map names model-00002-of-00002\.safetensors .*missing",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_damaged_export_is_refused_by_both_loaders_naming_the_file(
    export_dir: Path, tmp_path: Path, case: str
) -> None:
    damage, message = CASES[case]
    directory = shutil.copytree(export_dir, tmp_path / "model")
    damage(directory)
    with pytest.raises(RmdataError, match=message):
        load_scoring_model(directory, device="cpu")
    with pytest.raises(RmdataError, match=message):
        load_reward_model(directory)


def test_a_file_is_not_a_model_directory(export_dir: Path) -> None:
    with pytest.raises(RmdataError, match=r"model\.safetensors is a file; give the model's directory"):
        load_scoring_model(export_dir / "model.safetensors", device="cpu")


def test_the_undamaged_export_passes_and_headers_read_as_safetensors_reads_them(export_dir: Path) -> None:
    check_model_dir(export_dir, read_config(export_dir), head=True)
    shapes = safetensors_shapes(export_dir / "model.safetensors")
    with safe_open(export_dir / "model.safetensors", framework="pt") as handle:
        assert shapes == {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}  # noqa: SIM118
    assert shapes["score.weight"] == (1, HIDDEN)
    assert load_scoring_model(export_dir, device="cpu").reward_token_id == read_config(export_dir)["reward_token_id"]


def test_a_reward_token_inside_vocab_size_but_past_the_tokenizer_is_refused(tmp_path: Path) -> None:
    """vocab_size=300 (embeddings padded), the tokenizer has 261 tokens: id 280 has a row but is no token."""
    directory = save_hf_reward_model(tmp_path / "padded", vocab_size=300)
    _edit_json(directory / "config.json", reward_token_id=280)
    with pytest.raises(RmdataError, match=r"reward_token_id=280 is not a token of the tokenizer \(261 tokens"):
        load_scoring_model(directory, device="cpu")


def test_a_tokenizer_with_more_ids_than_embedding_rows_is_refused(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    directory = save_hf_reward_model(tmp_path / "rm")
    tokenizer = AutoTokenizer.from_pretrained(directory)
    tokenizer.add_tokens(["<|extra_a|>", "<|extra_b|>"])
    tokenizer.save_pretrained(directory)
    with pytest.raises(
        RmdataError,
        match=r"the tokenizer has 263 tokens but config\.json vocab_size=261: 2 of them \('<\|extra_a\|>', ",
    ):
        load_scoring_model(directory, device="cpu")


def test_an_unembedded_pad_token_alone_is_accepted(tmp_path: Path) -> None:
    """A pad token added without resizing the embeddings: rmdata packs rows and never feeds a pad id."""
    from transformers import AutoTokenizer

    directory = save_hf_reward_model(tmp_path / "rm")
    tokenizer = AutoTokenizer.from_pretrained(directory)
    tokenizer.add_special_tokens({"pad_token": "<|new_pad|>"})
    tokenizer.save_pretrained(directory)
    model = load_scoring_model(directory, device="cpu")
    assert len(model.tokenizer) == 262 and model.tokenizer.pad_token_id == 261


@pytest.fixture(scope="module")
def backbone_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A causal-LM directory, what ``model.name_or_path`` names in a training recipe."""
    built = build_tiny("llama")
    out = tmp_path_factory.mktemp("models") / "backbone"
    built.model.trunk.save_pretrained(out)
    built.tokenizer.save_pretrained(out)
    return out


@pytest.mark.parametrize(
    "case", ["truncated weights", "config.json is []", "config.json not JSON", "no tokenizer files", "no weights"]
)
def test_a_damaged_backbone_is_refused_before_training_reads_it(backbone_dir: Path, tmp_path: Path, case: str) -> None:
    damage, message = CASES[case]
    directory = shutil.copytree(backbone_dir, tmp_path / "backbone")
    damage(directory)
    with pytest.raises(RmdataError, match=message):
        load_tokenizer(tiny_config(name_or_path=str(directory)))


def test_a_backbone_keeps_its_own_head_rule_and_takes_bin_weights(backbone_dir: Path, tmp_path: Path) -> None:
    """A backbone has no score head to check, and training may load ``pytorch_model.bin`` (weights_only)."""
    directory = shutil.copytree(backbone_dir, tmp_path / "backbone")
    check_backbone(str(directory), None)
    torch.save(load_file(directory / "model.safetensors"), directory / "pytorch_model.bin")
    (directory / "model.safetensors").unlink()
    check_backbone(str(directory), None)
    assert len(load_tokenizer(tiny_config(name_or_path=str(directory)))) > 0


def test_a_gguf_path_must_be_a_gguf_file(tmp_path: Path) -> None:
    with pytest.raises(RmdataError, match="no such file"):
        check_gguf(tmp_path / "missing.gguf")
    (tmp_path / "model.gguf").write_bytes(b"PK\x03\x04 a zip, not a gguf")
    with pytest.raises(RmdataError, match=r"model\.gguf: not a GGUF file \(it starts with b'PK\\x03\\x04'"):
        check_gguf(tmp_path / "model.gguf")
    (tmp_path / "ok.gguf").write_bytes(b"GGUF" + bytes(8))
    check_gguf(tmp_path / "ok.gguf")
