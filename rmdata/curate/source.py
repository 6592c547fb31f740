"""The score table curation reads: ``rmdata score`` output directories, or Parquet files with its columns."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from rmdata.curate.expression import RewardExpression, parse_reward, reward_columns
from rmdata.dataset_dir import DATA_DIR, read_marker
from rmdata.errors import RmdataError

DEFAULT_SCORES = "rmdata-out/scores"
REQUIRED = ("prompt_id", "response_id", "prompt", "response")  # and reward, or reward_<name> columns
ROW = "_row"  # the row's position in the scanned inputs: the key that joins decisions back to texts
CHUNK_ROWS = 131_072  # rows read back at a time (whole row groups; at least one)
MAKE_ONE = "make one with `rmdata score CORPUS` (it writes rmdata-out/scores; --output DIR for another place)"
# what reading damaged Parquet data raises: polars errors, I/O errors, and a panic in polars' reader
READ_ERRORS: tuple[type[BaseException], ...] = (pl.exceptions.PolarsError, OSError, pl.exceptions.PanicException)


@dataclass(frozen=True)
class ScoreTable:
    """The Parquet files of one or more score outputs, read as one table.

    ``reward``: a ``--reward`` expression; the table then reads ``reward`` as its value (``with_reward``).
    """

    files: tuple[str, ...]
    schema: dict[str, pl.DataType]
    inputs: tuple[str, ...]
    reward: RewardExpression | None = None

    def scan(self) -> pl.LazyFrame:
        """All rows, in file order, with ``_row`` (0-based position) in front."""
        frame = pl.scan_parquet(list(self.files)).with_row_index(ROW)
        if self.reward is not None:
            frame = frame.with_columns(self.reward.over_table().alias("reward"))
        return frame

    def with_reward(self, text: str | None) -> ScoreTable:
        """The table ranked by ``--reward text`` (``None``: its own ``reward`` column, which it must have)."""
        if text is None:
            if not self.has("reward"):
                have = ", ".join(reward_columns(self.schema)) or "none"
                raise RmdataError(
                    f"{self.files[0]} has no reward column but reward columns {have} (a several-model score "
                    "output): say which to rank by, e.g. --reward 'reward_a' or --reward '0.5*reward_a + 0.5*reward_b'"
                )
            return self
        expression = parse_reward(text, self.schema)
        schema = {**self.schema, "reward": pl.Float64()}
        return ScoreTable(self.files, schema, self.inputs, expression)

    def _select(self, columns: Sequence[str]) -> list[pl.Expr]:
        if self.reward is None:
            return [pl.col(c) for c in columns]
        return [self.reward.over_table().alias(c) if c == "reward" else pl.col(c) for c in columns]

    def has(self, column: str) -> bool:
        return column in self.schema

    def locate(self, row: int) -> tuple[str, int]:
        """The file holding the table's row ``row`` (a ``_row`` value) and the row's 0-based position in it."""
        start = 0
        for file in self.files:
            rows = pq.read_metadata(file).num_rows
            if row < start + rows:
                return file, row - start
            start += rows
        raise IndexError(row)

    def collect(self, query: pl.LazyFrame, columns: Sequence[str]) -> pl.DataFrame:
        """``query`` (a scan of this table reading ``columns``) run by the streaming engine; a damaged data
        page becomes one error naming the file (each file is then read alone to find it)."""
        try:
            return query.collect(engine="streaming")
        except READ_ERRORS as err:
            for file in self.files:
                try:
                    pl.scan_parquet(file).select(columns).collect(engine="streaming")
                except READ_ERRORS as own:
                    raise damaged(file, own) from own
            raise damaged(", ".join(self.files), err) from err

    def chunks(self) -> list[tuple[str, int, int, int]]:
        """``(file, first row in the file, first row in the table, rows)``: consecutive row groups of one
        file, about ``CHUNK_ROWS`` rows each, covering the table in ``_row`` order."""
        out, start = [], 0
        for file in self.files:
            offset = size = 0
            metadata = pq.read_metadata(file)
            for group in range(metadata.num_row_groups):
                size += metadata.row_group(group).num_rows
                if size >= CHUNK_ROWS or group == metadata.num_row_groups - 1:
                    out.append((file, offset, start, size))
                    offset, start, size = offset + size, start + size, 0
        return out

    def read_rows(self, rows: np.ndarray, columns: Sequence[str]) -> Iterator[tuple[int, pl.DataFrame]]:
        """The table's rows at positions ``rows`` (strictly ascending ``_row`` values), ``columns`` only.

        Yields ``(i, frame)``: ``frame`` holds the rows ``rows[i : i + frame.height]``, in that order. Reads
        one chunk of row groups at a time, skips chunks holding none of ``rows`` and selects by a boolean
        mask (several times cheaper than a gather for list columns), so memory stays at one chunk plus what
        is yielded, and no join over the whole table is built.
        """
        for file, offset, start, size in self.chunks():
            low, high = np.searchsorted(rows, [start, start + size])
            if low == high:
                continue
            try:
                block = pl.scan_parquet(file).slice(offset, size).select(self._select(columns)).collect()
            except READ_ERRORS as err:
                raise damaged(file, err) from err
            mask = np.zeros(size, dtype=bool)
            mask[rows[low:high] - start] = True
            yield int(low), block.filter(pl.Series(mask))


def damaged(file: str, err: BaseException) -> RmdataError:
    """A Parquet file whose footer reads but whose data does not (damaged pages, a bad copy)."""
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return RmdataError(
        f"{file}: its Parquet data cannot be read ({reason}); the file is damaged: copy it again, or rescore "
        "(`rmdata score CORPUS -o DIR`)"
    )


def _is_id(dtype: pl.DataType) -> bool:
    return dtype == pl.String or dtype.is_integer()


def check_columns(file: Path | str, schema: dict[str, pl.DataType]) -> None:
    """The core columns' types, as ``rmdata score`` writes them; the error names the file and the column."""
    missing = [c for c in REQUIRED if c not in schema] + (
        [] if any(c == "reward" or c.startswith("reward_") for c in schema) else ["reward"]
    )
    if missing:
        raise RmdataError(
            f"{file} is not a score output: it has no {', '.join(missing)} column(s) "
            f"(has {', '.join(schema) or 'none'}); {MAKE_ONE}"
        )
    wrong = {c: "text or an integer id" for c in ("prompt_id", "response_id") if not _is_id(schema[c])}
    if schema["response"] != pl.String:
        wrong["response"] = "text"
    for column in ("reward", *(c for c in schema if c.startswith("reward_"))):
        if column in schema and not schema[column].is_numeric() and schema[column] != pl.Null:
            wrong[column] = "a number (float)"
    prompt = schema["prompt"]
    fields = (
        {f.name: f.dtype for f in prompt.inner.fields}
        if isinstance(prompt, pl.List) and isinstance(prompt.inner, pl.Struct)
        else {}
    )
    if fields.get("role") != pl.String or fields.get("content") != pl.String:
        wrong["prompt"] = "a message list [{role, content}]"
    if wrong:
        column = next(iter(wrong))
        raise RmdataError(
            f"{file}: column {column} is {schema[column]}, not {wrong[column]} as in a score output; {MAKE_ONE}"
        )


