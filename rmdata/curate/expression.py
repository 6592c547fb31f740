"""``--reward EXPR``: the reward curation ranks by, as an arithmetic expression over reward columns.

Grammar (parsed with :mod:`ast`, evaluated into a polars expression; nothing is ever ``eval``-ed)::

    expr := number | name | expr (+ | - | * | /) expr | -expr | (expr) | f(expr, ...)   f: min, max, mean

A name is a numeric column of the score table, or ``NAME`` for its ``reward_NAME`` column (what
``rmdata score --model NAME=DIR`` writes), so ``0.7*helpful + 0.3*safety`` and
``0.7*reward_helpful + 0.3*reward_safety`` are the same rule. Examples: ``reward_a``,
``min(reward_a, reward_b)``, ``mean(a, b, c) - 0.5*length_rm``. An unknown name is refused with the reward
columns the table has. With ``--normalize`` each named column is rescaled (within ``--by``) before the
expression combines them (``ranking.add_score``); ``--by prompt_id`` normalizes per prompt.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import polars as pl

from rmdata.errors import RmdataError

BINARY: dict[type[ast.operator], Callable[[pl.Expr, pl.Expr], pl.Expr]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
FUNCTIONS: dict[str, Callable[..., pl.Expr]] = {
    "min": pl.min_horizontal,
    "max": pl.max_horizontal,
    "mean": pl.mean_horizontal,
}
EXAMPLE = "e.g. --reward '0.7*reward_a + 0.3*reward_b' or --reward 'min(reward_a, reward_b)'"


@dataclass(frozen=True)
class RewardExpression:
    """A parsed ``--reward``: its text, the table columns it names (first use first) and its tree."""

    text: str
    columns: tuple[str, ...]
    tree: ast.expr

    def evaluate(self, column: Callable[[int], pl.Expr]) -> pl.Expr:
        """The expression with the ``i``-th named column replaced by ``column(i)`` (Float64); null where any
        named column is null or NaN (``min``/``max`` would otherwise skip a missing reward)."""
        value = _build(self.tree, lambda name: column(self.columns.index(name))).cast(pl.Float64)
        inputs = [column(i) for i in range(len(self.columns))]
        missing = pl.any_horizontal([c.is_null() | c.is_nan() for c in inputs])
        return pl.when(missing).then(None).otherwise(value)

    def over_table(self) -> pl.Expr:
        """The expression over the table's own columns (what ``ScoreTable`` writes as ``reward``)."""
        return self.evaluate(lambda i: pl.col(self.columns[i]).cast(pl.Float64))


def reward_columns(schema: Mapping[str, pl.DataType]) -> list[str]:
    """The table's numeric ``reward`` / ``reward_*`` columns."""
    return [c for c, t in schema.items() if (c == "reward" or c.startswith("reward_")) and t.is_numeric()]


def parse_reward(text: str, schema: Mapping[str, pl.DataType]) -> RewardExpression:
    """Parse ``text`` against the table's columns; errors name the offending part and the columns there are."""
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as err:
        raise RmdataError(f"--reward {text!r}: not an expression ({err.msg}); {EXAMPLE}") from None
    columns: list[str] = []
    _check(tree, text, schema, columns)
    if not columns:
        raise RmdataError(f"--reward {text!r} names no column; {EXAMPLE}")
    resolved = ast.fix_missing_locations(_Resolve(schema).visit(tree))
    return RewardExpression(text, tuple(columns), resolved)


def _column_of(name: str, schema: Mapping[str, pl.DataType]) -> str | None:
    for candidate in (name, f"reward_{name}"):
        if candidate in schema and schema[candidate].is_numeric():
            return candidate
    return None


def _check(node: ast.expr, text: str, schema: Mapping[str, pl.DataType], columns: list[str]) -> None:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise RmdataError(f"--reward {text!r}: {node.value!r} is not a number; {EXAMPLE}")
    elif isinstance(node, ast.Name):
        column = _column_of(node.id, schema)
        if column is None:
            have = ", ".join(reward_columns(schema)) or "none"
            raise RmdataError(
                f"--reward {text!r}: unknown column {node.id!r} (no numeric {node.id} or reward_{node.id} column); "
                f"reward columns: {have}"
            )
        if column not in columns:
            columns.append(column)
    elif isinstance(node, ast.BinOp) and type(node.op) in BINARY:
        _check(node.left, text, schema, columns)
        _check(node.right, text, schema, columns)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        _check(node.operand, text, schema, columns)
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS:
        if node.keywords or not node.args or any(isinstance(a, ast.Starred) for a in node.args):
            raise RmdataError(f"--reward {text!r}: {node.func.id}() takes one or more plain arguments")
        for arg in node.args:
            _check(arg, text, schema, columns)
    else:
        part = ast.get_source_segment(text.strip(), node) or type(node).__name__
        raise RmdataError(
            f"--reward {text!r}: {part!r} is not allowed (numbers, columns, + - * /, min, max, mean); {EXAMPLE}"
        )


class _Resolve(ast.NodeTransformer):
    """Names -> the table column they stand for (``a`` -> ``reward_a``); call names are left alone."""

    def __init__(self, schema: Mapping[str, pl.DataType]) -> None:
        self.schema = schema

    def visit_Call(self, node: ast.Call) -> ast.Call:
        node.args = [self.visit(a) for a in node.args]
        return node

    def visit_Name(self, node: ast.Name) -> ast.Name:
        return ast.copy_location(ast.Name(id=_column_of(node.id, self.schema) or node.id, ctx=node.ctx), node)


def _build(node: ast.expr, column: Callable[[str], pl.Expr]) -> pl.Expr:
    if isinstance(node, ast.Constant):
        assert isinstance(node.value, int | float)  # _check refused anything else
        return pl.lit(float(node.value))
    if isinstance(node, ast.Name):
        return column(node.id)
    if isinstance(node, ast.BinOp):
        return BINARY[type(node.op)](_build(node.left, column), _build(node.right, column))
    if isinstance(node, ast.UnaryOp):
        inner = _build(node.operand, column)
        return -inner if isinstance(node.op, ast.USub) else inner
    assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    return FUNCTIONS[node.func.id](*(_build(a, column) for a in node.args))
