"""Typed configuration sections: frozen dataclasses built from plain mappings (an mmengine config's
``to_dict()``) by one validator driven by the field types, as lm-evaluation-harness's ``TaskConfig``.

A section is a ``@dataclass(frozen=True)``; its fields' annotations say what a key accepts:

- ``int``, ``float`` (an int is accepted and stored as a float; NaN and infinities are refused),
  ``bool`` (never an int), ``str``; ``X | None`` (``null`` allowed);
- ``Literal["a", "b"]`` (one of the choices); ``tuple[float, float]`` (exactly two),
  ``tuple[X, ...]`` (any length; a list in the file); ``dict`` (a free mapping);
- another section (a nested mapping);
- ``Annotated[int, Range(ge=0)]`` and the aliases below (``Count``, ``PositiveInt``,
  ``PositiveFloat``, ``Probability`` ...) add a range.

``build(Section, mapping)`` checks every key (unknown key, wrong type, value out of range, missing
key without a default -> ``ConfigError`` naming the dotted key and what it expects), converts the
values and returns the frozen section. A section may define ``validate_section(self, key)`` for
checks across its fields; a field with ``metadata={"internal": True}`` is set by dabench, never
read from a file; ``to_dict`` leaves out a field marked ``metadata={"omit_default": True}`` while
it holds its default. ``check_override_keys`` refuses ``--cfg-option`` / ``--set`` keys that name
no field before anything is merged. Messages quote bounded excerpts (``dabench.errors.excerpt``).
"""
from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Iterable, Literal, Mapping, Union

from dabench.errors import ConfigError, excerpt


@dataclass(frozen=True)
class Range:
    """Bounds of a number: ``ge`` / ``gt`` / ``le`` / ``lt``."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def describe(self) -> str:
        parts = [f"{op} {v:g}" for op, v in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
                 if v is not None]
        return " and ".join(parts)

    def holds(self, v: float) -> bool:
        return ((self.ge is None or v >= self.ge) and (self.gt is None or v > self.gt)
                and (self.le is None or v <= self.le) and (self.lt is None or v < self.lt))


Count = Annotated[int, Range(ge=0)]               # 0, 1, 2, ... (workers, warm-up steps, cadences)
PositiveInt = Annotated[int, Range(ge=1)]         # steps, batch sizes
PositiveFloat = Annotated[float, Range(gt=0)]     # learning rates, multipliers, depths
NonNegativeFloat = Annotated[float, Range(ge=0)]  # weight decay
Probability = Annotated[float, Range(ge=0, le=1)]

class _Mismatch(Exception):
    """A value of the wrong type; ``expected`` says what the key takes."""

    def __init__(self, expected: str):
        super().__init__(expected)
        self.expected = expected


def _is_union(tp) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def _unwrap(tp):
    """``Annotated[X, ...]`` / ``X | None`` -> ``X`` (for walking sections)."""
    while True:
        if typing.get_origin(tp) is Annotated:
            tp = typing.get_args(tp)[0]
        elif _is_union(tp):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def describe(tp) -> str:
    """What a type accepts, in words."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        rng = [m for m in args[1:] if isinstance(m, Range)]
        return describe(args[0]) + "".join(f" {r.describe()}" for r in rng)
    if _is_union(tp):
        parts = [describe(a) for a in args if a is not type(None)]
        return " or ".join(parts) + (" or null" if type(None) in args else "")
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {describe(args[0])}"
        return f"a list of {len(args)} ({', '.join(describe(a) for a in args)})"
    if origin in (list, typing.List):
        return f"a list of {describe(args[0])}" if args else "a list"
    if tp in (dict, Mapping) or origin in (dict, Mapping):
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping (section)"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(tp, str(tp))


def _hints(cls) -> dict[str, Any]:
    cached = cls.__dict__.get("__typed_hints__")
    if cached is None:
        cached = typing.get_type_hints(cls, include_extras=True)
        setattr(cls, "__typed_hints__", cached)  # noqa: B010 - a plain class attribute, not a field
    return cached


def fields_of(cls) -> dict[str, Any]:
    """``{name: annotation}`` of a section's init fields."""
    hints = _hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init and not f.metadata.get("internal")}


def _join(key: str, sub: str) -> str:
    return f"{key}.{sub}" if key else sub


