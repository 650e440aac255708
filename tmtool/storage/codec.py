"""Exact conversion between the engine's dataclasses and JSON-compatible values.

The encoder walks a value by its runtime type; the decoder walks the JSON by the
declared type hints of the target dataclass, so every field comes back with the
type it was declared with:

- dataclasses become objects keyed by field name (missing keys take the field's
  default; unknown keys are an error, never silently dropped);
- enums are stored by value, ``time`` as "HH:MM" ("HH:MM:SS" when it has
  seconds), ``date`` as "YYYY-MM-DD", tuples as lists;
- floats must be finite: SQLite stores NaN as NULL, which would turn a NaN stop
  into "no stop" on reload, so a non-finite number is refused when written.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from datetime import date, time
from enum import Enum
from functools import lru_cache
from typing import Any, Callable


class CodecError(ValueError):
    """A value cannot be stored, or stored data does not match the declared type."""


def encode(value: Any, where: str = "value") -> Any:
    """Return a JSON-compatible form of ``value`` (dataclasses, enums, times, tuples)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CodecError(f"{where} is {value}; only finite numbers can be stored")
        return value
    if isinstance(value, time):
        return _format_time(value, where)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (tuple, list)):
        return [encode(item, f"{where}[{index}]") for index, item in enumerate(value)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: encode(getattr(value, field.name), f"{where}.{field.name}")
            for field in dataclasses.fields(value)
        }
    raise CodecError(f"{where} has type {type(value).__name__}, which cannot be stored")


def decode(target: Any, data: Any, where: str = "value") -> Any:
    """Build a value of the declared type ``target`` from its JSON-compatible form."""
    return decoder(target)(data, where)


Decoder = Callable[[Any, str], Any]


@lru_cache(maxsize=None)
def decoder(target: Any) -> Decoder:
    """The decoding function for a declared type, built once per type.

    Loading thousands of trades at start-up decodes every field of every row;
    resolving the type hints once per type instead of once per value keeps
    that linear and cheap.
    """
    origin = typing.get_origin(target)
    if origin in (typing.Union, types.UnionType):
        return _union_decoder(typing.get_args(target))
    if origin is tuple:
        return _tuple_decoder(typing.get_args(target))
    if target is Any:
        return lambda data, where: data
    if isinstance(target, type):
        if dataclasses.is_dataclass(target):
            return _dataclass_decoder(target)
        if issubclass(target, Enum):
            return lambda data, where: _decode_enum(target, data, where)
        if target is float:
            return _decode_float
        return lambda data, where: _decode_scalar(target, data, where)

    def refuse(data: Any, where: str) -> Any:
        raise CodecError(f"{where}: cannot decode into {target!r}")

    return refuse


def to_json(value: Any, where: str = "value") -> str:
    """Encode ``value`` as compact JSON text (stable key order)."""
    return json.dumps(encode(value, where), allow_nan=False, separators=(",", ":"), sort_keys=True)


def from_json(target: Any, text: str, where: str = "value") -> Any:
    """Decode JSON text written by :func:`to_json` into the declared type ``target``."""
    return json_decoder(target)(text, where)


@lru_cache(maxsize=None)
def json_decoder(target: Any) -> Decoder:
    """:func:`from_json` for one declared type, built once per type."""
    build = decoder(target)

    def decode_json(text: Any, where: str) -> Any:
        try:
            data = json.loads(text)
        except (TypeError, json.JSONDecodeError) as exc:
            raise CodecError(f"{where}: stored text is not valid JSON ({exc})") from None
        return build(data, where)

    return decode_json


def matches(target: Any, value: Any) -> bool:
    """True when ``value`` has the declared scalar type ``target`` (bools are not numbers here)."""
    return checker(target)(value)


@lru_cache(maxsize=None)
def checker(target: Any) -> Callable[[Any], bool]:
    """The type test of :func:`matches` for one declared type, built once per type."""
    origin = typing.get_origin(target)
    if origin in (typing.Union, types.UnionType):
        options = tuple(checker(option) for option in typing.get_args(target))
        return lambda value: any(check(value) for check in options)
    if target is type(None):
        return lambda value: value is None
    if target is float:
        return lambda value: isinstance(value, (int, float)) and not isinstance(value, bool)
    if target is int:
        return lambda value: isinstance(value, int) and not isinstance(value, bool)
    if isinstance(target, type):
        return lambda value: isinstance(value, target)
    return lambda value: False


