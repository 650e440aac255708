"""The live monitor: one engine thread owns every trade and portfolio.

Everything else — the feed's threads, the executor's workers, the TUI, the
control API — only puts messages on the engine's inbox and reads the immutable
snapshots it publishes.  The engine thread takes the messages one by one, in
order: ticks (each evaluated with the pure rules, never coalesced), commands,
order results, order updates, feed status and timers.

Exits follow one protocol (see ``executor`` for why never ``placesmartorder``):

1. the decision moves the trade to EXITING;
2. the quantity is the trade's own open quantity, capped by what the broker's
   net position on (symbol, exchange, product) still holds in the trade's
   direction after exits already in flight there — from the engine's position
   cache (positionbook polls, order updates, our own fills), with an
   ``openposition`` read only when the cache says the position is too small;
3. each order (split at the freeze quantity) gets a ledger row made durable on a
   worker before it is sent;
4. its fate comes from order updates or ``orderstatus`` polls; a rejection is
   retried with backoff and then the trade is EXIT_FAILED; a lost reply marks
   the row UNKNOWN and the order is looked up — a new order goes out only when
   the first is provably absent and the position is still there.

A strategy can send exits as marketable LIMIT orders (``ExitOrderSettings``):
an unfilled one is re-priced in place with ``modifyorder`` (the same order, so
never two live exit orders for one trade's quantity) every
``reprice_after_seconds``, at most ``max_reprices`` times, and then modified to
MARKET.  An exit asked for while the entry has not filled cancels the entry
order first; only once the broker confirms that order final (cancelled, or
filled after all) does whatever filled go out as one exit.

Lockout and ``adopt_fills`` attribute a fill that tmtool did not send to a
strategy by the strategy tag of its order, joining the tradebook to the order
book by order id.  Only OpenAlgo's analyzer (sandbox) order book reports that
tag; a live server's does not, so against a live server a halted strategy's
new positions opened outside tmtool cannot be told apart from anyone else's
and are not closed (and no fill is adopted).  The engine says so once, with a
WARNING alert, when a strategy with a daily loss limit (or ``adopt_fills``)
runs against a server whose order book carries no tags.

Timers for broker I/O (polls, retries, probes, reconciliation) run on real
monotonic time; trading-calendar events (square-off, day roll, trading hours)
and every decision use the injected clock.

Config strategies and stored ones are merged at start: the config file is the
user's source of truth, so a strategy named there replaces the stored one of
the same name; strategies only in the database (created from the UI) stay.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import queue
import threading
import uuid
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, fields, replace
from datetime import date, time as dtime
from typing import Any, Callable, Sequence

from tmtool.domain import portfolio as portfolio_rules
from tmtool.domain import rules
from tmtool.engine.alertbook import AlertBook
from tmtool.clock import Clock
from tmtool.domain.calendar import exchange_open, to_ist, trading_day
from tmtool.domain.commands import (
    UNSET,
    AcknowledgeAlerts,
    Accepted,
    CreateTrade,
    DeleteStrategy,
    Denied,
    ExitAll,
    ExitTrade,
    ExitTrades,
    ModifyTrade,
    PauseTrade,
    Reconcile,
    ResumeTrade,
    SaveStrategy,
)
from tmtool.engine.executor import Executor, JobResult, JobRunner, OrderRequest, OrderSendResult
from tmtool.domain.models import (
    EXCHANGES,
    MANUAL_STRATEGY,
    AccountLimits,
    Alert,
    AlertCategory,
    AlertPriority,
    ExitReason,
    FeedState,
    Instrument,
    OrderPurpose,
    OrderRecord,
    OrderState,
    PortfolioState,
    PriceType,
    Product,
    Side,
    Strategy,
    Tick,
    Trade,
    TradeEvent,
    TradeRisk,
    TradeStatus,
    round_stop,
    round_target,
    round_to_tick,
)
from tmtool.engine.ports import (
    AlertSink,
    Broker,
    Feed,
    FeedCallbacks,
    Store,
)
from tmtool.domain.broker import (
    BrokerError,
    FeedStatus,
    Fill,
    OrderInfo,
    OrderUpdate,
    Position,
    SymbolInfo,
)
from tmtool.domain.reconcile import (
    PositionKey,
    exit_capacity,
    match_order,
    order_progress,
    position_key,
    reconcile_positions,
    split_quantity,
)
from tmtool.engine.settings import EngineSettings
from tmtool.domain.sizing import entry_denial, funds_limit, size_position
from tmtool.engine.snapshot import EngineSnapshot, StrategyView, SystemView, TradeView
from tmtool.domain.ticks import TickFilter
from tmtool.domain.validation import (
    validate_create_trade,
    validate_levels,
    validate_modify_trade,
    validate_strategy,
)

log = logging.getLogger(__name__)

_INF = math.inf
_STOP = object()
_WAKE = 0.1  # the loop wakes at least this often (real seconds) for timers and the calendar
_BATCH = 512  # inbox items drained per wake before timers and snapshots get a turn
_EXPOSED = frozenset({TradeStatus.ACTIVE, TradeStatus.EXITING, TradeStatus.EXIT_FAILED})
_ESCALATING = frozenset({ExitReason.MANUAL, ExitReason.PANIC, ExitReason.STRATEGY_DELETED})
_CLOSED_KEEP = 500  # today's closed trades kept for the snapshot


def _thread_pool_executor(broker: Broker, store: Store, post: Callable[[object], None], settings: EngineSettings) -> "JobRunner":
    return Executor(broker, store, post, settings.executor_workers, settings.max_orders_per_second)


# --------------------------------------------------------------------------- engine-thread records


class _Book:
    """Everything about one (exchange, symbol): its trades, last price and quiet band."""

    __slots__ = ("key", "trades", "price", "ts", "lo", "hi", "exposure", "net_qty", "degraded")

    def __init__(self, key: tuple[str, str]) -> None:
        self.key = key
        self.trades: list[Trade] = []
        self.price = 0.0
        self.ts = 0.0
        self.lo = -_INF  # a price strictly inside (lo, hi) changes no trade
        self.hi = _INF
        self.exposure: tuple[tuple[_StrategyRuntime, int], ...] = ()  # signed open quantity per strategy
        self.net_qty = 0
        self.degraded = False


class _StrategyRuntime:
    """A strategy, its portfolio state for today and its running unrealised P&L."""

    __slots__ = ("strategy", "state", "unrealised", "gate_lo", "gate_hi", "trades", "pnl_series", "deleting", "extremes_unsaved")

    def __init__(self, strategy: Strategy, state: PortfolioState) -> None:
        self.strategy = strategy
        self.state = state
        self.unrealised = 0.0
        self.gate_lo = -_INF  # portfolio rules run only when unrealised P&L leaves (gate_lo, gate_hi)
        self.gate_hi = _INF
        self.trades: dict[int, Trade] = {}  # open trades
        self.pnl_series: deque[float] = deque(maxlen=240)
        self.deleting = False
        self.extremes_unsaved = False  # peak/trough moved outside an evaluation and are not persisted yet


class _KeyState:
    """What the engine knows of the broker's net position on one (symbol, exchange, product)."""

    __slots__ = ("net", "exit_buy", "exit_sell", "live_orders", "waiting", "generation")

    def __init__(self) -> None:
        self.net: int | None = None  # signed; None = not known
        self.generation = 0  # bumped by every order sent and fill seen: a read older than a change is stale
        self.exit_buy = 0  # unfilled quantity of exit orders in flight, per direction
        self.exit_sell = 0
        self.live_orders = 0  # our orders (entries and exits) not final on this key
        self.waiting: set[int] = set()  # trades whose exit waits for this key to settle

    @property
    def exits_in_flight(self) -> int:
        return self.exit_buy + self.exit_sell


class _LiveOrder:
    """The engine's working copy of a ledger row that is not final."""

    __slots__ = (
        "record", "strategy", "pos_key", "remaining", "lookups", "reprices", "reprice_failures", "modifying",
        "polling", "cancel_wanted", "cancelling", "cancel_attempts",
    )

    def __init__(self, record: OrderRecord, strategy: str, pos_key: PositionKey) -> None:
        self.record = record
        self.strategy = strategy
        self.pos_key = pos_key
        self.remaining = record.quantity - record.filled_quantity
        self.lookups = 0
        self.reprices = 0  # modifications of a LIMIT exit that the broker took
        self.reprice_failures = 0  # modifications refused or lost in a row
        self.modifying = False  # a modifyorder is in flight
        self.polling = False
        self.cancel_wanted = False  # an entry order to be cancelled (as soon as it has an order id)
        self.cancelling = False  # a cancelorder is in flight
        self.cancel_attempts = 0


@dataclass(frozen=True, slots=True)
class _Command:
    command: object
    future: Future


@dataclass(frozen=True, slots=True)
class _Call:
    """Run ``fn`` on the engine thread (internal requests from other threads)."""

    fn: Callable[..., Any]
    args: tuple = ()


@dataclass(slots=True)
class _EntryPlan:
    """What a pending entry was asked for, applied when it fills."""

    command: CreateTrade
    strategy: str


# --------------------------------------------------------------------------- the engine


