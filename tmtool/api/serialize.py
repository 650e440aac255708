"""Turning the engine's records and views into JSON-ready values, and snapshots to JSON text and back."""

from __future__ import annotations

import dataclasses
import math
from datetime import date, datetime, time
from enum import Enum
from functools import lru_cache
from typing import Any


def to_json(value: Any) -> Any:
    """A JSON-ready copy of ``value``.

    Dataclasses become objects (field by field, slots included), enums their
    value, tuples lists, dates ISO strings; non-finite floats become null so a
    reply is always strict JSON.
    """
    if value is None or isinstance(value, (bool, str)):
        return value.value if isinstance(value, Enum) else value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, int):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _field_json(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _field_json(str(key), item) for key, item in value.items()}
    if isinstance(value, (date, datetime, time)):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


# Rupee amounts are kept to the paisa in replies: sums of prices times quantities carry binary
# float noise (587.9999999999973).  Prices and levels are not rounded (a currency pair's tick is
# 0.0025), only fields that hold money by their name.
_MONEY_WORDS = ("pnl", "profit", "loss", "win", "drawdown", "funds", "cash", "margin", "expectancy", "rupees", "lock")
_NOT_MONEY_WORDS = ("stop", "rate", "factor", "percent", "count")  # stop_loss is a price level; the rest are ratios


@lru_cache(maxsize=256)
def _is_money(name: str) -> bool:
    lowered = name.lower()
    return (
        any(word in lowered for word in _MONEY_WORDS)
        and not any(word in lowered for word in _NOT_MONEY_WORDS)
        and not lowered.endswith(("_at", "_ts"))
    )


def _field_json(name: str, value: Any) -> Any:
    if isinstance(value, float) and math.isfinite(value) and _is_money(name):
        return round(value, 2)
    return to_json(value)


@lru_cache(maxsize=1)
def _snapshot_adapter():
    from pydantic import ConfigDict, TypeAdapter

    from tmtool.engine.snapshot import EngineSnapshot

    # Wrapped in a one-item list: a TypeAdapter takes a config only for a type without its own.
    return TypeAdapter(list[EngineSnapshot], config=ConfigDict(ser_json_inf_nan="constants"))


def snapshot_json(snapshot) -> str:
    """An ``EngineSnapshot`` as JSON text (what the stream sends)."""
    return _snapshot_adapter().dump_json([snapshot]).decode()


def snapshot_from_json(text: str | bytes):
    """The ``EngineSnapshot`` that ``snapshot_json`` wrote, with its dataclasses and enums rebuilt."""
    [snapshot] = _snapshot_adapter().validate_json(text)
    return snapshot
