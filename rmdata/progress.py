"""What rmdata tells the person at the terminal: log lines and the training progress bar, both on stderr.

The decision, applied everywhere (data, tokens, model, attention choice, train): messages go through the
standard ``logging`` module, to the ``"rmdata"`` logger returned by :func:`logger`. The first call gives that
logger its one handler, which prints each record as one line through a rich console on stderr (warnings
prefixed ``warning:``), at level INFO, and stops propagation so the line is not printed twice by a root
handler. Every module that logs gets its logger from :func:`logger`, so nothing logs into an unconfigured
logger. Silence it with ``logging.getLogger("rmdata").setLevel(logging.WARNING)``; stdout stays for results.
While a progress bar is live, rich prints these lines above it.
"""

from __future__ import annotations

import logging
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

LOGGER_NAME = "rmdata"


class ConsoleHandler(logging.Handler):
    """One line per record on stderr through rich (markup off: messages are printed as written)."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.console = Console(stderr=True, highlight=False)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.levelno >= logging.WARNING:
                text = f"{record.levelname.lower()}: {text}"
            self.console.print(text, markup=False, soft_wrap=True)
        except Exception:  # a broken stderr must not take the run down
            self.handleError(record)


def logger() -> logging.Logger:
    """The ``rmdata`` logger, with its stderr handler installed once."""
    log = logging.getLogger(LOGGER_NAME)
    if not any(isinstance(h, ConsoleHandler) for h in log.handlers):
        log.addHandler(ConsoleHandler())
        log.setLevel(logging.INFO)
        log.propagate = False
    return log


class TrainProgress:
    """Context manager around a rich Progress bar; ``enabled=False`` makes every call a no-op."""

    def __init__(self, total_steps: int, start_step: int, *, enabled: bool = True) -> None:
        self.progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
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
