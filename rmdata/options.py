"""Typed options: dataclass fields that carry their one-line help and allowed range, checked when a section is
built, and the coercion of YAML and ``--set KEY=VALUE`` text to each field's type.

The recipe (:mod:`rmdata.config`) declares its sections with :func:`option` on :class:`Section` subclasses;
choices are ``Literal`` types, listed by :func:`choices`. Every error names the key, the value and the type or
range it must have.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import field
from typing import Any, ClassVar, Literal

from rmdata.errors import RmdataError


def choices(literal: Any) -> tuple[str, ...]:
    """The values of a ``Literal`` option type, in declaration order: ``choices(FinetuneMode)``."""
    return typing.get_args(literal)


def option(
    default: Any,
    help: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
) -> Any:
    """A dataclass field with its one-line documentation and the range its value must lie in."""
    bounds = {"ge": ge, "gt": gt, "le": le, "lt": lt}
    metadata = {"help": help, "range": {k: v for k, v in bounds.items() if v is not None}}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


_RULES = {
    "ge": (">=", lambda v, b: v >= b),
    "gt": (">", lambda v, b: v > b),
    "le": ("<=", lambda v, b: v <= b),
    "lt": ("<", lambda v, b: v < b),
}


def _bound_text(bound: float) -> str:
    return f"{bound:,}".replace(",", "_") if isinstance(bound, int) and bound >= 10**6 else f"{bound:g}"


class Section:
    """Range checks every recipe section runs when it is built; subclasses add checks across fields.

    ``SECTION`` is the section's dotted name in a recipe (``model.tiny``), used in every message."""

    SECTION: ClassVar[str]

    def __post_init__(self) -> None:
        hints = field_types(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            key = f"{self.SECTION}.{f.name}"
            tp = hints[f.name]
            if typing.get_origin(tp) is Literal and value not in choices(tp):
                raise RmdataError(f"{key} must be {type_name(tp)}; got {value!r}")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            rules = f.metadata.get("range", {})
            wanted = " and ".join(f"{_RULES[k][0]} {_bound_text(b)}" for k, b in rules.items())
            fix = f"set it in the recipe or with --set {key}=VALUE"
            if isinstance(value, float) and not math.isfinite(value):
                raise RmdataError(f"{key}={value} is not a finite number; {fix}" + (f" ({wanted})" if wanted else ""))
            if not all(_RULES[k][1](value, b) for k, b in rules.items()):
                raise RmdataError(f"{key}={value!r} is out of range: it must be {wanted}; {fix}")
        self.check()

    def check(self) -> None:
        """Rules across this section's fields (none by default)."""


def field_types(cls: type) -> dict[str, Any]:
    """Field name -> resolved type of a dataclass (string annotations evaluated in its own module)."""
    return typing.get_type_hints(cls)


def type_name(tp: Any) -> str:
    """A type as recipes write it: ``int | null``, ``list[str]``, ``'full' | 'lora'``."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list[{type_name(typing.get_args(tp)[0])}]"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Return ``value`` as type ``tp`` or raise an RmdataError naming the key, the value and the type."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        is_null = value is None or (isinstance(value, str) and value.lower() in ("null", "none", "~"))
        if is_null and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, key)
            except RmdataError:
                continue
    elif origin is Literal:
        if value in typing.get_args(tp):
            return value
    elif origin is list:
        (item,) = typing.get_args(tp)
        items = value if isinstance(value, list) else [value] if isinstance(value, str) else None
        if items is not None:
            return [coerce(v, item, f"{key}[{i}]") for i, v in enumerate(items)]
    elif isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if isinstance(value, dict):
            return build(tp, value, prefix=f"{key}.")
    elif tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:  # YAML 1.1 reads "1e-4" as a string
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    raise RmdataError(f"{key} must be {type_name(tp)}; got {value!r}")


def build(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    """``cls(**values)`` with every value coerced to its field's type; an unknown key is an error listing the
    valid ones. ``prefix``: the dotted place of ``cls`` in the recipe, for messages."""
    hints = field_types(cls)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        valid = ", ".join(f.name for f in dataclasses.fields(cls))
        where = prefix.rstrip(".") or "the top level"
        raise RmdataError(f"unknown recipe key {prefix}{unknown[0]}; valid keys under {where}: {valid}")
    kwargs = {name: coerce(v, hints[name], prefix + name) for name, v in values.items()}
    return cls(**kwargs)
