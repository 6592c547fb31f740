"""Check a model directory before anything loads it: one RmdataError naming the file, the field and the fix.

Every loader of a model directory (``rmdata score`` / ``eval`` through ``rmdata.model.loading``, ``rmdata train``'s
``model.name_or_path``, ``rmdata.model.export.load_reward_model``) calls :func:`read_config` and
:func:`check_model_dir` first, so a bad
directory is refused before an output directory exists, not with a traceback halfway through a run. What is
checked, reading files only (no weights are loaded):

- ``config.json``: present, JSON, an object, with ``model_type``; ``vocab_size``, ``hidden_size``,
  ``num_labels`` positive integers when present (also in ``text_config``); ``reward_token_id`` an integer
  inside ``vocab_size``;
- weights: at least one weight file; a sharded ``*.safetensors.index.json`` names files that exist and hold the
  tensors it lists; every ``*.safetensors`` file has a readable header and exactly the bytes its tensors need
  (a truncated or padded file is refused, naming the tensor that runs past the end);
- shapes: each stored tensor whose name the architecture has must have the shape ``config.json`` implies (the
  model is built on the ``meta`` device, which allocates nothing); the score head of a reward model is checked
  by name: ``score.weight`` ``[num_labels, hidden_size]``;
- tokenizer: at least one vocabulary file, and each JSON tokenizer file parses as an object.

After the tokenizer is loaded, :func:`check_chat_template` renders a two-message conversation (a template with a
syntax error would fail every row), and :func:`check_tokenizer_fits` refuses a ``reward_token_id`` outside the tokenizer
and a tokenizer with ids past the embedding's last row, the padding token excepted (rmdata never feeds it; any
other such id crashes the forward pass on the first row that uses it).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmdata.errors import RmdataError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

VOCAB_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model", "tiktoken.model")
JSON_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
SAFETENSORS_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8, "C64": 8,
}  # fmt: skip
POSITIVE_INT_KEYS = (
    "vocab_size", "hidden_size", "num_labels", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
    "intermediate_size", "max_position_embeddings",
)  # fmt: skip
REEXPORT = "re-download or re-export the model (save_pretrained writes whole files)"


def check_model_dir(path: Path, config: dict[str, Any], *, head: bool, allow_bin: bool = False) -> None:
    """The weight, tokenizer and shape checks of the module docstring (``config``: what :func:`read_config` read).

    ``head``: the directory is a reward model (its ``score`` head is checked); else a backbone (trunk only).
    ``allow_bin``: ``pytorch_model*.bin`` weights count as weights (training loads them with ``weights_only``).
    """
    shapes = check_weight_files(path, allow_bin=allow_bin)
    check_tokenizer_files(path)
    if head:
        check_score_head(path, config, shapes)
    check_shapes(path, config, shapes, head=head)


def check_backbone(name_or_path: str, gguf_file: str | None) -> None:
    """``model.name_or_path`` when it is a local directory (a hub id is resolved by transformers): a trunk."""
    path = Path(name_or_path)
    if not path.is_dir():
        return
    if gguf_file is not None:
        check_gguf(path / gguf_file)
        return
    check_model_dir(path, read_config(path), head=False, allow_bin=True)


def check_gguf(file: Path) -> None:
    """A GGUF checkpoint: a file that starts with the GGUF magic bytes."""
    if not file.is_file():
        raise RmdataError(f"{file}: no such file; give the .gguf file's path (model.gguf_file names it in its folder)")
    with file.open("rb") as handle:
        magic = handle.read(4)
    if magic != b"GGUF":
        raise RmdataError(f"{file}: not a GGUF file (it starts with {magic!r}, not b'GGUF'); {REEXPORT}")



def _json_object(file: Path, kind: str, fix: str, *, wrong_fix: str | None = None) -> dict[str, Any]:
    """``file`` read as a JSON object; unreadable JSON or another JSON value is one error naming the file and
    the fix (``wrong_fix`` for the second, when it differs)."""
    try:
        value = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise RmdataError(f"{file}: not readable JSON ({err}); {fix}") from err
    if not isinstance(value, dict):
        raise RmdataError(f"{file}: holds a JSON {type(value).__name__}, not {kind}; {wrong_fix or fix}")
    return value

def read_config(path: Path) -> dict[str, Any]:
    """``config.json`` of ``path``: JSON, an object, with ``model_type`` and sane sizes."""
    file = path / "config.json"
    if path.exists() and not path.is_dir():
        raise RmdataError(f"model {path} is a file; give the model's directory (the one holding config.json)")
    if not path.is_dir():
        raise RmdataError(
            f"model {path} does not exist; train one with `rmdata train` (it writes rmdata-out/runs/latest/final), "
            "or pass a model directory (an rmdata export or a Hugging Face model saved with save_pretrained)"
        )
    if not file.is_file():
        raise RmdataError(
            f"{path} has no config.json; give a model directory save_pretrained wrote (rmdata train writes one to "
            "its run's final/)"
        )
    config = _json_object(file, "an object of settings", REEXPORT)
    if not isinstance(config.get("model_type"), str):
        raise RmdataError(
            f'{file}: no model_type (the field transformers picks the architecture by, e.g. "llama"); {REEXPORT}'
        )
    architectures = config.get("architectures")
    if architectures is not None and not (
        isinstance(architectures, list) and all(isinstance(a, str) for a in architectures)
    ):
        raise RmdataError(f'{file}: architectures={architectures!r}; it must be a list of class names, e.g. ["..."]')
    for section, where in ((config, ""), (config.get("text_config"), "text_config.")):
        if not isinstance(section, dict):
            continue
        for key in POSITIVE_INT_KEYS:
            value = section.get(key)
            if value is not None and not _positive_int(value):
                raise RmdataError(f"{file}: {where}{key}={value!r}; it must be a positive integer")
    token_id, vocab = config.get("reward_token_id"), vocab_size(config)
    if token_id is not None and not (isinstance(token_id, int) and not isinstance(token_id, bool)):
        raise RmdataError(f"{file}: reward_token_id={token_id!r}; it must be a token id (an integer) or absent")
    if token_id is not None and vocab is not None and not 0 <= token_id < vocab:
        raise RmdataError(
            f"{file}: reward_token_id={token_id} is outside the vocabulary (vocab_size={vocab}, ids 0-{vocab - 1}); "
            "set it to the id of the reward token the model was trained with"
        )
    return config


def vocab_size(config: dict[str, Any]) -> int | None:
    """``vocab_size`` of the config or its ``text_config``."""
    text = config.get("text_config")
    value = config.get("vocab_size") or (text.get("vocab_size") if isinstance(text, dict) else None)
    return int(value) if value is not None else None


def check_weight_files(path: Path, *, allow_bin: bool) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Every ``*.safetensors`` header checked against its file; ``{tensor: (file name, shape)}``."""
    files = sorted(path.glob("*.safetensors"))
    bins = sorted(path.glob("pytorch_model*.bin"))
    if not files and not (allow_bin and bins):
        found = f"only {', '.join(p.name for p in bins[:3])}" if bins else "no weight files (*.safetensors)"
        raise RmdataError(f"{path}: {found}; give the directory save_pretrained wrote, weights included")
    shapes: dict[str, tuple[str, tuple[int, ...]]] = {}
    for file in files:
        shapes |= {name: (file.name, shape) for name, shape in safetensors_shapes(file).items()}
    for index in sorted(path.glob("*.safetensors.index.json")):
        _check_index(index, shapes)
    return shapes