def type_name(target: Any) -> str:
    if typing.get_origin(target) in (typing.Union, types.UnionType):
        return " | ".join(type_name(option) for option in typing.get_args(target))
    return "None" if target is type(None) else getattr(target, "__name__", repr(target))


@lru_cache(maxsize=None)
def field_types(cls: type) -> dict[str, Any]:
    """The resolved type hint of every field of a dataclass, in declaration order."""
    hints = typing.get_type_hints(cls)
    return {field.name: hints[field.name] for field in dataclasses.fields(cls)}


def _format_time(value: time, where: str) -> str:
    if value.tzinfo is not None or value.microsecond:
        raise CodecError(f"{where} is {value!r}; only a naive wall-clock time without microseconds can be stored")
    if value.second:
        return value.strftime("%H:%M:%S")
    return value.strftime("%H:%M")


def _union_decoder(options: tuple[Any, ...]) -> Decoder:
    nullable = type(None) in options
    candidates = tuple(decoder(option) for option in options if option is not type(None))

    def decode_union(data: Any, where: str) -> Any:
        if data is None:
            if nullable:
                return None
            raise CodecError(f"{where} is missing (null) but is required")
        errors = []
        for candidate in candidates:
            try:
                return candidate(data, where)
            except CodecError as exc:
                errors.append(str(exc))
        raise CodecError("; ".join(errors))

    return decode_union


def _tuple_decoder(args: tuple[Any, ...]) -> Decoder:
    if len(args) == 2 and args[1] is Ellipsis:
        item_decoder = decoder(args[0])

        def decode_items(data: Any, where: str) -> tuple:
            if not isinstance(data, (list, tuple)):
                raise CodecError(f"{where} should be a list, got {type(data).__name__}")
            return tuple(item_decoder(item, f"{where}[{index}]") for index, item in enumerate(data))

        return decode_items
    item_decoders = tuple(decoder(arg) for arg in args)

    def decode_fixed(data: Any, where: str) -> tuple:
        if not isinstance(data, (list, tuple)):
            raise CodecError(f"{where} should be a list, got {type(data).__name__}")
        if len(item_decoders) != len(data):
            raise CodecError(f"{where} should have {len(item_decoders)} items, got {len(data)}")
        return tuple(item(value, f"{where}[{index}]") for index, (item, value) in enumerate(zip(item_decoders, data)))

    return decode_fixed


def _dataclass_decoder(cls: type) -> Decoder:
    fields = tuple((name, decoder(hint)) for name, hint in field_types(cls).items())
    names = frozenset(name for name, _ in fields)

    def decode_dataclass(data: Any, where: str) -> Any:
        if not isinstance(data, dict):
            raise CodecError(f"{where} should be an object for {cls.__name__}, got {type(data).__name__}")
        if not names.issuperset(data):
            unknown = sorted(set(data) - names)
            raise CodecError(f"{where}: unknown keys for {cls.__name__}: {', '.join(unknown)}")
        values = {name: decode_field(data[name], f"{where}.{name}") for name, decode_field in fields if name in data}
        try:
            return cls(**values)
        except TypeError as exc:
            raise CodecError(f"{where}: cannot build {cls.__name__} ({exc})") from None

    return decode_dataclass


def _decode_float(data: Any, where: str) -> float:
    if type(data) is float and math.isfinite(data):  # the common case, checked first
        return data
    return _decode_scalar(float, data, where)


def _decode_enum(cls: type[Enum], data: Any, where: str) -> Enum:
    try:
        return cls(data)
    except ValueError:
        allowed = ", ".join(member.value for member in cls)
        raise CodecError(f"{where} is {data!r}; expected one of {allowed}") from None


def _decode_scalar(target: type, data: Any, where: str) -> Any:
    if target is bool:
        if isinstance(data, bool):
            return data
        if isinstance(data, int) and data in (0, 1):  # SQLite stores booleans as 0/1
            return bool(data)
    elif target is int:
        if isinstance(data, int) and not isinstance(data, bool):
            return data
    elif target is float:
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            value = float(data)
            if math.isfinite(value):
                return value
    elif target is str:
        if isinstance(data, str):
            return data
    elif target is time:
        if isinstance(data, time):
            return data
        if isinstance(data, str):
            try:
                return time.fromisoformat(data)
            except ValueError:
                pass
    elif target is date:
        if isinstance(data, date):
            return data
        if isinstance(data, str):
            try:
                return date.fromisoformat(data)
            except ValueError:
                pass
    else:
        raise CodecError(f"{where}: cannot decode into {target.__name__}")
    raise CodecError(f"{where} is {data!r}; expected {target.__name__}")
