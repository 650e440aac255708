"""Fault injection: switchable at run time from tests, the CLI or the admin endpoint.

:class:`Faults` is the public face (``sim.faults``); the REST server, the
WebSocket server and the order book consult it through the ``take_*`` methods,
each of which consumes one use of a counted fault, and the state queries
(``ws_stalled``, ``symbol_silent``, ``fill_delay``, ``time_zone``...).  Faults
act on the simulator through :class:`FaultTarget`, so this module imports no
other part of the simulator.  Deadlines run on the simulator clock's
``monotonic()``.  No fault involves randomness.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Iterable, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tmtool.clock import Clock
from tmtool.sim.lag import MAX_LAG_SECONDS

#: The zone the broker writes its naive order-book and trade-book timestamps in, unless faulted.
DEFAULT_TIME_ZONE = "Asia/Kolkata"


class FaultTarget(Protocol):
    """What the faults act on: the simulator's hooks."""

    _clock: Clock

    def price(self, exchange: str, symbol: str) -> float: ...

    def set_price(self, exchange: str, symbol: str, price: float, publish: bool = True) -> None: ...

    def _drop_ws_connections(self) -> None: ...

    def _ws_stall_changed(self) -> None: ...

    def _release_held_orders(self, forget_fill_delays: bool = False) -> None: ...

    def _set_book_lags(self, order_book: float, positions: float) -> None: ...

    def _close_position_externally(self, symbol: str, exchange: str, product: str) -> None: ...


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
    process: bool = False


@dataclass
class _Timeout(_RestRule):
    process: bool = True


@dataclass
class _Drop(_RestRule):
    process: bool = True


@dataclass(frozen=True)
class RestFailure:
    """A matched ``rest_fail`` fault: the status to answer, and whether the request is carried out first."""

    status: int
    process: bool


@dataclass(frozen=True)
class RestTimeout:
    """A matched ``rest_timeout`` fault: whether the request is carried out before the hold."""

    process: bool


@dataclass(frozen=True)
class RestDrop:
    """A matched ``rest_drop`` fault: whether the request is carried out before the connection is closed."""

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


