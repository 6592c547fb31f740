"""Hugging Face Hub dataset ids as inputs: ``org/name``, optional ``:split`` and ``@revision``.

Read through ``datasets.load_dataset`` with its cache (``HF_HOME`` / ``HF_DATASETS_CACHE``), so a dataset
fetched once is read offline afterwards. Without ``:split`` the ``train`` split is read, or the only split;
with ``HF_HUB_OFFLINE=1`` a dataset that is not cached is a one-line error saying how to fetch it.
``datasets`` is imported only when an id is given.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from rmdata.errors import RmdataError


@dataclass(frozen=True)
class HubRef:
    """A Hugging Face Hub dataset id: ``org/name``, optional ``:split`` and ``@revision`` (either order)."""

    repo: str
    split: str | None = None
    revision: str | None = None


def open_hub_dataset(text: str, ref: HubRef) -> Any:
    """The ``datasets.Dataset`` (a split was given, or the id has one) or ``DatasetDict`` for ``ref``, opened from
    the cache when there; the rows are read later, batch by batch. ``text`` is the id as the user wrote it."""
    try:
        import datasets
    except ImportError as err:  # pragma: no cover - datasets is a dependency
        raise RmdataError(f"{text}: reading Hub dataset ids needs the datasets package (pip install datasets)") from err
    try:
        loaded: Any = datasets.load_dataset(ref.repo, split=ref.split, revision=ref.revision)
    except Exception as err:  # datasets raises many types here (ConnectionError, FileNotFoundError, ValueError, ...)
        raise RmdataError(_why(text, ref, err)) from err
    return loaded


def _why(text: str, ref: HubRef, err: Exception) -> str:
    first = (str(err).splitlines() or [type(err).__name__])[0]
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    fetch = f"python -c \"import datasets; datasets.load_dataset('{ref.repo}'" + (
        f", revision='{ref.revision}')\"" if ref.revision else ')"'
    )
    if offline and isinstance(err, (ConnectionError, FileNotFoundError)) or "OfflineModeIsEnabled" in first:
        return (
            f"{text}: no such file or directory, and Hub dataset {ref.repo} is not in the local datasets cache "
            f"(HF_HUB_OFFLINE=1); fetch it once with network access: HF_HUB_OFFLINE=0 {fetch}"
        )
    if isinstance(err, ValueError) and ref.split and "split" in first.lower():
        return f"{text}: Hub dataset {ref.repo} has no split {ref.split!r} ({first})"
    return f"{text}: no such file or directory, and not a readable Hub dataset ({type(err).__name__}: {first})"
