"""Small data builders shared by the tests."""

from __future__ import annotations

import json
from pathlib import Path


def write_pairs(path: Path, n: int = 48) -> Path:
    """Format-following pairs in the shape of the bundled demo data, small enough for seconds of training."""
    rows = []
    for i in range(n):
        word = f"item{i % 7}"
        upper = i % 2 == 0
        prompt = f"Write {word} number {i} in {'uppercase' if upper else 'lowercase'}."
        good, bad = (word.upper(), word.lower()) if upper else (word.lower(), word.upper())
        rows.append({"prompt": prompt, "chosen": good, "rejected": bad, "id": i})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
