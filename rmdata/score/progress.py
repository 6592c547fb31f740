"""A rich progress bar for scoring (stderr): rows done of total, rows/s, tokens/s and ETA."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class ScoreProgress:
    """Context manager; ``enabled=False`` makes every call a no-op (tests, --json)."""

    def __init__(self, total_rows: int, label: str = "score", *, enabled: bool = True) -> None:
        self.progress = Progress(
            TextColumn(f"[bold]{label}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=not enabled,
        )
        self.task = self.progress.add_task(label, total=total_rows, rate="")
        self.start = time.perf_counter()
        self.rows = 0  # scored in this process (resumed rows excluded from the rates)
        self.tokens = 0

    def __enter__(self) -> ScoreProgress:
        self.progress.__enter__()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def skip(self, rows: int) -> None:
        """Rows already committed by an earlier run."""
        self.progress.advance(self.task, rows)

    def scored(self, rows: int, tokens: int) -> None:
        self.rows += rows
        self.tokens += tokens
        seconds = max(time.perf_counter() - self.start, 1e-9)
        rate = f"{self.rows / seconds:,.1f} rows/s  {self.tokens / seconds:,.0f} tok/s"
        self.progress.update(self.task, advance=rows, rate=rate)
