"""The small interfaces the engine declares and the outer layers implement.

Dependencies point inward: ``tmtool.storage`` implements ``Store``,
``tmtool.openalgo.client`` implements ``Broker``, ``tmtool.openalgo.feed``
implements ``Feed``.  The values they carry (orders, positions, fills, quotes)
are the domain's, in ``tmtool.domain.broker``.  The engine's decision code depends on none of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from concurrent.futures import Future
from typing import TYPE_CHECKING, Callable, Mapping, Protocol

from tmtool.domain.broker import (
    BrokerError,
    FeedStatus,
    Fill,
    Funds,
    OrderAck,
    OrderInfo,
    OrderUpdate,
    Position,
    Quote,
    SymbolInfo,
)
from tmtool.domain.commands import Command, Result
from tmtool.domain.models import (
    Alert,
    FeedState,
    Instrument,
    OrderRecord,
    PortfolioState,
    Strategy,
    Tick,
    Trade,
    TradeEvent,
)

if TYPE_CHECKING:
    from tmtool.engine.snapshot import EngineSnapshot

# --------------------------------------------------------------------------- store


@dataclass(frozen=True, slots=True)
class StoreStatus:
    state: str  # "OK" or "MEMORY_ONLY"
    pending: int = 0
    last_error: str = ""
    committed: int = 0  # changes committed since start


@dataclass(frozen=True, slots=True)
class LoadedState:
    """What was last committed: everything the engine needs to resume."""

    open_trades: tuple[Trade, ...]
    strategies: tuple[Strategy, ...]
    portfolios: tuple[PortfolioState, ...]  # today's and earlier; the engine picks today's
    open_orders: tuple[OrderRecord, ...]  # orders not final (INTENT, SENT, OPEN, PARTIAL, UNKNOWN, ...)
    next_trade_id: int
    next_alert_id: int
    recent_alerts: tuple[Alert, ...] = ()
    settings: Mapping[str, str] = field(default_factory=dict)  # engine-wide settings kept with save_setting


class StoreUnavailable(RuntimeError):
    """A synchronous write could not be made durable in time."""


class Store(Protocol):
    """Persistence.  Every method but ``load``/``flush``/``close`` only enqueues.

    A store takes its own copy of a mutable record at the call (the engine goes on
    changing its trades);
    the writer coalesces repeated changes of the same row within a batch and
    commits in small batches on its own thread.
    """

    def load(self) -> LoadedState: ...

    def save_trade(self, trade: Trade, event: TradeEvent | None = None) -> None:
        """Queue the trade's row and, when given, its audit event for this change right behind it."""
        ...

    def save_ratchet(self, trade: Trade, ts: float, kind: str, field: str, old: object, new: object, price: float) -> None:
        """A trailing ratchet: the trade's row, and right behind it the audit event of ``field`` moving
        from ``old`` to ``new`` (``models.level_event``).  It may take the place of the trade's
        previous ratchet while that is still queued (one row, one event from the first old level to
        the last new one)."""
        ...

    def save_strategy(self, strategy: Strategy) -> None: ...

    def delete_strategy(self, name: str) -> None: ...

    def save_portfolio(self, state: PortfolioState) -> None: ...

    def record_event(self, event: TradeEvent) -> None: ...

    def save_alert(self, alert: Alert) -> None: ...

    def save_setting(self, key: str, value: str | None) -> None:
        """Keep an engine-wide setting (e.g. the panic halt) across restarts; None removes it."""
        ...

    def save_order(self, order: OrderRecord, durable: bool = False, timeout: float = 0.5) -> bool:
        """Enqueue an order ledger row; with ``durable`` wait until it is durable.

        A durable save is an order's intent, the first row of a new order key;
        it must survive a crash together with the newest version of its trade
        handed in before it (changes to other rows need not: a crash may lose
        them).  Returns True when the row is known durable (always False when
        not ``durable``).  Never raises: when it cannot be made durable it
        returns False after ``timeout`` and the row stays queued for replay.
        """
        ...

    def flush(self, timeout: float = 5.0) -> bool: ...

    def status(self) -> StoreStatus: ...

    def close(self) -> None: ...

    # Read queries: run on the caller's thread with their own connection (WAL readers).

    def closed_trades(
        self, start: float | None = None, end: float | None = None, strategy: str | None = None
    ) -> list[Trade]:
        """Trades in a final status whose ``closed_at`` lies in [start, end), oldest first."""
        ...

    def trade_events(self, trade_id: int) -> list[TradeEvent]: ...

    def alerts(
        self,
        since: float | None = None,
        category: str | None = None,
        priority: str | None = None,
        include_acknowledged: bool = True,
        limit: int = 500,
    ) -> list[Alert]:
        """Newest first."""
        ...


# --------------------------------------------------------------------------- broker


