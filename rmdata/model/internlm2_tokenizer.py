"""InternLM2's SentencePiece tokenizer, rebuilt as a plain ``tokenizers`` tokenizer: no remote code.

An InternLM2 directory ships ``tokenizer.model`` (a SentencePiece BPE model with byte fallback) and a
``tokenizer_config.json`` whose ``auto_map`` points at ``tokenization_internlm2*.py``. Those files are never
read here. The token ids are those of InternLM2's own tokenizer:

- text is split on the added tokens of ``added_tokens_decoder`` first (``<s>``, ``</s>``, ``<unk>``,
  ``<|im_start|>``, ``<|im_end|>``, ...), which take the ids given there (the SentencePiece piece at that id
  is renamed, as InternLM2's fast tokenizer does);
- each remaining chunk is encoded like ``SentencePieceProcessor.encode(chunk)``: the model's normalization
  (precompiled character map, extra-whitespace removal, the ``▁`` dummy prefix when ``add_dummy_prefix`` is
  set, spaces as ``▁``), then BPE merges in the order of the pieces' scores, bytes for unknown characters;
- a user-defined piece (``[UNUSED_TOKEN_130]``) written as text in the input is *not* one token, as with
  InternLM2's fast tokenizer (the one ``AutoTokenizer`` picks with remote code); the slow one, which hands
  chunks to SentencePiece, would match it. Give such tokens by id (``model.reward_token_id=92527``);
- ``add_bos_token`` (default true) puts ``<s>`` first when special tokens are added; ``add_eos_token``
  (default false) puts ``</s>`` last.

Decoding joins pieces (``▁`` as space, bytes fused) and drops the dummy-prefix space, like InternLM2's fast
tokenizer; the slow one differs only in the spaces it puts around special tokens. The result is a
``PreTrainedTokenizerFast`` with the directory's chat template, so ``save_pretrained`` writes a
``tokenizer.json`` that any transformers loads without remote code.

Reads the model's protobuf with ``sentencepiece`` and ``protobuf`` (rmdata dependencies); nothing else of
SentencePiece runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmdata.errors import RmdataError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

INSTALL = "pip install 'sentencepiece>=0.2' 'protobuf>=3.20'"  # both are rmdata dependencies
TOKENIZER_CLASSES = ("InternLM2Tokenizer", "InternLM2TokenizerFast")
# SentencePiece piece type of ordinary pieces (sentencepiece_model.proto); merges only build these
NORMAL = 1
BPE_MODEL = 2


def names_internlm2_tokenizer(path: str | Path) -> bool:
    """Whether ``path/tokenizer_config.json`` names InternLM2's remote tokenizer class."""
    config = Path(path) / "tokenizer_config.json"
    if not config.is_file():
        return False
    raw = json.loads(config.read_text(encoding="utf-8"))
    remote = raw.get("auto_map", {}).get("AutoTokenizer") or []
    named = [raw.get("tokenizer_class"), *(str(r).rsplit(".", 1)[-1] for r in remote if r)]
    return any(name in TOKENIZER_CLASSES for name in named)


def _read_proto(path: Path) -> Any:
    try:
        from sentencepiece import sentencepiece_model_pb2
    except ImportError as err:
        raise RmdataError(
            f"{path}: reading an InternLM2 tokenizer.model needs sentencepiece and protobuf ({err}); install "
            f"them with `{INSTALL}`"
        ) from err
    proto = sentencepiece_model_pb2.ModelProto()  # type: ignore[attr-defined]
    try:
        proto.ParseFromString(path.read_bytes())
    except Exception as err:  # protobuf raises its own DecodeError
        raise RmdataError(f"{path} is not a SentencePiece model ({err}); give InternLM2's tokenizer.model") from err
    if proto.trainer_spec.model_type != BPE_MODEL:
        raise RmdataError(
            f"{path}: SentencePiece model type {proto.trainer_spec.model_type}, expected BPE ({BPE_MODEL}) as in "
            "InternLM2; this tokenizer.model is not InternLM2's"
        )
    return proto


def _added_tokens(raw: dict[str, Any], vocab_size: int, where: Path) -> dict[int, Any]:
    from tokenizers import AddedToken

    tokens = {}
    for key, spec in (raw.get("added_tokens_decoder") or {}).items():
        token_id = int(key)
        if not 0 <= token_id < vocab_size:
            raise RmdataError(
                f"{where}: added_tokens_decoder[{key}] ({spec.get('content')!r}) is outside the "
                f"{vocab_size} pieces of tokenizer.model; an InternLM2 tokenizer keeps its added tokens inside them"
            )
        tokens[token_id] = AddedToken(
            spec["content"],
            single_word=bool(spec.get("single_word", False)),
            lstrip=bool(spec.get("lstrip", False)),
            rstrip=bool(spec.get("rstrip", False)),
            normalized=bool(spec.get("normalized", False)),
            special=bool(spec.get("special", True)),
        )
    return tokens


