"""Shared fixtures. Tests are offline: nothing may reach a model or dataset hub, nor the user's HF cache.

Every test gets its own ``HF_HOME`` / ``HF_DATASETS_CACHE`` (:func:`isolated_hf_cache`); before any test
runs, both point into a temporary directory, so even a library imported at collection time never reads or
fills ``~/.cache/huggingface`` (``datasets`` keys local directories loosely: a shared cache can serve one
test's rows to another, or to the user's next real run).
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
_SESSION_HF = tempfile.mkdtemp(prefix="rmdata-tests-hf-")
os.environ["HF_HOME"] = _SESSION_HF
os.environ["HF_DATASETS_CACHE"] = os.path.join(_SESSION_HF, "datasets")
atexit.register(shutil.rmtree, _SESSION_HF, ignore_errors=True)

import json  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402

WriteJsonl = Callable[..., Path]


@pytest.fixture(autouse=True)
def isolated_hf_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty Hugging Face cache for this test (env for subprocesses, ``datasets.config`` if imported)."""
    home = tmp_path_factory.mktemp("hf-home")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(home / "datasets"))
    if "datasets" in sys.modules:
        config = sys.modules["datasets"].config
        monkeypatch.setattr(config, "HF_DATASETS_CACHE", home / "datasets")
        monkeypatch.setattr(config, "DOWNLOADED_DATASETS_PATH", home / "datasets" / "downloads")
        monkeypatch.setattr(config, "EXTRACTED_DATASETS_PATH", home / "datasets" / "downloads" / "extracted")
    return home


@pytest.fixture
def write_jsonl(tmp_path: Path) -> WriteJsonl:
    """``write_jsonl(name, rows)`` -> path of a JSON lines file under tmp_path.

    A dict row is written as one JSON line; a str row is written verbatim (to build broken lines).
    """

    def write(name: str, rows: list[dict[str, Any] | str], *, final_newline: bool = True) -> Path:
        lines = [row if isinstance(row, str) else json.dumps(row, ensure_ascii=False) for row in rows]
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + ("\n" if final_newline and lines else ""), encoding="utf-8")
        return path

    return write
