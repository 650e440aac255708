"""Tick sanity filter: refuse prices no decision should be made on.

``TickFilter.accept(key, price)`` keeps, per instrument key (any hashable, e.g.
``(exchange, symbol)``), the last accepted price.  A tick is refused when its
price is not a number, not finite, or not positive, or when it jumps more than
``band_percent`` away from the last accepted price.  A jump is accepted once the
following ``confirm_ticks`` ticks confirm the new level (each within the band
of the jumped-to price): the confirming tick that completes the count is
accepted and becomes the new reference.  A tick back inside the band of the
old price is accepted as usual and forgets the pending jump.

Refused ticks are counted per reason and never change the accepted price.
The first tick of an instrument is accepted as is unless ``seed`` set a
reference first (e.g. from a quote or the entry price).  Deterministic; no clock.
"""

from __future__ import annotations

import math
from typing import Hashable

NOT_A_NUMBER = "NOT_A_NUMBER"
NOT_FINITE = "NOT_FINITE"
NOT_POSITIVE = "NOT_POSITIVE"
OUT_OF_BAND = "OUT_OF_BAND"  # a jump beyond the band, first seen
UNCONFIRMED = "UNCONFIRMED"  # a tick confirming a jump, before the count is complete

REASONS = (NOT_A_NUMBER, NOT_FINITE, NOT_POSITIVE, OUT_OF_BAND, UNCONFIRMED)


class _Pending:
    __slots__ = ("price", "confirmations")

    def __init__(self, price: float) -> None:
        self.price = price
        self.confirmations = 0


class TickFilter:
    """Per-instrument price sanity.  Not thread-safe: owned by one thread (the engine's)."""

    def __init__(self, band_percent: float = 10.0, confirm_ticks: int = 2) -> None:
        if isinstance(band_percent, bool) or not isinstance(band_percent, (int, float)) or not (
            math.isfinite(band_percent) and band_percent > 0
        ):
            raise ValueError(f"band_percent {band_percent!r} must be a finite number greater than 0")
        if isinstance(confirm_ticks, bool) or not isinstance(confirm_ticks, int) or confirm_ticks < 0:
            raise ValueError(f"confirm_ticks {confirm_ticks!r} must be a whole number, 0 or more")
        self.band = band_percent / 100.0
        self.confirm_ticks = confirm_ticks
        self._last: dict[Hashable, float] = {}
        self._pending: dict[Hashable, _Pending] = {}
        self._refused = dict.fromkeys(REASONS, 0)
        self.last_reason: str | None = None  # why the latest refused tick was refused

    # ----------------------------------------------------------------- queries

    @property
    def refused(self) -> dict[str, int]:
        """Refused ticks so far, per reason (a copy)."""
        return dict(self._refused)

    @property
    def refused_total(self) -> int:
        return sum(self._refused.values())

    def last_price(self, key: Hashable) -> float | None:
        """The last accepted price of ``key``, or None."""
        return self._last.get(key)

    # ----------------------------------------------------------------- changes

    def seed(self, key: Hashable, price: float) -> None:
        """Set the reference price of ``key`` (ignored unless a valid price)."""
        if self._reason_invalid(price) is None:
            self._last[key] = float(price)
            self._pending.pop(key, None)

    def forget(self, key: Hashable) -> None:
        """Drop everything known about ``key`` (e.g. after unsubscribing)."""
        self._last.pop(key, None)
        self._pending.pop(key, None)

    def accept(self, key: Hashable, price: object) -> bool:
        """True when the tick may be evaluated; False (counted, nothing changed) when refused."""
        if type(price) is float and 0.0 < price < math.inf:  # the common case, checked cheaply
            value = price
        else:
            reason = self._reason_invalid(price)
            if reason is not None:
                return self._refuse(reason)
            value = float(price)  # type: ignore[arg-type]
        last = self._last.get(key)
        if last is None or abs(value - last) <= last * self.band:
            self._last[key] = value
            if self._pending:
                self._pending.pop(key, None)
            return True
        return self._jump(key, value)

    def _jump(self, key: Hashable, value: float) -> bool:
        if self.confirm_ticks == 0:
            self._last[key] = value
            return True
        pending = self._pending.get(key)
        if pending is None or abs(value - pending.price) > pending.price * self.band:
            self._pending[key] = _Pending(value)
            return self._refuse(OUT_OF_BAND)
        pending.confirmations += 1
        if pending.confirmations < self.confirm_ticks:
            return self._refuse(UNCONFIRMED)
        del self._pending[key]
        self._last[key] = value
        return True

    def _refuse(self, reason: str) -> bool:
        self._refused[reason] += 1
        self.last_reason = reason
        return False

    @staticmethod
    def _reason_invalid(price: object) -> str | None:
        if isinstance(price, bool) or not isinstance(price, (int, float)):
            return NOT_A_NUMBER
        if not math.isfinite(price):
            return NOT_FINITE
        if price <= 0:
            return NOT_POSITIVE
        return None