def _normalizer(spec: Any) -> Any:
    from tokenizers import Regex, normalizers

    steps: list[Any] = []
    if spec.precompiled_charsmap:
        steps.append(normalizers.Precompiled(spec.precompiled_charsmap))
    if spec.remove_extra_whitespaces:  # leading and trailing spaces dropped, inner runs of spaces made one
        steps += [normalizers.Replace(Regex(r"\A +| +\z"), ""), normalizers.Replace(Regex(" {2,}"), " ")]
    if spec.add_dummy_prefix:
        steps.append(normalizers.Prepend("▁"))
    steps.append(normalizers.Replace(" ", "▁"))
    return normalizers.Sequence(steps)


def _merges(pieces: list[Any], vocab: dict[str, int]) -> list[tuple[str, str]]:
    """Every split of a normal piece into two pieces of the vocabulary, best-scoring piece first."""
    normal = {p.piece for p in pieces if p.type == NORMAL}
    found = []
    for token_id, piece in enumerate(pieces):
        if piece.type != NORMAL:
            continue
        text = piece.piece
        for cut in range(1, len(text)):
            left, right = text[:cut], text[cut:]
            if left in normal and right in normal:
                found.append((-piece.score, token_id, vocab[left], left, right))
    return [(left, right) for *_, left, right in sorted(found)]


def _content(token: Any) -> Any:
    """A special token of tokenizer_config.json: a string, or a serialized AddedToken (its content)."""
    return token.get("content") if isinstance(token, dict) else token


def load_internlm2_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    """The tokenizer of the InternLM2 directory ``path`` (``tokenizer.model`` + ``tokenizer_config.json``)."""
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    path = Path(path)
    model_file = path / "tokenizer.model"
    if not model_file.is_file():
        raise RmdataError(
            f"{path} has no tokenizer.model; an InternLM2 checkpoint ships its SentencePiece model there (copy it "
            "from the base model's directory)"
        )
    config_file = path / "tokenizer_config.json"
    raw = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
    proto = _read_proto(model_file)
    pieces = list(proto.pieces)
    added = _added_tokens(raw, len(pieces), config_file)

    names = [added[i].content if i in added else p.piece for i, p in enumerate(pieces)]
    vocab = {name: i for i, name in enumerate(names)}
    if len(vocab) != len(names):
        raise RmdataError(f"{config_file}: added_tokens_decoder gives a name that another piece already has")
    unk = proto.trainer_spec.unk_id
    core = Tokenizer(
        models.BPE(
            vocab=vocab,
            merges=_merges(pieces, vocab),
            unk_token=names[unk],
            fuse_unk=True,
            byte_fallback=proto.trainer_spec.byte_fallback,
        )
    )
    core.normalizer = _normalizer(proto.normalizer_spec)
    steps = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    if proto.normalizer_spec.add_dummy_prefix:
        steps.append(decoders.Strip(" ", 1, 0))
    core.decoder = decoders.Sequence(steps)
    core.add_special_tokens([added[i] for i in sorted(added)])

    template = raw.get("chat_template")
    if template is None and (path / "chat_template.jinja").is_file():
        template = (path / "chat_template.jinja").read_text(encoding="utf-8")
    if isinstance(template, list):  # the named-templates form: [{"name": ..., "template": ...}]
        template = {t["name"]: t["template"] for t in template}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=_content(raw.get("bos_token", "<s>")),
        eos_token=_content(raw.get("eos_token", "</s>")),
        unk_token=_content(raw.get("unk_token", "<unk>")),
        pad_token=_content(raw.get("pad_token", "</s>")),
        additional_special_tokens=list(raw.get("additional_special_tokens") or []),
        add_bos_token=bool(raw.get("add_bos_token", True)),
        add_eos_token=bool(raw.get("add_eos_token", False)),
        clean_up_tokenization_spaces=bool(raw.get("clean_up_tokenization_spaces", False)),
        model_max_length=raw.get("model_max_length", 1 << 62),
    )
    tokenizer.chat_template = template
    tokenizer.name_or_path = str(path)
    return tokenizer
