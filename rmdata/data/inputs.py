"""What to read for each path a user gives: a file, or the files of one split of a dataset directory.

A file is read by its name (``.jsonl``/``.ndjson``/``.json``, optionally ``.gz``/``.zst``; ``.parquet``;
``.csv``). A directory is a ``datasets`` ``save_to_disk`` output (``state.json``, or ``dataset_dict.json``
with one folder per split) or a Hugging Face Hub layout (``data/train-00000-of-00001.parquet``), whose
files are grouped into splits by the split words in their names or folders. Of a Hub-layout directory only
the files its card's YAML ``configs:`` header names are read, else only those under ``data/`` when it has
one (a directory rmdata wrote: its shards, never ``manifest.json``, ``rejects.jsonl`` or the card). The
``train`` split is read unless the directory holds a single other split; several splits and no train is an
error.

A path that does not exist but reads as a Hub dataset id (``org/name``, optional ``:split`` and
``@revision``) is read through ``datasets.load_dataset`` and its cache (see :mod:`rmdata.data.hub`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rmdata.data.hub import HubRef, open_hub_dataset
from rmdata.dataset_dir import DATA_DIR, MARKER
from rmdata.errors import RmdataError

JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
COMPRESSIONS = (".gz", ".zst")
DATA_SUFFIXES = (*JSON_SUFFIXES, ".parquet", ".csv", *COMPRESSIONS)
SPLIT_WORDS = {
    "train": ("train", "training"),
    "validation": ("validation", "valid", "val", "dev"),
    "test": ("test", "testing", "eval", "evaluation"),
}


@dataclass
class InputInfo:
    """One path the user gave, resolved to the files that are read."""

    path: str
    layout: str  # "file", "hub" (a Hub-layout directory), "save_to_disk" or "hub-id" (read through datasets)
    files: list[str]
    split: str | None = None
    splits: list[str] = field(default_factory=list)  # every split the directory holds
    records: int = 0  # filled in while reading
    format: str | None = None  # filled in by the loader
    detection: str = ""  # how the format was chosen: "given", or "detected from the keys of ..."
    dataset: Any = field(default=None, repr=False, compare=False)  # hub-id: the datasets.Dataset (memory-mapped)


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


BUILTIN_PREFIX = "builtin:"


def builtin_path(path: str) -> str:
    """``builtin:NAME`` -> the bundled data file rmdata ships (``rmdata/resources/data/NAME.jsonl``); else ``path``."""
    if not path.startswith(BUILTIN_PREFIX):
        return path
    from importlib import resources

    name = path[len(BUILTIN_PREFIX) :]
    bundled = resources.files("rmdata") / "resources" / "data" / f"{name}.jsonl"
    if not bundled.is_file():
        shipped = sorted(
            f.name.removesuffix(".jsonl") for f in (resources.files("rmdata") / "resources" / "data").iterdir()
        )
        raise RmdataError(f"{path}: no bundled data set named {name!r} (bundled: {', '.join(shipped)})")
    return str(bundled)


def resolve_input(path: str) -> InputInfo:
    """What to read for one user path: the file itself, a directory's files of one split, a bundled data set
    (``builtin:NAME``), or a Hub dataset.

    A local path always wins: ``org/name`` is read from the Hub only when no such file or directory exists.
    """
    path = builtin_path(path)
    if not path.strip():
        raise RmdataError(
            "an input path is empty (e.g. --set data.train= with nothing after it); give a file, a directory "
            "or a Hub dataset id"
        )
    p = Path(path)
    if not p.exists():
        ref = parse_hub_id(path)
        if ref is not None:
            return _resolve_hub_id(path, ref)
        raise RmdataError(f"{path}: no such file or directory")
    if p.is_file():
        file_kind(path)
        return InputInfo(path, "file", [path])
    if not p.is_dir():
        raise RmdataError(f"{path}: not a regular file or directory")
    if (p / "dataset_dict.json").is_file():
        splits = _read_json(p / "dataset_dict.json").get("splits", [])
        if not isinstance(splits, list) or not all(isinstance(s, str) and s and "/" not in s for s in splits):
            raise RmdataError(f"{p / 'dataset_dict.json'}: splits must be a list of split names; got {splits!r:.60}")
        split = pick_split(path, splits)
        if not (p / split).is_dir():
            raise RmdataError(f"{p / 'dataset_dict.json'} names split {split} but {p / split} is not a directory")
        info = resolve_input(str(p / split))
        return InputInfo(path, "save_to_disk", info.files, split, list(splits))
    if (p / "state.json").is_file():
        state = _read_json(p / "state.json")
        entries = state.get("_data_files", [])
        if not isinstance(entries, list) or not all(
            isinstance(f, dict) and isinstance(f.get("filename"), str) for f in entries
        ):
            raise RmdataError(f'{p / "state.json"}: _data_files must be a list of {{"filename": ...}}; is it damaged?')
        files = [str(p / f["filename"]) for f in entries]
        if not files:
            raise RmdataError(f"{p / 'state.json'}: lists no data files (_data_files is empty)")
        for name in files:
            if not Path(name).is_file() or Path(name).resolve().parent != p.resolve():
                raise RmdataError(f"{p / 'state.json'} names {name}, which is not a file in {p}; is it damaged?")
        saved_split = state.get("_split")
        return InputInfo(path, "save_to_disk", files, saved_split if isinstance(saved_split, str) else None, [])
    return _resolve_hub_dir(p)


def _read_json(path: Path) -> dict[str, Any]:
    """A small JSON metadata file of a saved dataset; anything unreadable is one error naming it."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        raise RmdataError(
            f"{path}: not valid JSON ({str(err).splitlines()[0]}); is the saved dataset damaged?"
        ) from err
    if not isinstance(value, dict):
        raise RmdataError(f"{path}: must hold a JSON object; is the saved dataset damaged?")
    return value


_HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?P<rest>(?:[:@][^:@\s]+){0,2})$")


def parse_hub_id(text: str) -> HubRef | None:
    """``org/name[:split][@revision]`` -> HubRef; None for anything else, including names of data files
    (``data/train.jsonl`` is a missing file, not a dataset id)."""
    match = _HUB_ID.match(text)
    if match is None:
        return None
    repo = match["repo"]
    if repo.lower().endswith(DATA_SUFFIXES) or repo.startswith(".") or "/." in repo:
        return None
    parts = dict(re.findall(r"([:@])([^:@]+)", match["rest"]))
    if len(parts) != len(re.findall(r"[:@]", match["rest"])):
        return None  # two splits or two revisions
    return HubRef(repo, parts.get(":"), parts.get("@"))


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
    """A Hub-layout directory's files of one split: those its card's ``configs:`` header names, else those
    under ``data/`` (all that is read in a directory rmdata wrote), else every data file in it; side files
    (``manifest.json``, ``rejects.jsonl``, plots) beside ``data/`` are never read as data."""
    by_split = _card_splits(p)
    if not by_split and ((p / MARKER).is_file() or (p / DATA_DIR).is_dir()):
        by_split = _split_files(p / DATA_DIR, p)
        if not by_split and (p / MARKER).is_file():
            raise RmdataError(f"{p}: an rmdata output with no data files under {DATA_DIR}/ (an unfinished run?)")
    if not by_split:
        by_split = _split_files(p, p)
    if not by_split:
        raise RmdataError(f"{p}: directory holds no data files (.jsonl, .json, .parquet, .csv) and no saved dataset")
    split = pick_split(str(p), list(by_split))
    return InputInfo(str(p), "hub", by_split[split], split, sorted(by_split))


def _split_files(root: Path, base: Path) -> dict[str, list[str]]:
    """Data files under ``root`` (hidden ones skipped) grouped by split (of their path relative to ``base``)."""
    by_split: dict[str, list[str]] = {}
    if not root.is_dir():
        return by_split
    for f in sorted(root.rglob("*")):
        rel = f.relative_to(base)
        if not f.is_file() or any(part.startswith(".") for part in rel.parts):
            continue
        try:
            file_kind(str(f))
        except RmdataError:
            continue  # README.md, .gitattributes and other non-data files
        by_split.setdefault(split_of(rel), []).append(str(f))
    return by_split


def _card_splits(p: Path) -> dict[str, list[str]]:
    """The data files of the default config in ``p/README.md``'s YAML ``configs:`` header, by split; empty
    when there is no such header (then the directory's layout decides)."""
    import yaml

    try:
        text = (p / "README.md").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    end = text.find("\n---", 3)
    if not text.startswith("---") or end < 0:
        return {}
    try:
        header = yaml.safe_load(text[3:end])
    except yaml.YAMLError:
        return {}
    configs = header.get("configs") if isinstance(header, dict) else None
    configs = [c for c in configs if isinstance(c, dict)] if isinstance(configs, list) else []
    if not configs:
        return {}
    config = next((c for c in configs if c.get("default") is True or c.get("config_name") == "default"), configs[0])
    data_files = config.get("data_files")
    if isinstance(data_files, dict):
        entries = list(data_files.items())
    elif isinstance(data_files, list) and all(isinstance(d, dict) for d in data_files):
        entries = [(d.get("split", "train"), d.get("path")) for d in data_files]
    else:
        entries = [("train", data_files)]
    root = p.resolve()
    by_split: dict[str, list[str]] = {}
    for split, patterns in entries:
        for pattern in [patterns] if isinstance(patterns, str) else patterns if isinstance(patterns, list) else []:
            if not isinstance(pattern, str) or not pattern or Path(pattern).is_absolute():
                continue
            for f in sorted(p.glob(pattern)):
                if f.is_file() and f.resolve().is_relative_to(root):
                    by_split.setdefault(str(split), []).append(str(f))
    return by_split


def _resolve_hub_id(text: str, ref: HubRef) -> InputInfo:
    loaded = open_hub_dataset(text, ref)
    if isinstance(loaded, dict):  # a DatasetDict (a dict of splits): the id named no split
        splits = list(loaded)
        split = pick_split(text, splits)
        return InputInfo(text, "hub-id", [], split, sorted(splits), dataset=loaded[split])
    return InputInfo(text, "hub-id", [], ref.split, [], dataset=loaded)