def _parquet_files(path: Path) -> list[Path]:
    if path.is_file():
        if path.suffix != ".parquet":
            raise RmdataError(f"{path} is not a score output (a Parquet file or directory); {MAKE_ONE}")
        return [path]
    if not path.is_dir():
        raise RmdataError(f"{path} does not exist; {MAKE_ONE}")
    marker = read_marker(path)
    if marker is not None and marker["kind"] != "scores":
        raise RmdataError(f"{path} is an rmdata {marker['kind']} directory, not a score output; {MAKE_ONE}")
    files = sorted((path / DATA_DIR).glob("*.parquet"))
    if not files and marker is None:  # a directory of Parquet files; hidden ones (temporary files) are skipped
        hidden = [f for f in path.rglob("*.parquet") if any(p.startswith(".") for p in f.relative_to(path).parts)]
        files = sorted(set(path.rglob("*.parquet")) - set(hidden))
    if not files:
        raise RmdataError(f"{path} holds no Parquet files, so it is not a score output; {MAKE_ONE}")
    return files


def open_scores(inputs: Sequence[str | Path]) -> ScoreTable:
    """Resolve INPUT paths to their Parquet files and check the columns curation needs.

    Every file must have the same columns (``rmdata score`` writes them so); the error names the first
    file that lacks one and the command that makes a score output.
    """
    paths = [Path(p) for p in inputs] or [Path(DEFAULT_SCORES)]
    files = [f for p in paths for f in _parquet_files(p)]
    schema: dict[str, pl.DataType] | None = None
    for f in files:
        try:
            this = dict(pl.read_parquet_schema(f))
        except (Exception, pl.exceptions.PanicException) as err:  # polars raises several types for a broken file
            raise RmdataError(f"{f}: not a readable Parquet file ({err}); {MAKE_ONE}") from err
        check_columns(f, this)
        if schema is None:
            schema = this
        elif this != schema:
            raise RmdataError(f"{f} has other columns or types than {files[0]}; curate one score output at a time")
    assert schema is not None
    return ScoreTable(tuple(str(f) for f in files), schema, tuple(str(p) for p in paths))


def check_column(table: ScoreTable, column: str, flag: str, *, numeric: bool = False) -> None:
    """A ``--by`` or length column must exist (the error lists the columns there are)."""
    if not table.has(column):
        raise RmdataError(f"{flag} {column}: no such column in the score table; columns: {', '.join(table.schema)}")
    if numeric and not table.schema[column].is_numeric():
        raise RmdataError(f"{flag}: column {column} is {table.schema[column]}, not a number")