def _convert(tp, value: Any, key: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return copy.deepcopy(value)
    if origin is Annotated:
        v = _convert(args[0], value, key)
        for rng in (m for m in args[1:] if isinstance(m, Range)):
            if v is not None and not rng.holds(v):
                raise ConfigError(f"config key {excerpt(key)} must be {rng.describe()}, got {excerpt(value)}")
        return v
    if _is_union(tp):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        for a in options:
            try:
                return _convert(a, value, key)
            except _Mismatch:
                continue
        raise _Mismatch(describe(tp))
    if origin is Literal:
        for a in args:
            if value == a and type(value) is type(a):
                return a
        raise ConfigError(f"config key {excerpt(key)} must be one of {', '.join(repr(a) for a in args)}, got {excerpt(value)}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch(describe(tp))
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return int(value)
        raise _Mismatch(describe(tp))
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"config key {excerpt(key)} must be a finite number, got {excerpt(value)}")
            return float(value)
        raise _Mismatch(describe(tp))
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch(describe(tp))
    if origin is tuple or origin in (list, typing.List):
        if not isinstance(value, (list, tuple)):
            raise _Mismatch(describe(tp))
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise _Mismatch(describe(tp))
            items = [_checked(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value))]
        else:
            item_tp = args[0] if args else Any
            items = [_checked(item_tp, v, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp in (dict, Mapping) or origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise _Mismatch(describe(tp))
        if len(args) == 2:
            return {str(k): _checked(args[1], v, _join(key, str(k))) for k, v in value.items()}
        return copy.deepcopy(dict(value))
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return build(tp, value, key)
    raise TypeError(f"typed_config: unsupported field type {tp!r} for {excerpt(key)}")  # a programming error


def check_value(tp, value: Any, key: str) -> Any:
    """``value`` checked against the type ``tp`` and converted (``ConfigError`` naming ``key``)."""
    return _checked(tp, value, key)


def _checked(tp, value: Any, key: str) -> Any:
    try:
        return _convert(tp, value, key)
    except _Mismatch as e:
        raise ConfigError(f"config key {excerpt(key)} must be {e.expected}, got {type(value).__name__} {excerpt(value)}"
                          ) from None


def build(cls, data: Any, key: str = ""):
    """The section ``cls`` from the mapping ``data`` (``key``: its dotted place, for messages)."""
    if not isinstance(data, Mapping):
        what = f"config key {excerpt(key)}" if key else "a config"
        raise ConfigError(f"{what} must be a mapping, got {type(data).__name__} {excerpt(data)}")
    spec = fields_of(cls)
    for k in data:
        if k not in spec:
            raise ConfigError(f"unknown config key {excerpt(_join(key, str(k)))}; valid keys"
                              f"{' in ' + repr(key) if key else ''}: {', '.join(sorted(spec))}")
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for name, tp in spec.items():
        full = _join(key, name)
        if name in data:
            kwargs[name] = _checked(tp, data[name], full)
        elif by_name[name].default is dataclasses.MISSING and by_name[name].default_factory is dataclasses.MISSING:
            raise ConfigError(f"config key {excerpt(full)} is missing ({describe(tp)})")
    obj = cls(**kwargs)
    check = getattr(obj, "validate_section", None)
    if check is not None:
        check(key)
    return obj


def to_dict(obj: Any) -> Any:
    """A section as plain, JSON-able data (tuples become lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if not (f.metadata.get("omit_default") and getattr(obj, f.name) == f.default)}
    if isinstance(obj, Mapping):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


def check_override_keys(cls, keys: Iterable[str], flag: str = "--cfg-option") -> None:
    """Every dotted key (``student.feat_alpha``, ``data.labelled.0.name``) must name a field of
    ``cls`` (a free ``dict`` field takes any key below it): ``ConfigError`` naming the key, the part
    that is unknown and the valid keys there."""
    for key in keys:
        tp: Any = cls
        parts = str(key).split(".")
        for i, part in enumerate(parts):
            where = ".".join(parts[:i]) or "the top level"
            tp = _unwrap(tp)
            origin = typing.get_origin(tp)
            if dataclasses.is_dataclass(tp):
                spec = fields_of(tp)
                if part not in spec:
                    raise ConfigError(f"unknown config key {excerpt(key)} in {flag} ({excerpt(part)} is not in {where}; valid: "
                                      f"{', '.join(sorted(spec))})")
                tp = spec[part]
            elif (origin is tuple or origin in (list, typing.List)) and part.isdigit():
                args = typing.get_args(tp)
                if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
                    if int(part) >= len(args):
                        raise ConfigError(f"unknown config key {excerpt(key)} in {flag} ({where} has {len(args)} items)")
                    tp = args[int(part)]
                else:
                    tp = args[0] if args else Any
            elif tp in (dict, Mapping, Any) or origin in (dict, Mapping):
                break
            else:
                raise ConfigError(f"unknown config key {excerpt(key)} in {flag} ({where} is {describe(tp)}, not a section)")
