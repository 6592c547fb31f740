"""InternLM2(-Reward) directories load without remote code and score like the model they were written from.

The checkpoints are built here: a from-config Llama model whose weights are written the InternLM2 way (fused
``wqkv``, InternLM2 names, ``config.json`` with an ``auto_map`` to modeling files that are absent), and a
SentencePiece tokenizer trained on the spot. Scores are checked against two references: the source Llama model
in plain transformers, and InternLM2's forward pass written below directly on the fused weights (its grouped
``wqkv`` layout and its linear / dynamic RoPE formulas).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from rmdata.errors import RmdataError
from rmdata.model.export import load_reward_model, save_reward_model
from rmdata.model.internlm2 import llama_config, read_config
from rmdata.model.internlm2_reward import load_internlm2_reward
from rmdata.model.internlm2_tokenizer import load_internlm2_tokenizer
from rmdata.tokens.batching import pack_sequences
from tests.internlm2_helpers import (
    CHAT_TEMPLATE,
    IM_END,
    IM_START,
    REWARD_ID,
    REWARD_TOKEN,
    llama_source,
    reference_ids,
    write_internlm2_checkpoint,
    write_tokenizer,
)

torch.set_num_threads(1)
VOCAB = 384
TEXTS = [
    "the reward model scores every answer",
    "  leading spaces, and  double  spaces  ",
    "<|im_start|>user\nhello there<|im_end|>\n<|im_start|>assistant\n",
    "def f(x):\n    return  42\n\tdone",
    "émoji 🙂 and 中文 数据 Ünïcödé",  # characters missing from the model: byte fallback
    "<s>the</s> <unk>",
    "",
    " ",
    "ｆｕｌｌｗｉｄｔｈ ① ﬁ",  # nmt_nfkc maps these; identity keeps them
]


def sequences(lengths: tuple[int, ...], seed: int = 0) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(7, VOCAB, (n - 1,), generator=generator).tolist() + [REWARD_ID] for n in lengths]


def source_scores(llama: Any, v_head: torch.Tensor, seqs: list[list[int]]) -> torch.Tensor:
    """The source Llama model in plain transformers, one sequence per call, read at the last token."""
    with torch.no_grad():
        hidden = [llama.model(input_ids=torch.tensor([s])).last_hidden_state[0, -1] for s in seqs]
    return torch.stack(hidden) @ v_head[0]


def internlm2_forward(state: dict[str, torch.Tensor], raw: dict[str, Any], ids: list[int]) -> float:
    """InternLM2-Reward's score of one sequence, written from its published description on the fused weights."""
    heads, kv = raw["num_attention_heads"], raw["num_key_value_heads"]
    d, q_per_kv, eps = raw["hidden_size"] // heads, heads // kv, raw["rms_norm_eps"]
    n, limit, base = len(ids), raw["max_position_embeddings"], raw["rope_theta"]
    scaling = raw["rope_scaling"] or {}
    positions = torch.arange(n, dtype=torch.float32)
    if scaling.get("type") == "dynamic" and n > limit:  # NTK: a larger base for a longer sequence
        f = scaling["factor"]
        base = base * ((f * n / limit) - (f - 1)) ** (d / (d - 2))
    if scaling.get("type") == "linear":
        positions = positions / scaling["factor"]
    inv_freq = 1.0 / (base ** (torch.arange(0, d, 2, dtype=torch.float32) / d))
    angles = torch.cat([torch.outer(positions, inv_freq)] * 2, dim=-1)
    cos, sin = angles.cos(), angles.sin()

    def rotate(t: torch.Tensor) -> torch.Tensor:
        return t * cos + torch.cat([-t[..., d // 2 :], t[..., : d // 2]], dim=-1) * sin

    def rms(h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return w * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps))

    def linear(h: torch.Tensor, name: str) -> torch.Tensor:
        out = h @ state[f"{name}.weight"].T
        return out + state[f"{name}.bias"] if f"{name}.bias" in state else out

    x = state["model.tok_embeddings.weight"][ids]
    causal = torch.triu(torch.ones(n, n, dtype=torch.bool), 1)
    for i in range(raw["num_hidden_layers"]):
        p = f"model.layers.{i}."
        qkv = linear(rms(x, state[p + "attention_norm.weight"]), p + "attention.wqkv").view(n, kv, q_per_kv + 2, d)
        q = rotate(qkv[:, :, :q_per_kv].reshape(n, heads, d).transpose(0, 1))
        k = rotate(qkv[:, :, -2].transpose(0, 1)).repeat_interleave(q_per_kv, 0)
        v = qkv[:, :, -1].transpose(0, 1).repeat_interleave(q_per_kv, 0)
        att = (q @ k.transpose(1, 2) / math.sqrt(d)).masked_fill(causal, float("-inf")).softmax(-1)
        x = x + linear((att @ v).transpose(0, 1).reshape(n, heads * d), p + "attention.wo")
        h = rms(x, state[p + "ffn_norm.weight"])
        gate = torch.nn.functional.silu(linear(h, p + "feed_forward.w1")) * linear(h, p + "feed_forward.w3")
        x = x + linear(gate, p + "feed_forward.w2")
    return float(rms(x, state["model.norm.weight"])[-1] @ state["v_head.weight"][0])


# ----------------------------------------------------------------------------------------------- tokenizer


@pytest.mark.parametrize(
    "options",
    [{}, {"add_dummy_prefix": False}, {"remove_extra_whitespaces": True}, {"normalization_rule_name": "nmt_nfkc"}],
    ids=["internlm2", "no-dummy-prefix", "remove-extra-whitespaces", "nmt-nfkc"],
)
def test_token_ids_equal_sentencepiece_split_on_added_tokens(tmp_path: Path, options: dict[str, Any]) -> None:
    write_tokenizer(tmp_path, **options)
    tokenizer = load_internlm2_tokenizer(tmp_path)
    for text in TEXTS:
        assert tokenizer(text)["input_ids"] == reference_ids(tmp_path / "tokenizer.model", text), text
        got = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert got == reference_ids(tmp_path / "tokenizer.model", text, add_bos=False), text


def test_special_tokens_template_and_round_trip(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    write_tokenizer(tmp_path)
    tokenizer = load_internlm2_tokenizer(tmp_path)
    assert len(tokenizer) == VOCAB
    named = [(t, tokenizer.convert_tokens_to_ids(t)) for t in ("<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>")]
    assert named == [("<unk>", 0), ("<s>", 1), ("</s>", 2), ("<|im_start|>", IM_START), ("<|im_end|>", IM_END)]
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.unk_token_id) == (
        1,
        2,
        2,
        0,
    )
    assert tokenizer.convert_ids_to_tokens(REWARD_ID) == REWARD_TOKEN
    assert tokenizer.convert_ids_to_tokens(6) == "[UNUSED_TOKEN_3]"  # a slot tokenizer_config.json leaves alone
    assert set(tokenizer.all_special_tokens) >= {"<s>", "</s>", "<unk>", "<|im_start|>", "<|im_end|>"}
    assert tokenizer.chat_template == CHAT_TEMPLATE
    text = "the model said 42 émoji 🙂"
    assert tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True) == text

    chat = [{"role": "user", "content": "hello there"}, {"role": "assistant", "content": "the answer"}]
    rendered = tokenizer.apply_chat_template(chat, tokenize=False)
    assert rendered.startswith("<s><|im_start|>user\nhello there<|im_end|>\n")
    ids = tokenizer(rendered, add_special_tokens=False)["input_ids"]
    assert ids == reference_ids(tmp_path / "tokenizer.model", rendered, add_bos=False) and ids[:2] == [1, IM_START]

    tokenizer.save_pretrained(tmp_path / "saved")  # what an export writes: plain transformers reads it back
    assert "auto_map" not in json.loads((tmp_path / "saved" / "tokenizer_config.json").read_text())
    again = AutoTokenizer.from_pretrained(tmp_path / "saved")
    for text in [*TEXTS, rendered]:
        assert again(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert again.chat_template == CHAT_TEMPLATE


def test_a_literal_unused_token_is_not_one_token(tmp_path: Path) -> None:
    """As with InternLM2's fast tokenizer: "[UNUSED_TOKEN_3]" in text is spelled out; give such tokens by id."""
    write_tokenizer(tmp_path)
    ids = load_internlm2_tokenizer(tmp_path)("[UNUSED_TOKEN_3]", add_special_tokens=False)["input_ids"]
    assert 6 not in ids and len(ids) > 1


# ----------------------------------------------------------------------------------------------- scores


CASES = {
    "mha": dict(heads=4, kv_heads=4),
    "gqa": dict(heads=4, kv_heads=2),
    "mqa-bias": dict(heads=4, kv_heads=1, bias=True),
    "gqa-linear": dict(heads=8, kv_heads=2, rope_scaling={"type": "linear", "factor": 4.0}),
    "gqa-dynamic": dict(heads=4, kv_heads=2, rope_scaling={"type": "dynamic", "factor": 2.0}, max_positions=16),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_scores_equal_the_source_llama_and_internlm2s_own_forward(tmp_path: Path, case: str) -> None:
    spec = dict(CASES[case])
    rope = spec.get("rope_scaling")
    llama = llama_source(VOCAB, **spec)
    v_head = torch.randn(1, 64, generator=torch.Generator().manual_seed(3))
    directory = write_internlm2_checkpoint(tmp_path / "rm", llama, v_head=v_head, rope_scaling=rope)

    built = load_reward_model(directory)  # the export loader sees config.json naming InternLM2ForRewardModel
    assert type(built.model.trunk).__name__ == "LlamaModel"
    assert (built.reward_token.id, built.reward_token.text) == (REWARD_ID, REWARD_TOKEN)
    lengths = (9, 23, 5, 14) if case != "gqa-dynamic" else (40,)  # dynamic RoPE rescales past 16 positions
    seqs = sequences(lengths)
    with torch.no_grad():
        ours = built.model(pack_sequences(seqs))
    expected = source_scores(llama, v_head, seqs)
    assert ours.abs().min() > 1e-3
    assert (ours - expected).abs().max() < 1e-5
    state, raw = load_file(directory / "model.safetensors"), read_config(directory)
    assert raw is not None
    reference = torch.tensor([internlm2_forward(state, raw, s) for s in seqs])
    assert (ours - reference).abs().max() < 1e-5
    if case == "gqa-dynamic":  # the rescaling really happened: plain RoPE scores differently
        raw["rope_scaling"] = None
        assert abs(internlm2_forward(state, raw, seqs[0]) - float(ours[0])) > 1e-4


def test_config_maps_onto_llama(tmp_path: Path) -> None:
    raw = {
        "model_type": "internlm2",
        "hidden_size": 128,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "intermediate_size": 256,
        "num_hidden_layers": 3,
        "rms_norm_eps": 1e-5,
        "rope_theta": 1000000,
        "rope_scaling": {"type": "dynamic", "factor": 2.5},
        "max_position_embeddings": 32768,
        "vocab_size": 92544,
        "bias": False,
        "tie_word_embeddings": False,
    }
    config = llama_config(raw)
    assert (config.hidden_size, config.num_attention_heads, config.num_key_value_heads, config.head_dim) == (
        128,
        8,
        2,
        16,
    )
    assert (config.intermediate_size, config.num_hidden_layers, config.rms_norm_eps) == (256, 3, 1e-5)
    assert config.rope_parameters == {"rope_type": "dynamic", "factor": 2.5, "rope_theta": 1000000.0}
    assert (config.max_position_embeddings, config.vocab_size) == (32768, 92544)
    assert (config.attention_bias, config.mlp_bias, config.tie_word_embeddings) == (False, False, False)
    with pytest.raises(RmdataError, match=r"rope_scaling=.*'yarn'.*only 'linear' and 'dynamic'"):
        llama_config({**raw, "rope_scaling": {"type": "yarn", "factor": 2.0}})
    with pytest.raises(RmdataError, match="num_attention_heads by num_key_value_heads"):
        llama_config({**raw, "num_key_value_heads": 3})


# ----------------------------------------------------------------------------------------------- no remote code


PLANTED = """
import pathlib
pathlib.Path({marker!r}).write_text("executed")
raise RuntimeError("planted remote code ran")
"""


def test_planted_remote_code_never_runs(tmp_path: Path) -> None:
    from rmdata.config import ModelConfig
    from rmdata.model.reward_model import build_reward_model, load_tokenizer
    from rmdata.tokens.reward_token import resolve_reward_token

    llama = llama_source(VOCAB)
    directory = write_internlm2_checkpoint(tmp_path / "rm", llama, v_head=torch.randn(1, 64))
    marker = tmp_path / "marker"
    names = ("modeling_internlm2", "configuration_internlm2", "tokenization_internlm2", "tokenization_internlm2_fast")
    for name in names:
        (directory / f"{name}.py").write_text(PLANTED.format(marker=str(marker)))
    sys.path.insert(0, str(directory))  # even importable by name, nothing may import it
    try:
        built = load_reward_model(directory)
        cfg = ModelConfig(name_or_path=str(directory), reward_token_id=REWARD_ID, finetune="lora")
        tokenizer = load_tokenizer(cfg)
        build_reward_model(cfg, tokenizer, resolve_reward_token(tokenizer, None, REWARD_ID))
    finally:
        sys.path.remove(str(directory))
    assert not marker.exists()
    assert not any(name in sys.modules for name in names)
    assert built.model(pack_sequences(sequences((6,)))).shape == (1,)


# ----------------------------------------------------------------------------------------------- bad input


def rewrite(directory: Path, change: Any) -> None:
    path = directory / "model.safetensors"
    state = load_file(path)
    change(state)
    save_file(state, str(path), metadata={"format": "pt"})


def test_bad_weights_name_the_tensor_its_shape_and_the_expected_one(tmp_path: Path) -> None:
    llama = llama_source(VOCAB)
    directory = write_internlm2_checkpoint(tmp_path / "rm", llama, v_head=torch.randn(1, 64), with_tokenizer=False)
    write_tokenizer(directory)
    clean = load_file(directory / "model.safetensors")

    def expect(change: Any, message: str) -> None:
        rewrite(directory, change)
        with pytest.raises(RmdataError, match=message) as err:
            load_internlm2_reward(directory)
        assert "\n" not in str(err.value)
        save_file(clean, str(directory / "model.safetensors"), metadata={"format": "pt"})

    wqkv = "model.layers.1.attention.wqkv.weight"
    expect(
        lambda s: s.__setitem__(wqkv, s[wqkv][:96]),
        r"tensor model\.layers\.1\.attention\.wqkv\.weight has shape \[96, 64\]; expected \[128, 64\]: "
        r"\(num_attention_heads=4 \+ 2 x num_key_value_heads=2\) x head_dim=16 rows, 2 groups of 2 query heads",
    )
    expect(
        lambda s: s.__setitem__("model.norm.weight", torch.ones(32)),
        r"tensor model\.norm\.weight has shape \[32\]; expected \[64\]",
    )
    expect(
        lambda s: s.__setitem__("model.layers.0.attention.rotary.weight", torch.ones(4)),
        r"unexpected InternLM2 tensor model\.layers\.0\.attention\.rotary\.weight with shape \[4\]",
    )
    expect(
        lambda s: s.__setitem__("model.layers.0.feed_forward.w1.bias", torch.ones(128)),
        r"unexpected InternLM2 tensor model\.layers\.0\.feed_forward\.w1\.bias",
    )
    expect(
        lambda s: s.pop("model.layers.1.ffn_norm.weight"),
        r"tensor model\.layers\.1\.ffn_norm\.weight \(shape \[64\]\) is missing",
    )
    expect(lambda s: s.pop("v_head.weight"), "the weights have no v_head.weight")
    expect(lambda s: s.__setitem__("v_head.weight", torch.ones(2, 64)), r"v_head\.weight has shape \[2, 64\]")

    torch.save(clean, directory / "pytorch_model.bin")
    (directory / "model.safetensors").unlink()
    with pytest.raises(RmdataError, match=r"pickled weights \(\*\.bin\).*safetensors only; convert them once"):
        load_internlm2_reward(directory)


def test_a_backbone_is_not_a_reward_model(tmp_path: Path) -> None:
    directory = write_internlm2_checkpoint(tmp_path / "lm", llama_source(VOCAB))
    assert json.loads((directory / "config.json").read_text())["architectures"] == ["InternLM2ForCausalLM"]
    with pytest.raises(RmdataError, match="no reward_token_id: it is an InternLM2 backbone"):
        load_reward_model(directory)


# ----------------------------------------------------------------------------------------------- export


def test_an_internlm2_reward_model_exports_as_plain_llama(tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    llama = llama_source(VOCAB, kv_heads=2, bias=True)
    v_head = torch.randn(1, 64, generator=torch.Generator().manual_seed(5))
    built = load_reward_model(write_internlm2_checkpoint(tmp_path / "rm", llama, v_head=v_head))
    out = save_reward_model(built, tmp_path / "export")
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["LlamaForSequenceClassification"] and "auto_map" not in config
    assert (config["reward_token_id"], config["reward_token"], config["attention_bias"]) == (
        REWARD_ID,
        REWARD_TOKEN,
        True,
    )

    classifier = AutoModelForSequenceClassification.from_pretrained(out)  # no trust_remote_code
    tokenizer = AutoTokenizer.from_pretrained(out)
    chat = [{"role": "user", "content": "hello there"}, {"role": "assistant", "content": "the answer is 42"}]
    ids = tokenizer(tokenizer.apply_chat_template(chat, tokenize=False), add_special_tokens=False)["input_ids"]
    seqs = [ids + [REWARD_ID], *sequences((7, 12))]
    with torch.no_grad():
        theirs = torch.stack([classifier(input_ids=torch.tensor([s])).logits[0, 0] for s in seqs])
        ours = built.model(pack_sequences(seqs))
    assert (theirs - ours).abs().max() < 1e-5
    assert (theirs - source_scores(llama, v_head, seqs)).abs().max() < 1e-5


# ----------------------------------------------------------------------------------------------- training


def final_scores(final: Path, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(plain transformers, rmdata) scores of a training run's final/ directory."""
    from transformers import AutoModelForSequenceClassification

    classifier = AutoModelForSequenceClassification.from_pretrained(final)  # no trust_remote_code
    with torch.no_grad():
        theirs = torch.stack([classifier(input_ids=torch.tensor([s])).logits[0, 0] for s in seqs])
        ours = load_reward_model(final).model(pack_sequences(seqs))
    return theirs, ours


def test_rmdata_train_on_an_internlm2_dir_exports_plain_llama(tmp_path: Path) -> None:
    """`rmdata train --set model.name_or_path=<InternLM2 dir>` with the default recipe, as a user runs it."""
    from transformers import AutoTokenizer
    from typer.testing import CliRunner

    from rmdata.cli import app
    from tests.helpers import write_pairs
    from tests.internlm2_helpers import tiny_internlm2_dir

    directory = tiny_internlm2_dir(tmp_path / "internlm2")
    pairs = write_pairs(tmp_path / "pairs.jsonl", n=16)
    args = ["train", "--set", f"model.name_or_path={directory}", "--set", f"data.train={pairs}"]
    args += ["--set", "train.max_steps=3", "--set", "train.eval_steps=0", "--output-dir", str(tmp_path / "run")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Writing model shards" not in result.output and "Loading weights" not in result.output  # no HF bars
    final = tmp_path / "run" / "final"
    config = json.loads((final / "config.json").read_text())
    assert config["architectures"] == ["LlamaForSequenceClassification"] and "auto_map" not in config
    assert (config["reward_token_id"], config["reward_token"]) == (REWARD_ID, REWARD_TOKEN)
    assert not list(final.glob("*.py"))

    tokenizer, source = AutoTokenizer.from_pretrained(final), load_internlm2_tokenizer(directory)
    chat = [{"role": "user", "content": "Write item3 in uppercase."}, {"role": "assistant", "content": "ITEM3"}]
    text = source.apply_chat_template(chat, tokenize=False)
    assert tokenizer.apply_chat_template(chat, tokenize=False) == text
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids == source(text, add_special_tokens=False)["input_ids"]
    theirs, ours = final_scores(final, [ids + [REWARD_ID], *sequences((9, 4))])
    assert theirs.abs().max() > 1e-4  # the head trained away from zero
    assert (theirs - ours).abs().max() < 1e-5


def test_lora_training_on_an_internlm2_dir(tmp_path: Path) -> None:
    from rmdata.config import load_recipe
    from rmdata.train.loop import train
    from rmdata.train.runs import RunDir
    from tests.helpers import write_pairs
    from tests.internlm2_helpers import tiny_internlm2_dir

    directory = tiny_internlm2_dir(tmp_path / "internlm2")
    overrides = [f"model.name_or_path={directory}", "model.reward_token=null", f"model.reward_token_id={REWARD_ID}"]
    overrides += ["model.finetune=lora", f"data.train={write_pairs(tmp_path / 'pairs.jsonl', n=16)}"]
    overrides += ["train.max_steps=3", "train.eval_steps=0", "train.lr=1e-2"]
    run = RunDir(tmp_path / "run")
    train(load_recipe(None, overrides), run, show_progress=False)
    info = json.loads(run.run_json.read_text())
    assert info["reward_token"]["id"] == REWARD_ID
    assert 0 < info["parameters"]["trainable"] < info["parameters"]["total"]
    theirs, ours = final_scores(run.final, sequences((9, 14, 5)))
    trunk = load_file(run.final / "model.safetensors")
    source = load_file(directory / "model.safetensors")
    q_source = source["model.layers.0.attention.wqkv.weight"].view(2, 4, 16, 64)[:, :2].reshape(64, 64)
    assert not torch.equal(trunk["model.layers.0.self_attn.q_proj.weight"], q_source)  # adapters merged in
    assert (theirs - ours).abs().max() < 1e-5


def test_a_hub_id_in_the_hf_cache_loads_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`model.name_or_path=internlm/...` as the recipes give it: the cached snapshot is read, nothing downloaded."""
    import huggingface_hub.constants

    from rmdata.config import ModelConfig
    from rmdata.model.reward_model import build_reward_model, load_tokenizer
    from rmdata.tokens.reward_token import resolve_reward_token

    repo = tmp_path / "hub" / "models--internlm--tiny-reward"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abc")
    llama, v_head = llama_source(VOCAB), torch.randn(1, 64, generator=torch.Generator().manual_seed(7))
    write_internlm2_checkpoint(repo / "snapshots" / "0123abc", llama, v_head=v_head)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))

    seqs = sequences((8, 13))
    with torch.no_grad():
        scores = load_reward_model("internlm/tiny-reward").model(pack_sequences(seqs))
    assert (scores - source_scores(llama, v_head, seqs)).abs().max() < 1e-5
    cfg = ModelConfig(name_or_path="internlm/tiny-reward", reward_token_id=REWARD_ID)
    tokenizer = load_tokenizer(cfg)
    built = build_reward_model(cfg, tokenizer, resolve_reward_token(tokenizer, None, REWARD_ID))
    assert type(built.model.trunk).__name__ == "LlamaModel" and len(tokenizer) == VOCAB


def test_rmdata_score_reads_an_internlm2_reward_dir_with_its_own_scores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`rmdata score --model DIR` on an InternLM2-Reward layout (auto_map, a planted modeling file): the scores
    are the mapped model's own, and the planted file never runs."""
    import polars as pl

    from tests.hostile.cli import run_cli

    llama = llama_source(VOCAB)
    directory = write_internlm2_checkpoint(tmp_path / "rm", llama, v_head=torch.randn(1, 64))
    marker = tmp_path / "marker"
    (directory / "modeling_internlm2.py").write_text(PLANTED.format(marker=str(marker)))
    corpus = tmp_path / "corpus.jsonl"
    rows = [{"prompt": f"say {w}", "response": f"{w} {w}!"} for w in ("alpha", "beta", "gamma")]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = run_cli(
        ["score", str(corpus), "--model", str(directory), "-o", str(tmp_path / "scores")], monkeypatch, tmp_path
    )
    assert result.code == 0, result.err
    assert not marker.exists()
    scored = pl.read_parquet(tmp_path / "scores" / "data" / "*.parquet")
    assert scored["model"].n_unique() == 1 and scored.height == 3
    built = load_reward_model(directory)  # the same mapping, scored alone, one conversation at a time
    tokenizer = built.tokenizer
    for row, reward in zip(rows, scored["reward"].to_list(), strict=True):
        messages = [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row["response"]}]
        text = tokenizer.apply_chat_template(messages, tokenize=False)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [built.reward_token.id]
        with torch.no_grad():
            alone = float(built.model(pack_sequences([ids]))[0])
        assert reward == pytest.approx(alone, abs=1e-5)
