"""PNG plots next to the data: reward of kept vs dropped rows, DPO margins, reward vs length.

matplotlib with the Agg backend (no display needed). Histograms bin every value with numpy (fast at 10M)
and draw the counts as steps;
the scatter draws a seeded sample of at most ``SCATTER_POINTS`` rows so plotting stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

SCATTER_POINTS = 5000
BINS = 60


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _values(frame: pl.DataFrame, column: str) -> np.ndarray:
    v = frame.get_column(column).drop_nulls().cast(pl.Float64).to_numpy()
    return v[np.isfinite(v)]


def reward_histogram(kept: pl.DataFrame, dropped: pl.DataFrame, path: Path, *, kept_label: str = "kept") -> None:
    """Overlaid reward histograms of kept and dropped rows, on shared bins."""
    plt = _pyplot()
    a, b = _values(kept, "reward"), _values(dropped, "reward")
    low = min(a.min(initial=np.inf), b.min(initial=np.inf))
    high = max(a.max(initial=-np.inf), b.max(initial=-np.inf))
    edges = np.linspace(low, high, BINS + 1) if np.isfinite(low) and high > low else np.linspace(-1, 1, BINS + 1)
    fig, ax = plt.subplots(figsize=(7, 4))
    for values, label in ((a, f"{kept_label} ({a.size:,})"), (b, f"dropped ({b.size:,})")):
        ax.stairs(np.histogram(values, bins=edges)[0], edges, fill=True, alpha=0.5, label=label)
    ax.set_xlabel("reward")
    ax.set_ylabel("rows")
    ax.set_title("Reward of kept and dropped rows")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def margin_histogram(margins: pl.Series, path: Path, *, threshold: float | None = None) -> None:
    """Histogram of DPO margins (chosen score - rejected score), with the --margin line."""
    plt = _pyplot()
    v = margins.drop_nulls().cast(pl.Float64).to_numpy()
    v = v[np.isfinite(v)]
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


def reward_vs_length(kept: pl.DataFrame, dropped: pl.DataFrame, path: Path, *, seed: int = 0) -> None:
    """Scatter of reward against num_tokens, kept and dropped, each a seeded sample."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for frame, label in ((kept, "kept"), (dropped, "dropped")):
        rows = frame.select("num_tokens", "reward").drop_nulls()
        if rows.height > SCATTER_POINTS:
            rows = rows.sample(SCATTER_POINTS, seed=seed)
        ax.scatter(rows.get_column("num_tokens"), rows.get_column("reward"), s=4, alpha=0.4, label=label)
    ax.set_xlabel("num_tokens")
    ax.set_ylabel("reward")
    ax.set_title(f"Reward vs length (up to {SCATTER_POINTS:,} sampled rows each)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def draw_all(
    directory: Path,
    kept: pl.DataFrame,
    dropped: pl.DataFrame,
    *,
    margins: pl.Series | None = None,
    margin: float | None = None,
    kept_label: str = "kept",
) -> list[str]:
    """Write the plots that apply into ``directory/plots``; returns their paths relative to ``directory``."""
    out = directory / "plots"
    out.mkdir(parents=True, exist_ok=True)
    written = ["plots/reward.png"]
    reward_histogram(kept, dropped, directory / written[0], kept_label=kept_label)
    if margins is not None:
        written.append("plots/margin.png")
        margin_histogram(margins, directory / written[-1], threshold=margin)
    if "num_tokens" in kept.columns:
        written.append("plots/reward_vs_length.png")
        reward_vs_length(kept, dropped.select("num_tokens", "reward") if "num_tokens" in dropped.columns
                         else kept.clear().select("num_tokens", "reward"), directory / written[-1])  # fmt: skip
    return written