def safetensors_shapes(file: Path) -> dict[str, tuple[int, ...]]:
    """The tensor shapes a ``.safetensors`` file's header declares, after checking the file holds them exactly.

    Layout: 8 bytes little-endian header length ``n``, ``n`` bytes of JSON ``{name: {dtype, shape,
    data_offsets: [begin, end]}}``, then the data; the tensors' byte ranges must tile the data exactly.
    """
    size = file.stat().st_size
    with file.open("rb") as handle:
        head = handle.read(8)
        length = int.from_bytes(head, "little") if len(head) == 8 else -1
        if length < 2 or length > size - 8:
            raise RmdataError(
                f"{file}: truncated or not a safetensors file ({size} bytes, no complete header); {REEXPORT}"
            )
        try:
            header = json.loads(handle.read(length))
        except (UnicodeDecodeError, ValueError) as err:
            raise RmdataError(f"{file}: corrupt safetensors header ({err}); {REEXPORT}") from err
    if not isinstance(header, dict):
        raise RmdataError(f"{file}: corrupt safetensors header (not an object); {REEXPORT}")
    data = size - 8 - length
    shapes, ranges = {}, []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            shape = tuple(int(d) for d in info["shape"])
            begin, end = (int(x) for x in info["data_offsets"])
            dtype = str(info["dtype"])
        except (KeyError, TypeError, ValueError) as err:
            raise RmdataError(f"{file}: tensor {name}: corrupt header entry {info!r}; {REEXPORT}") from err
        if end > data:
            raise RmdataError(
                f"{file}: truncated: tensor {name} ends at data byte {end}, the file holds {data} bytes of data "
                f"({size} bytes in all); {REEXPORT}"
            )
        width = SAFETENSORS_DTYPE_BYTES.get(dtype)
        if begin > end or (width is not None and end - begin != math.prod(shape) * width):
            raise RmdataError(
                f"{file}: tensor {name} ({dtype} {list(shape)}) has a byte range [{begin}, {end}) of the wrong size; "
                f"the file is corrupt; {REEXPORT}"
            )
        shapes[name] = shape
        ranges.append((begin, end, name))
    covered = 0
    for begin, end, name in sorted(ranges):
        if begin != covered:
            raise RmdataError(
                f"{file}: tensor {name} starts at data byte {begin}, not {covered} where the one before it ends "
                f"(overlapping or gapped tensors): the file is corrupt; {REEXPORT}"
            )
        covered = end
    if covered != data:
        raise RmdataError(
            f"{file}: {data - covered} bytes after the last tensor; the file is corrupt (or two files were "
            f"concatenated); {REEXPORT}"
        )
    return shapes


