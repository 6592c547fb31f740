"""Shared fixtures. Tests are offline: nothing may reach a model or dataset hub."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402

WriteJsonl = Callable[..., Path]


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
