"""PNG plots next to the data: reward of kept vs dropped rows, DPO margins, reward vs length.

matplotlib with the Agg backend (no display needed). Histograms bin every value with numpy (fast at 10M)
and draw the counts as steps;
the scatter draws a seeded sample of at most ``SCATTER_POINTS`` rows so plotting stays cheap.

The numbers are taken out of the decision frames first (:func:`plot_data`: numpy arrays and the scatter
samples), so the frames can be freed and the plots drawn on a background thread (:func:`drawing_in_background`)
while the texts are read back and written: matplotlib's start-up and drawing (~1.5 s) then cost no wall
time on two cores.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

SCATTER_POINTS = 5000
BINS = 60


@dataclass(frozen=True)
class PlotData:
    """What the plots draw: finite rewards of kept and dropped rows, pair margins, scatter samples."""

    kept_reward: np.ndarray  # [kept rows], finite rewards only
    dropped_reward: np.ndarray  # [dropped rows], finite rewards only
    kept_label: str = "kept"
    margins: np.ndarray | None = None  # [pairs], finite margins only; None: no margin plot
    margin: float | None = None  # the --margin line
    points: tuple[pl.DataFrame, pl.DataFrame] | None = None  # (num_tokens, reward) samples of kept, dropped

    def paths(self) -> list[str]:
        """The plots this data makes, relative to the output directory."""
        written = ["plots/reward.png"]
        written += ["plots/margin.png"] if self.margins is not None else []
        return written + (["plots/reward_vs_length.png"] if self.points is not None else [])


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _values(values: pl.Series) -> np.ndarray:
    v = values.drop_nulls().cast(pl.Float64).to_numpy()
    return v[np.isfinite(v)]


def _sample(frame: pl.DataFrame, seed: int) -> pl.DataFrame:
    rows = frame.select("num_tokens", "reward").drop_nulls()
    return rows.sample(SCATTER_POINTS, seed=seed) if rows.height > SCATTER_POINTS else rows


def plot_data(
    kept: pl.DataFrame,
    dropped: pl.DataFrame,
    *,
    margins: pl.Series | None = None,
    margin: float | None = None,
    kept_label: str = "kept",
    seed: int = 0,
) -> PlotData:
    """The plots' numbers from the decision frames (``reward``, and ``num_tokens`` when kept rows have it)."""
    points = None
    if "num_tokens" in kept.columns:
        other = dropped if "num_tokens" in dropped.columns else kept.clear()
        points = (_sample(kept, seed), _sample(other, seed))
    return PlotData(
        _values(kept.get_column("reward")),
        _values(dropped.get_column("reward")),
        kept_label,
        None if margins is None else _values(margins),
        margin,
        points,
    )


def reward_histogram(data: PlotData, path: Path) -> None:
    """Overlaid reward histograms of kept and dropped rows, on shared bins."""
    plt = _pyplot()
    a, b = data.kept_reward, data.dropped_reward
    low = min(a.min(initial=np.inf), b.min(initial=np.inf))
    high = max(a.max(initial=-np.inf), b.max(initial=-np.inf))
    edges = np.linspace(low, high, BINS + 1) if np.isfinite(low) and high > low else np.linspace(-1, 1, BINS + 1)
    fig, ax = plt.subplots(figsize=(7, 4))
    for values, label in ((a, f"{data.kept_label} ({a.size:,})"), (b, f"dropped ({b.size:,})")):
        ax.stairs(np.histogram(values, bins=edges)[0], edges, fill=True, alpha=0.5, label=label)
    ax.set_xlabel("reward")
    ax.set_ylabel("rows")
    ax.set_title("Reward of kept and dropped rows")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def margin_histogram(v: np.ndarray, path: Path, *, threshold: float | None = None) -> None:
    """Histogram of DPO margins (chosen score - rejected score, finite values), with the --margin line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    counts, edges = np.histogram(v, bins=BINS) if v.size else (np.zeros(BINS), np.linspace(0, 1, BINS + 1))
    ax.stairs(counts, edges, fill=True)
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", label=f"--margin {threshold:g}")
        ax.legend()
    ax.set_xlabel("chosen score - rejected score")
    ax.set_ylabel("pairs")
    ax.set_title(f"Margins of {v.size:,} pairs")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def reward_vs_length(points: tuple[pl.DataFrame, pl.DataFrame], path: Path) -> None:
    """Scatter of reward against num_tokens of the (kept, dropped) samples."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for rows, label in zip(points, ("kept", "dropped"), strict=True):
        ax.scatter(rows.get_column("num_tokens"), rows.get_column("reward"), s=4, alpha=0.4, label=label)
    ax.set_xlabel("num_tokens")
    ax.set_ylabel("reward")
    ax.set_title(f"Reward vs length (up to {SCATTER_POINTS:,} sampled rows each)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def draw_all(directory: Path, data: PlotData) -> list[str]:
    """Write the plots ``data`` makes into ``directory/plots``; returns their paths relative to ``directory``."""
    (directory / "plots").mkdir(parents=True, exist_ok=True)
    written = data.paths()
    reward_histogram(data, directory / written[0])
    if data.margins is not None:
        margin_histogram(data.margins, directory / "plots/margin.png", threshold=data.margin)
    if data.points is not None:
        reward_vs_length(data.points, directory / "plots/reward_vs_length.png")
    return written


@contextmanager
def drawing_in_background(directory: Path, data: PlotData) -> Iterator[Future[list[str]]]:
    """:func:`draw_all` on a thread of its own (the only one that uses pyplot) while the body runs; leaving
    the block waits for the drawing, also when the body fails, so nothing writes into an output directory
    after it was removed. ``.result()`` gives the paths or re-raises the drawing's error."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rmdata-plots") as pool:
        yield pool.submit(draw_all, directory, data)