def _check_index(index: Path, shapes: dict[str, tuple[str, tuple[int, ...]]]) -> None:
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        listed = {str(k): str(v) for k, v in weight_map.items()}
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise RmdataError(f"{index}: not a safetensors index (no weight_map object: {err}); {REEXPORT}") from err
    for name, shard in listed.items():
        if not (index.parent / shard).is_file():
            raise RmdataError(f"{index}: weight_map names {shard} (for {name}), which is missing; {REEXPORT}")
        if shapes.get(name, ("",))[0] != shard:
            raise RmdataError(f"{index}: weight_map puts {name} in {shard}, which does not hold it; {REEXPORT}")


def check_tokenizer_files(path: Path) -> None:
    """At least one vocabulary file; the JSON ones parse as objects."""
    if not any((path / name).is_file() for name in VOCAB_FILES):
        raise RmdataError(
            f"{path}: no tokenizer files (none of {', '.join(VOCAB_FILES)}); save the model's tokenizer into the "
            "directory too: tokenizer.save_pretrained(DIR)"
        )
    for name in JSON_TOKENIZER_FILES:
        file = path / name
        if not file.is_file():
            continue
        fix = "save the tokenizer again"
        _json_object(file, "an object", f"{fix} (save_pretrained)", wrong_fix=fix)


def check_score_head(path: Path, config: dict[str, Any], shapes: dict[str, tuple[str, tuple[int, ...]]]) -> None:
    """``score.weight`` (when stored) is ``[num_labels, hidden_size]``."""
    if "score.weight" not in shapes:
        return  # a missing head is reported by the loader, which knows the head's real name
    file, shape = shapes["score.weight"]
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
    hidden = config.get("hidden_size") or text.get("hidden_size")  # type: ignore[union-attr]
    labels = config.get("num_labels", len(config.get("id2label") or {}) or 2)
    want = (labels, hidden) if hidden is not None else (labels, shape[-1])
    if shape != want:
        raise RmdataError(
            f"{path / file}: score head score.weight has shape {list(shape)}; config.json (num_labels={labels}, "
            f"hidden_size={hidden}) needs {list(want)}; a reward model has one score per sequence: give a reward "
            "model directory whose head matches its config"
        )


