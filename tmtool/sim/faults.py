"""Fault injection: switchable at run time from tests, the CLI or the admin endpoint.

:class:`Faults` is the public face (``sim.faults``); the REST server, the
WebSocket server and the order book consult it through the ``take_*`` methods,
each of which consumes one use of a counted fault.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from tmtool.sim.simulator import Simulator


@dataclass
class _RestRule:
    endpoints: frozenset[str] | None
    remaining: int | None  # None: until cleared

    def matches(self, endpoint: str) -> bool:
        return self.endpoints is None or endpoint in self.endpoints


@dataclass
class _Delay(_RestRule):
    seconds: float = 0.0


@dataclass
class _Failure(_RestRule):
    status: int = 500


@dataclass
class _Timeout(_RestRule):
    process: bool = True


@dataclass(frozen=True)
class RestTimeout:
    """A matched ``rest_timeout`` fault: whether the request is carried out before the hold."""

    process: bool


def _endpoints(endpoints: Iterable[str] | str | None) -> frozenset[str] | None:
    if endpoints is None:
        return None
    if isinstance(endpoints, str):
        endpoints = [endpoints]
    names = frozenset(name.strip("/") for name in endpoints)
    if not names:
        raise ValueError("endpoints must name at least one endpoint, or be None for all")
    return names


def _count(count: int | None, *, allow_none: bool) -> int | None:
    if count is None and allow_none:
        return None
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive integer{' or None' if allow_none else ''}, got {count!r}")
    return count


def _seconds(seconds: float, what: str) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{what} must be a non-negative finite number of seconds, got {seconds!r}")
    return float(seconds)


def _take(rules: list, endpoint: str):
    """The first rule matching ``endpoint``, consuming one use of it."""
    for rule in rules:
        if rule.matches(endpoint):
            if rule.remaining is not None:
                rule.remaining -= 1
                if rule.remaining <= 0:
                    rules.remove(rule)
            return rule
    return None


class Faults:
    """Every fault the simulator can inject.  All methods are thread-safe and return None."""

    def __init__(self, simulator: Simulator) -> None:
        self._sim = simulator
        self._lock = threading.Lock()
        self._delays: list[_Delay] = []
        self._failures: list[_Failure] = []
        self._timeouts: list[_Timeout] = []
        self._rejections: list[tuple[int, str]] = []  # [remaining, reason]
        self._partials: list[list] = []  # [[remaining, fraction]]
        self._holding = False
        self._stall_until: float | None = None  # monotonic deadline; math.inf = until cleared
        self._refuse_until: float | None = None

    # ---- WebSocket -------------------------------------------------------------------------

    def drop_ws(self) -> None:
        """Close every WebSocket connection now, abnormally (no close frame: code 1006)."""
        self._sim._drop_ws_connections()

    def stall_ws(self, seconds: float | None) -> None:
        """Keep sockets open but send nothing (ticks, acks, updates) for ``seconds``; None = until cleared."""
        deadline = math.inf if seconds is None else time.monotonic() + _seconds(seconds, "stall_ws seconds")
        with self._lock:
            self._stall_until = deadline

    def refuse_ws(self, seconds: float) -> None:
        """Answer new WebSocket handshakes with HTTP 503 for ``seconds``."""
        deadline = time.monotonic() + _seconds(seconds, "refuse_ws seconds")
        with self._lock:
            self._refuse_until = deadline

    def ws_stalled(self) -> bool:
        stall_until = self._stall_until
        return stall_until is not None and time.monotonic() < stall_until

    def ws_refusing(self) -> bool:
        refuse_until = self._refuse_until
        return refuse_until is not None and time.monotonic() < refuse_until

    # ---- REST ------------------------------------------------------------------------------

    def rest_delay(self, seconds: float, endpoints: Iterable[str] | str | None = None, count: int | None = None) -> None:
        """Delay replies by ``seconds`` (before the request is carried out); None endpoints = all."""
        rule = _Delay(_endpoints(endpoints), _count(count, allow_none=True), seconds=_seconds(seconds, "rest_delay seconds"))
        with self._lock:
            self._delays.append(rule)

    def rest_fail(self, status: int, count: int = 1, endpoints: Iterable[str] | str | None = None) -> None:
        """Answer the next ``count`` calls with ``status`` and an error envelope; nothing is carried out."""
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error code 400-599, got {status!r}")
        rule = _Failure(_endpoints(endpoints), _count(count, allow_none=False), status=status)
        with self._lock:
            self._failures.append(rule)

    def rest_timeout(self, count: int = 1, endpoints: Iterable[str] | str | None = None, process: bool = True) -> None:
        """Hold the reply until the client gives up, then close without answering.

        ``process=True``: the request is carried out first (an order IS placed)."""
        rule = _Timeout(_endpoints(endpoints), _count(count, allow_none=False), process=bool(process))
        with self._lock:
            self._timeouts.append(rule)

    def take_rest_delay(self, endpoint: str) -> float:
        with self._lock:
            rule = _take(self._delays, endpoint)
        return rule.seconds if rule else 0.0

    def take_rest_failure(self, endpoint: str) -> int | None:
        with self._lock:
            rule = _take(self._failures, endpoint)
        return rule.status if rule else None

    def take_rest_timeout(self, endpoint: str) -> RestTimeout | None:
        with self._lock:
            rule = _take(self._timeouts, endpoint)
        return RestTimeout(rule.process) if rule else None

    # ---- orders ----------------------------------------------------------------------------

    def reject_orders(self, count: int = 1, reason: str = "RMS: margin exceeds") -> None:
        """The next ``count`` orders are accepted with an order id, then rejected with ``reason``."""
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError("reason must be a non-empty string")
        with self._lock:
            self._rejections.append([_count(count, allow_none=False), reason])

    def partial_fill(self, fraction: float, count: int = 1) -> None:
        """The next ``count`` orders fill only ``fraction`` of their quantity; the rest stays open."""
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
            raise ValueError(f"fraction must be between 0 and 1 (exclusive), got {fraction!r}")
        with self._lock:
            self._partials.append([_count(count, allow_none=False), float(fraction)])

    def hold_fills(self, hold: bool) -> None:
        """While on, MARKET orders stay open and unfilled; turning it off fills them at the LTP."""
        with self._lock:
            self._holding = bool(hold)
        if not hold:
            self._sim._release_held_orders()

    @property
    def holding_fills(self) -> bool:
        return self._holding

    def take_rejection(self) -> str | None:
        with self._lock:
            return self._take_counted(self._rejections)

    def take_partial_fill(self) -> float | None:
        with self._lock:
            return self._take_counted(self._partials)

    @staticmethod
    def _take_counted(entries: list[list]):
        if not entries:
            return None
        entry = entries[0]
        entry[0] -= 1
        if entry[0] <= 0:
            entries.pop(0)
        return entry[1]

    # ---- market ----------------------------------------------------------------------------

    def gap_price(self, exchange: str, symbol: str, price: float) -> None:
        """Jump the price to ``price`` in one tick (published, orders matched)."""
        self._sim.set_price(exchange, symbol, price, publish=True)

    def close_position_externally(self, symbol: str, exchange: str, product: str) -> None:
        """Flatten a position behind the client's back, as if closed in the broker's own app."""
        self._sim._close_position_externally(symbol, exchange, product)

    # ---- all -------------------------------------------------------------------------------

    def clear(self) -> None:
        """Remove every fault; held MARKET orders are released (filled at the LTP)."""
        with self._lock:
            self._delays.clear()
            self._failures.clear()
            self._timeouts.clear()
            self._rejections.clear()
            self._partials.clear()
            self._stall_until = None
            self._refuse_until = None
            was_holding, self._holding = self._holding, False
        if was_holding:
            self._sim._release_held_orders()
