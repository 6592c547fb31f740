"""`rmdata inspect`: what a set of input files holds, whether every record is valid, and how long texts are.

The length summary is token-free (characters and whitespace-separated words), so it needs no tokenizer.
One streaming pass (:func:`rmdata.data.stream.scan`): memory does not grow with the records' size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from rmdata.data.formats import Row
from rmdata.data.inputs import InputInfo
from rmdata.data.rules import RecordError
from rmdata.data.stream import scan

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
    duplicates: int = 0  # rows repeating an earlier row's content
    dropped: dict[str, int] = field(default_factory=dict)  # rows left out, by reason

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
            "duplicates": self.duplicates,
            "dropped": self.dropped,
        }


def inspect_paths(paths: Sequence[str], format: str | None = None) -> InspectReport:
    """Read every record of ``paths`` once (invalid ones are reported, not raised) and summarize them.

    Memory stays bounded: records are not kept, only counts, the first errors and two lengths per text.
    """
    lengths = _Lengths()
    report = scan(paths, format=format, on_error="skip", count_duplicates=True, on_rows=lengths.add)
    notes = list(report.notes)
    if report.duplicates:
        notes.append(f"{report.duplicates} rows repeat an earlier row's prompt and response(s)")
    return InspectReport(
        format=report.format,
        kind=report.kind,
        detected=report.detected,
        records=report.records,
        valid=report.records - report.invalid,
        invalid=report.invalid,
        rows=report.valid_rows,
        errors=report.errors,
        inputs=[_input_dict(info) for info in report.inputs],
        lengths=lengths.summary(report.kind),
        notes=notes,
        duplicates=report.duplicates,
        dropped=report.drops,
    )


def _input_dict(info: InputInfo) -> dict[str, Any]:
    return {"path": info.path, "layout": info.layout, "split": info.split, "splits": info.splits,
            "files": len(info.files), "records": info.records, "format": info.format,
            "detection": info.detection}  # fmt: skip


class _Lengths:
    """Characters and words of each text field, collected batch by batch (two small integers per text)."""

    def __init__(self) -> None:
        self.parts: dict[str, list[pl.DataFrame]] = {}

    def add(self, rows: list[Row]) -> None:
        texts = {"prompt": ["\n".join(m["content"] for m in row["prompt"]) for row in rows]}
        for name in ("chosen", "rejected", "response"):
            if name in rows[0]:
                texts[name] = [row[name] for row in rows]
        for name, values in texts.items():
            text = pl.Series(values, dtype=pl.String)
            measured = pl.DataFrame({"chars": text.str.len_chars(), "words": text.str.count_matches(r"\S+")}).cast(
                pl.UInt32
            )
            self.parts.setdefault(name, []).append(measured)

    def summary(self, kind: str) -> dict[str, dict[str, dict[str, float]]]:
        """Field -> chars|words -> min|median|p95|max."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        names = ["prompt", *(("chosen", "rejected") if kind == "pairs" else ("response",))]
        for name in names:
            if name not in self.parts:
                continue
            frame = pl.concat(self.parts[name])
            for unit in ("chars", "words"):
                m = pl.col(unit).cast(pl.Float64)
                row = frame.select(
                    m.min().alias("min"), m.median().alias("median"),
                    m.quantile(0.95, "linear").alias("p95"), m.max().alias("max"),
                ).row(0, named=True)  # fmt: skip
                out.setdefault(name, {})[unit] = {k: round(float(v), 1) for k, v in row.items()}
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