class Broker(Protocol):
    """OpenAlgo REST.  Raises BrokerError.  Order placement is never retried inside."""

    def ping(self) -> str: ...

    def place_order(
        self,
        *,
        strategy: str,
        symbol: str,
        exchange: str,
        action: str,
        quantity: int,
        product: str,
        price_type: str = "MARKET",
        price: float = 0.0,
        trigger_price: float = 0.0,
    ) -> OrderAck: ...

    def modify_order(
        self,
        *,
        order_id: str,
        strategy: str,
        symbol: str,
        exchange: str,
        action: str,
        product: str,
        price_type: str,
        price: float,
        quantity: int,
        trigger_price: float = 0.0,
        disclosed_quantity: int = 0,
    ) -> OrderAck:
        """Change a working order (every field, as it should stand); never retried inside."""
        ...

    def cancel_order(self, order_id: str, strategy: str) -> OrderAck:
        """Ask for a working order to be cancelled; its status confirms it.  Never retried inside."""
        ...

    def order_status(self, order_id: str, strategy: str) -> OrderInfo: ...

    def order_book(self) -> list[OrderInfo]: ...

    def trade_book(self) -> list[Fill]: ...

    def position_book(self) -> list[Position]: ...

    def open_position(self, *, strategy: str, symbol: str, exchange: str, product: str) -> int: ...

    def quotes(self, symbol: str, exchange: str) -> Quote: ...

    def multi_quotes(self, instruments: list[tuple[str, str]]) -> dict[tuple[str, str], Quote]:
        """Keyed by (exchange, symbol); unknown symbols are left out."""
        ...

    def funds(self) -> Funds: ...

    def margin_required(
        self, *, symbol: str, exchange: str, action: str, quantity: int, product: str,
        price_type: str = "MARKET", price: float = 0.0,
    ) -> float:
        """Rupees of margin one order would block (OpenAlgo's ``margin`` calculator); BrokerError
        "unsupported" or "not_found" when the server or its broker has no calculator."""
        ...

    def symbol_info(self, symbol: str, exchange: str) -> SymbolInfo: ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------- feed


@dataclass(slots=True)
class FeedCallbacks:
    """Called on the feed's threads; each must only enqueue and return."""

    on_tick: Callable[[Tick], None]
    on_order_update: Callable[[OrderUpdate], None] | None = None
    on_status: Callable[[FeedStatus], None] | None = None
    extra: dict = field(default_factory=dict)


class Feed(Protocol):
    def start(self, callbacks: FeedCallbacks) -> None: ...

    def subscribe(self, exchange: str, symbol: str) -> None:
        """Reference-counted: the first call subscribes on the wire."""
        ...

    def unsubscribe(self, exchange: str, symbol: str) -> None:
        """Reference-counted: the last matching call unsubscribes on the wire."""
        ...

    def set_near_level(self, exchange: str, symbol: str, near: bool) -> None:
        """Mark (or unmark) a symbol whose price is near a stop or target: it is polled sooner when its ticks stop."""
        ...

    def status(self) -> FeedStatus: ...

    def stop(self) -> None: ...


# --------------------------------------------------------------------------- tick recording


class TickRecorder(Protocol):
    """Keeps every tick the engine evaluates (``tmtool.replay.recorder`` implements it).

    On the engine thread, for every routed tick: ``record`` for an accepted one,
    ``refuse`` for one the tick filter refused.  Each must be an O(1) append
    that never blocks and never raises: the writing happens on the recorder's
    own thread.  ``record`` runs for every tick, so an implementation may make
    it the bound ``append`` of its queue itself (an attribute, not a method).
    """

    def record(self, tick: Tick) -> None: ...

    def refuse(self, tick: Tick) -> None: ...


# --------------------------------------------------------------------------- alerts out


class AlertSink(Protocol):
    """Receives every new or folded alert; must only enqueue (called on the engine thread)."""

    def publish(self, alert: Alert) -> None: ...


# --------------------------------------------------------------------------- front ends


class EngineHandle(Protocol):
    """What the TUI, the control API and the CLI may use of a running engine.

    Implemented by ``tmtool.engine.engine.Engine`` and by ``tmtool.runtime.Runtime``
    (which delegates to its engine); the front ends depend on this protocol only.
    """

    def submit(self, command: Command) -> "Future[Result]":
        """Enqueue a command; the Future resolves to ``Accepted`` or ``Denied`` on the engine thread."""
        ...

    def adopt_positions(self) -> "Future[Result]":
        """Manage every positionbook position no trade covers yet (strategy ``manual``)."""
        ...

    def snapshot(self) -> "EngineSnapshot": ...

    def closed_trades(
        self, start: float | None = None, end: float | None = None, strategy: str | None = None
    ) -> list[Trade]: ...

    def trade_events(self, trade_id: int) -> list[TradeEvent]: ...

    def alert_history(
        self, since: float | None = None, category: str | None = None, priority: str | None = None, limit: int = 500
    ) -> list[Alert]: ...

    def instrument(self, exchange: str, symbol: str) -> "Instrument": ...


class EngineLifecycle(Protocol):
    """Starting and stopping an engine (or the whole stack around one): what a front end that runs it needs."""

    def start(self) -> None:
        """Load, reconcile and resume; returns once the engine is taking ticks and commands."""
        ...

    def stop(self, timeout: float = 10.0) -> str:
        """Stop taking ticks, flush every change; returns a one-line shutdown summary."""
        ...