class Engine:
    """The live monitor (implements ``ports.EngineHandle``)."""

    def __init__(
        self,
        *,
        store: Store,
        broker: Broker,
        feed: Feed,
        clock: Clock,
        settings: EngineSettings,
        alert_sinks: Sequence[AlertSink] = (),
        account: AccountLimits = AccountLimits(),
        strategies: Sequence[Strategy] = (),
        executor_factory: Callable[[Broker, Store, Callable[[object], None], EngineSettings], JobRunner] | None = None,
    ) -> None:
        self._store = store
        self._broker = broker
        self._feed = feed
        self._clock = clock
        self._settings = settings
        self._sinks = tuple(alert_sinks)
        self._account = account if account != AccountLimits() else settings.account
        self._account_gated = self._account.daily_loss_limit is not None or self._account.daily_profit_target is not None
        self._config_strategies = tuple(strategies)
        self._executor_factory = executor_factory or _thread_pool_executor

        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._running = False
        self._stopping = False
        self._accepting_ticks = False
        self._executor: JobRunner | None = None
        self._listeners: list[Callable[[EngineSnapshot], None]] = []
        self._instruments: dict[tuple[str, str], Instrument] = {}

        # engine-thread state
        self._trades: dict[int, Trade] = {}  # open trades
        self._closed_today: deque[Trade] = deque(maxlen=_CLOSED_KEEP)
        self._books: dict[tuple[str, str], _Book] = {}
        self._strategies: dict[str, _StrategyRuntime] = {}
        self._keys: dict[PositionKey, _KeyState] = {}
        self._live: dict[str, _LiveOrder] = {}  # ledger key -> live order
        self._by_order_id: dict[str, str] = {}  # broker order id -> ledger key
        self._trade_orders: dict[int, set[str]] = {}  # trade id -> ledger keys of its live orders
        self._known_order_ids: set[str] = set()
        self._early_updates: dict[str, OrderUpdate] = {}
        self._foreign_filled: dict[str, int] = {}  # order id -> filled quantity counted into the position cache
        self._exit_attempts: dict[int, int] = {}
        self._exit_pending: dict[int, str] = {}  # trade id -> why its exit is waiting (confirming, parked, ...)
        self._exit_on_fill: dict[int, ExitReason] = {}
        self._entry_plans: dict[int, _EntryPlan] = {}
        self._trail_alerted: set[int] = set()
        self._dirty_trades: dict[int, Trade] = {}
        self._next_trade_id = 1
        self._alerts = AlertBook()
        self._tick_filter = TickFilter(settings.tick_band_percent, settings.tick_confirm)
        self._accept_tick = self._tick_filter.accept
        self._account_unrealised = 0.0
        self._account_halted_on: date | None = None
        self._day: date | None = None
        self._squared_off: dict[str, date] = {}
        self._calendar_due = 0.0
        self._timers: list[tuple[float, int, Callable[..., Any], tuple]] = []
        self._timer_seq = itertools.count()

        self._ticks_processed = 0
        self._ticks_unrouted = 0
        self._feed_status = FeedStatus(FeedState.RECONNECTING)  # what a feed reports until it is connected
        self._stale: set[tuple[str, str]] = set()
        self._broker_state = "UNKNOWN"
        self._broker_message = ""
        self._server_mode = ""
        self._auth_probe_step = 0
        self._db_state = "OK"
        self._db_pending = 0
        self._fills_seen: dict[str, int] | None = None  # tradebook order id -> quantity seen (None: no baseline)
        self._tradebook_busy = False
        self._order_tags: bool | None = None  # the server's order book reports strategy tags (None: not known yet)
        self._untagged_warned = False

        self._version = 0
        self._dirty = True
        self._last_publish = 0.0
        self._snapshot = self._empty_snapshot()

    # ================================================================== public API

    @property
    def settings(self) -> EngineSettings:
        return self._settings

    @property
    def running(self) -> bool:
        return self._running

    def start(self, threaded: bool = True) -> None:
        """Load, reconcile with the positionbook, resume unfinished exits, start monitoring.

        ``threaded=False`` starts no engine thread: the caller drives the engine with
        ``pump()`` (the deterministic simulation tests do, with a manual clock).
        """
        if self._running:
            raise RuntimeError("the engine is already running")
        now = self._clock.time()
        self._day = trading_day(now)
        loaded = self._store.load()
        self._alerts = AlertBook(next_id=loaded.next_alert_id)
        self._alerts.restore(loaded.recent_alerts)
        self._next_trade_id = max(1, loaded.next_trade_id)
        self._load_strategies(loaded.strategies, loaded.portfolios, now)
        for trade in loaded.open_trades:
            self._add_trade(trade, rebuild=False)
            self._known_ids_of(trade)
        self._rebuild_all_books()
        for trade in self._recently_closed(now):
            self._known_ids_of(trade)
        self._executor = self._executor_factory(self._broker, self._store, self._inbox.put, self._settings)
        restored = [self._restore_order(record) for record in loaded.open_orders]
        self._running = True
        self._accepting_ticks = True
        self._feed.start(FeedCallbacks(on_tick=self._on_feed_tick, on_order_update=self._inbox.put, on_status=self._inbox.put))
        for book in self._books.values():
            self._feed.subscribe(*book.key)
        self._initial_reconcile()
        self._resume_orders([live for live in restored if live is not None])
        for trade in list(self._trades.values()):
            if trade.status is TradeStatus.EXITING and not self._trade_orders.get(trade.id):
                self._drive_exit(trade)
            elif trade.status is TradeStatus.PENDING_ENTRY and not self._trade_orders.get(trade.id):
                self._cancel_entry(trade, "the entry order never left before the last shutdown")
        self._schedule(self._settings.reconcile_interval, self._periodic_reconcile)
        self._schedule(self._settings.store_check_interval, self._check_store)
        self._schedule(self._settings.ltp_persist_interval, self._persist_prices)
        self._schedule(self._settings.pnl_sample_interval, self._sample_pnl)
        self._schedule(self._settings.adopt_fills_interval, self._poll_tradebook)
        self._alert(AlertCategory.SYSTEM, AlertPriority.INFO, f"tmtool started: {self._summary()}", key="lifecycle")
        self._publish(force=True)
        if threaded:
            self._thread = threading.Thread(target=self._run, name="tmtool-engine", daemon=True)
            self._thread.start()

    def pump(self, limit: int | None = None) -> int:
        """Handle what is queued (at most ``limit`` messages), then run due timers, the
        calendar and the snapshot; returns how many messages were handled.

        Only for an engine started with ``threaded=False``: the caller's thread is the
        engine thread.
        """
        if self._thread is not None:
            raise RuntimeError("pump() drives an engine started with threaded=False")
        handled = 0
        while limit is None or handled < limit:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                break
            try:
                self._dispatch(item)
            except Exception:  # one bad message must not stop the monitor
                log.exception("engine failed handling %r", type(item).__name__)
            handled += 1
        self._housekeeping()
        return handled

    def next_timer_due(self) -> float | None:
        """When (on the clock's monotonic scale) the earliest timer falls due; None if none."""
        return self._timers[0][0] if self._timers else None

    def stop(self, timeout: float = 10.0) -> str:
        """Stop monitoring: no more ticks, finish bookkeeping, flush the store; returns a summary line."""
        if not self._running:
            return self._summary()
        if self._thread is None:  # driven by pump(): shut down on the caller's thread
            self._accepting_ticks = False
            self._stopping = True
            done: Future = Future()
            self._shutdown(done)
            self._running = False
            self._refuse_leftovers()
            self._feed.stop()
            if self._executor is not None:
                self._executor.shutdown(wait=False)
            self._store.flush(timeout=max(0.1, timeout / 2))
            return done.result()
        self._accepting_ticks = False
        self._stopping = True  # new commands are refused from here on
        done: Future = Future()
        self._inbox.put(_Call(self._shutdown, (done,)))
        try:
            summary = done.result(timeout=timeout)
        except Exception:
            summary = self._summary()
        self._inbox.put(_STOP)
        self._thread.join(timeout=max(0.1, timeout / 2))
        self._running = False
        self._refuse_leftovers()
        try:
            self._feed.stop()
        except Exception:  # the feed's own threads: nothing more to do at shutdown
            log.exception("feed stop failed")
        if self._executor is not None:
            self._executor.shutdown(wait=False)
        self._store.flush(timeout=max(0.1, timeout / 2))
        return summary

    def submit(self, command: object) -> Future:
        """Enqueue a command; the Future resolves to ``Accepted`` or ``Denied`` on the engine thread."""
        future: Future = Future()
        if not self._running or self._stopping:
            future.set_result(Denied("NOT_RUNNING", "the engine is not running"))
            return future
        self._inbox.put(_Command(command, future))
        return future

    def adopt_positions(self) -> Future:
        """Manage every positionbook position not yet covered by a trade (strategy ``manual``)."""
        future: Future = Future()
        if not self._running or self._stopping:
            future.set_result(Denied("NOT_RUNNING", "the engine is not running"))
            return future
        self._inbox.put(_Call(self._start_adopt_positions, (future,)))
        return future

    def run_in_engine_thread(self, fn: Callable[[], Any]) -> Future:
        """Run ``fn()`` on the engine thread between two messages; the Future gets its result.

        For benchmarks and replay that drive ``process_tick`` directly: on the engine
        thread nothing else touches the state meanwhile.
        """
        future: Future = Future()

        def call() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the caller through the Future
                future.set_exception(exc)

        if not self._running or self._stopping:
            future.set_exception(RuntimeError("the engine is not running"))
        else:
            self._inbox.put(_Call(call))
        return future

    def report_external_alert(
        self, text: str, priority: AlertPriority, key: str = "", category: AlertCategory = AlertCategory.SYSTEM
    ) -> None:
        """Raise an alert on behalf of another part (e.g. a failing alert channel); safe from any thread.

        Only enqueues: the engine thread raises, folds (by ``key``), persists and
        publishes it like any of its own alerts.  Bad arguments raise
        ``TypeError``/``ValueError`` and nothing is queued.  After ``stop()`` the
        alert can no longer be raised and is only logged.
        """
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"alert text must be a non-empty string, got {text!r}")
        if not isinstance(priority, AlertPriority):
            raise TypeError(f"priority must be an AlertPriority, got {priority!r}")
        if not isinstance(category, AlertCategory):
            raise TypeError(f"category must be an AlertCategory, got {category!r}")
        if not isinstance(key, str):
            raise TypeError(f"key must be a string, got {key!r}")
        if self._stopping:
            log.warning("alert after the engine stopped (not raised): %s", text)
            return
        self._inbox.put(_Call(self._alert, (category, priority, text.strip(), key)))

    def snapshot(self) -> EngineSnapshot:
        return self._snapshot

    def add_snapshot_listener(self, callback: Callable[[EngineSnapshot], None]) -> None:
        """Called on the engine thread right after each publish; must only enqueue and return."""
        self._listeners = [*self._listeners, callback]

    def remove_snapshot_listener(self, callback: Callable[[EngineSnapshot], None]) -> None:
        self._listeners = [c for c in self._listeners if c is not callback]

    def closed_trades(self, start: float | None = None, end: float | None = None, strategy: str | None = None) -> list[Trade]:
        return self._store.closed_trades(start, end, strategy)

    def trade_events(self, trade_id: int) -> list[TradeEvent]:
        return self._store.trade_events(trade_id)

    def alert_history(
        self, since: float | None = None, category: str | None = None, priority: str | None = None, limit: int = 500
    ) -> list[Alert]:
        return self._store.alerts(since=since, category=category, priority=priority, limit=limit)

    def instrument(self, exchange: str, symbol: str) -> Instrument:
        """Tick, lot and freeze size: settings override > broker ``symbol`` > defaults (cached)."""
        key = (exchange, symbol)
        cached = self._instruments.get(key)
        if cached is not None:
            return cached
        try:
            info = self._broker.symbol_info(symbol, exchange)
        except BrokerError as exc:
            if exc.kind in ("validation", "not_found"):
                raise ValueError(f"unknown instrument {exchange}:{symbol}: {exc.message}") from None
            info = None
        return self._remember_instrument(exchange, symbol, info)

    def watches(self, exchange: str, symbol: str) -> bool:
        """True while an open trade on (exchange, symbol) is monitored (safe from any thread)."""
        return (exchange, symbol) in self._books

    def last_price(self, exchange: str, symbol: str) -> float | None:
        """The last price the engine accepted for a watched symbol (safe from any thread), else None."""
        book = self._books.get((exchange, symbol))
        return book.price if book is not None and book.price > 0 else None

    def process_tick(self, tick: Tick) -> None:
        """Evaluate one tick (the inbox's code path; callable directly on the engine's thread or in benchmarks).

        The hot path: a price strictly inside the symbol's quiet band changes no
        trade, so it costs the tick filter, a few comparisons and one running
        P&L update per strategy holding the symbol.
        """
        book = self._books.get((tick.exchange, tick.symbol))
        if book is None:
            self._ticks_unrouted += 1
            return
        price = tick.price
        if not self._accept_tick(book.key, price):
            return
        self._ticks_processed += 1
        old = book.price
        book.price = price
        book.ts = tick.ts
        self._dirty = True
        if not book.lo < price < book.hi:
            self._evaluate_book(book, price, tick.ts)
        exposure = book.exposure
        if not exposure:
            return
        if not old:
            self._recompute_book_strategies(book)
            old = price
        delta = price - old
        self._account_unrealised += book.net_qty * delta
        for runtime, quantity in exposure:
            unrealised = runtime.unrealised + quantity * delta
            runtime.unrealised = unrealised
            if not runtime.gate_lo < unrealised < runtime.gate_hi:
                self._evaluate_strategy(runtime, tick.ts)
        if self._account_gated:
            self._check_account(tick.ts)

    # ================================================================== the loop

    def _on_feed_tick(self, tick: Tick) -> None:
        if self._accepting_ticks:
            self._inbox.put(tick)

    def _run(self) -> None:
        inbox = self._inbox
        while True:
            timeout = _WAKE
            if self._timers:
                timeout = min(timeout, max(0.0, self._timers[0][0] - self._clock.monotonic()))
            if self._dirty:
                timeout = min(timeout, max(0.0, self._last_publish + 1.0 / self._settings.snapshot_hz - self._clock.monotonic()))
            try:
                item = inbox.get(timeout=timeout)
            except queue.Empty:
                item = None
            handled = 0
            while item is not None:
                if item is _STOP:
                    return
                try:
                    self._dispatch(item)
                except Exception:  # one bad message must not stop the monitor
                    log.exception("engine failed handling %r", type(item).__name__)
                handled += 1
                if handled >= _BATCH:
                    break
                try:
                    item = inbox.get_nowait()
                except queue.Empty:
                    item = None
            self._housekeeping()

    def _housekeeping(self) -> None:
        try:
            self._flush_trades()
            self._run_timers()
            self._check_calendar()
            self._publish()
        except Exception:
            log.exception("engine housekeeping failed")

    def _dispatch(self, item: object) -> None:
        kind = type(item)
        if kind is Tick:
            if self._accepting_ticks:
                self.process_tick(item)  # type: ignore[arg-type]
        elif kind is JobResult:
            self._on_job(item)  # type: ignore[arg-type]
        elif kind is _Command:
            self._on_command(item)  # type: ignore[arg-type]
        elif kind is OrderUpdate:
            self._on_order_update(item)  # type: ignore[arg-type]
        elif kind is FeedStatus:
            self._on_feed_status(item)  # type: ignore[arg-type]
        elif kind is _Call:
            item.fn(*item.args)  # type: ignore[union-attr]
        else:
            log.warning("engine ignored an unknown message %r", kind.__name__)

    def _schedule(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        heapq.heappush(self._timers, (self._clock.monotonic() + delay, next(self._timer_seq), fn, args))

    def _run_timers(self) -> None:
        now = self._clock.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, fn, args = heapq.heappop(self._timers)
            try:
                fn(*args)
            except Exception:
                log.exception("engine timer %s failed", getattr(fn, "__name__", fn))

    def _shutdown(self, done: Future) -> None:
        self._flush_trades()
        now = self._clock.time()
        for trade in self._trades.values():
            self._sync_price(trade)
            trade.updated_at = now
            self._save_trade(trade)
        summary = self._summary()
        self._alert(AlertCategory.SYSTEM, AlertPriority.INFO, f"tmtool stopping: {summary}", key="lifecycle")
        self._publish(force=True, running=False)
        done.set_result(summary)

    def _refuse_leftovers(self) -> None:
        """Answer what is still queued after the loop ended, so no caller waits forever."""
        refused = Denied("NOT_RUNNING", "the engine stopped before handling this")
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return
            future = None
            if type(item) is _Command:
                future = item.future
            elif type(item) is JobResult and item.kind in ("prepare_entry", "adopt_positions", "reconcile"):
                context = item.context
                future = context[1] if item.kind == "prepare_entry" else context if item.kind == "adopt_positions" else context[0]
            if future is not None and not future.done():
                future.set_result(refused)

    def _summary(self) -> str:
        trades = list(self._trades.values())
        strategies = {t.strategy for t in trades}
        exiting = sum(1 for t in trades if t.status is TradeStatus.EXITING)
        failed = sum(1 for t in trades if t.status is TradeStatus.EXIT_FAILED)
        text = f"monitoring {len(trades)} open trade(s) in {len(strategies)} strategy(ies)"
        if exiting:
            text += f", {exiting} exiting"
        if failed:
            text += f", {failed} EXIT_FAILED"
        if self._live:
            text += f", {len(self._live)} order(s) awaiting confirmation"
        return text

    # ================================================================== loading

    def _load_strategies(self, stored: Sequence[Strategy], portfolios: Sequence[PortfolioState], now: float) -> None:
        merged: dict[str, Strategy] = {s.name: s for s in stored}
        for strategy in self._config_strategies:
            merged[strategy.name] = strategy
            self._store.save_strategy(strategy)
        if MANUAL_STRATEGY not in merged:
            merged[MANUAL_STRATEGY] = Strategy(name=MANUAL_STRATEGY)
            self._store.save_strategy(merged[MANUAL_STRATEGY])
        today = trading_day(now)
        states = {p.strategy: p for p in portfolios if p.trading_day == today}
        for name, strategy in merged.items():
            state = states.get(name) or portfolio_rules.new_day_state(name, now)
            runtime = _StrategyRuntime(strategy, state)
            self._strategies[name] = runtime
            self._update_gates(runtime)

    def _recently_closed(self, now: float) -> list[Trade]:
        try:
            return self._store.closed_trades(start=now - 2 * 86400.0)
        except Exception:  # the history is only used to recognise our own old orders
            log.exception("could not read recently closed trades")
            return []

    def _known_ids_of(self, trade: Trade) -> None:
        if trade.entry_order_id:
            self._known_order_ids.add(trade.entry_order_id)
        self._known_order_ids.update(trade.exit_order_ids)

    def _restore_order(self, record: OrderRecord) -> _LiveOrder | None:
        trade = self._trades.get(record.trade_id)
        if trade is None:
            log.warning("ledger row %s names trade %s which is not open; left as is", record.key, record.trade_id)
            return None
        if record.purpose is OrderPurpose.EXIT and trade.status is TradeStatus.ACTIVE and record.reason is not ExitReason.PARTIAL_TARGET:
            trade.status = TradeStatus.EXITING
            trade.exit_reason = record.reason
        live = self._track_order(record, trade)
        if record.order_id:
            self._known_order_ids.add(record.order_id)
        return live

    def _resume_orders(self, restored: list[_LiveOrder]) -> None:
        for live in restored:
            record = live.record
            if record.order_id:
                self._poll_order(live.record.key, 0.0)
                self._order_working(live)
            elif record.state is OrderState.AWAITING_APPROVAL:
                self._schedule(self._settings.order_status_poll, self._look_for_approved, record.key)
            else:
                self._set_order(live, state=OrderState.UNKNOWN, message="outcome unknown after restart: looking it up")
                self._lookup_order(record.key)

    def _initial_reconcile(self) -> None:
        try:
            positions = self._broker.position_book()
        except BrokerError as exc:
            if exc.kind == "auth":
                self._on_auth_error(exc.message)
            else:
                self._alert(
                    AlertCategory.SYSTEM,
                    AlertPriority.WARNING,
                    f"could not read the positionbook at start ({exc.kind}): {exc.message}",
                    key="reconcile-error",
                )
            return
        self._broker_state, self._broker_message = "OK", ""
        self._apply_positions(positions, startup=True)

    # ================================================================== trades and books

    def _add_trade(self, trade: Trade, rebuild: bool = True) -> None:
        """Watch ``trade``; ``rebuild=False`` leaves its book for one ``_rebuild_all_books`` after a bulk load."""
        self._trades[trade.id] = trade
        runtime = self._runtime(trade.strategy)
        runtime.trades[trade.id] = trade
        book = self._books.get(trade.instrument_key)
        if book is None:
            book = self._books[trade.instrument_key] = _Book(trade.instrument_key)
            if trade.last_price > 0:
                self._tick_filter.seed(book.key, trade.last_price)
                book.price = trade.last_price
            if self._running:
                self._feed.subscribe(*book.key)
        book.trades.append(trade)
        self._keys.setdefault(position_key(trade), _KeyState())
        if rebuild:
            self._rebuild_book(book)

    def _remove_trade(self, trade: Trade) -> None:
        self._trades.pop(trade.id, None)
        runtime = self._strategies.get(trade.strategy)
        if runtime is not None:
            runtime.trades.pop(trade.id, None)
        book = self._books.get(trade.instrument_key)
        if book is not None:
            book.trades = [t for t in book.trades if t.id != trade.id]
            if book.trades:
                self._rebuild_book(book)
            else:
                del self._books[book.key]
                self._tick_filter.forget(book.key)
                try:
                    self._feed.unsubscribe(*book.key)
                except ValueError:
                    log.warning("feed had no subscription for %s:%s", *book.key)
                self._recompute_book_strategies(book)
        self._exit_attempts.pop(trade.id, None)
        self._exit_pending.pop(trade.id, None)
        self._exit_on_fill.pop(trade.id, None)
        self._entry_plans.pop(trade.id, None)
        self._trail_alerted.discard(trade.id)
        for state in self._keys.values():
            state.waiting.discard(trade.id)
        self._closed_today.append(trade)
        if runtime is not None and runtime.deleting and not runtime.trades:
            self._finish_strategy_delete(runtime)

    def _runtime(self, name: str) -> _StrategyRuntime:
        runtime = self._strategies.get(name)
        if runtime is None:
            strategy = Strategy(name=name)
            runtime = self._strategies[name] = _StrategyRuntime(strategy, portfolio_rules.new_day_state(name, self._clock.time()))
            self._store.save_strategy(strategy)
            self._update_gates(runtime)
        return runtime

    def _rebuild_book(self, book: _Book, recompute_strategies: bool = True) -> None:
        """Recompute a symbol's exposure per strategy and its quiet band after any trade change."""
        per_strategy: dict[str, int] = {}
        for trade in book.trades:
            if trade.status in _EXPOSED and trade.quantity > 0:
                per_strategy[trade.strategy] = per_strategy.get(trade.strategy, 0) + trade.quantity * trade.side.sign
        book.exposure = tuple((self._runtime(name), qty) for name, qty in per_strategy.items())
        book.net_qty = sum(per_strategy.values())
        self._refresh_band(book)
        if recompute_strategies:
            self._recompute_book_strategies(book)
        self._dirty = True

    def _rebuild_all_books(self) -> None:
        """Every book, then every strategy's unrealised P&L once: linear in the open trades, where
        rebuilding after each loaded trade was quadratic (7 s for 10,000 trades at start-up,
        ``python -m benchmarks.bench_startup``)."""
        for book in self._books.values():
            self._rebuild_book(book, recompute_strategies=False)
        for runtime in self._strategies.values():
            self._recompute_unrealised(runtime)

    def _refresh_band(self, book: _Book) -> None:
        lo, hi = -_INF, _INF
        for trade in book.trades:
            if trade.status is not TradeStatus.ACTIVE or trade.paused or trade.quantity <= 0:
                continue
            entry = trade.entry_price
            high = trade.high_watermark or entry
            low = trade.low_watermark or entry
            lo = max(lo, low)
            hi = min(hi, high)
            stop = trade.effective_stop
            partials = [p.price for p in trade.partial_levels if not p.done]
            if trade.side is Side.LONG:
                if stop is not None:
                    lo = max(lo, stop)
                if trade.target is not None:
                    hi = min(hi, trade.target)
                if partials:
                    hi = min(hi, min(partials))
            else:
                if stop is not None:
                    hi = min(hi, stop)
                if trade.target is not None:
                    lo = max(lo, trade.target)
                if partials:
                    lo = max(lo, max(partials))
        book.lo, book.hi = lo, hi

    def _recompute_book_strategies(self, book: _Book) -> None:
        names = {t.strategy for t in book.trades} | {r.strategy.name for r, _ in book.exposure}
        for name in names:
            runtime = self._strategies.get(name)
            if runtime is not None:
                self._recompute_unrealised(runtime)

    def _recompute_unrealised(self, runtime: _StrategyRuntime) -> None:
        total = 0.0
        for trade in runtime.trades.values():
            if trade.status in _EXPOSED and trade.quantity > 0:
                total += trade.unrealised_pnl(self._price_of(trade))
        runtime.unrealised = total
        self._account_unrealised = sum(r.unrealised for r in self._strategies.values())

    def _price_of(self, trade: Trade) -> float:
        book = self._books.get(trade.instrument_key)
        if book is not None and book.price > 0:
            return book.price
        return trade.last_price or trade.entry_price

    def _sync_price(self, trade: Trade) -> None:
        book = self._books.get(trade.instrument_key)
        if book is not None and book.price > 0:
            trade.last_price = book.price

    def _save_trade(self, trade: Trade) -> None:
        """Hand the store a copy of the trade now (status changes, fills, anything an order depends on)."""
        self._dirty_trades.pop(trade.id, None)
        self._store.save_trade(_copy_trade(trade))
        self._dirty = True

    def _save_trade_soon(self, trade: Trade) -> None:
        """Save at the end of the current inbox batch: repeated ratchets of one trade within a
        batch become one row version (each ratchet is still recorded as an event)."""
        self._dirty_trades[trade.id] = trade
        self._dirty = True

    def _flush_trades(self) -> None:
        if self._dirty_trades:
            trades, self._dirty_trades = self._dirty_trades, {}
            for trade in trades.values():
                self._store.save_trade(_copy_trade(trade))

    def _event(self, trade: Trade, kind: str, field: str = "", old: object = "", new: object = "", reason: str = "", price: float | None = None) -> None:
        self._store.record_event(
            TradeEvent(
                trade_id=trade.id,
                ts=self._clock.time(),
                kind=kind,
                field=field,
                old="" if old is None else str(old),
                new="" if new is None else str(new),
                reason=reason,
                price=price,
                strategy=trade.strategy,
            )
        )

    def _set_status(self, trade: Trade, status: TradeStatus, reason: str = "") -> None:
        if trade.status is status:
            return
        old = trade.status
        trade.status = status
        trade.updated_at = self._clock.time()
        self._event(trade, "STATUS", "status", old.value, status.value, reason)

    # ================================================================== ticks

    def _evaluate_book(self, book: _Book, price: float, ts: float) -> None:
        changed = False
        for trade in tuple(book.trades):
            if trade.status is not TradeStatus.ACTIVE or trade.paused:
                continue
            evaluation = rules.evaluate_tick(trade, price, ts)
            if evaluation is None:
                continue
            changed = True
            trade.last_price = price
            if not book.degraded:
                trade.high_watermark = evaluation.high_watermark
                trade.low_watermark = evaluation.low_watermark
                for change in evaluation.changes:
                    self._apply_level_change(trade, change, price)
            if evaluation.exit is not None:
                self._on_exit_signal(trade, evaluation.exit)
        if changed:
            self._refresh_band(book)

    def _apply_level_change(self, trade: Trade, change: rules.LevelChange, price: float) -> None:
        setattr(trade, change.field, change.new)
        if change.kind == "BREAKEVEN":
            trade.breakeven_done = True
        trade.updated_at = self._clock.time()
        self._event(trade, change.kind, change.field, change.old, change.new, price=price)
        self._save_trade_soon(trade)
        mode = self._settings.trail_alerts
        if change.kind == "BREAKEVEN" or mode == "every" or (mode == "first" and trade.id not in self._trail_alerted):
            self._trail_alerted.add(trade.id)
            what = "stop moved to breakeven" if change.kind == "BREAKEVEN" else "trailing stop raised" if trade.side is Side.LONG else "trailing stop lowered"
            self._alert(
                AlertCategory.TRADE,
                AlertPriority.INFO,
                f"#{trade.id} {trade.symbol}: {what} to {change.new:.2f} (price {price:.2f})",
                key=f"trail-{trade.id}",
                trade=trade,
            )

    def _on_exit_signal(self, trade: Trade, signal: rules.ExitSignal) -> None:
        if signal.reason is ExitReason.PARTIAL_TARGET:
            levels = list(trade.partial_levels)
            for index in signal.partial_indexes:
                levels[index] = replace(levels[index], done=True)
            trade.partial_levels = tuple(levels)
            self._event(trade, "PARTIAL", "partial_levels", "", ",".join(map(str, signal.partial_indexes)), signal.reason.value, signal.price)
            self._save_trade(trade)
            self._send_partial_exit(trade, signal.quantity, signal.trigger_price)
            return
        self._begin_exit(trade, signal.reason, trigger_price=signal.trigger_price, price=signal.price)

    # ================================================================== exits

    def _begin_exit(self, trade: Trade, reason: ExitReason, trigger_price: float | None = None, price: float | None = None) -> str:
        """Decide to exit a whole trade; returns what happened (for command replies).

        A trade already EXITING ignores further decisions, except that a manual or
        panic exit re-drives an exit that is waiting with no order live (never a
        second order while one may still be live).  EXIT_FAILED trades retry only
        on a manual or panic exit.
        """
        status = trade.status
        if status is TradeStatus.PENDING_ENTRY:
            self._exit_on_fill[trade.id] = reason
            if not self._cancel_entries(trade):
                self._cancel_entry(trade, f"exit requested ({reason.value}) before the entry was sent")
                return "entry cancelled"
            return "cancelling the unfilled entry: whatever filled exits once the broker confirms the cancel"
        if status is TradeStatus.EXITING:
            if reason in _ESCALATING and not self._trade_orders.get(trade.id):
                self._exit_pending.pop(trade.id, None)
                self._drive_exit(trade)
                return "exit re-driven"
            return "already exiting"
        if status is TradeStatus.EXIT_FAILED:
            if reason not in _ESCALATING:
                return "exit failed earlier: waiting for a manual exit"
            self._exit_attempts[trade.id] = 0
            self._set_status(trade, TradeStatus.EXITING, f"retry requested ({reason.value})")
            self._save_trade(trade)
            self._drive_exit(trade)
            return "exit retried"
        if status is not TradeStatus.ACTIVE:
            return f"trade is {status.value}"
        self._sync_price(trade)
        trade.exit_reason = reason
        trade.exit_trigger_price = trigger_price
        self._set_status(trade, TradeStatus.EXITING, reason.value)
        self._event(trade, "EXIT_INTENT", "exit_reason", "", reason.value, reason.value, price if price is not None else trade.last_price or None)
        self._save_trade(trade)
        book = self._books.get(trade.instrument_key)
        if book is not None:
            self._refresh_band(book)
        self._exit_attempts[trade.id] = 0
        self._drive_exit(trade)
        if self._cancel_entries(trade):  # the unfilled rest of the entry must not re-open what exits
            return "exit sent; cancelling the unfilled rest of the entry"
        return "exit sent"

    def _live_exit_quantity(self, trade: Trade) -> int:
        total = 0
        for key in self._trade_orders.get(trade.id, ()):
            live = self._live.get(key)
            if live is not None and live.record.purpose is OrderPurpose.EXIT:
                total += live.remaining
        return total

    def _opposite_open(self, trade: Trade, pos_key: PositionKey) -> int:
        book = self._books.get(trade.instrument_key)
        if book is None:
            return 0
        return sum(
            t.quantity
            for t in book.trades
            if t.side is not trade.side and t.status in _EXPOSED and t.product is trade.product
        )

    def _capacity(self, trade: Trade, pos_key: PositionKey, state: _KeyState) -> int | None:
        if state.net is None:
            return None
        in_flight = state.exit_sell if trade.side is Side.LONG else state.exit_buy
        return exit_capacity(trade.side, state.net, self._opposite_open(trade, pos_key), in_flight)

    def _drive_exit(self, trade: Trade) -> None:
        """Send what the trade still needs to exit, within what the broker position holds."""
        if trade.status is not TradeStatus.EXITING or trade.id in self._exit_pending:
            return
        needed = trade.quantity - self._live_exit_quantity(trade)
        if needed <= 0:
            if trade.quantity <= 0 and not self._trade_orders.get(trade.id):
                self._close_trade(trade)
            return
        if self._broker_state == "SESSION_EXPIRED":
            self._exit_pending[trade.id] = "parked"
            return
        pos_key = position_key(trade)
        state = self._keys.setdefault(pos_key, _KeyState())
        capacity = self._capacity(trade, pos_key, state)
        if capacity is not None and capacity >= needed:
            self._send_exit(trade, needed, pos_key)
            return
        if state.exits_in_flight:
            # Exit fills in flight on this key may explain the difference: decide once they
            # settle, or after ``settle_wait`` at the latest (an exit may sit unfilled).
            self._exit_pending[trade.id] = "waiting"
            state.waiting.add(trade.id)
            self._schedule(self._settings.settle_wait, self._stop_waiting, trade.id)
            return
        self._confirm_position(trade, pos_key, forced=False)

    def _confirm_position(self, trade: Trade, pos_key: PositionKey, forced: bool) -> None:
        """Read the broker's position for this exit (the slow path) before sending less than the trade."""
        state = self._keys.setdefault(pos_key, _KeyState())
        self._exit_pending[trade.id] = "confirming"
        self._job("exit_position", (trade.id, pos_key, state.generation, forced), self._broker.open_position,
                  strategy=trade.strategy, symbol=trade.symbol, exchange=trade.exchange, product=trade.product.value)

    def _stop_waiting(self, trade_id: int) -> None:
        trade = self._trades.get(trade_id)
        if trade is None or self._exit_pending.get(trade_id) != "waiting":
            return
        pos_key = position_key(trade)
        self._keys.setdefault(pos_key, _KeyState()).waiting.discard(trade_id)
        del self._exit_pending[trade_id]
        self._confirm_position(trade, pos_key, forced=True)

    def _on_exit_position(self, result: JobResult) -> None:
        trade_id, pos_key, generation, forced = result.context
        trade = self._trades.get(trade_id)
        if trade is None or self._exit_pending.get(trade_id) != "confirming":
            return
        del self._exit_pending[trade_id]
        if result.error is not None:
            if result.error.kind == "auth":
                self._exit_pending[trade_id] = "parked"
                return
            self._exit_pending[trade_id] = "retry"
            self._schedule(self._settings.exit_retry_backoff, self._retry_exit, trade_id)
            return
        state = self._keys.setdefault(pos_key, _KeyState())
        if not forced and state.exits_in_flight:
            self._exit_pending[trade_id] = "waiting"
            state.waiting.add(trade_id)
            self._schedule(self._settings.settle_wait, self._stop_waiting, trade_id)
            return
        if state.generation != generation and not forced:  # the position changed while we read it: read again
            self._drive_exit(trade)
            return
        # A forced read may predate fills of exits still in flight; counting those exits as
        # well can only make the capacity smaller (never an overshoot).
        state.net = int(result.value)
        if trade.status is not TradeStatus.EXITING:
            return
        needed = trade.quantity - self._live_exit_quantity(trade)
        capacity = self._capacity(trade, pos_key, state) or 0
        if capacity >= needed:
            self._send_exit(trade, needed, pos_key)
            return
        if capacity <= 0:
            self._close_externally(trade, f"exit found no position at the broker (net {state.net})")
            return
        self._shrink(trade, trade.quantity - (needed - capacity), f"broker holds only {capacity} for this exit (net {state.net})")
        self._send_exit(trade, capacity, pos_key)

    def _retry_exit(self, trade_id: int) -> None:
        trade = self._trades.get(trade_id)
        if trade is None:
            return
        if self._exit_pending.get(trade_id) == "retry":
            del self._exit_pending[trade_id]
        self._drive_exit(trade)

    def _settle_key(self, pos_key: PositionKey) -> None:
        """A key has no exits in flight any more: exits that waited on it go now."""
        state = self._keys.get(pos_key)
        if state is None or state.exits_in_flight or not state.waiting:
            return
        waiting, state.waiting = state.waiting, set()
        for trade_id in sorted(waiting):
            if self._exit_pending.get(trade_id) == "waiting":
                del self._exit_pending[trade_id]
            trade = self._trades.get(trade_id)
            if trade is not None:
                self._drive_exit(trade)

    def _send_exit(self, trade: Trade, quantity: int, pos_key: PositionKey, reason: ExitReason | None = None) -> None:
        attempt = self._exit_attempts.get(trade.id, 0) + 1
        self._exit_attempts[trade.id] = attempt
        instrument = self._instrument_for(trade)
        freeze = instrument.freeze_quantity
        settings = self._runtime(trade.strategy).strategy.exit_order
        price_type, price = PriceType.MARKET, 0.0
        if settings.price_type is PriceType.LIMIT:
            price_type, price = PriceType.LIMIT, self._marketable_exit_price(trade, settings.protection_percent)
        for piece in split_quantity(quantity, freeze, trade.lot_size):
            record = OrderRecord(
                key=f"x-{trade.id}-{uuid.uuid4().hex[:10]}",
                trade_id=trade.id,
                purpose=OrderPurpose.EXIT,
                action=trade.side.exit_action,
                quantity=piece,
                state=OrderState.INTENT,
                reason=reason or trade.exit_reason,
                price_type=price_type,
                price=price,
                attempt=attempt,
                created_at=self._clock.time(),
                updated_at=self._clock.time(),
            )
            self._track_order(record, trade)
            self._event(trade, "ORDER", "exit", "", f"{record.action} {piece}", record.reason.value if record.reason else "", price or None)
            self._dispatch_send(record, trade)

    def _send_partial_exit(self, trade: Trade, quantity: int, trigger: float) -> None:
        pos_key = position_key(trade)
        state = self._keys.setdefault(pos_key, _KeyState())
        capacity = self._capacity(trade, pos_key, state)
        quantity = min(quantity, trade.quantity - self._live_exit_quantity(trade))
        if quantity <= 0:
            return
        if capacity is not None and capacity < quantity:
            self._alert(
                AlertCategory.TRADE,
                AlertPriority.WARNING,
                f"#{trade.id} {trade.symbol}: partial target {trigger:.2f} skipped: the broker position holds only {capacity}",
                trade=trade,
            )
            return
        if self._broker_state == "SESSION_EXPIRED":
            return
        self._send_exit(trade, quantity, pos_key, reason=ExitReason.PARTIAL_TARGET)

    def _dispatch_send(self, record: OrderRecord, trade: Trade) -> None:
        request = OrderRequest(
            strategy=trade.strategy,
            symbol=trade.symbol,
            exchange=trade.exchange,
            action=record.action,
            quantity=record.quantity,
            product=trade.product.value,
            price_type=record.price_type.value,
            price=record.price,
        )
        assert self._executor is not None
        self._executor.send_order(record, request, self._settings.durable_timeout)

    def _shrink(self, trade: Trade, new_quantity: int, why: str) -> None:
        old = trade.quantity
        trade.quantity = max(0, new_quantity)
        trade.updated_at = self._clock.time()
        self._event(trade, "RECONCILE", "quantity", old, trade.quantity, why)
        self._save_trade(trade)
        self._alert(
            AlertCategory.TRADE,
            AlertPriority.WARNING,
            f"#{trade.id} {trade.symbol}: quantity {old} -> {trade.quantity}: {why}",
            trade=trade,
        )
        book = self._books.get(trade.instrument_key)
        if book is not None:
            self._rebuild_book(book)

    def _close_externally(self, trade: Trade, why: str) -> None:
        old = trade.quantity
        trade.quantity = 0
        trade.closed_at = self._clock.time()
        self._sync_price(trade)
        self._event(trade, "RECONCILE", "quantity", old, 0, why)
        self._set_status(trade, TradeStatus.CLOSED_EXTERNALLY, why)
        trade.exit_reason = ExitReason.CLOSED_EXTERNALLY
        self._save_trade(trade)
        self._alert(
            AlertCategory.TRADE,
            AlertPriority.WARNING,
            f"#{trade.id} {trade.symbol} {trade.side.value} {old}: closed outside tmtool ({why})",
            key=f"external-{trade.id}",
            trade=trade,
        )
        self._remove_trade(trade)

    def _close_trade(self, trade: Trade) -> None:
        trade.closed_at = self._clock.time()
        self._sync_price(trade)
        self._set_status(trade, TradeStatus.CLOSED, trade.exit_reason.value if trade.exit_reason else "")
        self._save_trade(trade)
        reason = trade.exit_reason.value if trade.exit_reason else "EXIT"
        exit_price = f" at {trade.exit_price:.2f}" if trade.exit_price else ""
        self._alert(
            AlertCategory.TRADE,
            AlertPriority.INFO if trade.realised_pnl >= 0 else AlertPriority.WARNING,
            f"#{trade.id} {trade.symbol} {trade.side.value} closed: {reason}{exit_price}, P&L {trade.realised_pnl:+.2f}",
            trade=trade,
        )
        self._remove_trade(trade)

    def _exit_failed(self, trade: Trade, why: str) -> None:
        self._set_status(trade, TradeStatus.EXIT_FAILED, why)
        self._save_trade(trade)
        self._alert(
            AlertCategory.TRADE,
            AlertPriority.CRITICAL,
            f"#{trade.id} {trade.symbol} {trade.side.value} {trade.quantity}: EXIT FAILED ({why}). "
            "Act now: exit it in the broker or retry the exit.",
            key=f"exit-failed-{trade.id}",
            trade=trade,
        )
        book = self._books.get(trade.instrument_key)
        if book is not None:
            self._rebuild_book(book)

    # ================================================================== orders (entries and exits)

    def _track_order(self, record: OrderRecord, trade: Trade) -> _LiveOrder:
        pos_key = position_key(trade)
        live = _LiveOrder(record, trade.strategy, pos_key)
        self._live[record.key] = live
        self._trade_orders.setdefault(trade.id, set()).add(record.key)
        if record.order_id:
            self._by_order_id[record.order_id] = record.key
        state = self._keys.setdefault(pos_key, _KeyState())
        state.live_orders += 1
        state.generation += 1
        if record.purpose is OrderPurpose.EXIT:
            if record.action == "SELL":
                state.exit_sell += live.remaining
            else:
                state.exit_buy += live.remaining
        return live

    def _set_order(self, live: _LiveOrder, **changes: Any) -> None:
        live.record = replace(live.record, updated_at=self._clock.time(), **changes)
        self._store.save_order(live.record)
        self._dirty = True

    def _release_in_flight(self, live: _LiveOrder, quantity: int) -> None:
        if quantity <= 0 or live.record.purpose is not OrderPurpose.EXIT:
            return
        state = self._keys.setdefault(live.pos_key, _KeyState())
        if live.record.action == "SELL":
            state.exit_sell = max(0, state.exit_sell - quantity)
        else:
            state.exit_buy = max(0, state.exit_buy - quantity)

    def _finish_order(self, live: _LiveOrder, state: OrderState, message: str = "") -> None:
        """A ledger row became final: release what it held and decide what the trade does next."""
        record = live.record
        self._set_order(live, state=state, message=message or record.message)
        self._release_in_flight(live, live.remaining)
        live.remaining = 0
        self._live.pop(record.key, None)
        if record.order_id:
            self._by_order_id.pop(record.order_id, None)
        keys = self._trade_orders.get(record.trade_id)
        if keys is not None:
            keys.discard(record.key)
            if not keys:
                del self._trade_orders[record.trade_id]
        key_state = self._keys.setdefault(live.pos_key, _KeyState())
        key_state.live_orders = max(0, key_state.live_orders - 1)
        trade = self._trades.get(record.trade_id)
        if trade is not None:
            if record.purpose is OrderPurpose.ENTRY:
                self._after_entry_final(trade, live, state)
            else:
                self._after_exit_final(trade, live, state)
        if not key_state.exits_in_flight:
            self._settle_key(live.pos_key)

    def _after_exit_final(self, trade: Trade, live: _LiveOrder, state: OrderState) -> None:
        record = live.record
        if state in (OrderState.REJECTED, OrderState.CANCELLED):
            self._alert(
                AlertCategory.TRADE,
                AlertPriority.WARNING,
                f"#{trade.id} {trade.symbol}: exit order {state.value.lower()} "
                f"(attempt {record.attempt} of {self._settings.exit_max_attempts}): {record.message or 'no reason given'}",
                key=f"exit-rejected-{trade.id}",
                trade=trade,
            )
        if self._trade_orders.get(trade.id):
            return  # other pieces still live: decide when the last one is final
        if trade.status is TradeStatus.ACTIVE:
            if trade.quantity <= 0:
                trade.exit_reason = trade.exit_reason or ExitReason.TARGET
                self._set_status(trade, TradeStatus.EXITING, "partial exits took the whole quantity")
                self._close_trade(trade)
            return
        if trade.status is not TradeStatus.EXITING:
            return
        if trade.quantity <= 0:
            self._close_trade(trade)
            return
        if trade.id in self._exit_pending:
            return  # parked for the session, or a retry is already scheduled
        if state is OrderState.COMPLETE:
            self._drive_exit(trade)  # a piece filled short of the trade: send the rest
            return
        attempts = self._exit_attempts.get(trade.id, 0)
        if attempts >= self._settings.exit_max_attempts:
            self._exit_failed(trade, f"{attempts} exit attempts failed; last: {record.message or state.value}")
            return
        self._exit_pending[trade.id] = "retry"
        delay = self._settings.exit_retry_backoff * (2 ** max(0, attempts - 1))
        self._schedule(delay, self._retry_exit, trade.id)

    def _on_order_sent(self, result: JobResult) -> None:
        live = self._live.get(result.context)
        if live is None:
            return
        sent: OrderSendResult = result.value
        trade = self._trades.get(live.record.trade_id)
        if sent is not None and not sent.durable:
            self._alert(
                AlertCategory.SYSTEM,
                AlertPriority.CRITICAL,
                f"order {live.record.key} went out before its ledger row was on disk (database not writing)",
                key="ledger-not-durable",
            )
        error = result.error
        if error is None and sent.ack is not None:
            ack = sent.ack
            self._server_mode = ack.mode
            if self._broker_state != "OK":
                self._broker_ok()
            if ack.awaiting_approval:
                self._set_order(live, state=OrderState.AWAITING_APPROVAL, message=ack.message or "queued for approval")
                self._alert(
                    AlertCategory.TRADE,
                    AlertPriority.WARNING,
                    f"#{live.record.trade_id}: {live.record.purpose.value.lower()} order {live.record.action} "
                    f"{live.record.quantity} is waiting for approval in OpenAlgo's Action Center",
                    key=f"approval-{live.record.key}",
                    trade=trade,
                )
                self._schedule(self._settings.order_status_poll, self._look_for_approved, live.record.key)
                return
            self._order_id_known(live, ack.order_id)
            self._set_order(live, state=OrderState.SENT, order_id=ack.order_id)
            early = self._early_updates.pop(ack.order_id, None)
            if early is not None:
                self._apply_progress(live, early.status, early.filled_quantity, early.average_price, early.rejection_reason)
            if live.record.key in self._live:
                self._poll_order(live.record.key, self._poll_interval())
                self._order_working(live)
            return
        assert error is not None
        if error.kind == "auth":
            self._on_auth_error(error.message)
            if trade is not None and trade.status is TradeStatus.EXITING and live.record.purpose is OrderPurpose.EXIT:
                self._exit_pending[trade.id] = "parked"  # resent when the session is back, without spending an attempt
                self._exit_attempts[trade.id] = max(0, self._exit_attempts.get(trade.id, 1) - 1)
            self._finish_order(live, OrderState.NOT_SENT, error.message)
            return
        if error.ambiguous:
            self._set_order(live, state=OrderState.UNKNOWN, message=f"reply lost ({error.kind}): {error.message}")
            self._alert(
                AlertCategory.TRADE,
                AlertPriority.WARNING,
                f"#{live.record.trade_id}: no clear reply to {live.record.action} {live.record.quantity} ({error.kind}); looking the order up",
                key=f"unknown-{live.record.key}",
                trade=trade,
            )
            self._lookup_order(live.record.key)
            return
        if error.kind in ("rate_limited", "connection"):
            # Surely not placed: the exit goes again after the retry backoff.  A rate limit
            # is no failure of the exit, so it spends no attempt; a refused connection does.
            if error.kind == "rate_limited" and trade is not None and live.record.purpose is OrderPurpose.EXIT:
                self._exit_attempts[trade.id] = max(0, self._exit_attempts.get(trade.id, 1) - 1)
            self._finish_order(live, OrderState.NOT_SENT, f"{error.kind}: {error.message}")
            return
        self._finish_order(live, OrderState.REJECTED, error.message)

    def _order_id_known(self, live: _LiveOrder, order_id: str) -> None:
        self._by_order_id[order_id] = live.record.key
        self._known_order_ids.add(order_id)
        counted = self._foreign_filled.pop(order_id, 0)
        if counted:  # its fills were counted as someone else's: our own fill accounting takes over
            state = self._keys.setdefault(live.pos_key, _KeyState())
            if state.net is not None:
                state.net -= counted if live.record.action == "BUY" else -counted
        trade = self._trades.get(live.record.trade_id)
        if trade is None:
            return
        if live.record.purpose is OrderPurpose.EXIT:
            if order_id not in trade.exit_order_ids:
                trade.exit_order_ids = (*trade.exit_order_ids, order_id)
        else:
            trade.entry_order_id = order_id
        self._save_trade(trade)

    def _poll_interval(self) -> float:
        if self._feed_status.order_updates:
            return self._settings.order_update_backstop
        return self._settings.order_status_poll

    def _poll_order(self, key: str, delay: float) -> None:
        live = self._live.get(key)
        if live is None or live.polling:
            return
        live.polling = True
        self._schedule(delay, self._request_status, key)

    def _request_status(self, key: str) -> None:
        live = self._live.get(key)
        if live is None or not live.record.order_id:
            return
        self._job("order_status", key, self._broker.order_status, live.record.order_id, live.strategy)

    def _on_order_status(self, result: JobResult) -> None:
        live = self._live.get(result.context)
        if live is None:
            return
        live.polling = False
        if result.error is None:
            info: OrderInfo = result.value
            self._apply_progress(live, info.status, info.filled_quantity, info.average_price, info.rejection_reason, info.quantity)
        if result.context in self._live:
            self._poll_order(result.context, self._poll_interval())

    def _on_order_update(self, update: OrderUpdate) -> None:
        key = self._by_order_id.get(update.order_id)
        if key is None:
            if len(self._early_updates) > 1000:
                self._early_updates.pop(next(iter(self._early_updates)))
            self._early_updates[update.order_id] = update
            self._foreign_fill(update)
            return
        live = self._live.get(key)
        if live is not None:
            self._apply_progress(live, update.status, update.filled_quantity, update.average_price, update.rejection_reason)

    def _foreign_fill(self, update: OrderUpdate) -> None:
        """Keep the position cache current with fills of orders that are not (yet known as) ours.

        An update may belong to one of our orders whose reply has not arrived yet;
        ``_order_id_known`` takes the amount back out when the id turns out to be ours.
        """
        if not update.product or update.order_id in self._known_order_ids:
            return
        state = self._keys.get((update.symbol, update.exchange, update.product))
        if state is None:
            return
        applied = self._foreign_filled.get(update.order_id, 0)
        delta = update.filled_quantity - applied
        if delta <= 0:
            return
        self._foreign_filled[update.order_id] = update.filled_quantity
        if len(self._foreign_filled) > 10_000:  # a day's worth; the oldest are long settled
            self._foreign_filled.pop(next(iter(self._foreign_filled)))
        state.generation += 1
        if state.net is not None:
            state.net += delta if update.action.upper() == "BUY" else -delta

    def _apply_progress(
        self,
        live: _LiveOrder,
        status: str,
        filled_quantity: int | None,
        average_price: float,
        rejection_reason: str = "",
        ordered_quantity: int | None = None,
    ) -> None:
        record = live.record
        progress = order_progress(status, record.quantity, filled_quantity, average_price)
        filled = min(progress.filled_quantity, record.quantity)
        if filled > record.filled_quantity:
            self._apply_fill(live, filled, progress.average_price)
        elif progress.state is OrderState.PARTIAL and record.state is not OrderState.PARTIAL:
            self._set_order(live, state=OrderState.PARTIAL)
        if progress.state.is_final:
            self._finish_order(live, progress.state, rejection_reason)
        elif record.state in (OrderState.SENT, OrderState.UNKNOWN) and progress.state is OrderState.OPEN:
            self._set_order(live, state=OrderState.OPEN)

    def _apply_fill(self, live: _LiveOrder, filled_total: int, average_total: float) -> None:
        record = live.record
        delta = filled_total - record.filled_quantity
        trade = self._trades.get(record.trade_id)
        fallback = self._price_of(trade) if trade is not None else 0.0
        if average_total > 0 and record.filled_quantity and record.average_price > 0:
            price = (average_total * filled_total - record.average_price * record.filled_quantity) / delta
        else:
            price = average_total if average_total > 0 else fallback
        new_average = average_total if average_total > 0 else (
            (record.average_price * record.filled_quantity + price * delta) / filled_total
        )
        state = OrderState.PARTIAL if filled_total < record.quantity else record.state
        self._set_order(live, filled_quantity=filled_total, average_price=new_average, state=state)
        self._release_in_flight(live, delta)
        live.remaining = max(0, live.remaining - delta)
        key_state = self._keys.setdefault(live.pos_key, _KeyState())
        key_state.generation += 1
        sign = 1 if record.action == "BUY" else -1
        if key_state.net is not None:
            key_state.net += sign * delta
        if trade is None:
            return
        if record.purpose is OrderPurpose.ENTRY:
            self._on_entry_fill(trade, delta, price)
        else:
            self._on_exit_fill(trade, delta, price, record.reason)

    def _on_exit_fill(self, trade: Trade, quantity: int, price: float, reason: ExitReason | None) -> None:
        quantity = min(quantity, trade.quantity)
        if quantity <= 0:
            return
        previous = trade.exited_quantity
        trade.exit_price = ((trade.exit_price or 0.0) * previous + price * quantity) / (previous + quantity)
        trade.exited_quantity = previous + quantity
        trade.quantity -= quantity
        pnl = (price - trade.entry_price) * quantity * trade.side.sign
        trade.realised_pnl += pnl
        trade.last_price = price
        trade.updated_at = self._clock.time()
        self._event(trade, "EXIT_FILL", "quantity", trade.quantity + quantity, trade.quantity, reason.value if reason else "", price)
        self._save_trade(trade)
        runtime = self._runtime(trade.strategy)
        runtime.state = portfolio_rules.record_realised(runtime.state, pnl, self._clock.time())
        self._store.save_portfolio(runtime.state)
        if reason is ExitReason.PARTIAL_TARGET:
            self._alert(
                AlertCategory.TRADE,
                AlertPriority.INFO,
                f"#{trade.id} {trade.symbol}: partial target filled {quantity} at {price:.2f}, P&L {pnl:+.2f}; {trade.quantity} left",
                trade=trade,
            )
        book = self._books.get(trade.instrument_key)
        if book is not None:
            self._rebuild_book(book)
        self._update_gates(runtime)
        self._evaluate_strategy(runtime, self._clock.time())

    # ---------------------------------------------------------------- ambiguous outcomes

    def _lookup_order(self, key: str) -> None:
        live = self._live.get(key)
        if live is None:
            return
        trade = self._trades.get(live.record.trade_id)
        if trade is None:
            return

        def look() -> tuple[list[OrderInfo], int]:
            orders = self._broker.order_book()
            net = self._broker.open_position(
                strategy=trade.strategy, symbol=trade.symbol, exchange=trade.exchange, product=trade.product.value
            )
            return orders, net

        state = self._keys.setdefault(live.pos_key, _KeyState())
        self._job("order_lookup", (key, state.generation), look)

    def _on_order_lookup(self, result: JobResult) -> None:
        key, generation = result.context
        live = self._live.get(key)
        if live is None:
            return
        trade = self._trades.get(live.record.trade_id)
        if result.error is not None or trade is None:
            self._schedule(self._settings.order_status_poll, self._lookup_order, key)
            return
        orders, net = result.value
        record = live.record
        found = match_order(
            orders,
            symbol=trade.symbol,
            exchange=trade.exchange,
            action=record.action,
            quantity=record.quantity,
            not_before=record.created_at,
            known_order_ids=self._known_order_ids,
        )
        if found is not None:
            self._order_id_known(live, found.order_id)
            self._set_order(live, state=OrderState.SENT, order_id=found.order_id, message="found in the order book")
            self._apply_progress(live, found.status, found.filled_quantity, found.average_price, found.rejection_reason)
            if record.key in self._live:
                self._poll_order(record.key, self._poll_interval())
                self._order_working(live)
            return
        live.lookups += 1
        if live.lookups < self._settings.ambiguous_lookups:
            self._schedule(self._settings.order_status_poll, self._lookup_order, record.key)
            return
        # Provably absent from the order book.  Send again only if the position still holds it.
        state = self._keys.setdefault(live.pos_key, _KeyState())
        others_in_flight = state.exits_in_flight - (live.remaining if record.purpose is OrderPurpose.EXIT else 0)
        if others_in_flight > 0 or state.generation != generation:
            # Other fills may be in that position read: it proves nothing.  Look again; a human
            # decides if it never settles (an order is never sent on a guess).
            if live.lookups >= self._settings.ambiguous_lookups + 20:
                self._unresolved(live, trade)
            else:
                self._schedule(self._settings.order_status_poll, self._lookup_order, key)
            return
        state.net = int(net)
        held = self._capacity(trade, live.pos_key, state)
        if record.purpose is OrderPurpose.ENTRY:
            self._finish_order(live, OrderState.NOT_SENT, "not in the order book: the entry never reached the broker")
            return
        if held is not None and held + live.remaining >= record.quantity:
            self._finish_order(live, OrderState.NOT_SENT, "not in the order book and the position is still held")
        else:
            self._finish_order(live, OrderState.CANCELLED, f"not in the order book and the position is gone (net {net})")

    def _unresolved(self, live: _LiveOrder, trade: Trade) -> None:
        """An ambiguous order could not be proven absent: stop and ask a human (never resend blindly)."""
        self._exit_pending[trade.id] = "unresolved"
        # The row stays UNKNOWN in the ledger (looked up again at the next start); in memory it
        # is released so that a human's explicit retry can go ahead.
        self._finish_order(live, OrderState.UNKNOWN, "outcome never proven: check the broker's order book")
        del self._exit_pending[trade.id]
        if trade.status is TradeStatus.EXITING and not self._trade_orders.get(trade.id):
            self._exit_failed(trade, "an exit order's outcome could not be proven; check the broker's order book")

    def _look_for_approved(self, key: str) -> None:
        live = self._live.get(key)
        if live is None or live.record.state is not OrderState.AWAITING_APPROVAL:
            return
        self._job("approval_lookup", key, self._broker.order_book)

    def _on_approval_lookup(self, result: JobResult) -> None:
        live = self._live.get(result.context)
        if live is None:
            return
        trade = self._trades.get(live.record.trade_id)
        if result.error is None and trade is not None:
            found = match_order(
                result.value,
                symbol=trade.symbol,
                exchange=trade.exchange,
                action=live.record.action,
                quantity=live.record.quantity,
                not_before=live.record.created_at,
                known_order_ids=self._known_order_ids,
            )
            if found is not None:
                self._order_id_known(live, found.order_id)
                self._set_order(live, state=OrderState.SENT, order_id=found.order_id, message="approved")
                self._apply_progress(live, found.status, found.filled_quantity, found.average_price, found.rejection_reason)
                if live.record.key in self._live:
                    self._poll_order(live.record.key, self._poll_interval())
                    self._order_working(live)
                return
        self._schedule(max(self._settings.order_status_poll, 1.0), self._look_for_approved, result.context)

    # ---------------------------------------------------------------- working orders: re-pricing and cancelling

    def _order_working(self, live: _LiveOrder) -> None:
        """An order of ours has its broker id and is not final: cancel it if that is wanted, or
        start the re-pricing clock of a LIMIT exit."""
        if live.cancel_wanted:
            self._send_cancel(live)
        elif live.record.purpose is OrderPurpose.EXIT and live.record.price_type is PriceType.LIMIT:
            trade = self._trades.get(live.record.trade_id)
            if trade is not None:
                settings = self._runtime(trade.strategy).strategy.exit_order
                self._schedule(settings.reprice_after_seconds, self._reprice_due, live.record.key)

    def _marketable_exit_price(self, trade: Trade, protection_percent: float) -> float:
        """A LIMIT exit price ``protection_percent`` through the last price (at least one tick)."""
        ltp = self._price_of(trade)
        offset = ltp * protection_percent / 100.0
        raw = ltp - offset if trade.side is Side.LONG else ltp + offset
        return round_to_tick(max(raw, trade.tick_size), trade.tick_size)

    def _reprice_due(self, key: str) -> None:
        """A LIMIT exit is still unfilled after ``reprice_after_seconds``: modify it in place,
        marketable at the last price, or to MARKET once ``max_reprices`` are spent.

        The order is changed, never replaced, so the trade never has two live exit
        orders for one quantity; the modification carries the order's whole quantity
        (brokers take the new total, the filled part included)."""
        live = self._live.get(key)
        if live is None or live.modifying or not live.record.order_id:
            return
        if live.record.purpose is not OrderPurpose.EXIT or live.record.price_type is not PriceType.LIMIT:
            return
        trade = self._trades.get(live.record.trade_id)
        if trade is None or live.remaining <= 0:
            return
        settings = self._runtime(trade.strategy).strategy.exit_order
        record = live.record
        if live.reprices >= settings.max_reprices:
            price_type, price = PriceType.MARKET, 0.0
        else:
            price_type, price = PriceType.LIMIT, self._marketable_exit_price(trade, settings.protection_percent)
        live.modifying = True
        old = f"{record.price_type.value} {record.price:.2f}"
        new = "MARKET" if price_type is PriceType.MARKET else f"LIMIT {price:.2f}"
        self._event(trade, "ORDER", "exit_price", old, new, "re-pricing the unfilled LIMIT exit", self._price_of(trade))
        assert self._executor is not None
        self._executor.run_order_call(
            "modify_order",
            (key, price_type, price),
            self._broker.modify_order,
            order_id=record.order_id,
            strategy=trade.strategy,
            symbol=trade.symbol,
            exchange=trade.exchange,
            action=record.action,
            product=trade.product.value,
            price_type=price_type.value,
            price=price,
            quantity=record.quantity,
        )

    def _on_modify_order(self, result: JobResult) -> None:
        key, price_type, price = result.context
        live = self._live.get(key)
        if live is None:
            return  # final meanwhile (filled, most likely)
        live.modifying = False
        trade = self._trades.get(live.record.trade_id)
        if trade is None:
            return
        settings = self._runtime(trade.strategy).strategy.exit_order
        error = result.error
        if error is None:
            live.reprices += 1
            live.reprice_failures = 0
            self._set_order(live, price_type=price_type, price=price, message=f"re-priced ({live.reprices})")
            if price_type is PriceType.LIMIT:
                self._schedule(settings.reprice_after_seconds, self._reprice_due, key)
            return
        # Refused (often: the order filled or ended meanwhile; or semi-auto mode) or lost: the
        # status tells which; try again later (semi-auto mode may be switched off meanwhile).
        live.reprice_failures += 1
        self._set_order(live, message=f"re-price failed: {error.message}")
        if error.kind == "semi_auto" and live.reprice_failures == 1:
            self._alert(
                AlertCategory.TRADE,
                AlertPriority.WARNING,
                f"#{trade.id} {trade.symbol}: LIMIT exit {live.record.order_id} is unfilled and semi-auto mode refuses "
                "to re-price it: change it in OpenAlgo or switch to auto mode",
                key=f"reprice-{live.record.key}",
                trade=trade,
            )
        elif live.reprice_failures == 3:
            self._alert(
                AlertCategory.TRADE,
                AlertPriority.WARNING,
                f"#{trade.id} {trade.symbol}: LIMIT exit {live.record.order_id} is unfilled and could not be re-priced "
                f"({error.kind}: {error.message}); still trying",
                key=f"reprice-{live.record.key}",
                trade=trade,
            )
        self._poll_order(key, 0.0)
        self._schedule(settings.reprice_after_seconds, self._reprice_due, key)

    def _live_entries(self, trade: Trade) -> list[_LiveOrder]:
        entries = []
        for key in self._trade_orders.get(trade.id, ()):
            live = self._live.get(key)
            if live is not None and live.record.purpose is OrderPurpose.ENTRY:
                entries.append(live)
        return entries

    def _cancel_entries(self, trade: Trade) -> int:
        """Cancel the trade's live entry orders (those without a broker id as soon as they get
        one); returns how many there are.  The cancel is confirmed by the order's status."""
        entries = self._live_entries(trade)
        for live in entries:
            if live.cancel_wanted:
                continue
            live.cancel_wanted = True
            if live.record.order_id:
                self._send_cancel(live)
            elif live.record.state is OrderState.AWAITING_APPROVAL:
                self._alert(
                    AlertCategory.TRADE,
                    AlertPriority.WARNING,
                    f"#{trade.id} {trade.symbol}: the entry waits for approval in OpenAlgo's Action Center and cannot be "
                    "cancelled from tmtool: reject it there (if it is approved and fills, the trade exits)",
                    key=f"approval-{live.record.key}",
                    trade=trade,
                )
        return len(entries)

    def _send_cancel(self, live: _LiveOrder) -> None:
        if live.cancelling or not live.record.order_id or live.record.key not in self._live:
            return
        live.cancelling = True
        live.cancel_attempts += 1
        self._set_order(live, message="cancel requested")
        assert self._executor is not None
        self._executor.run_order_call("cancel_order", live.record.key, self._broker.cancel_order, live.record.order_id, live.strategy)

    def _on_cancel_order(self, result: JobResult) -> None:
        live = self._live.get(result.context)
        if live is None:
            return  # already final: the cancel (or a last fill) was confirmed
        live.cancelling = False
        error = result.error
        if error is None:
            self._poll_order(live.record.key, 0.0)  # the order's status confirms the cancel
            return
        trade = self._trades.get(live.record.trade_id)
        self._set_order(live, message=f"cancel failed: {error.message}")
        if error.kind == "semi_auto" or live.cancel_attempts >= self._settings.exit_max_attempts:
            self._alert(
                AlertCategory.TRADE,
                AlertPriority.WARNING,
                f"#{live.record.trade_id}: could not cancel the unfilled entry {live.record.order_id} ({error.message}): "
                "cancel it in OpenAlgo or the broker; whatever fills is exited",
                key=f"cancel-{live.record.key}",
                trade=trade,
            )
            self._poll_order(live.record.key, 0.0)
            return
        # Refused because the order is final already (the status shows how), or not clearly done: look, then ask again.
        self._poll_order(live.record.key, 0.0)
        self._schedule(self._settings.exit_retry_backoff, self._send_cancel_again, live.record.key)

    def _send_cancel_again(self, key: str) -> None:
        live = self._live.get(key)
        if live is not None and live.cancel_wanted:
            self._send_cancel(live)

    # ================================================================== entries

    def _create_trade(self, command: CreateTrade, future: Future) -> None:
        denial = validate_create_trade(command)
        if denial is not None:
            future.set_result(Denied(denial.code, denial.message))
            return
        runtime = self._strategies.get(command.strategy)
        if runtime is None:
            future.set_result(Denied("UNKNOWN_STRATEGY", f"no strategy named {command.strategy!r}"))
            return
        adopting = command.order_id is not None or command.entry_price is not None
        if command.entry_price is not None and command.order_id is None and command.quantity is None:
            future.set_result(Denied("INVALID_QUANTITY", "adopting a held position needs its quantity"))
            return
        if not adopting:
            denied = self._entry_denied(runtime)
            if denied is not None:
                future.set_result(denied)
                return
        if self._broker_state == "SESSION_EXPIRED" and command.entry_price is None:
            future.set_result(Denied("SESSION_EXPIRED", "the OpenAlgo session expired: log in to OpenAlgo again"))
            return
        exchange, symbol = command.exchange, command.symbol
        known_price = self._books[(exchange, symbol)].price if (exchange, symbol) in self._books else 0.0
        cached = self._instruments.get((exchange, symbol))
        broker = self._broker
        needs_funds = not adopting

        def prepare() -> dict[str, Any]:
            out: dict[str, Any] = {}
            try:
                out["symbol_info"] = cached or broker.symbol_info(symbol, exchange)
            except BrokerError as exc:
                if exc.kind in ("validation", "not_found"):
                    raise
                out["symbol_info"] = None
            if command.order_id is not None:
                out["order"] = broker.order_status(command.order_id, command.strategy)
            elif command.entry_price is None:
                out["price"] = known_price or broker.quotes(symbol, exchange).ltp
                if needs_funds:
                    out["funds"] = broker.funds().available_cash
            return out

        self._job("prepare_entry", (command, future), prepare)

    def _entry_denied(self, runtime: _StrategyRuntime) -> Denied | None:
        strategy = runtime.strategy
        if runtime.deleting:
            return Denied("STRATEGY_DELETED", f"strategy {strategy.name!r} is being deleted")
        open_positions = sum(1 for t in runtime.trades.values() if t.status.is_open)
        halted = runtime.state.halted or self._account_halted_on == self._day
        denial = entry_denial(strategy, open_positions, halted, runtime.state.trades_today)
        if denial is not None:
            return Denied(denial.code, denial.message)
        if portfolio_rules.square_off_due(strategy, self._clock.time()):
            return Denied("SQUARE_OFF_PASSED", f"strategy {strategy.name!r} is past its square-off time for today")
        return None

    def _on_prepare_entry(self, result: JobResult) -> None:
        command, future = result.context
        if result.error is not None:
            code = "SESSION_EXPIRED" if result.error.kind == "auth" else "UNKNOWN_SYMBOL" if result.error.kind in ("validation", "not_found") else "BROKER_ERROR"
            if result.error.kind == "auth":
                self._on_auth_error(result.error.message)
            future.set_result(Denied(code, result.error.message))
            return
        data = result.value
        instrument = self._remember_instrument(command.exchange, command.symbol, data.get("symbol_info"))
        runtime = self._strategies.get(command.strategy)
        if runtime is None:
            future.set_result(Denied("UNKNOWN_STRATEGY", f"no strategy named {command.strategy!r}"))
            return
        if command.order_id is not None:
            self._adopt_order(command, future, instrument, data["order"])
        elif command.entry_price is not None:
            self._adopt_position(command, future, instrument)
        else:
            self._place_entry(command, future, instrument, runtime, float(data["price"]), float(data.get("funds", 0.0)))

    def _new_trade(self, command: CreateTrade, instrument: Instrument, status: TradeStatus, runtime: _StrategyRuntime) -> Trade:
        now = self._clock.time()
        strategy = runtime.strategy
        trade = Trade(
            id=self._next_trade_id,
            strategy=strategy.name,
            symbol=command.symbol,
            exchange=command.exchange,
            product=Product(command.product) if command.product is not None else strategy.product,
            side=Side(command.side),
            quantity=0,
            entry_price=0.0,
            status=status,
            tick_size=instrument.tick_size,
            lot_size=instrument.lot_size,
            entry_price_type=PriceType(command.price_type),
            entry_limit_price=command.limit_price,
            created_at=now,
            updated_at=now,
            note=command.note,
        )
        self._next_trade_id += 1
        self._entry_plans[trade.id] = _EntryPlan(command, strategy.name)
        return trade

    def _place_entry(
        self, command: CreateTrade, future: Future, instrument: Instrument, runtime: _StrategyRuntime, price: float, funds: float
    ) -> None:
        denied = self._entry_denied(runtime)
        if denied is not None:
            future.set_result(denied)
            return
        denial = validate_create_trade(command, current_price=price, lot_size=instrument.lot_size)
        if denial is not None:
            future.set_result(Denied(denial.code, denial.message))
            return
        side = Side(command.side)
        reference = command.limit_price if command.price_type == PriceType.LIMIT and command.limit_price else price
        strategy = runtime.strategy
        funds_in_use = sum(t.entry_price * t.quantity for t in runtime.trades.values() if t.status in _EXPOSED)
        if command.quantity is not None:
            quantity = command.quantity
            limit = funds_limit(strategy, funds, funds_in_use)
            if quantity * reference > limit + 1e-9:
                future.set_result(
                    Denied("INSUFFICIENT_FUNDS", f"{quantity} at {reference:.2f} needs {quantity * reference:.2f}; {limit:.2f} available")
                )
                return
        else:
            stop = command.stop_loss
            if stop is None:
                stop = rules.initial_levels(side, reference, self._risk_for(strategy, command), instrument.tick_size, 1, instrument.lot_size).stop_loss
            open_positions = sum(1 for t in runtime.trades.values() if t.status.is_open)
            sized = size_position(
                strategy, reference, stop, instrument.lot_size, funds, open_positions, runtime.state.halted,
                runtime.state.trades_today, funds_in_use,
            )
            if not isinstance(sized, int):
                future.set_result(Denied(sized.code, sized.message))
                return
            quantity = sized
        trade = self._new_trade(command, instrument, TradeStatus.PENDING_ENTRY, runtime)
        trade.requested_quantity = quantity
        if command.price_type == PriceType.LIMIT:
            trade.entry_price = command.limit_price or 0.0
        trade.last_price = price
        self._add_trade(trade)
        self._event(trade, "CREATED", "status", "", trade.status.value, f"{side.entry_action} {quantity}", price)
        self._save_trade(trade)
        runtime.state = portfolio_rules.record_trade_opened(runtime.state, self._clock.time())
        self._store.save_portfolio(runtime.state)
        record = OrderRecord(
            key=f"e-{trade.id}-{uuid.uuid4().hex[:10]}",
            trade_id=trade.id,
            purpose=OrderPurpose.ENTRY,
            action=side.entry_action,
            quantity=quantity,
            state=OrderState.INTENT,
            price_type=PriceType(command.price_type),
            price=command.limit_price or 0.0,
            created_at=self._clock.time(),
            updated_at=self._clock.time(),
        )
        self._track_order(record, trade)
        self._dispatch_send(record, trade)
        future.set_result(Accepted(f"entry {side.entry_action} {quantity} {trade.symbol} sent", trade_id=trade.id))

    def _adopt_order(self, command: CreateTrade, future: Future, instrument: Instrument, info: OrderInfo) -> None:
        progress = order_progress(info.status, int(info.quantity), info.filled_quantity, info.average_price)
        if progress.state in (OrderState.REJECTED, OrderState.CANCELLED) and progress.filled_quantity == 0:
            future.set_result(Denied("ORDER_NOT_FILLED", f"order {info.order_id} is {info.status}: nothing to manage"))
            return
        if info.order_id in self._known_order_ids:
            future.set_result(Denied("ALREADY_MANAGED", f"order {info.order_id} already belongs to a trade"))
            return
        expected = Side(command.side).entry_action
        if info.action.upper() != expected:
            future.set_result(Denied("SIDE_MISMATCH", f"order {info.order_id} is a {info.action}, not a {expected}"))
            return
        runtime = self._strategies[command.strategy]
        trade = self._new_trade(command, instrument, TradeStatus.PENDING_ENTRY, runtime)
        if info.product:
            trade.product = Product(info.product)
        trade.requested_quantity = int(info.quantity)
        self._add_trade(trade)
        self._event(trade, "CREATED", "entry_order_id", "", info.order_id, "adopted order")
        self._keys.setdefault(position_key(trade), _KeyState()).net = None  # the fill may not be in the cache yet
        record = OrderRecord(
            key=f"e-{trade.id}-{uuid.uuid4().hex[:10]}",
            trade_id=trade.id,
            purpose=OrderPurpose.ENTRY,
            action=expected,
            quantity=int(info.quantity),
            state=OrderState.SENT,
            order_id=info.order_id,
            created_at=self._clock.time(),
            updated_at=self._clock.time(),
            message="adopted",
        )
        live = self._track_order(record, trade)
        self._store.save_order(record)
        self._order_id_known(live, info.order_id)
        filled = min(progress.filled_quantity, record.quantity)
        if filled > 0:
            self._apply_fill(live, filled, progress.average_price)
        if progress.state.is_final:
            self._finish_order(live, progress.state)
        else:
            self._poll_order(record.key, self._poll_interval())
        self._save_trade(trade)
        future.set_result(Accepted(f"order {info.order_id} adopted", trade_id=trade.id))

    def _adopt_position(self, command: CreateTrade, future: Future, instrument: Instrument) -> None:
        runtime = self._strategies[command.strategy]
        trade = self._new_trade(command, instrument, TradeStatus.PENDING_ENTRY, runtime)
        assert command.quantity is not None and command.entry_price is not None
        self._add_trade(trade)
        self._event(trade, "CREATED", "quantity", "", command.quantity, "adopted position", command.entry_price)
        denial = self._activate(trade, command.quantity, float(command.entry_price))
        if denial is not None:
            self._alert(AlertCategory.TRADE, AlertPriority.WARNING, f"#{trade.id}: {denial}", trade=trade)
        future.set_result(Accepted(f"position adopted as trade #{trade.id}", trade_id=trade.id))

    def _risk_for(self, strategy: Strategy, command: CreateTrade | None) -> TradeRisk:
        risk = strategy.trade_risk
        if command is None:
            return risk
        if command.trailing is not None:
            risk = replace(risk, trailing=command.trailing)
        if command.partial_targets is not None:
            risk = replace(risk, partial_targets=command.partial_targets)
        return risk

    def _on_entry_fill(self, trade: Trade, quantity: int, price: float) -> None:
        if trade.status is TradeStatus.PENDING_ENTRY:
            denial = self._activate(trade, quantity, price)
            if denial is not None:
                self._alert(AlertCategory.TRADE, AlertPriority.WARNING, f"#{trade.id}: {denial}", trade=trade)
            return
        total = trade.entry_quantity + quantity
        trade.entry_price = (trade.entry_price * trade.entry_quantity + price * quantity) / total
        trade.entry_quantity = total
        trade.quantity += quantity
        trade.updated_at = self._clock.time()
        self._event(trade, "ENTRY_FILL", "quantity", trade.quantity - quantity, trade.quantity, "", price)
        self._save_trade(trade)
        book = self._books.get(trade.instrument_key)
        if book is not None:
            self._rebuild_book(book)
        if trade.status in (TradeStatus.EXITING, TradeStatus.EXIT_FAILED) and not self._trade_orders.get(trade.id):
            self._drive_exit(trade)

    def _activate(self, trade: Trade, quantity: int, price: float) -> str | None:
        """Make a trade ACTIVE at its fill; levels from the fill price, explicit levels win when valid."""
        plan = self._entry_plans.pop(trade.id, None)
        runtime = self._runtime(trade.strategy)
        command = plan.command if plan is not None else None
        levels = rules.initial_levels(trade.side, price, self._risk_for(runtime.strategy, command), trade.tick_size, quantity, trade.lot_size)
        now = self._clock.time()
        trade.quantity = quantity
        trade.entry_quantity = quantity
        trade.requested_quantity = trade.requested_quantity or quantity
        trade.entry_price = price
        trade.stop_loss, trade.target = levels.stop_loss, levels.target
        trade.trailing = self._risk_for(runtime.strategy, command).trailing
        trade.trailing_stop = levels.trailing_stop
        trade.breakeven_after = runtime.strategy.trade_risk.breakeven_after
        trade.partial_levels = levels.partial_levels
        trade.high_watermark = trade.low_watermark = price
        trade.opened_at = now
        trade.last_price = trade.last_price or price
        note = None
        if command is not None and (command.stop_loss is not None or command.target is not None):
            denial = validate_levels(trade.side, price, None, command.stop_loss, command.target)
            if denial is None:
                if command.stop_loss is not None:
                    trade.stop_loss = round_stop(command.stop_loss, trade.side, trade.tick_size)
                if command.target is not None:
                    trade.target = round_target(command.target, trade.side, trade.tick_size)
            else:
                note = f"explicit levels refused against the fill {price:.2f} ({denial.message}); strategy defaults used"
        self._set_status(trade, TradeStatus.ACTIVE, "entry filled")
        self._event(trade, "LEVEL", "levels", "", f"stop={trade.stop_loss} target={trade.target} trail={trade.trailing_stop}", "", price)
        self._save_trade(trade)
        book = self._books.get(trade.instrument_key)
        if book is not None:
            self._rebuild_book(book)
        self._alert(
            AlertCategory.TRADE,
            AlertPriority.INFO,
            f"#{trade.id} {trade.symbol} {trade.side.value} {quantity} @ {price:.2f} active "
            f"(stop {_fmt(trade.effective_stop)}, target {_fmt(trade.target)})",
            trade=trade,
        )
        if trade.id in self._exit_on_fill and not self._live_entries(trade):
            self._begin_exit(trade, self._exit_on_fill.pop(trade.id))
        return note

    def _after_entry_final(self, trade: Trade, live: _LiveOrder, state: OrderState) -> None:
        if state is not OrderState.COMPLETE:
            if trade.status is TradeStatus.PENDING_ENTRY and trade.entry_quantity == 0:
                if live.cancel_wanted and state is OrderState.CANCELLED:
                    why = "entry cancelled before it filled: exit requested"
                else:
                    why = f"entry {state.value.lower()}: {live.record.message or 'no reason given'}"
                self._cancel_entry(trade, why)
                return
            self._alert(
                AlertCategory.TRADE,
                AlertPriority.INFO,
                f"#{trade.id} {trade.symbol}: entry ended {state.value.lower()} after filling {trade.entry_quantity}",
                trade=trade,
            )
        if self._live_entries(trade):
            return
        pending_exit = self._exit_on_fill.get(trade.id)
        if pending_exit is not None and trade.status is TradeStatus.ACTIVE:
            # The cancel is confirmed (or the entry filled after all): what filled exits now, in one go.
            del self._exit_on_fill[trade.id]
            self._begin_exit(trade, pending_exit)
        elif trade.status is TradeStatus.EXITING and not self._trade_orders.get(trade.id):
            self._drive_exit(trade)  # fills that came in while the trade was exiting go out too

    def _cancel_entry(self, trade: Trade, why: str) -> None:
        trade.closed_at = self._clock.time()
        self._set_status(trade, TradeStatus.CANCELLED, why)
        self._save_trade(trade)
        self._alert(AlertCategory.TRADE, AlertPriority.WARNING, f"#{trade.id} {trade.symbol}: {why}", trade=trade)
        self._remove_trade(trade)

    # ---------------------------------------------------------------- adoption from the books

    def _start_adopt_positions(self, future: Future) -> None:
        self._job("adopt_positions", future, self._broker.position_book)

    def _on_adopt_positions(self, result: JobResult) -> None:
        future: Future = result.context
        if result.error is not None:
            future.set_result(Denied("BROKER_ERROR", result.error.message))
            return
        adopted: list[int] = []
        for position in result.value:
            pos_key = (position.symbol, position.exchange, position.product)
            state = self._keys.get(pos_key)
            if position.quantity == 0 or (state is not None and state.live_orders):
                continue
            managed = sum(
                t.quantity * t.side.sign for t in self._trades.values() if position_key(t) == pos_key and t.status in _EXPOSED
            )
            unmanaged = position.quantity - managed
            if unmanaged == 0 or (managed and (managed > 0) != (unmanaged > 0)):
                continue
            trade = self._adopt_unmanaged(position, abs(unmanaged), MANUAL_STRATEGY, position.average_price or position.ltp)
            if trade is not None:
                adopted.append(trade.id)
        future.set_result(Accepted(f"adopted {len(adopted)} position(s)", trade_ids=tuple(adopted)))

    def _adopt_unmanaged(self, position: Position, quantity: int, strategy: str, price: float) -> Trade | None:
        if position.exchange not in EXCHANGES:
            return None
        try:
            product = Product(position.product)
        except ValueError:
            return None
        if not price or price <= 0:
            return None
        runtime = self._runtime(strategy)
        instrument = self._instruments.get((position.exchange, position.symbol)) or self._remember_instrument(position.exchange, position.symbol, None)
        command = CreateTrade(
            strategy=strategy, symbol=position.symbol, exchange=position.exchange,
            side=Side.LONG if position.quantity > 0 else Side.SHORT, product=product, quantity=quantity, entry_price=price,
        )
        trade = self._new_trade(command, instrument, TradeStatus.PENDING_ENTRY, runtime)
        self._add_trade(trade)
        self._event(trade, "CREATED", "quantity", "", quantity, "adopted from the positionbook", price)
        self._keys.setdefault(position_key(trade), _KeyState()).net = position.quantity
        self._activate(trade, quantity, price)
        return trade

    @staticmethod
    def _needs_order_tags(runtime: _StrategyRuntime) -> bool:
        """A strategy whose lockout (daily loss limit) or fill adoption depends on order tags."""
        return runtime.strategy.portfolio.daily_loss_limit is not None or runtime.strategy.adopt_fills

    def _poll_tradebook(self) -> None:
        """Read the tradebook, and the order book whose strategy tags say whose each fill is."""
        self._schedule(self._settings.adopt_fills_interval, self._poll_tradebook)
        strategies = self._strategies.values()
        watching = any(r.strategy.adopt_fills or r.state.halted for r in strategies)
        probing = self._order_tags is None and any(self._needs_order_tags(r) for r in strategies)
        if not watching and not probing and self._fills_seen is not None:
            return
        if self._tradebook_busy or self._broker_state == "SESSION_EXPIRED":
            return
        self._tradebook_busy = True
        broker = self._broker

        def read() -> tuple[list[Fill], list[OrderInfo]]:
            return broker.trade_book(), broker.order_book()

        self._job("tradebook", None, read)

    def _note_order_tags(self, orders: list[OrderInfo]) -> None:
        """Learn from an order book read whether the server reports strategy tags; warn once if not."""
        if not orders:
            return  # nothing to tell from
        self._order_tags = any(order.strategy for order in orders)
        if self._order_tags or self._untagged_warned:
            return
        names = sorted(r.strategy.name for r in self._strategies.values() if self._needs_order_tags(r))
        if not names:
            return
        self._untagged_warned = True
        self._alert(
            AlertCategory.SYSTEM,
            AlertPriority.WARNING,
            "the OpenAlgo server's order book carries no strategy tags (live mode): positions opened outside tmtool "
            "cannot be attributed to a strategy, so a strategy halted by its daily loss limit is not locked out of "
            f"them and no fill is adopted ({', '.join(names)}); watch the broker yourself",
            key="untagged-orders",
        )

    def _on_tradebook(self, result: JobResult) -> None:
        self._tradebook_busy = False
        if result.error is not None:
            return
        fills, orders = result.value
        self._note_order_tags(orders)
        tags = {order.order_id: order.strategy for order in orders if order.strategy}
        totals: dict[str, tuple[int, float, Fill]] = {}
        for fill in fills:
            quantity, value, first = totals.get(fill.order_id, (0, 0.0, fill))
            totals[fill.order_id] = (quantity + fill.quantity, value + fill.quantity * fill.average_price, first)
        if self._fills_seen is None:
            self._fills_seen = {order_id: q for order_id, (q, _, _) in totals.items()}
            return
        if any(not live.record.order_id for live in self._live.values()):
            return  # an order of ours may be filled but not yet known by id: look again next time
        for order_id, (quantity, value, fill) in totals.items():
            if order_id in self._known_order_ids:
                self._fills_seen[order_id] = quantity
                continue
            new = quantity - self._fills_seen.get(order_id, 0)
            if new <= 0:
                continue
            tag = fill.strategy or tags.get(order_id, "")  # the tradebook has no tags: the order book's say whose it is
            if tag != fill.strategy:
                fill = replace(fill, strategy=tag)
            runtime = self._strategies.get(fill.strategy)
            if runtime is None or not (runtime.state.halted or runtime.strategy.adopt_fills):
                self._fills_seen[order_id] = quantity
                continue
            pos_key = (fill.symbol, fill.exchange, fill.product)
            state = self._keys.get(pos_key)
            if state is not None and state.live_orders:
                continue  # decide once our own orders on the key settle
            self._fills_seen[order_id] = quantity
            self._job("claim_fill", (fill, new, value / quantity if quantity else fill.average_price), self._broker.open_position,
                      strategy=fill.strategy, symbol=fill.symbol, exchange=fill.exchange, product=fill.product)

    def _on_claim_fill(self, result: JobResult) -> None:
        fill, quantity, price = result.context
        if result.error is not None:
            return
        net = int(result.value)
        pos_key = (fill.symbol, fill.exchange, fill.product)
        state = self._keys.setdefault(pos_key, _KeyState())
        if state.live_orders:
            return
        state.net = net
        managed = sum(t.quantity * t.side.sign for t in self._trades.values() if position_key(t) == pos_key and t.status in _EXPOSED)
        unmanaged = net - managed
        direction = 1 if fill.action.upper() == "BUY" else -1
        if unmanaged * direction <= 0:
            return  # the fill closed something (or is already managed): nothing new to claim
        claim = min(abs(unmanaged), quantity)
        runtime = self._strategies.get(fill.strategy)
        if runtime is None:
            return
        position = Position(fill.symbol, fill.exchange, fill.product, direction * claim, price)
        trade = self._adopt_unmanaged(position, claim, fill.strategy, price)
        if trade is None:
            return
        if runtime.state.halted:
            self._alert(
                AlertCategory.PORTFOLIO,
                AlertPriority.CRITICAL,
                f"strategy {fill.strategy} is locked out for today: closing a new {fill.action} {claim} {fill.symbol} (order {fill.order_id})",
                key=f"lockout-{fill.strategy}",
                strategy=fill.strategy,
            )
            self._begin_exit(trade, ExitReason.LOCKOUT)
        else:
            self._alert(
                AlertCategory.TRADE,
                AlertPriority.INFO,
                f"adopted fill {fill.order_id}: {fill.action} {claim} {fill.symbol} as trade #{trade.id} ({fill.strategy})",
                trade=trade,
            )

    # ================================================================== portfolio

    def _update_gates(self, runtime: _StrategyRuntime) -> None:
        strategy, state = runtime.strategy, runtime.state
        risk, funds = strategy.portfolio, strategy.allocated_funds
        floor = -_INF
        for amount in (risk.daily_loss_limit, risk.stop_loss):
            rupees = portfolio_rules.limit_rupees(amount, funds)
            if rupees is not None:
                floor = max(floor, -rupees)
        if state.trailing_armed and state.trailing_lock is not None:
            floor = max(floor, state.trailing_lock)
        ceiling = _INF
        target = portfolio_rules.limit_rupees(risk.target, funds)
        if target is not None:
            ceiling = target
        activation = portfolio_rules.limit_rupees(risk.trailing_activation, funds)
        tracks_peak = activation is not None and portfolio_rules.limit_rupees(risk.trailing_distance, funds) is not None
        if tracks_peak:
            ceiling = min(ceiling, state.peak_pnl if state.trailing_armed else activation)
        # Gates are kept in unrealised terms so the tick path needs no realised lookup.
        runtime.gate_lo = floor - state.realised_pnl
        runtime.gate_hi = ceiling - state.realised_pnl

    def _evaluate_strategy(self, runtime: _StrategyRuntime, ts: float) -> None:
        evaluation = portfolio_rules.evaluate_portfolio(runtime.strategy, runtime.state, runtime.unrealised, ts)
        if evaluation is None:
            return
        before = runtime.state
        runtime.state = evaluation.state
        name = runtime.strategy.name
        if (before.trailing_armed, before.trailing_lock, before.halted) != (
            evaluation.state.trailing_armed, evaluation.state.trailing_lock, evaluation.state.halted,
        ):
            self._store.save_portfolio(runtime.state)
        if evaluation.armed_now:
            self._alert(
                AlertCategory.PORTFOLIO,
                AlertPriority.INFO,
                f"{name}: portfolio trailing lock armed at P&L {evaluation.pnl:+.2f} (lock {_fmt(evaluation.state.trailing_lock)})",
                key=f"lock-armed-{name}",
                strategy=name,
            )
        self._update_gates(runtime)
        self._dirty = True
        if evaluation.exit_reason is None:
            return
        active = [t for t in runtime.trades.values() if t.status is TradeStatus.ACTIVE]
        if evaluation.halt and not before.halted:
            self._store.save_portfolio(runtime.state)
            self._alert(
                AlertCategory.PORTFOLIO,
                AlertPriority.CRITICAL,
                f"{name}: daily loss limit hit at P&L {evaluation.pnl:+.2f}; exiting all and halting until the next trading day",
                key=f"halt-{name}",
                strategy=name,
            )
        elif active:
            self._alert(
                AlertCategory.PORTFOLIO,
                AlertPriority.WARNING,
                f"{name}: {evaluation.exit_reason.value} hit at P&L {evaluation.pnl:+.2f}; exiting {len(active)} trade(s)",
                key=f"portfolio-{evaluation.exit_reason.value}-{name}",
                strategy=name,
            )
        for trade in active:
            self._begin_exit(trade, evaluation.exit_reason)

    def _check_account(self, ts: float) -> None:
        if self._account_halted_on == self._day:
            return
        total = self._account_unrealised + sum(r.state.realised_pnl for r in self._strategies.values())
        verdict = portfolio_rules.evaluate_account(self._account, total)
        if verdict is None:
            return
        self._account_halted_on = self._day
        self._alert(
            AlertCategory.PORTFOLIO,
            AlertPriority.CRITICAL,
            f"account {verdict.exit_reason.value} reached (P&L {verdict.pnl:+.2f}, limit {verdict.limit:.2f}): exiting everything, no new trades today",
            key="account-limit",
        )
        for runtime in self._strategies.values():
            if not runtime.state.halted:
                runtime.state = portfolio_rules.halt(runtime.state, f"account {verdict.exit_reason.value}", ts)
                self._store.save_portfolio(runtime.state)
        for trade in list(self._trades.values()):
            if trade.status is TradeStatus.ACTIVE:
                self._begin_exit(trade, verdict.exit_reason)

    def _exit_many(self, trades: Sequence[Trade], reason: ExitReason) -> list[int]:
        """Exit several trades at once (all orders go out together on the executor's workers)."""
        done = []
        for trade in trades:
            self._begin_exit(trade, reason)
            done.append(trade.id)
        return done

    # ================================================================== calendar

    def _check_calendar(self) -> None:
        now = self._clock.time()
        if now < self._calendar_due:
            return
        self._calendar_due = now + 1.0
        today = trading_day(now)
        if today != self._day:
            self._roll_day(today, now)
        for runtime in list(self._strategies.values()):
            strategy = runtime.strategy
            if strategy.square_off_time is None or self._squared_off.get(strategy.name) == today:
                continue
            if portfolio_rules.square_off_due(strategy, now):
                self._squared_off[strategy.name] = today
                active = [t for t in runtime.trades.values() if t.status is TradeStatus.ACTIVE]
                if active:
                    self._alert(
                        AlertCategory.PORTFOLIO,
                        AlertPriority.INFO,
                        f"{strategy.name}: square-off time {strategy.square_off_time:%H:%M}: exiting {len(active)} trade(s)",
                        key=f"square-off-{strategy.name}",
                        strategy=strategy.name,
                    )
                    self._exit_many(active, ExitReason.SQUARE_OFF_TIME)
        self._update_degraded(now)

    def _roll_day(self, today: date, now: float) -> None:
        self._day = today
        self._closed_today.clear()
        for runtime in self._strategies.values():
            runtime.state = portfolio_rules.roll_day(runtime.state, now)
            runtime.pnl_series.clear()
            self._store.save_portfolio(runtime.state)
            self._update_gates(runtime)
        self._alert(AlertCategory.SYSTEM, AlertPriority.INFO, f"new trading day {today.isoformat()}: daily limits reset", key="day-roll")

    # ================================================================== feed status and staleness

    def _on_feed_status(self, status: FeedStatus) -> None:
        previous = self._feed_status
        self._feed_status = status
        if status.state is not previous.state:
            priority = {
                FeedState.LIVE: AlertPriority.INFO,
                FeedState.RECONNECTING: AlertPriority.WARNING,
                FeedState.POLLING: AlertPriority.WARNING,
                FeedState.DOWN: AlertPriority.CRITICAL,
            }[status.state]
            text = {
                FeedState.LIVE: "price feed live",
                FeedState.RECONNECTING: "price feed lost: reconnecting",
                FeedState.POLLING: "price feed down: polling quotes over REST",
                FeedState.DOWN: "price feed down",
            }[status.state]
            if self._accepting_ticks or status.state is not FeedState.DOWN:
                self._alert(AlertCategory.SYSTEM, priority, text, key="feed-state")
        if status.order_updates != previous.order_updates:
            for key in list(self._live):
                self._poll_order(key, self._poll_interval())
        self._stale = set(status.stale)
        self._update_degraded(self._clock.time())
        self._dirty = True

    def _update_degraded(self, now: float) -> None:
        for key, book in self._books.items():
            degraded = key in self._stale and exchange_open(key[0], now)
            if degraded == book.degraded:
                continue
            book.degraded = degraded
            for trade in book.trades:
                trade.degraded = degraded
            if degraded and self._settings.stale_alerts:
                self._alert(
                    AlertCategory.SYSTEM,
                    AlertPriority.WARNING,
                    f"{key[0]}:{key[1]} prices are stale during market hours: {len(book.trades)} trade(s) degraded, trailing paused",
                    key=f"stale-{key[0]}:{key[1]}",
                )
            self._dirty = True

    # ================================================================== broker session

    def _on_auth_error(self, message: str) -> None:
        if self._broker_state == "SESSION_EXPIRED":
            return
        self._broker_state = "SESSION_EXPIRED"
        self._broker_message = message
        self._auth_probe_step = 0
        self._alert(
            AlertCategory.SYSTEM,
            AlertPriority.CRITICAL,
            "OpenAlgo session expired or API key refused: log in to OpenAlgo again. Exits are queued until it works.",
            key="broker-session",
        )
        self._schedule(self._settings.auth_probe_backoff[0], self._probe_session)

    def _probe_session(self) -> None:
        if self._broker_state != "SESSION_EXPIRED":
            return
        self._job("ping", None, self._broker.ping)

    def _on_ping(self, result: JobResult) -> None:
        if result.error is None:
            self._broker_ok()
            return
        if self._broker_state != "SESSION_EXPIRED":
            if result.error.kind == "auth":
                self._on_auth_error(result.error.message)
            return
        backoff = self._settings.auth_probe_backoff
        self._auth_probe_step = min(self._auth_probe_step + 1, len(backoff) - 1)
        self._schedule(backoff[self._auth_probe_step], self._probe_session)

    def _broker_ok(self) -> None:
        was_expired = self._broker_state == "SESSION_EXPIRED"
        self._broker_state, self._broker_message = "OK", ""
        self._dirty = True
        if not was_expired:
            return
        self._alert(AlertCategory.SYSTEM, AlertPriority.INFO, "OpenAlgo session is back: resuming queued exits", key="broker-session")
        parked = [tid for tid, why in self._exit_pending.items() if why == "parked"]
        for trade_id in parked:
            del self._exit_pending[trade_id]
            trade = self._trades.get(trade_id)
            if trade is not None:
                self._drive_exit(trade)

    # ================================================================== reconciliation

    def _periodic_reconcile(self) -> None:
        self._schedule(self._settings.reconcile_interval, self._periodic_reconcile)
        if self._broker_state != "SESSION_EXPIRED":
            self._job("reconcile", (None, self._generations(), 0), self._broker.position_book)

    def _generations(self) -> dict[PositionKey, int]:
        return {k: state.generation for k, state in self._keys.items()}

    def _on_reconcile(self, result: JobResult) -> None:
        future, generations, rounds = result.context
        if result.error is not None:
            if result.error.kind != "auth":
                self._alert(
                    AlertCategory.SYSTEM,
                    AlertPriority.WARNING,
                    f"reconciliation failed ({result.error.kind}): {result.error.message}",
                    key="reconcile-error",
                )
            if future is not None:
                future.set_result(Denied("BROKER_ERROR", result.error.message))
            return
        if self._broker_state != "OK":
            self._broker_ok()
        found, changed_meanwhile = self._apply_positions(result.value, startup=False, generations=generations)
        if changed_meanwhile and rounds < 3:
            # A position changed while the book was read: those keys were skipped; read again.
            self._job("reconcile", (future, self._generations(), rounds + 1), self._broker.position_book)
            return
        if future is not None:
            future.set_result(Accepted(f"reconciled: {found} discrepancy(ies)"))

    def _apply_positions(
        self, positions: list[Position], startup: bool, generations: dict[PositionKey, int] | None = None
    ) -> tuple[int, bool]:
        """Take a positionbook read into the position cache and reconcile trades with it.

        Keys that changed since the read was requested (``generations``) are left
        alone: the read may predate those fills.  Keys with exits in flight are not
        reconciled (their fills may or may not be in the read); the cache takes the
        read only for keys with no order of ours live at all.  An entry of ours that
        filled unseen can only make the broker hold more, so it never shrinks a trade.
        """
        book: dict[PositionKey, int] = {}
        for position in positions:
            pos_key = (position.symbol, position.exchange, position.product)
            book[pos_key] = book.get(pos_key, 0) + int(position.quantity)
        generations = generations or {}
        changed = {k for k, state in self._keys.items() if generations and state.generation != generations.get(k, 0)}
        busy = changed | {k for k, state in self._keys.items() if state.exits_in_flight}
        for pos_key, state in self._keys.items():
            if pos_key not in changed and not state.live_orders:
                state.net = book.get(pos_key, 0)
        discrepancies = reconcile_positions(list(self._trades.values()), book, busy)
        for discrepancy in discrepancies:
            kind = discrepancy.kind
            priority = AlertPriority.INFO if kind == "LARGER" else AlertPriority.WARNING
            self._alert(AlertCategory.SYSTEM, priority, ("at start: " if startup else "") + discrepancy.text,
                        key=f"reconcile-{kind}-{':'.join(discrepancy.key)}")
            for change in discrepancy.changes:
                trade = self._trades.get(change.trade_id)
                if trade is None:
                    continue
                if change.new_quantity == 0:
                    self._close_externally(trade, f"broker net {discrepancy.broker_quantity} on reconciliation")
                else:
                    self._shrink(trade, change.new_quantity, f"broker net {discrepancy.broker_quantity} on reconciliation")
        return len(discrepancies), bool(changed)

    # ================================================================== commands

    def _on_command(self, item: _Command) -> None:
        command, future = item.command, item.future
        try:
            handler = self._COMMANDS.get(type(command))
            if handler is None:
                future.set_result(Denied("UNKNOWN_COMMAND", f"{type(command).__name__} is not an engine command"))
                return
            handler(self, command, future)
        except Exception as exc:
            log.exception("command %s failed", type(command).__name__)
            if not future.done():
                future.set_result(Denied("INTERNAL_ERROR", f"{type(exc).__name__}: {exc}"))

    def _open_trade(self, trade_id: int, future: Future) -> Trade | None:
        trade = self._trades.get(trade_id)
        if trade is None:
            future.set_result(Denied("UNKNOWN_TRADE", f"no open trade #{trade_id}"))
        return trade

    def _cmd_create(self, command: CreateTrade, future: Future) -> None:
        self._create_trade(command, future)

    def _cmd_modify(self, command: ModifyTrade, future: Future) -> None:
        trade = self._open_trade(command.trade_id, future)
        if trade is None:
            return
        if trade.status not in (TradeStatus.ACTIVE, TradeStatus.PENDING_ENTRY):
            future.set_result(Denied("TRADE_NOT_ACTIVE", f"trade #{trade.id} is {trade.status.value}"))
            return
        self._sync_price(trade)
        denial = validate_modify_trade(command, trade)
        if denial is not None:
            future.set_result(Denied(denial.code, denial.message))
            return
        if trade.status is TradeStatus.PENDING_ENTRY:
            plan = self._entry_plans.get(trade.id)
            if plan is None:
                future.set_result(Denied("TRADE_NOT_ACTIVE", f"trade #{trade.id} has no pending entry plan"))
                return
            changes = {name: getattr(command, name) for name in ("stop_loss", "target", "trailing", "partial_targets") if getattr(command, name) is not UNSET}
            plan.command = replace(plan.command, **changes)
            future.set_result(Accepted("levels set for when the entry fills", trade_id=trade.id))
            return
        now = self._clock.time()
        if command.stop_loss is not UNSET:
            new = None if command.stop_loss is None else round_stop(float(command.stop_loss), trade.side, trade.tick_size)  # type: ignore[arg-type]
            self._event(trade, "LEVEL", "stop_loss", trade.stop_loss, new, "manual")
            trade.stop_loss = new
        if command.target is not UNSET:
            new = None if command.target is None else round_target(float(command.target), trade.side, trade.tick_size)  # type: ignore[arg-type]
            self._event(trade, "LEVEL", "target", trade.target, new, "manual")
            trade.target = new
        if command.trailing is not UNSET:
            new_stop = rules.retrail(trade, command.trailing)  # type: ignore[arg-type]
            self._event(trade, "LEVEL", "trailing_stop", trade.trailing_stop, new_stop, "manual")
            trade.trailing = command.trailing  # type: ignore[assignment]
            trade.trailing_stop = new_stop
        if command.partial_targets is not UNSET:
            partials = command.partial_targets or ()
            levels = rules.initial_levels(
                trade.side, trade.entry_price, TradeRisk(partial_targets=partials), trade.tick_size, trade.quantity, trade.lot_size  # type: ignore[arg-type]
            )
            self._event(trade, "LEVEL", "partial_levels", len(trade.partial_levels), len(levels.partial_levels), "manual")
            trade.partial_levels = levels.partial_levels
        trade.updated_at = now
        self._save_trade(trade)
        book = self._books.get(trade.instrument_key)
        if book is not None:
            self._refresh_band(book)
        self._alert(
            AlertCategory.TRADE,
            AlertPriority.INFO,
            f"#{trade.id} {trade.symbol}: levels changed (stop {_fmt(trade.effective_stop)}, target {_fmt(trade.target)})",
            key=f"levels-{trade.id}",
            trade=trade,
        )
        future.set_result(Accepted("levels changed", trade_id=trade.id))
        if book is not None and book.price > 0:
            self._evaluate_book(book, book.price, now)

    def _cmd_exit(self, command: ExitTrade, future: Future) -> None:
        trade = self._open_trade(command.trade_id, future)
        if trade is None:
            return
        if trade.status is TradeStatus.EXITING and self._trade_orders.get(trade.id):
            future.set_result(Denied("EXIT_IN_FLIGHT", f"trade #{trade.id} already has an exit order in flight"))
            return
        outcome = self._begin_exit(trade, command.reason)
        future.set_result(Accepted(outcome, trade_id=trade.id))

    def _cmd_exit_trades(self, command: ExitTrades, future: Future) -> None:
        trades = [self._trades[t] for t in command.trade_ids if t in self._trades]
        missing = [t for t in command.trade_ids if t not in self._trades]
        done = self._exit_many(trades, command.reason)
        message = f"exiting {len(done)} trade(s)" + (f"; not open: {missing}" if missing else "")
        future.set_result(Accepted(message, trade_ids=tuple(done)))

    def _cmd_exit_all(self, command: ExitAll, future: Future) -> None:
        if command.strategy is not None and command.strategy not in self._strategies:
            future.set_result(Denied("UNKNOWN_STRATEGY", f"no strategy named {command.strategy!r}"))
            return
        trades = [t for t in self._trades.values() if command.strategy is None or t.strategy == command.strategy]
        done = self._exit_many(trades, command.reason)
        scope = f"strategy {command.strategy}" if command.strategy else "every strategy"
        self._alert(AlertCategory.PORTFOLIO, AlertPriority.WARNING, f"{command.reason.value}: exiting {len(done)} trade(s) of {scope}", key=f"exit-all-{command.strategy}")
        future.set_result(Accepted(f"exiting {len(done)} trade(s)", trade_ids=tuple(done)))

    def _cmd_pause(self, command: PauseTrade, future: Future) -> None:
        self._set_paused(command.trade_id, True, future)

    def _cmd_resume(self, command: ResumeTrade, future: Future) -> None:
        self._set_paused(command.trade_id, False, future)

    def _set_paused(self, trade_id: int, paused: bool, future: Future) -> None:
        trade = self._open_trade(trade_id, future)
        if trade is None:
            return
        if trade.paused != paused:
            trade.paused = paused
            self._event(trade, "STATUS", "paused", not paused, paused)
            self._save_trade(trade)
            book = self._books.get(trade.instrument_key)
            if book is not None:
                self._refresh_band(book)
                if not paused and book.price > 0:
                    self._evaluate_book(book, book.price, self._clock.time())
        future.set_result(Accepted("paused" if paused else "resumed", trade_id=trade.id))

    def _cmd_save_strategy(self, command: SaveStrategy, future: Future) -> None:
        strategy = command.strategy
        denial = validate_strategy(strategy)
        if denial is not None:
            future.set_result(Denied(denial.code, denial.message))
            return
        runtime = self._strategies.get(strategy.name)
        if runtime is None:
            runtime = self._strategies[strategy.name] = _StrategyRuntime(strategy, portfolio_rules.new_day_state(strategy.name, self._clock.time()))
            self._store.save_portfolio(runtime.state)
        else:
            runtime.strategy = strategy
        self._store.save_strategy(strategy)
        self._update_gates(runtime)
        self._dirty = True
        future.set_result(Accepted(f"strategy {strategy.name} saved"))

    def _cmd_delete_strategy(self, command: DeleteStrategy, future: Future) -> None:
        runtime = self._strategies.get(command.name)
        if runtime is None:
            future.set_result(Denied("UNKNOWN_STRATEGY", f"no strategy named {command.name!r}"))
            return
        if command.name == MANUAL_STRATEGY:
            future.set_result(Denied("PROTECTED", "the manual strategy holds hand-entered trades and cannot be deleted"))
            return
        open_trades = list(runtime.trades.values())
        if open_trades and command.open_trades == "exit":
            runtime.deleting = True
            done = self._exit_many(open_trades, ExitReason.STRATEGY_DELETED)
            future.set_result(Accepted(f"exiting {len(done)} trade(s); the strategy is deleted once they close", trade_ids=tuple(done)))
            return
        if open_trades and command.open_trades == "move":
            target = self._strategies.get(command.move_to or "")
            if target is None or target is runtime:
                future.set_result(Denied("UNKNOWN_STRATEGY", f"cannot move trades to {command.move_to!r}"))
                return
            for trade in open_trades:
                runtime.trades.pop(trade.id, None)
                trade.strategy = target.strategy.name
                target.trades[trade.id] = trade
                self._event(trade, "STATUS", "strategy", command.name, target.strategy.name, "strategy deleted")
                self._save_trade(trade)
                book = self._books.get(trade.instrument_key)
                if book is not None:
                    self._rebuild_book(book)
            self._recompute_unrealised(target)
        elif open_trades:
            future.set_result(
                Denied("HAS_OPEN_TRADES", f"strategy {command.name!r} has {len(open_trades)} open trade(s): exit or move them")
            )
            return
        self._finish_strategy_delete(runtime)
        future.set_result(Accepted(f"strategy {command.name} deleted"))

    def _finish_strategy_delete(self, runtime: _StrategyRuntime) -> None:
        name = runtime.strategy.name
        self._strategies.pop(name, None)
        self._store.delete_strategy(name)
        self._dirty = True

    def _cmd_acknowledge(self, command: AcknowledgeAlerts, future: Future) -> None:
        changed = self._alerts.acknowledge(command.alert_ids, command.dismiss)
        for alert in changed:
            self._store.save_alert(alert)
        self._dirty = True
        future.set_result(Accepted(f"{len(changed)} alert(s) acknowledged"))

    def _cmd_reconcile(self, command: Reconcile, future: Future) -> None:
        self._job("reconcile", (future, self._generations(), 0), self._broker.position_book)

    _COMMANDS: dict[type, Callable[..., None]] = {
        CreateTrade: _cmd_create,
        ModifyTrade: _cmd_modify,
        ExitTrade: _cmd_exit,
        ExitTrades: _cmd_exit_trades,
        ExitAll: _cmd_exit_all,
        PauseTrade: _cmd_pause,
        ResumeTrade: _cmd_resume,
        SaveStrategy: _cmd_save_strategy,
        DeleteStrategy: _cmd_delete_strategy,
        AcknowledgeAlerts: _cmd_acknowledge,
        Reconcile: _cmd_reconcile,
    }

    # ================================================================== jobs

    def _job(self, kind: str, context: Any, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        assert self._executor is not None
        self._executor.run(kind, context, fn, *args, **kwargs)

    def _on_job(self, result: JobResult) -> None:
        if result.error is not None and result.error.kind == "auth" and result.kind not in ("order_sent", "ping"):
            self._on_auth_error(result.error.message)
        handler = self._JOBS.get(result.kind)
        if handler is not None:
            handler(self, result)

    _JOBS: dict[str, Callable[..., None]] = {
        "order_sent": _on_order_sent,
        "order_status": _on_order_status,
        "order_lookup": _on_order_lookup,
        "approval_lookup": _on_approval_lookup,
        "exit_position": _on_exit_position,
        "reconcile": _on_reconcile,
        "ping": _on_ping,
        "prepare_entry": _on_prepare_entry,
        "adopt_positions": _on_adopt_positions,
        "tradebook": _on_tradebook,
        "claim_fill": _on_claim_fill,
        "modify_order": _on_modify_order,
        "cancel_order": _on_cancel_order,
    }

    # ================================================================== instruments

    def _remember_instrument(self, exchange: str, symbol: str, info: SymbolInfo | None) -> Instrument:
        override = self._settings.instruments.get(f"{exchange}:{symbol}")
        if override is not None:
            instrument = override
        else:
            tick = info.tick_size if info is not None and info.tick_size > 0 else self._settings.default_tick_size
            lot = info.lot_size if info is not None and info.lot_size > 0 else 1
            freeze = info.freeze_quantity if info is not None and info.freeze_quantity else None
            if freeze is None and exchange in ("NFO", "BFO"):
                freeze = self._settings.freeze_quantity_for(symbol)
            instrument = Instrument(symbol=symbol, exchange=exchange, tick_size=tick, lot_size=lot, freeze_quantity=freeze)
        self._instruments[(exchange, symbol)] = instrument
        return instrument

    def _instrument_for(self, trade: Trade) -> Instrument:
        cached = self._instruments.get(trade.instrument_key)
        if cached is not None:
            return cached
        instrument = self._remember_instrument(trade.exchange, trade.symbol, None)
        if instrument.lot_size == 1 and trade.lot_size > 1:
            instrument = replace(instrument, lot_size=trade.lot_size, tick_size=trade.tick_size)
            self._instruments[trade.instrument_key] = instrument
        return instrument

    # ================================================================== housekeeping timers

    def _check_store(self) -> None:
        self._schedule(self._settings.store_check_interval, self._check_store)
        status = self._store.status()
        self._db_pending = status.pending
        if status.state != self._db_state:
            previous, self._db_state = self._db_state, status.state
            if status.state == "MEMORY_ONLY":
                self._alert(
                    AlertCategory.SYSTEM,
                    AlertPriority.CRITICAL,
                    f"database not writing ({status.last_error or 'unknown error'}): monitoring continues in memory, "
                    f"{status.pending} change(s) queued",
                    key="database",
                )
            elif previous == "MEMORY_ONLY":
                self._alert(AlertCategory.SYSTEM, AlertPriority.INFO, "database writing again: queued changes replayed", key="database")
            self._dirty = True

    def _persist_prices(self) -> None:
        self._schedule(self._settings.ltp_persist_interval, self._persist_prices)
        for book in self._books.values():
            if book.price <= 0:
                continue
            for trade in book.trades:
                if trade.last_price != book.price:
                    trade.last_price = book.price
                    self._save_trade(trade)

    def _sample_pnl(self) -> None:
        self._schedule(self._settings.pnl_sample_interval, self._sample_pnl)
        for runtime in self._strategies.values():
            runtime.pnl_series.append(round(runtime.state.realised_pnl + runtime.unrealised, 2))
            self._track_extremes(runtime)
            if runtime.extremes_unsaved:
                runtime.extremes_unsaved = False
                self._store.save_portfolio(runtime.state)
        self._dirty = True

    def _track_extremes(self, runtime: _StrategyRuntime) -> None:
        """Fold the running P&L into the day's peak and trough.

        The tick path evaluates a strategy only when its P&L leaves the band its
        limits allow, so between evaluations the peak and trough would lag; this runs
        with every snapshot (at most ``snapshot_hz``) and P&L sample instead, off the
        tick path.  Limits that depend on the peak (an armed trailing lock) gate the
        tick path at the peak, so they never wait for this."""
        state = runtime.state
        pnl = state.realised_pnl + runtime.unrealised
        if state.trough_pnl <= pnl <= state.peak_pnl:
            return
        runtime.state = replace(state, peak_pnl=max(state.peak_pnl, pnl), trough_pnl=min(state.trough_pnl, pnl))
        runtime.extremes_unsaved = True
        self._update_gates(runtime)

    # ================================================================== alerts

    def _alert(
        self,
        category: AlertCategory,
        priority: AlertPriority,
        text: str,
        key: str = "",
        trade: Trade | None = None,
        strategy: str | None = None,
    ) -> Alert:
        alert = self._alerts.raise_alert(
            self._clock.time(),
            category,
            priority,
            text,
            key=key,
            trade_id=trade.id if trade is not None else None,
            strategy=trade.strategy if trade is not None else strategy,
        )
        self._store.save_alert(alert)
        if trade is not None:
            self._event(trade, "ALERT", "", "", text, priority.value)
        log_level = {AlertPriority.INFO: logging.INFO, AlertPriority.WARNING: logging.WARNING, AlertPriority.CRITICAL: logging.CRITICAL}
        log.log(log_level[priority], "%s", text)
        for sink in self._sinks:
            try:
                sink.publish(alert)
            except Exception:  # a notifier must never stop the monitor
                log.exception("alert sink %r failed", sink)
        self._dirty = True
        return alert

    # ================================================================== snapshots

    def _publish(self, force: bool = False, running: bool = True) -> None:
        if not (self._dirty or force):
            return
        now_mono = self._clock.monotonic()
        if not force and now_mono - self._last_publish < 1.0 / self._settings.snapshot_hz:
            return
        self._last_publish = now_mono
        self._dirty = False
        self._version += 1
        snapshot = self._build_snapshot(running)
        self._snapshot = snapshot
        for listener in self._listeners:
            try:
                listener(snapshot)
            except Exception:
                log.exception("snapshot listener failed")

    def _empty_snapshot(self) -> EngineSnapshot:
        return EngineSnapshot(
            version=0,
            ts=self._clock.time(),
            trades=(),
            strategies=(),
            system=SystemView(
                engine_running=False, feed_state=FeedState.DOWN, last_tick_age=None, stale_symbols=(), broker_state="UNKNOWN",
                broker_message="", db_state="OK", db_pending=0, server_mode="", ticks_processed=0, ticks_refused=0,
                simulated=self._settings.simulated,
            ),
            alerts=(),
        )

    def _build_snapshot(self, running: bool) -> EngineSnapshot:
        now = self._clock.time()
        for runtime in self._strategies.values():
            self._track_extremes(runtime)
        trades = [self._trade_view(t) for t in self._trades.values()]
        trades.sort(key=lambda v: v.id)
        trades.extend(self._trade_view(t) for t in self._closed_today)
        strategies = tuple(self._strategy_view(r) for r in sorted(self._strategies.values(), key=lambda r: r.strategy.name))
        account_pnl = sum(v.total_pnl for v in strategies)
        last_tick = max((b.ts for b in self._books.values() if b.ts), default=None)
        system = SystemView(
            engine_running=running and self._running,
            feed_state=self._feed_status.state,
            last_tick_age=None if last_tick is None else max(0.0, now - last_tick),
            stale_symbols=tuple(sorted(self._stale)),
            broker_state=self._broker_state,
            broker_message=self._broker_message,
            db_state=self._db_state,
            db_pending=self._db_pending,
            server_mode=self._server_mode,
            ticks_processed=self._ticks_processed,
            ticks_refused=self._tick_filter.refused_total,
            simulated=self._settings.simulated,
        )
        return EngineSnapshot(
            version=self._version,
            ts=now,
            trades=tuple(trades),
            strategies=strategies,
            system=system,
            alerts=self._alerts.recent(self._settings.recent_alerts),
            account_pnl=account_pnl,
        )

    def _trade_view(self, trade: Trade) -> TradeView:
        final = trade.status.is_final
        ltp = trade.last_price if final else self._price_of(trade)
        unrealised = 0.0 if final else trade.unrealised_pnl(ltp)
        pnl = trade.realised_pnl + unrealised
        basis = trade.entry_price * (trade.entry_quantity or trade.quantity)
        stop = trade.effective_stop
        distance = None
        if stop is not None and ltp > 0 and not final:
            distance = (ltp - stop) * trade.side.sign
        awaiting = any(
            self._live[k].record.state is OrderState.AWAITING_APPROVAL for k in self._trade_orders.get(trade.id, ()) if k in self._live
        )
        return TradeView(
            id=trade.id, strategy=trade.strategy, symbol=trade.symbol, exchange=trade.exchange, product=trade.product,
            side=trade.side, quantity=trade.quantity, entry_quantity=trade.entry_quantity, entry_price=trade.entry_price,
            ltp=ltp, stop_loss=trade.stop_loss, target=trade.target, trailing_stop=trade.trailing_stop,
            effective_stop=stop, trailing=trade.trailing, partial_levels=trade.partial_levels, pnl=pnl,
            unrealised_pnl=unrealised, realised_pnl=trade.realised_pnl, pnl_percent=(pnl / basis * 100.0) if basis else 0.0,
            distance_to_stop=distance, high_watermark=trade.high_watermark, low_watermark=trade.low_watermark,
            status=trade.status, paused=trade.paused, degraded=trade.degraded, exit_reason=trade.exit_reason,
            exit_price=trade.exit_price, entry_order_id=trade.entry_order_id, exit_order_ids=trade.exit_order_ids,
            awaiting_approval=awaiting, entry_price_type=trade.entry_price_type, opened_at=trade.opened_at,
            closed_at=trade.closed_at, tick_size=trade.tick_size, lot_size=trade.lot_size,
        )

    def _strategy_view(self, runtime: _StrategyRuntime) -> StrategyView:
        strategy, state = runtime.strategy, runtime.state
        risk, funds = strategy.portfolio, strategy.allocated_funds
        stop = portfolio_rules.limit_rupees(risk.stop_loss, funds)
        target = portfolio_rules.limit_rupees(risk.target, funds)
        daily = portfolio_rules.limit_rupees(risk.daily_loss_limit, funds)
        total = state.realised_pnl + runtime.unrealised
        return StrategyView(
            name=strategy.name,
            strategy=strategy,
            realised_pnl=state.realised_pnl,
            unrealised_pnl=runtime.unrealised,
            total_pnl=total,
            pnl_series=tuple(runtime.pnl_series),
            open_positions=sum(1 for t in runtime.trades.values() if t.status.is_open),
            max_open_positions=strategy.max_open_positions,
            trades_today=state.trades_today,
            portfolio_stop=-stop if stop is not None else None,
            portfolio_target=target,
            trailing_lock=state.trailing_lock,
            trailing_armed=state.trailing_armed,
            peak_pnl=state.peak_pnl,
            daily_loss_used=max(0.0, -total),
            daily_loss_limit=daily,
            halted=state.halted,
            halt_reason=state.halt_reason,
            funds_used=sum(t.entry_price * t.quantity for t in runtime.trades.values() if t.status in _EXPOSED),
            allocated_funds=funds,
        )


def _make_trade_copier() -> Callable[[Trade], Trade]:
    """A shallow copy of a ``Trade`` about fifteen times faster than ``copy.copy`` (which goes
    through ``__reduce_ex__``); generated from the dataclass fields so it follows the model."""
    names = [f.name for f in fields(Trade)]
    lines = ["def copy_trade(trade, _new=object.__new__, _cls=Trade):", "    clone = _new(_cls)"]
    lines += [f"    clone.{name} = trade.{name}" for name in names]
    lines.append("    return clone")
    namespace: dict[str, Any] = {"Trade": Trade}
    exec("\n".join(lines), namespace)  # noqa: S102 - source built above from the dataclass's own field names
    return namespace["copy_trade"]


_copy_trade = _make_trade_copier()


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
