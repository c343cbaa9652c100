"""Typed, validated options per connector (stored as JSON on the connection).

A connector declares ``Options``, a frozen dataclass with defaults. :func:`options_parse`
checks names and types and says exactly what is wrong, so a typo in the admin is caught when
the connection is saved, not in the middle of a sync.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, Literal, TypeVar, get_args, get_origin

from sis.connectors.errors import ConfigurationError

T = TypeVar("T")


def _check(name: str, value: Any, annotation: Any) -> Any:
    origin = get_origin(annotation)
    if origin is Literal:
        allowed = get_args(annotation)
        if value not in allowed:
            choices = ", ".join(repr(a) for a in allowed)
            raise ConfigurationError(f"Option {name!r} must be one of {choices}, not {value!r}.")
        return value
    if origin in (types.UnionType, typing.Union):
        args = get_args(annotation)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check(name, value, arg)
            except ConfigurationError as exc:
                errors.append(exc.message)
        raise ConfigurationError(errors[0] if errors else f"Option {name!r} is invalid.")
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigurationError(f"Option {name!r} must be true or false, not {value!r}.")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigurationError(f"Option {name!r} must be a whole number, not {value!r}.")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigurationError(f"Option {name!r} must be a number, not {value!r}.")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigurationError(f"Option {name!r} must be text, not {value!r}.")
        return value
    return value


def options_parse[T](options_type: type[T], data: dict[str, Any] | None) -> T:
    """Build ``options_type`` from ``data``; raise ConfigurationError naming the bad option."""
    data = dict(data or {})
    if not dataclasses.is_dataclass(options_type):
        raise TypeError("Options must be a dataclass")
    hints = typing.get_type_hints(options_type)
    fields = {f.name: f for f in dataclasses.fields(options_type)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        known = ", ".join(sorted(fields)) or "none"
        raise ConfigurationError(f"Unknown option(s) {', '.join(unknown)}; known options: {known}.")
    values = {name: _check(name, value, hints[name]) for name, value in data.items()}
    instance = options_type(**values)
    validate = getattr(instance, "validate", None)
    if callable(validate):
        validate()
    return instance


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """For connectors without options."""


def _kind(annotation: Any) -> str:
    """An option's type in an administrator's words (as :func:`_check` enforces it), values
    as they are written in the connection's JSON."""
    origin = get_origin(annotation)
    if origin is Literal:
        return " or ".join(json.dumps(a) for a in get_args(annotation))
    if origin in (types.UnionType, typing.Union):
        return " or ".join(
            "null" if arg is type(None) else _kind(arg) for arg in get_args(annotation)
        )
    words = {bool: "true or false", int: "whole number", float: "number", str: "text"}
    return words.get(annotation, getattr(annotation, "__name__", str(annotation)))


def options_describe(options_type: type) -> list[tuple[str, str, Any]]:
    """Each option of a connector as (name, type in words, default), in declaration order:
    what the admin's connection form lists under *Options*."""
    hints = typing.get_type_hints(options_type)
    return [
        (f.name, _kind(hints[f.name]), f.default)
        for f in dataclasses.fields(options_type)
        if f.default is not dataclasses.MISSING
    ]
