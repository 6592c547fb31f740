"""Convert a GGUF checkpoint once into a plain Hugging Face directory: float32 safetensors + tokenizer.

transformers reads GGUF files (``from_pretrained(folder, gguf_file=...)``) by dequantizing every tensor, which
takes ~30 s for a 135M model and cannot be saved back as such. Converting once gives a directory that loads
in a fraction of a second and that ``model.name_or_path`` can point at. Needs ``pip install gguf``.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from rmdata.dataset_dir import atomic_directory
from rmdata.errors import RmdataError
from rmdata.model.checks import check_gguf


def convert_gguf(gguf_path: str | Path, out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Write the causal LM and tokenizer stored in ``gguf_path`` to ``out_dir`` as float32 safetensors."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path, out = Path(gguf_path), Path(out_dir)
    check_gguf(gguf_path)
    try:
        import gguf  # noqa: F401
    except ImportError as err:
        raise RmdataError(
            "reading GGUF checkpoints needs the gguf package; install it with `pip install 'rmdata[gguf]'`"
        ) from err
    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = copy.deepcopy(loaded.config)
    del config.quantization_config  # the tensors are dequantized already; the copy is a plain model
    with torch.device("meta"):
        plain = type(loaded)(config)
    plain.load_state_dict(loaded.state_dict(), strict=True, assign=True)
    plain.tie_weights()
    with atomic_directory(out, overwrite=overwrite, kind="converted-model") as tmp:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return out
