"""The embedded OpenAlgo-compatible simulator: REST + WebSocket + a seeded market.

One :class:`Simulator` owns a market, a broker account, a REST server and a
WebSocket server, each on its own thread; several can run in one process.  All
market and account state is guarded by one lock, so a price change, the order
matching it triggers and the ticks it publishes happen atomically and in order.
A fill-timer thread fills the MARKET orders the ``delay_fills`` fault holds
when their delay is over.
"""

from __future__ import annotations

import hmac
import logging
import math
import threading
import time
from typing import Iterable

from tmtool.clock import Clock, SystemClock
from tmtool.sim.book import Book, OrderRequest, SimOrder
from tmtool.sim.faults import Faults
from tmtool.sim.market import Market
from tmtool.sim.rest import RateLimits, RestServer
from tmtool.sim.symbols import SimSymbol, builtin_symbols
from tmtool.sim.ws import WsServer

log = logging.getLogger(__name__)

BROKER_PROFILES = ("angel", "zerodha")


class _Secret:
    """Holds the API key; its repr never shows the value (logs, tracebacks, debuggers)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value.encode()

    def matches(self, candidate: object) -> bool:
        return isinstance(candidate, str) and hmac.compare_digest(candidate.encode(), self._value)

    def __repr__(self) -> str:
        return "<secret>"


class Simulator:
    """An OpenAlgo server stand-in on loopback.  See ``tmtool/sim/__init__.py`` for the API."""

    def __init__(
        self,
        api_key: str,
        seed: int = 7,
        host: str = "127.0.0.1",
        rest_port: int = 0,
        ws_port: int = 0,
        tick_interval: float | None = 0.05,
        volatility: float = 0.0005,
        broker_profile: str = "angel",
        symbols: Iterable[SimSymbol] | None = None,
        *,
        clock: Clock | None = None,
        rate_limits: RateLimits | None = RateLimits(),
        ws_auth_grace_seconds: float = 15.0,
        ws_ping_interval: float | None = 20.0,
    ) -> None:
        if not isinstance(api_key, str) or not api_key:
            raise ValueError("api_key must be a non-empty string")
        if broker_profile not in BROKER_PROFILES:
            raise ValueError(f"broker_profile must be one of {', '.join(BROKER_PROFILES)}, got {broker_profile!r}")
        if tick_interval is not None and not (math.isfinite(tick_interval) and tick_interval >= 0):
            raise ValueError(f"tick_interval must be None or a non-negative number of seconds, got {tick_interval!r}")
        if not (math.isfinite(ws_auth_grace_seconds) and ws_auth_grace_seconds > 0):
            raise ValueError(f"ws_auth_grace_seconds must be positive, got {ws_auth_grace_seconds!r}")
        for name, port in (("rest_port", rest_port), ("ws_port", ws_port)):
            if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
                raise ValueError(f"{name} must be a port number 0-65535 (0 = any free port), got {port!r}")
        instruments = builtin_symbols() if symbols is None else list(symbols)
        if not instruments or not all(isinstance(s, SimSymbol) for s in instruments):
            raise ValueError("symbols must be None or a non-empty list of SimSymbol")
        self._api_key = _Secret(api_key)
        self.seed = seed
        self.host = host
        self.broker_profile = broker_profile
        self.tick_interval = tick_interval or None
        self.analyzer_mode = False
        self.semi_auto = False
        self.margin_calculator = True  # False: the margin endpoint answers 501, as for brokers without one
        self.session_expired = False
        self.order_updates_enabled = True
        self.order_events: list[tuple[float, str]] = []
        self._clock: Clock = clock or SystemClock()
        self._state_lock = threading.RLock()
        self._arrivals = threading.local()
        self.faults = Faults(self)
        self._market = Market(instruments, seed, volatility, self._clock)
        self._fill_wakeup = threading.Event()
        self._book = Book(self._market, self._clock, self.faults, seed, self._on_order_event,
                          on_fill_scheduled=self._fill_wakeup.set)
        self._rest = RestServer(self, host, rest_port, rate_limits)
        self._ws = WsServer(self, host, ws_port, ws_auth_grace_seconds, ws_ping_interval)
        self._ticker_stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._fill_timer = threading.Thread(target=self._run_fill_timer, name="sim-fills", daemon=True)
        self._started = False
        self._stopped = False

    def __repr__(self) -> str:  # never shows the key
        state = "running" if self._started and not self._stopped else "stopped" if self._stopped else "new"
        return f"Simulator({state}, profile={self.broker_profile}, seed={self.seed})"

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> "Simulator":
        """Start both servers (returns once both listen) and the market thread."""
        if self._started:
            return self
        if self._stopped:
            raise RuntimeError("a stopped simulator cannot be restarted; create a new one")
        self._ws.start()
        self._rest.start()
        self._fill_timer.start()
        self._started = True
        if self.tick_interval:
            self._ticker = threading.Thread(target=self._run_market, name="sim-market", daemon=True)
            self._ticker.start()
        return self

    def stop(self) -> None:
        """Stop everything, join the threads and free the ports.  Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        self._ticker_stop.set()
        self._fill_wakeup.set()
        if self._ticker is not None:
            self._ticker.join()
        if self._started:
            self._fill_timer.join()
            self._rest.stop()
            self._ws.stop()
        else:
            self._rest._server.server_close()

    def __enter__(self) -> "Simulator":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def rest_url(self) -> str:
        host, port = self._rest.address
        return f"http://{host}:{port}"

    @property
    def ws_url(self) -> str:
        host, port = self._ws.address
        return f"ws://{host}:{port}"

    def _run_market(self) -> None:
        while not self._ticker_stop.wait(self.tick_interval):
            try:
                self._random_walk_round()
            except Exception:
                log.exception("simulator market round failed")

    def _run_fill_timer(self) -> None:
        """Fill delayed MARKET orders as they fall due; sleeps until the next one (or a new one)."""
        while not self._ticker_stop.is_set():
            self._fill_wakeup.clear()
            try:
                with self._state_lock:
                    due = self._book.fill_due_orders()
            except Exception:
                log.exception("simulator delayed fills failed")
                due = None
            self._fill_wakeup.wait(None if due is None else max(0.0, due - self._clock.monotonic()))

    def _random_walk_round(self) -> None:
        with self._state_lock:
            now_ms = int(self._clock.time() * 1000)
            for quote in self._market.step():
                self._book.on_price(quote)
                self._ws.publish_market(quote, now_ms)

    # ---- prices ----------------------------------------------------------------------------

    def set_price(self, exchange: str, symbol: str, price: float, publish: bool = True) -> None:
        """Trade ``symbol`` at ``price``: match working orders and (by default) publish one tick."""
        with self._state_lock:
            quote = self._market.set_price(exchange, symbol, price)
            self._book.on_price(quote)
            if publish:
                self._ws.publish_market(quote, int(self._clock.time() * 1000))

    def price(self, exchange: str, symbol: str) -> float:
        with self._state_lock:
            return self._market.quote(exchange, symbol).ltp

    def burst(self, exchange: str, symbol: str, prices: list[float]) -> None:
        """Publish one tick per price, back to back (benchmarks).  All prices are checked first."""
        self._market.quote(exchange, symbol)  # unknown instrument → KeyError before anything changes
        for price in prices:
            if isinstance(price, bool) or not isinstance(price, (int, float)) or not math.isfinite(price) or price <= 0:
                raise ValueError(f"burst prices must be positive finite numbers, got {price!r}")
        with self._state_lock:
            for price in prices:
                quote = self._market.set_price(exchange, symbol, price)
                self._book.on_price(quote)
                self._ws.publish_market(quote, int(self._clock.time() * 1000))

    # ---- inspection ------------------------------------------------------------------------

    def orders(self) -> list[dict]:
        """Every order placed, in order (see :meth:`tmtool.sim.book.SimOrder.as_dict`)."""
        with self._state_lock:
            return [order.as_dict() for order in self._book.orders.values()]

    def positions(self) -> dict[tuple[str, str, str], int]:
        """Signed net quantity per (symbol, exchange, product); flat positions are left out."""
        with self._state_lock:
            return {key: p.quantity for key, p in self._book.positions.items() if p.quantity}

    def trades(self) -> list[dict]:
        with self._state_lock:
            return [dict(vars(trade)) for trade in self._book.trades]

    def pending_approvals(self) -> list[dict]:
        """Orders queued in semi-auto mode: pending_order_id, endpoint, request (without the key)."""
        with self._state_lock:
            return list(self._rest.api.pending_approvals)

    def fill_order(self, orderid: str, price: float | None = None) -> None:
        """Fill the rest of a working order now (e.g. after a partial-fill fault)."""
        with self._state_lock:
            self._book.fill_order(orderid, price)

    def ws_clients(self) -> int:
        return self._ws.client_count()

    def ws_messages_handled(self) -> int:
        """Text frames the WebSocket server has taken from its clients so far (a test waits on it to
        know a message was handled, not only sent)."""
        return self._ws.messages_handled

    def subscriptions(self) -> set[tuple[str, str, int]]:
        """``(exchange, symbol, mode)`` subscribed by at least one client."""
        return self._ws.subscriptions()

    def inject_raw_frame(self, text: str) -> None:
        """Send ``text`` as a raw text frame to every connected client."""
        if not isinstance(text, str):
            raise TypeError("inject_raw_frame takes a str")
        self._ws.inject_raw_frame(text)

    # ---- internals used by the servers and faults ------------------------------------------

    def _key_matches(self, key: object) -> bool:
        return self._api_key.matches(key)

    def _request_arrived(self, monotonic_ts: float) -> None:
        self._arrivals.ts = monotonic_ts

    def _note_order_event(self, orderid: str) -> None:
        self.order_events.append((getattr(self._arrivals, "ts", None) or time.monotonic(), orderid))

    def _on_order_event(self, order: SimOrder) -> None:
        if not self.order_updates_enabled:
            return
        r = order.request
        self._ws.publish_order_update({
            "mode": order.mode, "orderid": order.orderid, "symbol": r.symbol, "exchange": r.exchange,
            "action": r.action, "quantity": r.quantity, "price": r.price, "trigger_price": r.trigger_price,
            "pricetype": r.pricetype, "product": r.product, "order_status": order.status,
            "filled_quantity": order.filled_quantity, "pending_quantity": order.pending_quantity,
            "average_price": round(order.average_price, 2), "rejection_reason": order.rejection_reason,
        })

    def _drop_ws_connections(self) -> None:
        self._ws.drop_connections()

    def _ws_stall_changed(self) -> None:
        self._ws.apply_stall()

    def _release_held_orders(self, forget_fill_delays: bool = False) -> None:
        with self._state_lock:
            self._book.release_held(forget_fill_delays)

    def _set_book_lags(self, order_book: float, positions: float) -> None:
        with self._state_lock:
            self._book.set_lags(order_book, positions)

    def _close_position_externally(self, symbol: str, exchange: str, product: str) -> None:
        with self._state_lock:
            quantity = self._book.net_quantity(symbol, exchange, product)
            if quantity == 0:
                raise ValueError(f"no open position in {symbol} on {exchange} ({product}) to close")
            self._book.place(OrderRequest(symbol, exchange, "SELL" if quantity > 0 else "BUY", abs(quantity),
                                          "MARKET", product, strategy="EXTERNAL"), "live", apply_faults=False)
