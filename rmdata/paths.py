"""Output paths checked before a command writes anything: never onto its own inputs, never unwritable.

``check_output_paths`` refuses, in one line naming both paths and the fix, an output (``-o``, ``--rejects``,
``--save-to-disk``) that is, contains or lies inside an input, the model directory, or another output of the
same command (paths compared after resolving ``..`` and symbolic links), and an output whose place cannot be
written (``/proc/x``, a read-only mount, a parent that is a file). Inputs that are not on disk (a Hub id,
``builtin:`` data) are skipped: nothing can overwrite them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from rmdata.errors import RmdataError

Named = tuple[str, str | os.PathLike[str] | None]  # (what the user calls it: "-o", "input", "--model"), the path


def check_output_paths(outputs: Sequence[Named], inputs: Sequence[Named] = ()) -> None:
    """Refuse outputs that alias an input, the model or each other, or that cannot be written; writes nothing."""
    given = [(name, Path(path)) for name, path in outputs if path is not None and str(path) != ""]
    sources = [(name, Path(path)) for name, path in inputs if path is not None and _on_disk(str(path))]
    for i, (name, out) in enumerate(given):
        _check_climbs(name, out)
        for other_name, other in sources:
            _refuse_overlap((name, out), (other_name, other))
        for other_name, other in given[i + 1 :]:
            if _overlap(out, other) == "contains":  # name the inner output: the one to move
                _refuse_overlap((other_name, other), (name, out))
            _refuse_overlap((name, out), (other_name, other))
        _check_writable(name, out)


def _refuse_overlap(output: tuple[str, Path], other: tuple[str, Path]) -> None:
    relation = _overlap(output[1], other[1])
    if relation:
        raise RmdataError(
            f"{output[0]} {output[1]} {relation} {other[0]} {other[1]}: an output may not overwrite what the "
            f"command reads or writes elsewhere; choose another {output[0]}"
        )


def _check_climbs(name: str, path: Path) -> None:
    """A ``..`` must climb out of a directory that exists: ``new/..`` names a place only once ``new`` is made."""
    for i, part in enumerate(path.parts):
        if part == ".." and i and not Path(*path.parts[:i]).is_dir():
            raise RmdataError(
                f"{name} {path}: goes up (..) from {Path(*path.parts[:i])}, which is not an existing directory; "
                f"give {name} without .."
            )


def _on_disk(path: str) -> bool:
    return ":" not in path.split("/")[0] and os.path.lexists(path)  # builtin:x and hf: ids are not files


def _overlap(a: Path, b: Path) -> str | None:
    """How path ``a`` relates to path ``b``: "is", "is inside" or "contains"; None when they are apart."""
    ra, rb = a.resolve(), b.resolve()
    if ra == rb:
        return "is"
    if ra.is_relative_to(rb):
        return "is inside"
    if rb.is_relative_to(ra):
        return "contains"
    return None


def _check_writable(name: str, path: Path) -> None:
    """The nearest existing parent of ``path`` must be a directory where a file can be created (tried)."""
    parent = path.resolve()
    if parent.exists():
        parent = parent if parent.is_dir() else parent.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise RmdataError(f"{name} {path}: {parent} is a file, not a directory; choose another {name}")
    try:
        probe = tempfile.mkdtemp(prefix=".rmdata-write-check-", dir=parent)
    except OSError as err:
        raise RmdataError(
            f"{name} {path}: cannot write under {parent} ({err.strerror or err}); choose another {name}"
        ) from err
    os.rmdir(probe)
