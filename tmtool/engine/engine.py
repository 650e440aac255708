"""The live monitor: one engine thread owns every trade and portfolio.

``Engine`` only wires the parts together and offers the public API; no trade
logic lives here.  The parts, each in its own module (arrows point downwards;
an import-linter contract in pyproject.toml pins them):

    engine      the wiring and the public API (start, pump, stop, submit, snapshot, ...)
    loop        the inbox and the engine thread: dispatch, timers, housekeeping
    commands    the command handlers;  handlers: job results and order events to controllers
    publisher   immutable snapshots and their listeners;  recovery: load and resume at start
    watch       where a tick enters: tick filter, quiet band, stop/target/trailing rules, feed health
    reconciler  positionbook reconciliation, tradebook attribution (lockout, adopted fills), the session
    risk        portfolio and account limits, square-off, the day roll
    entries     new trades, adopted orders and positions, activation at the fill
    exits       where exit decisions are carried out: capacity, retries, escalation, partial exits
    orders      the order manager: where orders leave, and their ledger rows, fills and final states
    books       open trades by instrument and strategy: quiet bands, running P&L
    positions   the broker position cache per (symbol, exchange, product)
    journal     where state is persisted: trade rows, trade events, alerts
    state       the shared engine-thread state and per-trade records;  timers: the timer heap
    executor    broker and disk work off the engine thread (typed ``JobKind`` results)

Everything else — the feed's threads, the executor's workers, the TUI, the
control API — only puts messages on the engine's inbox and reads the immutable
snapshots it publishes.

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

Timers (polls, retries, probes, reconciliation) run on the injected clock's
monotonic time; trading-calendar events (square-off, day roll, trading hours)
and every decision use its wall time.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from typing import Any, Callable, Sequence

from tmtool.clock import Clock
from tmtool.domain.broker import BrokerError
from tmtool.domain.commands import Denied
from tmtool.domain.models import AccountLimits, Alert, AlertCategory, AlertPriority, Instrument, Strategy, Tick, Trade, TradeEvent
from tmtool.engine.books import TradeIndex
from tmtool.engine.commands import CommandHandlers
from tmtool.engine.entries import EntryController
from tmtool.engine.executor import Executor, JobRunner
from tmtool.engine.exits import ExitController
from tmtool.engine.handlers import JobRouter, OrderEventRouter
from tmtool.engine.journal import Journal
from tmtool.engine.loop import STOP, Call, CommandMessage, EngineLoop
from tmtool.engine.orders import OrderManager
from tmtool.engine.ports import AlertSink, Broker, Feed, FeedCallbacks, Store, TickRecorder
from tmtool.engine.positions import PositionCache
from tmtool.engine.publisher import SnapshotPublisher
from tmtool.engine.reconciler import BrokerSession, Reconciler
from tmtool.engine.recovery import Recovery
from tmtool.engine.risk import RiskMonitor
from tmtool.engine.settings import EngineSettings
from tmtool.engine.snapshot import EngineSnapshot
from tmtool.engine.state import EngineState
from tmtool.engine.watch import Watch

log = logging.getLogger(__name__)


def _thread_pool_executor(broker: Broker, store: Store, post: Callable[[object], None], settings: EngineSettings) -> JobRunner:
    return Executor(broker, store, post, settings.executor_workers, settings.max_orders_per_second)


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
        tick_recorder: TickRecorder | None = None,
    ) -> None:
        self._executor_factory = executor_factory or _thread_pool_executor
        self._thread: threading.Thread | None = None
        state = self._state = EngineState(
            store=store, broker=broker, feed=feed, clock=clock, settings=settings,
            account=account if account != AccountLimits() else settings.account,
        )
        journal = self._journal = Journal(state, alert_sinks)
        positions = PositionCache(state)
        index = TradeIndex(state, positions)
        orders = self._orders = OrderManager(state, positions, journal)
        exits = ExitController(state, journal, positions, index, orders)
        entries = self._entries = EntryController(state, journal, positions, index, orders, exits)
        risk = self._risk = RiskMonitor(state, journal, exits)
        session = BrokerSession(state, journal, exits)
        reconciler = self._reconciler = Reconciler(state, journal, positions, orders, exits, entries, session)
        watch = self._watch = Watch(state, journal, index, orders, exits, risk)
        watch.recorder = tick_recorder  # every routed tick, refused ones marked, for replay
        orders.emit = OrderEventRouter(state, entries, exits, risk, session).apply
        jobs = JobRouter(orders, exits, entries, reconciler, session)
        commands = CommandHandlers(state, journal, index, orders, exits, entries, risk, watch, reconciler)
        self._recovery = Recovery(state, journal, index, orders, exits, reconciler, strategies)
        self._publisher = SnapshotPublisher(state, journal, orders, positions)
        self._loop = EngineLoop(state, journal, self._publisher, watch, orders, risk, commands, jobs)
        self._inbox = self._loop.inbox
        self.process_tick = watch.process_tick  # the hot path without a forwarding call

    # ================================================================== public API

    @property
    def settings(self) -> EngineSettings:
        return self._state.settings

    @property
    def running(self) -> bool:
        return self._state.running

    def start(self, threaded: bool = True) -> None:
        """Load, reconcile with the positionbook, resume unfinished exits, start monitoring.

        ``threaded=False`` starts no engine thread: the caller drives the engine with
        ``pump()`` (the deterministic simulation tests do, with a manual clock).
        """
        state = self._state
        if state.running:
            raise RuntimeError("the engine is already running")
        loaded = self._recovery.load()
        self._risk.restore_kill_switch(loaded.settings)
        state.restore_retired_pnl(loaded.settings)
        state.executor = self._executor_factory(state.broker, state.store, self._inbox.put, state.settings)
        restored = self._recovery.restore_orders(loaded.open_orders)
        state.running = True
        state.accepting_ticks = True
        state.feed.start(FeedCallbacks(on_tick=self._loop.on_feed_tick, on_order_update=self._inbox.put, on_status=self._inbox.put))
        for key in state.books:
            state.feed.subscribe(*key)
        self._recovery.resume(restored)
        settings = state.settings
        state.schedule(settings.reconcile_interval, self._reconciler.periodic_reconcile)
        state.schedule(settings.store_check_interval, self._journal.check_store)
        state.schedule(settings.ltp_persist_interval, self._watch.persist_prices)
        state.schedule(settings.pnl_sample_interval, self._risk.sample_pnl)
        state.schedule(settings.adopt_fills_interval, self._reconciler.poll_tradebook)
        self._journal.alert(AlertCategory.SYSTEM, AlertPriority.INFO, f"tmtool started: {self._publisher.summary()}", key="lifecycle")
        self._publisher.publish(force=True)
        if threaded:
            self._thread = threading.Thread(target=self._loop.run, name="tmtool-engine", daemon=True)
            self._thread.start()

    def pump(self, limit: int | None = None) -> int:
        """Handle what is queued (at most ``limit`` messages), then run due timers, the
        calendar and the snapshot; returns how many messages were handled.

        Only for an engine started with ``threaded=False``: the caller's thread is the
        engine thread.
        """
        if self._thread is not None:
            raise RuntimeError("pump() drives an engine started with threaded=False")
        return self._loop.pump(limit)

    def next_timer_due(self) -> float | None:
        """When (on the clock's monotonic scale) the earliest timer falls due; None if none."""
        return self._state.timers.next_due()

    def stop(self, timeout: float = 10.0) -> str:
        """Stop monitoring: no more ticks, finish bookkeeping, flush the store; returns a summary line."""
        state = self._state
        if not state.running:
            return self._publisher.summary()
        if self._thread is None:  # driven by pump(): shut down on the caller's thread
            state.accepting_ticks = False
            state.stopping = True
            done: Future = Future()
            self._shutdown(done)
            state.running = False
            self._loop.refuse_leftovers()
            state.feed.stop()
            if state.executor is not None:
                state.executor.shutdown(wait=False)
            state.store.flush(timeout=max(0.1, timeout / 2))
            return done.result()
        state.accepting_ticks = False
        state.stopping = True  # new commands are refused from here on
        done = Future()
        self._inbox.put(Call(self._shutdown, (done,)))
        try:
            summary = done.result(timeout=timeout)
        except Exception:
            summary = self._publisher.summary()
        self._inbox.put(STOP)
        self._thread.join(timeout=max(0.1, timeout / 2))
        state.running = False
        self._loop.refuse_leftovers()
        try:
            state.feed.stop()
        except Exception:  # the feed's own threads: nothing more to do at shutdown
            log.exception("feed stop failed")
        if state.executor is not None:
            state.executor.shutdown(wait=False)
        state.store.flush(timeout=max(0.1, timeout / 2))
        return summary

    def _shutdown(self, done: Future) -> None:
        journal = self._journal
        journal.save_open_trades()
        summary = self._publisher.summary()
        journal.alert(AlertCategory.SYSTEM, AlertPriority.INFO, f"tmtool stopping: {summary}", key="lifecycle")
        self._publisher.publish(force=True, running=False)
        done.set_result(summary)

    def submit(self, command: object) -> Future:
        """Enqueue a command; the Future resolves to ``Accepted`` or ``Denied`` on the engine thread."""
        future: Future = Future()
        if not self._state.running or self._state.stopping:
            future.set_result(Denied("NOT_RUNNING", "the engine is not running"))
            return future
        self._inbox.put(CommandMessage(command, future))
        return future

    def adopt_positions(self) -> Future:
        """Manage every positionbook position not yet covered by a trade (strategy ``manual``)."""
        future: Future = Future()
        if not self._state.running or self._state.stopping:
            future.set_result(Denied("NOT_RUNNING", "the engine is not running"))
            return future
        self._inbox.put(Call(self._entries.start_adopt_positions, (future,)))
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

        if not self._state.running or self._state.stopping:
            future.set_exception(RuntimeError("the engine is not running"))
        else:
            self._inbox.put(Call(call))
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
        if self._state.stopping:
            log.warning("alert after the engine stopped (not raised): %s", text)
            return
        self._inbox.put(Call(self._journal.alert, (category, priority, text.strip(), key)))

    def snapshot(self) -> EngineSnapshot:
        return self._publisher.snapshot

    def add_snapshot_listener(self, callback: Callable[[EngineSnapshot], None]) -> None:
        """Called on the engine thread right after each publish; must only enqueue and return."""
        self._publisher.add_listener(callback)

    def remove_snapshot_listener(self, callback: Callable[[EngineSnapshot], None]) -> None:
        self._publisher.remove_listener(callback)

    def closed_trades(self, start: float | None = None, end: float | None = None, strategy: str | None = None) -> list[Trade]:
        return self._state.store.closed_trades(start, end, strategy)

    def trade_events(self, trade_id: int) -> list[TradeEvent]:
        return self._state.store.trade_events(trade_id)

    def alert_history(
        self, since: float | None = None, category: str | None = None, priority: str | None = None, limit: int = 500
    ) -> list[Alert]:
        return self._state.store.alerts(since=since, category=category, priority=priority, limit=limit)

    def instrument(self, exchange: str, symbol: str) -> Instrument:
        """Tick, lot and freeze size: settings override > broker ``symbol`` > defaults (cached)."""
        state = self._state
        cached = state.instruments.get((exchange, symbol))
        if cached is not None:
            return cached
        try:
            info = state.broker.symbol_info(symbol, exchange)
        except BrokerError as exc:
            if exc.kind in ("validation", "not_found"):
                raise ValueError(f"unknown instrument {exchange}:{symbol}: {exc.message}") from None
            info = None
        return state.remember_instrument(exchange, symbol, info)

    def watches(self, exchange: str, symbol: str) -> bool:
        """True while an open trade on (exchange, symbol) is monitored (safe from any thread)."""
        return (exchange, symbol) in self._state.books

    def last_price(self, exchange: str, symbol: str) -> float | None:
        """The last price the engine accepted for a watched symbol (safe from any thread), else None."""
        book = self._state.books.get((exchange, symbol))
        return book.price if book is not None and book.price > 0 else None

    def process_tick(self, tick: Tick) -> None:  # replaced per instance by ``Watch.process_tick`` (see __init__)
        """Evaluate one tick on the engine's thread (the inbox's code path; benchmarks call it directly)."""
        self._watch.process_tick(tick)
