"""Dataclasses from JSON with every field type-checked, so a bad file fails on load naming its key.

JSON gives us dicts of str/int/float/bool/None/list/dict; a hand-edited or corrupted config.json or
state.json can put any of them anywhere. :func:`from_dict` checks each field against the
dataclass's annotations (``int``, ``float``, ``str``, ``bool``, ``Optional``, ``List``, ``Dict``,
``Tuple``, nested dataclasses) before anything is built from it.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Tuple, Type, TypeVar, Union, get_args, get_origin, get_type_hints

from .errors import UserError

T = TypeVar("T")


class SchemaError(UserError):
    """A file whose content does not have the expected types; the message names the file and key."""


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _at(where: Tuple[str, str]) -> str:
    source, key = where
    return f"{source}: key {key!r}" if key else source


def check_value(value: Any, hint: Any, where: Tuple[str, str]) -> Any:
    """``value`` converted to ``hint`` (int -> float, list -> tuple), or :class:`SchemaError`.

    ``where`` is (file, dotted key path), for the message."""
    origin = get_origin(hint)
    if hint is Any:
        return value
    if origin is Union:
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return check_value(value, option, where)
            except SchemaError as exc:
                errors.append(str(exc))
        raise SchemaError(errors[0] if len(errors) == 1 else f"{_at(where)}: unexpected {_kind(value)} {value!r:.60}")
    if dataclasses.is_dataclass(hint):
        return _from_dict(hint, value, where, False)
    if origin in (list, List):
        if not isinstance(value, list):
            raise SchemaError(f"{_at(where)}: expected a list, got {_kind(value)}")
        (item,) = get_args(hint) or (Any,)
        return [check_value(v, item, (where[0], f"{where[1]}[{i}]")) for i, v in enumerate(value)]
    if origin in (tuple, Tuple):
        if not isinstance(value, (list, tuple)):
            raise SchemaError(f"{_at(where)}: expected a list, got {_kind(value)}")
        args = get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(check_value(v, args[0], (where[0], f"{where[1]}[{i}]")) for i, v in enumerate(value))
        if len(args) != len(value):
            raise SchemaError(f"{_at(where)}: expected {len(args)} items, got {len(value)}")
        return tuple(check_value(v, a, (where[0], f"{where[1]}[{i}]")) for i, (v, a) in enumerate(zip(value, args)))
    if origin in (dict, Dict):
        if not isinstance(value, dict):
            raise SchemaError(f"{_at(where)}: expected an object, got {_kind(value)}")
        _, item = get_args(hint) or (str, Any)
        return {str(k): check_value(v, item, (where[0], f"{where[1]}.{k}" if where[1] else str(k)))
                for k, v in value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            raise SchemaError(f"{_at(where)}: expected true or false, got {_kind(value)} {value!r:.60}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SchemaError(f"{_at(where)}: expected an integer, got {_kind(value)} {value!r:.60}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SchemaError(f"{_at(where)}: expected a number, got {_kind(value)} {value!r:.60}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise SchemaError(f"{_at(where)}: expected a string, got {_kind(value)} {value!r:.60}")
        return value
    if hint is dict:
        if not isinstance(value, dict):
            raise SchemaError(f"{_at(where)}: expected an object, got {_kind(value)}")
        return value
    raise TypeError(f"check_value: unsupported annotation {hint!r} at {where}")  # a bug in our dataclass


def from_dict(cls: Type[T], data: Any, source: str, *, allow_unknown: bool = False) -> T:
    """``cls(**data)`` after checking every key's type; unknown or missing required keys are errors."""
    return _from_dict(cls, data, (source, ""), allow_unknown)


def _from_dict(cls: Type[T], data: Any, where: Tuple[str, str], allow_unknown: bool) -> T:
    if not isinstance(data, dict):
        raise SchemaError(f"{_at(where)}: expected an object, got {_kind(data)}")
    hints = get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown and not allow_unknown:
        raise SchemaError(f"{_at(where)}: unknown keys {unknown}; known keys are {sorted(known)}")
    values = {}
    for name, f in known.items():
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise SchemaError(f"{_at(where)}: key {name!r} is missing")
            continue
        key = f"{where[1]}.{name}" if where[1] else name
        values[name] = check_value(data[name], hints[name], (where[0], key))
    return cls(**values)