def check_shapes(
    path: Path, config: dict[str, Any], shapes: dict[str, tuple[str, tuple[int, ...]]], *, head: bool
) -> None:
    """Stored tensors against the architecture ``config.json`` builds (on ``meta``: nothing is allocated).

    Skipped where rmdata does not build the model from the config with transformers: remote code (``auto_map``),
    quantized checkpoints, and InternLM2 (its own loader checks every tensor by name and shape).
    """
    from rmdata.model.internlm2 import ARCHITECTURES

    if not shapes or "auto_map" in config or "quantization_config" in config or config["model_type"] == "internlm2":
        return
    if any(a in ARCHITECTURES for a in config.get("architectures") or []):
        return
    import torch
    from huggingface_hub.errors import StrictDataclassError  # transformers 5 validates configs with these
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

    try:
        built = AutoConfig.from_pretrained(path)
        with torch.device("meta"):
            model = (AutoModelForSequenceClassification if head else AutoModel).from_config(built)
    except (OSError, KeyError, TypeError, ValueError, StrictDataclassError) as err:
        raise RmdataError(
            f"{path / 'config.json'}: transformers cannot build the model it describes ({_one_line(err)}); {REEXPORT}"
        ) from err
    prefix = f"{model.base_model_prefix}."
    expected = {name.removeprefix(prefix): tuple(t.shape) for name, t in model.state_dict().items()}
    for name, (file, shape) in shapes.items():
        want = expected.get(name.removeprefix(prefix))
        if want is not None and shape != want:
            sizes = ", ".join(f"{k}={config.get(k)}" for k in ("model_type", "hidden_size", "vocab_size"))
            raise RmdataError(
                f"{path / file}: tensor {name} has shape {list(shape)}, but config.json ({sizes}) makes it "
                f"{list(want)}; the weights and config.json come from different models: {REEXPORT}"
            )


def check_tokenizer_fits(path: Path, tokenizer: PreTrainedTokenizerBase, config: dict[str, Any]) -> None:
    """The loaded tokenizer's ids fit the embedding, and the reward token is one of them."""
    size, vocab = len(tokenizer), vocab_size(config)
    token_id = config.get("reward_token_id")
    if token_id is not None and token_id >= size:
        raise RmdataError(
            f"{path / 'config.json'}: reward_token_id={token_id} is not a token of the tokenizer ({size} tokens, ids "
            f"0-{size - 1}); set it to the reward token's id, or save the tokenizer the model was trained with"
        )
    unembedded = [i for i in range(vocab or size, size) if i != tokenizer.pad_token_id]  # pad ids are never fed
    if vocab is not None and unembedded:
        names = ", ".join(repr(t) for t in tokenizer.convert_ids_to_tokens(unembedded[:3]))
        raise RmdataError(
            f"{path}: the tokenizer has {size} tokens but config.json vocab_size={vocab}: {len(unembedded)} of them "
            f"({names}{', ...' if len(unembedded) > 3 else ''}) have no embedding row; save the tokenizer the model "
            "was trained with (or resize the embeddings)"
        )


def check_chat_template(path: Path, tokenizer: PreTrainedTokenizerBase) -> None:
    """The tokenizer's chat template, when it has one, renders a user / assistant exchange (a broken one would
    fail every row)."""
    from jinja2 import TemplateError

    if not getattr(tokenizer, "chat_template", None):
        return  # whether one is needed is the caller's rule (scoring refuses a tokenizer without one)

    probe = [{"role": "user", "content": "Hello?"}, {"role": "assistant", "content": "Hello."}]
    try:
        tokenizer.apply_chat_template(probe, tokenize=False)
    except TemplateError as err:
        where = "chat_template.jinja" if (path / "chat_template.jinja").is_file() else "tokenizer_config.json"
        raise RmdataError(
            f"{path / where}: the chat template fails on a plain user / assistant exchange ({err}); fix the "
            "template, or save the model's instruct tokenizer into the directory"
        ) from err


def _one_line(err: Exception) -> str:
    """An exception's message on one line (transformers' config validation spreads it over several)."""
    return " ".join(line.strip() for line in str(err).splitlines() if line.strip())


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
