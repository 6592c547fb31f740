"""A rich progress bar for training: step, loss, accuracy, tokens/s and ETA, on stderr."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class TrainProgress:
    """Context manager around a rich Progress; ``enabled=False`` makes every call a no-op."""

    def __init__(self, total_steps: int, start_step: int, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not enabled,
        )
        self.task = self.progress.add_task("train", total=total_steps, completed=start_step, stats="")

    def __enter__(self) -> TrainProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def update(self, step: int, metrics: dict[str, float]) -> None:
        stats = f"loss {metrics['loss']:.4f}  acc {metrics['accuracy']:.3f}  {metrics['tokens_per_s']:,.0f} tok/s"
        self.progress.update(self.task, completed=step, stats=stats)

    def note(self, text: str) -> None:
        if self.enabled:
            self.progress.console.print(text, soft_wrap=True)
