"""`rmdata inspect`: what a set of input files holds, whether every record is valid, and how long texts are.

The length summary is token-free (characters and whitespace-separated words), so it needs no tokenizer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from rmdata.data.inputs import InputInfo
from rmdata.data.load import LoadedData, load_dataset_records
from rmdata.data.rules import RecordError

STATS = ("min", "median", "p95", "max")


@dataclass
class InspectReport:
    format: str
    kind: str
    detected: bool
    records: int
    valid: int
    invalid: int
    rows: int  # normalized rows (multi-response: one per response)
    errors: list[RecordError]
    inputs: list[dict[str, Any]]
    lengths: dict[str, dict[str, dict[str, float]]]  # field -> chars|words -> min|median|p95|max
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` object."""
        return {
            "format": self.format,
            "kind": self.kind,
            "detected": self.detected,
            "records": self.records,
            "valid": self.valid,
            "invalid": self.invalid,
            "rows": self.rows,
            "errors": [e.to_dict() for e in self.errors],
            "inputs": self.inputs,
            "lengths": self.lengths,
            "notes": self.notes,
        }


def inspect_paths(paths: Sequence[str], format: str | None = None) -> InspectReport:
    """Load every record of ``paths`` (invalid ones are reported, not raised) and summarize them."""
    loaded = load_dataset_records(paths, format=format, on_error="skip")
    return InspectReport(
        format=loaded.format,
        kind=loaded.kind,
        detected=loaded.detected,
        records=loaded.records,
        valid=loaded.valid,
        invalid=loaded.invalid,
        rows=loaded.frame.height,
        errors=loaded.errors,
        inputs=[_input_dict(info) for info in loaded.inputs],
        lengths=length_summary(loaded),
        notes=loaded.notes,
    )


def _input_dict(info: InputInfo) -> dict[str, Any]:
    return {"path": info.path, "layout": info.layout, "split": info.split, "splits": info.splits,
            "files": len(info.files), "records": info.records, "format": info.format,
            "detection": info.detection}  # fmt: skip


def length_summary(loaded: LoadedData) -> dict[str, dict[str, dict[str, float]]]:
    """Characters and words of the prompt and of each response column, as min/median/p95/max."""
    frame = loaded.frame
    if frame.height == 0:
        return {}
    prompt = pl.col("prompt").list.eval(pl.element().struct.field("content")).list.join("\n")
    texts = {"prompt": prompt}
    for name in ("chosen", "rejected") if loaded.kind == "pairs" else ("response",):
        texts[name] = pl.col(name)
    exprs = []
    for name, text in texts.items():
        for unit, measure in (("chars", text.str.len_chars()), ("words", text.str.count_matches(r"\S+"))):
            m = measure.cast(pl.Float64)
            exprs += [
                m.min().alias(f"{name}|{unit}|min"),
                m.median().alias(f"{name}|{unit}|median"),
                m.quantile(0.95, "linear").alias(f"{name}|{unit}|p95"),
                m.max().alias(f"{name}|{unit}|max"),
            ]
    values = frame.select(exprs).row(0, named=True)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for key, value in values.items():
        name, unit, stat = key.split("|")
        out.setdefault(name, {}).setdefault(unit, {})[stat] = round(float(value), 1)
    return out


def render_report(report: InspectReport, max_errors: int = 20) -> None:
    """Print the report for a person: inputs, format, counts, first errors, length table."""
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, soft_wrap=True)  # long paths and messages stay on one line
    for item in report.inputs:
        others = [s for s in item["splits"] if s != item["split"]]
        split = f", split {item['split']}" if item["split"] else ""
        split += f" (also holds {', '.join(others)})" if others else ""
        files = f", {item['files']} files" if item["files"] > 1 else ""
        fmt = f"{item['format']} ({item['detection']})"
        console.print(f"[bold]{item['path']}[/] ({item['layout']}{split}{files}): {item['records']} records, {fmt}")
    how = "detected" if report.detected else "given"
    console.print(f"format [bold]{report.format}[/] ({how}), kind [bold]{report.kind}[/]")
    status = "[green]all valid[/]" if report.invalid == 0 else f"{report.valid} valid, [red]{report.invalid} invalid[/]"
    rows = f" ({report.rows} normalized rows)" if report.rows != report.valid else ""
    console.print(f"records {report.records}: {status}{rows}")
    for note in report.notes:
        console.print(f"note: {note}")
    if report.errors:
        console.print(f"[bold red]errors[/] (first {min(max_errors, len(report.errors))} of {len(report.errors)}):")
        for error in report.errors[:max_errors]:
            console.print(f"  {error}", markup=False)
    if report.lengths:
        table = Table(title="lengths of valid rows (characters / words)", title_justify="left")
        table.add_column("field")
        for stat in STATS:
            table.add_column(stat, justify="right")
        for name, units in report.lengths.items():
            cells = [f"{units['chars'][s]:,.0f} / {units['words'][s]:,.0f}" for s in STATS]
            table.add_row(name, *cells)
        console.print(table)