def _lag(seconds: float, what: str) -> float:
    seconds = _seconds(seconds, what)
    if seconds > MAX_LAG_SECONDS:
        raise ValueError(f"{what} must be at most {MAX_LAG_SECONDS:g} seconds, got {seconds!r}")
    return seconds


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

    def __init__(self, simulator: FaultTarget) -> None:
        self._sim = simulator
        self._lock = threading.Lock()
        self._delays: list[_Delay] = []
        self._failures: list[_Failure] = []
        self._timeouts: list[_Timeout] = []
        self._drops: list[_Drop] = []
        self._rejections: list[tuple[int, str]] = []  # [remaining, reason]
        self._partials: list[list] = []  # [[remaining, fraction]]
        self._holding = False
        self._fill_delay = 0.0
        self._order_book_lag = 0.0
        self._position_lag = 0.0
        self._time_zone = ZoneInfo(DEFAULT_TIME_ZONE)
        self._stall_until: float | None = None  # monotonic deadline; math.inf = until cleared
        self._stall_answers_pings = True
        self._refuse_until: float | None = None
        # (exchange, symbol) -> monotonic deadline (math.inf = until resumed); replaced, never
        # mutated, so the market thread reads it without the lock.
        self._silenced: dict[tuple[str, str], float] = {}

    def _now(self) -> float:
        return self._sim._clock.monotonic()

    # ---- WebSocket -------------------------------------------------------------------------

    def drop_ws(self) -> None:
        """Close every WebSocket connection now, abnormally (no close frame: code 1006)."""
        self._sim._drop_ws_connections()

    def stall_ws(self, seconds: float | None, answer_pings: bool = True) -> None:
        """Keep sockets open but send nothing (ticks, acks, updates) for ``seconds``; None = until cleared.

        ``answer_pings=True``: no text frame leaves (not even the pong to an app-level
        ``{"action": "ping"}``), but the WebSocket layer still answers protocol ping
        frames and sends its own keepalive pings: a feed whose broker side went quiet.
        ``answer_pings=False``: the server also stops reading the sockets and stops its
        keepalive, so protocol pings go unanswered and nothing at all is sent: a
        blackholed connection.  Pings queued meanwhile are answered when the stall ends."""
        deadline = math.inf if seconds is None else self._now() + _seconds(seconds, "stall_ws seconds")
        with self._lock:
            self._stall_until = deadline
            self._stall_answers_pings = bool(answer_pings)
        self._sim._ws_stall_changed()

    def refuse_ws(self, seconds: float) -> None:
        """Answer new WebSocket handshakes with HTTP 503 for ``seconds``."""
        deadline = self._now() + _seconds(seconds, "refuse_ws seconds")
        with self._lock:
            self._refuse_until = deadline

    def silence_symbol(self, exchange: str, symbol: str, seconds: float | None = None) -> None:
        """Stop ticks of one instrument for ``seconds`` (None = until resumed or cleared).

        Every other instrument keeps ticking, the sockets stay connected and answer
        as usual, and REST quotes stay live: only that symbol's market-data frames
        are not sent (they are lost, not queued)."""
        self._sim.price(exchange, symbol)  # unknown instrument → KeyError before anything changes
        deadline = math.inf if seconds is None else self._now() + _seconds(seconds, "silence_symbol seconds")
        with self._lock:
            self._silenced = {**self._silenced, (exchange, symbol): deadline}

    def resume_symbol(self, exchange: str, symbol: str) -> None:
        """End a :meth:`silence_symbol` fault for one instrument (a no-op if it is not silenced)."""
        with self._lock:
            self._silenced = {key: until for key, until in self._silenced.items() if key != (exchange, symbol)}

    def ws_stalled(self) -> bool:
        stall_until = self._stall_until
        return stall_until is not None and self._now() < stall_until

    def ws_deaf(self) -> bool:
        """A stall that also leaves protocol pings unanswered is in force."""
        return not self._stall_answers_pings and self.ws_stalled()

    def ws_stall_remaining(self) -> float:
        """Seconds until the current stall ends (math.inf: until cleared; 0: none)."""
        stall_until = self._stall_until
        return 0.0 if stall_until is None else max(0.0, stall_until - self._now())

    def ws_refusing(self) -> bool:
        refuse_until = self._refuse_until
        return refuse_until is not None and self._now() < refuse_until

    def symbol_silent(self, exchange: str, symbol: str) -> bool:
        silenced = self._silenced
        if not silenced:
            return False
        until = silenced.get((exchange, symbol))
        return until is not None and self._now() < until

    # ---- REST ------------------------------------------------------------------------------

    def rest_delay(self, seconds: float, endpoints: Iterable[str] | str | None = None, count: int | None = None) -> None:
        """Delay replies by ``seconds`` (before the request is carried out); None endpoints = all."""
        rule = _Delay(_endpoints(endpoints), _count(count, allow_none=True), seconds=_seconds(seconds, "rest_delay seconds"))
        with self._lock:
            self._delays.append(rule)

    def rest_fail(self, status: int, count: int = 1, endpoints: Iterable[str] | str | None = None,
                  process: bool = False) -> None:
        """Answer the next ``count`` calls with ``status`` and an error envelope.

        ``process=False``: nothing is carried out.  ``process=True``: the request is
        carried out first and its reply replaced (a 500 after the order WAS placed)."""
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error code 400-599, got {status!r}")
        rule = _Failure(_endpoints(endpoints), _count(count, allow_none=False), status=status, process=bool(process))
        with self._lock:
            self._failures.append(rule)

    def rest_timeout(self, count: int = 1, endpoints: Iterable[str] | str | None = None, process: bool = True) -> None:
        """Hold the reply until the client gives up, then close without answering.

        ``process=True``: the request is carried out first (an order IS placed)."""
        rule = _Timeout(_endpoints(endpoints), _count(count, allow_none=False), process=bool(process))
        with self._lock:
            self._timeouts.append(rule)

    def rest_drop(self, count: int = 1, endpoints: Iterable[str] | str | None = None, process: bool = True) -> None:
        """Close the connection without answering the next ``count`` calls.

        ``process=True``: the request is carried out first (an order IS placed); the
        client sees the server disconnect without a response."""
        rule = _Drop(_endpoints(endpoints), _count(count, allow_none=False), process=bool(process))
        with self._lock:
            self._drops.append(rule)

    def take_rest_delay(self, endpoint: str) -> float:
        with self._lock:
            rule = _take(self._delays, endpoint)
        return rule.seconds if rule else 0.0

    def take_rest_failure(self, endpoint: str) -> RestFailure | None:
        with self._lock:
            rule = _take(self._failures, endpoint)
        return RestFailure(rule.status, rule.process) if rule else None

    def take_rest_drop(self, endpoint: str) -> RestDrop | None:
        with self._lock:
            rule = _take(self._drops, endpoint)
        return RestDrop(rule.process) if rule else None

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

    def delay_fills(self, seconds: float) -> None:
        """MARKET orders (and triggered SL-M) stay open ``seconds`` after they become marketable,
        then fill at the LTP of that moment (or of the first tick after it); 0 = off.

        Turning it off fills the orders still waiting at the LTP."""
        seconds = _seconds(seconds, "delay_fills seconds")
        with self._lock:
            self._fill_delay = seconds
        if not seconds:
            self._sim._release_held_orders(forget_fill_delays=True)

    @property
    def fill_delay(self) -> float:
        return self._fill_delay

    # ---- the broker's books ----------------------------------------------------------------

    def lag_order_book(self, seconds: float) -> None:
        """``orderbook``, ``orderstatus`` and ``tradebook`` show the broker's orders and fills as they
        were ``seconds`` ago (0 = off): a new order answers 404 in ``orderstatus`` and is missing
        from ``orderbook`` until then, and each status change appears that much later.

        Order placement, modification and cancellation act on the live orders; the WebSocket
        order updates are not delayed.  At most 300 seconds."""
        seconds = _lag(seconds, "lag_order_book seconds")
        with self._lock:
            self._order_book_lag = seconds
            positions = self._position_lag
        self._sim._set_book_lags(seconds, positions)

    def lag_positions(self, seconds: float) -> None:
        """``positionbook`` and ``openposition`` (and the position ``placesmartorder`` and
        ``closeposition`` act on) are the net positions of ``seconds`` ago; 0 = off.  At most 300 seconds."""
        seconds = _lag(seconds, "lag_positions seconds")
        with self._lock:
            self._position_lag = seconds
            orders = self._order_book_lag
        self._sim._set_book_lags(orders, seconds)

    def server_time_zone(self, zone: str = DEFAULT_TIME_ZONE) -> None:
        """Write the naive timestamps of ``orderbook``, ``tradebook`` and ``orderstatus`` in ``zone``
        (an IANA name: ``"UTC"``, ``"Asia/Kolkata"``); OpenAlgo's brokers write IST, the default."""
        if not isinstance(zone, str) or not zone:
            raise ValueError(f"zone must be an IANA time zone name, got {zone!r}")
        try:
            time_zone = ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {zone!r}") from None
        with self._lock:
            self._time_zone = time_zone

    @property
    def time_zone(self) -> ZoneInfo:
        return self._time_zone

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
        """Remove every fault; held or delayed MARKET orders are released (filled at the LTP),
        the books catch up with the present and timestamps are written in IST again."""
        with self._lock:
            self._delays.clear()
            self._failures.clear()
            self._timeouts.clear()
            self._drops.clear()
            self._rejections.clear()
            self._partials.clear()
            was_stalled, self._stall_until = self._stall_until is not None, None
            self._stall_answers_pings = True
            self._refuse_until = None
            self._silenced = {}
            was_holding, self._holding = self._holding, False
            was_delaying, self._fill_delay = bool(self._fill_delay), 0.0
            was_lagging = bool(self._order_book_lag or self._position_lag)
            self._order_book_lag = self._position_lag = 0.0
            self._time_zone = ZoneInfo(DEFAULT_TIME_ZONE)
        if was_stalled:
            self._sim._ws_stall_changed()
        if was_lagging:
            self._sim._set_book_lags(0.0, 0.0)
        if was_holding or was_delaying:
            self._sim._release_held_orders(forget_fill_delays=was_delaying)
