"""What to read for each path a user gives: a file, or the files of one split of a dataset directory.

A file is read by its name (``.jsonl``/``.ndjson``/``.json``, optionally ``.gz``/``.zst``; ``.parquet``;
``.csv``). A directory is a ``datasets`` ``save_to_disk`` output (``state.json``, or ``dataset_dict.json``
with one folder per split) or a Hugging Face Hub layout (``data/train-00000-of-00001.parquet``), whose
files are grouped into splits by the split words in their names or folders. The ``train`` split is read
unless the directory holds a single other split; several splits and no train is an error.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from rmdata.errors import RmdataError

JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
COMPRESSIONS = (".gz", ".zst")
SPLIT_WORDS = {
    "train": ("train", "training"),
    "validation": ("validation", "valid", "val", "dev"),
    "test": ("test", "testing", "eval", "evaluation"),
}


@dataclass
class InputInfo:
    """One path the user gave, resolved to the files that are read."""

    path: str
    layout: str  # "file", "hub" or "save_to_disk"
    files: list[str]
    split: str | None = None
    splits: list[str] = field(default_factory=list)  # every split the directory holds
    records: int = 0  # filled in while reading
    format: str | None = None  # filled in by the loader
    detection: str = ""  # how the format was chosen: "given", or "detected from the keys of ..."


def file_kind(path: str) -> str:
    """``jsonl``, ``json``, ``parquet`` or ``csv`` from the file name; RmdataError for anything else."""
    name = path.lower()
    for comp in COMPRESSIONS:
        if name.endswith(comp):
            name = name[: -len(comp)]
            if not name.endswith(JSON_SUFFIXES):
                raise RmdataError(f"{path}: {comp} compression is read for JSON lines files only")
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if name.endswith(".json"):
        return "json"
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(".csv"):
        return "csv"
    raise RmdataError(
        f"{path}: unknown file type; rmdata reads .jsonl/.ndjson/.json (optionally .gz or .zst), .parquet, "
        ".csv, a datasets save_to_disk directory or a Hub-layout directory of those files"
    )


def resolve_input(path: str) -> InputInfo:
    """What to read for one user path: the file itself, or a directory's files of one split."""
    p = Path(path)
    if not p.exists():
        raise RmdataError(f"{path}: no such file or directory")
    if p.is_file():
        file_kind(path)
        return InputInfo(path, "file", [path])
    if (p / "dataset_dict.json").is_file():
        splits = json.loads((p / "dataset_dict.json").read_text(encoding="utf-8")).get("splits", [])
        split = pick_split(path, splits)
        info = resolve_input(str(p / split))
        return InputInfo(path, "save_to_disk", info.files, split, list(splits))
    if (p / "state.json").is_file():
        state = json.loads((p / "state.json").read_text(encoding="utf-8"))
        files = [str(p / f["filename"]) for f in state.get("_data_files", [])]
        return InputInfo(path, "save_to_disk", files, state.get("_split"), [])
    return _resolve_hub_dir(p)


def split_of(relative: Path) -> str:
    """The split a Hub file belongs to, from a split word in its name, else its folders; else train."""
    for part in [relative.name, *reversed(relative.parts[:-1])]:
        words = set(re.split(r"[^a-z0-9]+", part.lower()))
        for split, names in SPLIT_WORDS.items():
            if words & set(names):
                return split
    return "train"


def pick_split(path: str, splits: list[str]) -> str:
    """``train`` when present, else the only split; several splits without train is an error."""
    if "train" in splits:
        return "train"
    if len(splits) == 1:
        return splits[0]
    raise RmdataError(
        f"{path}: holds splits {', '.join(sorted(splits)) or '(none)'} and no train split; "
        "pass the files of the split you want instead of the directory"
    )


def _resolve_hub_dir(p: Path) -> InputInfo:
    by_split: dict[str, list[str]] = {}
    for f in sorted(p.rglob("*")):
        rel = f.relative_to(p)
        if not f.is_file() or any(part.startswith(".") for part in rel.parts):
            continue
        try:
            file_kind(str(f))
        except RmdataError:
            continue  # README.md, .gitattributes and other non-data files
        by_split.setdefault(split_of(rel), []).append(str(f))
    if not by_split:
        raise RmdataError(f"{p}: directory holds no data files (.jsonl, .json, .parquet, .csv) and no saved dataset")
    split = pick_split(str(p), list(by_split))
    return InputInfo(str(p), "hub", by_split[split], split, sorted(by_split))
