"""Output directories rmdata owns, and the Hub-layout dataset directory that score, filter and build-dpo write.

Ownership: every directory rmdata creates as an output holds a marker file, ``.rmdata.json``
(``{"kind": "run" | "scores" | "sft" | "dpo" | ..., "rmdata": version}``). A command replaces or
resumes into an existing directory only when the marker says rmdata made it for that kind of output;
anything else is refused with the fix, so ``--overwrite`` never deletes a user's files.

Dataset layout (what ``datasets.load_dataset(DIR)`` and ``polars.scan_parquet(DIR/data/*.parquet)`` read)::

    DIR/
      .rmdata.json          the marker
      README.md             dataset card: YAML header with ``configs`` -> data/*.parquet, then the summary
      manifest.json         what was written (shards, counts, inputs, options); command-specific
      data/train-00000.parquet ...
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rmdata import __version__
from rmdata.errors import RmdataError
from rmdata.io import write_text_atomic

MARKER = ".rmdata.json"
DATA_DIR = "data"
SHARD_GLOB = f"{DATA_DIR}/*.parquet"


def write_marker(directory: Path, kind: str, **info: Any) -> None:
    """Mark ``directory`` as an rmdata output of ``kind`` (atomically)."""
    payload = {"kind": kind, "rmdata": __version__, **info}
    write_text_atomic(directory / MARKER, json.dumps(payload, indent=2) + "\n")


def read_marker(directory: Path) -> dict[str, Any] | None:
    """The marker's contents, or None when the directory has no readable marker."""
    try:
        value = json.loads((directory / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) and isinstance(value.get("kind"), str) else None


def check_replaceable(path: Path, kinds: Sequence[str], *, flag: str = "--overwrite") -> None:
    """Refuse unless ``path`` is absent, an empty directory, or an rmdata output of one of ``kinds``.

    Call it before replacing or resuming into ``path``; the error names what is there and the fix.
    """
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_dir() or path.is_symlink():
        raise RmdataError(f"{path} exists and is not a directory rmdata made; choose another output directory")
    if not any(path.iterdir()):
        return
    marker = read_marker(path)
    if marker is None:
        raise RmdataError(
            f"{path} holds files rmdata did not make (no {MARKER}); {flag} only replaces rmdata's own outputs: "
            "choose another output directory, or move those files away"
        )
    if marker["kind"] not in kinds:
        raise RmdataError(
            f"{path} is an rmdata {marker['kind']} directory, not {' or '.join(kinds)}; choose another output directory"
        )


@contextmanager
def atomic_directory(out: Path, *, overwrite: bool = False, kind: str | None = None) -> Iterator[Path]:
    """Yield a fresh directory beside ``out``; on success it replaces ``out``, on error it is removed.

    With ``kind`` the new directory carries rmdata's output marker (see the module docstring), and
    ``overwrite`` replaces only an empty directory or an rmdata output of that kind (without ``kind``: of
    any kind): a directory of the user's files is refused with the fix, never deleted. ``out`` naming a file
    is always refused.
    """
    if out.is_file() or (out.is_symlink() and not out.is_dir()):
        raise RmdataError(f"{out} exists and is a file, not a directory; choose another output directory")
    if out.exists() and not overwrite:
        raise RmdataError(f"{out} already exists; choose another directory or remove it first")
    if out.exists():
        marker = read_marker(out)
        check_replaceable(out, [kind] if kind is not None else [marker["kind"]] if marker else [])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if kind is not None:
            write_marker(tmp, kind)
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old)
        else:
            tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def shard_path(directory: Path, index: int) -> Path:
    """``DIR/data/train-00042.parquet``: shards sort in write order."""
    return directory / DATA_DIR / f"train-{index:05d}.parquet"


def content_fingerprint(directory: Path) -> tuple[int, str]:
    """(total bytes, sha256) of ``directory``'s Parquet shards: their names and every byte, in name order.

    Reads the shards once more after writing them (a small cost next to writing them).
    """
    digest, total = hashlib.sha256(), 0
    for shard in sorted((directory / DATA_DIR).glob("*.parquet")):
        digest.update(f"{shard.name}\0{shard.stat().st_size}\0".encode())
        with shard.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
                total += len(chunk)
    return total, digest.hexdigest()


def dataset_card(
    title: str,
    body: str,
    directory: Path,
    *,
    pretty_name: str | None = None,
    tags: Sequence[str] = (),
) -> str:
    """A dataset card whose YAML header points ``datasets.load_dataset(DIR)`` at the Parquet shards of ``directory``.

    Write the shards first: the header's ``dataset_info`` carries their byte count and content fingerprint
    (``description: "rmdata data/*.parquet sha256:..."``). ``datasets`` (5.2) keys its cache of a local
    directory whose card has a ``configs:`` header on the directory's name and that header only, not on the
    files: without a fingerprint, a re-run into the same directory, or another directory of the same name,
    loads the rows first cached. With it, new rows give a new cache entry (identical rows share one).
    """
    size, fingerprint = content_fingerprint(directory)
    header = ["---", "configs:", "- config_name: default", "  data_files:", "  - split: train"]
    header.append(f"    path: {SHARD_GLOB}")
    # only the byte count and a description: a partial `splits` entry draws a warning from datasets
    header += ["dataset_info:", "  config_name: default", f"  download_size: {size}"]
    header.append(f"  description: {json.dumps(f'rmdata {SHARD_GLOB} sha256:{fingerprint}')}")
    if pretty_name:
        header.append(f"pretty_name: {json.dumps(pretty_name)}")
    if tags:
        header += ["tags:", *(f"- {json.dumps(t)}" for t in tags)]
    header.append("---")
    return "\n".join(header) + f"\n\n# {title}\n\n{body.rstrip()}\n"


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A Markdown table from dict rows (keys of the first row as columns); floats with 4 significant digits."""
    if not rows:
        return ""
    columns = list(rows[0])

    def cell(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def save_arrow_copy(directory: Path, out: Path) -> None:
    """Also write the dataset as a ``datasets`` ``save_to_disk`` directory (Arrow), for ``load_from_disk``."""
    import datasets

    files = sorted(str(p) for p in (directory / DATA_DIR).glob("*.parquet"))
    if not files:
        raise RmdataError(f"{directory} has no Parquet shards to copy")
    check_replaceable(out, ["arrow"], flag="--save-to-disk")
    dataset = datasets.Dataset.from_parquet(files)
    tmp = out.parent / f".{out.name}.tmp-arrow"
    dataset.save_to_disk(str(tmp))
    write_marker(tmp, "arrow", source=str(directory))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
