"""Parsing of what the user types into form fields.

Each parser returns the value or raises ``FieldError`` whose message says what is
wrong and why, so a form can show it next to the field and send nothing.
"""

from __future__ import annotations

import math
from datetime import date, datetime, time

from tmtool.domain.models import (
    Amount,
    AmountMode,
    Distance,
    DistanceMode,
    PartialTarget,
)


class FieldError(ValueError):
    """A form field holds something that cannot be used."""


def _number(text: str, what: str) -> float:
    cleaned = text.strip().replace(",", "").replace("_", "")
    try:
        value = float(cleaned)
    except ValueError:
        raise FieldError(f"{what}: '{text.strip()}' is not a number") from None
    if not math.isfinite(value):
        raise FieldError(f"{what}: must be a finite number")
    return value


def optional_price(text: str, what: str = "price") -> float | None:
    """A positive price, or None when the field is blank."""
    if not text.strip():
        return None
    value = _number(text, what)
    if value <= 0:
        raise FieldError(f"{what}: must be greater than zero")
    return value


def optional_quantity(text: str, what: str = "quantity") -> int | None:
    """A whole positive quantity, or None when the field is blank."""
    if not text.strip():
        return None
    value = _number(text, what)
    if value != int(value):
        raise FieldError(f"{what}: must be a whole number")
    if value <= 0:
        raise FieldError(f"{what}: must be greater than zero")
    return int(value)


def optional_positive(text: str, what: str) -> float | None:
    """A positive number (rupees, counts...), or None when blank."""
    if not text.strip():
        return None
    value = _number(text, what)
    if value <= 0:
        raise FieldError(f"{what}: must be greater than zero")
    return value


def optional_distance(text: str, what: str) -> Distance | None:
    """``20`` is 20 points, ``1.5%`` is 1.5 percent of the reference price; blank is off."""
    stripped = text.strip()
    if not stripped:
        return None
    mode = DistanceMode.POINTS
    if stripped.endswith("%"):
        mode = DistanceMode.PERCENT
        stripped = stripped[:-1]
    value = _number(stripped, what)
    if value <= 0:
        raise FieldError(f"{what}: must be greater than zero")
    if mode is DistanceMode.PERCENT and value >= 100:
        raise FieldError(f"{what}: a percentage must be below 100")
    return Distance(value, mode)


def optional_amount(text: str, what: str) -> Amount | None:
    """``5000`` is 5,000 rupees, ``2%`` is 2 percent of allocated funds; blank is off."""
    stripped = text.strip()
    if not stripped:
        return None
    mode = AmountMode.AMOUNT
    if stripped.endswith("%"):
        mode = AmountMode.PERCENT
        stripped = stripped[:-1]
    value = _number(stripped, what)
    if value <= 0:
        raise FieldError(f"{what}: must be greater than zero")
    if mode is AmountMode.PERCENT and value > 100:
        raise FieldError(f"{what}: a percentage must be at most 100")
    return Amount(value, mode)


def optional_time(text: str, what: str = "time") -> time | None:
    """``HH:MM`` (24-hour, Asia/Kolkata), or None when blank."""
    stripped = text.strip()
    if not stripped:
        return None
    try:
        return datetime.strptime(stripped, "%H:%M").time()
    except ValueError:
        raise FieldError(f"{what}: '{stripped}' is not a time like 15:10") from None


def optional_date(text: str, what: str = "date") -> date | None:
    stripped = text.strip()
    if not stripped:
        return None
    try:
        return date.fromisoformat(stripped)
    except ValueError:
        raise FieldError(f"{what}: '{stripped}' is not a date like 2026-01-31") from None


def partial_targets(text: str, what: str = "partial targets") -> tuple[PartialTarget, ...]:
    """``20:0.5, 40:0.25`` -> scale out half at 20 points, a quarter at 40 (``1%:0.5`` in percent)."""
    stripped = text.strip()
    if not stripped:
        return ()
    levels: list[PartialTarget] = []
    for part in stripped.split(","):
        distance_text, separator, fraction_text = part.partition(":")
        if not separator:
            raise FieldError(f"{what}: '{part.strip()}' should look like distance:fraction, e.g. 20:0.5")
        distance = optional_distance(distance_text, what)
        if distance is None:
            raise FieldError(f"{what}: '{part.strip()}' has no distance")
        fraction = _number(fraction_text, what)
        if not 0 < fraction < 1:
            raise FieldError(f"{what}: fraction {fraction_text.strip()} must be between 0 and 1")
        levels.append(PartialTarget(distance, fraction))
    if sum(level.fraction for level in levels) >= 1:
        raise FieldError(f"{what}: the fractions add up to 1 or more (the target closes the rest)")
    return tuple(levels)


def distance_text(distance: Distance | None) -> str:
    """The inverse of ``optional_distance``."""
    if distance is None:
        return ""
    suffix = "%" if distance.mode is DistanceMode.PERCENT else ""
    return f"{distance.value:g}{suffix}"


def amount_text(amount: Amount | None) -> str:
    """The inverse of ``optional_amount``."""
    if amount is None:
        return ""
    suffix = "%" if amount.mode is AmountMode.PERCENT else ""
    return f"{amount.value:g}{suffix}"


def partial_targets_text(levels: tuple[PartialTarget, ...]) -> str:
    return ", ".join(f"{distance_text(level.distance)}:{level.fraction:g}" for level in levels)
