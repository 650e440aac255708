"""The whole live stack for tests and benchmarks: simulator, SQLite store, REST client, feed, engine.

    from tests.stack import running_stack

    def test_something(tmp_path):
        with running_stack(tmp_path, strategies=(Strategy("s1"),)) as stack:
            trade_id = stack.create(CreateTrade("s1", "RELIANCE", "NSE", Side.LONG, quantity=10))
            stack.wait_trade(trade_id, lambda t: t.status is TradeStatus.ACTIVE)
            stack.tick("RELIANCE", 2400.0)
            ...

Everything is real: loopback sockets (127.0.0.1, port 0), a SQLite file under
``tmp_path``, real threads.  The simulator ticks only when told
(``tick_interval=None``), so prices move by ``stack.tick``.
"""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from tests.util import wait_for
from tmtool.clock import Clock, SystemClock
from tmtool.domain.commands import Accepted, Denied
from tmtool.engine.engine import Engine
from tmtool.openalgo.feed import OpenAlgoFeed
from tmtool.domain.models import AccountLimits, Strategy, TradeStatus
from tmtool.openalgo.client import OpenAlgoClient
from tmtool.engine.ports import AlertSink, TickRecorder
from tmtool.engine.settings import EngineSettings
from tmtool.engine.snapshot import EngineSnapshot, TradeView
from tmtool.sim import Simulator
from tmtool.storage import SqliteStore

API_KEY = "stack-test-key"

FAST_SETTINGS = EngineSettings(
    reconcile_interval=30.0,
    exit_retry_backoff=0.05,
    order_status_poll=0.1,
    order_update_backstop=1.0,
    ltp_persist_interval=1.0,
    store_check_interval=0.2,
    auth_probe_backoff=(0.1, 0.2, 0.4),
    adopt_fills_interval=0.2,
    absence_grace=1.0,  # no order-book lag unless a test sets one (and a grace to cover it)
)


@dataclass
class Stack:
    sim: Simulator
    store: SqliteStore
    broker: OpenAlgoClient
    feed: OpenAlgoFeed
    engine: Engine
    clock: Clock
    db_path: Path
    strategies: Sequence[Strategy] = ()
    settings: EngineSettings | None = None
    account: AccountLimits = AccountLimits()
    client_timeout: float = 1.0
    stale_after: float = 30.0
    alert_sinks: Sequence[AlertSink] = ()
    feed_options: dict[str, Any] | None = None
    tick_recorder: TickRecorder | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def restart_engine(self, before_start: Callable[[], None] | None = None) -> Engine:
        """Stop the engine and start a new client, feed and engine on the same database and
        simulator; ``before_start`` runs in between (e.g. to leave the database as a crash would)."""
        if self.engine.running:
            self.engine.stop(timeout=5.0)
        self.store.flush()
        if before_start is not None:
            before_start()
            self.store.flush()
        self.broker.close()
        _, self.broker, self.feed, self.engine = build_engine(
            self.sim, self.db_path, strategies=self.strategies, clock=self.clock, settings=self.settings,
            account=self.account, client_timeout=self.client_timeout, stale_after=self.stale_after, store=self.store,
            alert_sinks=self.alert_sinks, feed_options=self.feed_options, tick_recorder=self.tick_recorder,
        )
        self.engine.start()
        return self.engine

    # ------------------------------------------------------------------ driving

    def submit(self, command: object, timeout: float = 10.0) -> Accepted | Denied:
        future: Future = self.engine.submit(command)
        return future.result(timeout=timeout)

    def create(self, command: object, timeout: float = 10.0) -> int:
        """Submit a CreateTrade that must be accepted; returns the trade id."""
        result = self.submit(command, timeout)
        assert isinstance(result, Accepted), f"CreateTrade denied: {result}"
        assert result.trade_id is not None
        return result.trade_id

    def tick(self, symbol: str, price: float, exchange: str = "NSE", timeout: float = 10.0) -> None:
        """Set the simulator's price (a real WebSocket tick) and wait until the engine took it.

        When the engine watches the symbol this waits for its subscription first,
        and then for the engine to have accepted the new price (or to have stopped
        watching the symbol because the tick closed its last trade).
        """
        watched = self.engine.watches(exchange, symbol)
        if watched:
            wait_for(lambda: (exchange, symbol, 1) in self.sim.subscriptions(), timeout, what=f"subscription {exchange}:{symbol}")
        self.sim.set_price(exchange, symbol, price)
        if not watched:
            return

        def taken() -> bool:
            return self.engine.last_price(exchange, symbol) == price or not self.engine.watches(exchange, symbol)

        # On a loaded machine the feed may be reconnecting when the price is set (its silence
        # watchdog runs on real time): the simulator then still lists the old connection's
        # subscription and the tick goes nowhere.  Publishing the same price again once the
        # new connection has subscribed is what a market does anyway; the condition waited on
        # is the engine having the price.
        deadline = time.monotonic() + timeout
        while True:
            try:
                wait_for(taken, min(1.0, max(0.05, deadline - time.monotonic())), what=f"engine price {exchange}:{symbol}={price}")
                return
            except AssertionError:
                if time.monotonic() >= deadline:
                    raise
            wait_for(lambda: (exchange, symbol, 1) in self.sim.subscriptions(), max(0.05, deadline - time.monotonic()),
                     what=f"subscription {exchange}:{symbol}")
            self.sim.set_price(exchange, symbol, price)

    # ------------------------------------------------------------------ waiting

    def wait_trade(self, trade_id: int, predicate: Callable[[TradeView], bool], timeout: float = 10.0) -> TradeView:
        """Wait until the published snapshot shows ``trade_id`` satisfying ``predicate``; returns that view."""

        last: list[TradeView | None] = [None]

        def check() -> TradeView | None:
            view = last[0] = self.engine.snapshot().trade(trade_id)
            return view if view is not None and predicate(view) else None

        try:
            return wait_for(check, timeout, what=f"trade #{trade_id} condition")
        except AssertionError as timed_out:
            raise AssertionError(f"{timed_out}; last seen: {last[0]!r}") from None

    def wait_status(self, trade_id: int, status: TradeStatus, timeout: float = 10.0) -> TradeView:
        return self.wait_trade(trade_id, lambda t: t.status is status, timeout)

    def wait_snapshot(self, predicate: Callable[[EngineSnapshot], bool], timeout: float = 10.0) -> EngineSnapshot:
        def check() -> EngineSnapshot | None:
            snap = self.engine.snapshot()
            return snap if predicate(snap) else None

        return wait_for(check, timeout, what="snapshot condition")

    # ------------------------------------------------------------------ inspection

    def orders_for(self, symbol: str, action: str | None = None, strategy: str | None = None) -> list[dict]:
        return [
            o
            for o in self.sim.orders()
            if o["symbol"] == symbol and (action is None or o["action"] == action) and (strategy is None or o["strategy"] == strategy)
        ]

    def position(self, symbol: str, exchange: str = "NSE", product: str = "MIS") -> int:
        return self.sim.positions().get((symbol, exchange, product), 0)


def build_engine(
    sim: Simulator,
    db_path: Path,
    *,
    strategies: Sequence[Strategy] = (),
    clock: Clock | None = None,
    settings: EngineSettings | None = None,
    account: AccountLimits = AccountLimits(),
    client_timeout: float = 1.0,
    stale_after: float = 30.0,
    store: SqliteStore | None = None,
    alert_sinks: Sequence[AlertSink] = (),
    feed_options: dict[str, Any] | None = None,
    tick_recorder: TickRecorder | None = None,
) -> tuple[SqliteStore, OpenAlgoClient, OpenAlgoFeed, Engine]:
    """The real store, client, feed and engine against a running simulator (none started;
    an existing ``store`` is reused).  ``feed_options`` override the feed's keyword arguments."""
    clock = clock or SystemClock()
    store = store or SqliteStore(db_path, clock=clock, backup_on_open=False)
    broker = OpenAlgoClient(sim.rest_url, API_KEY, timeout=client_timeout, clock=clock, retry_backoff=0.02, max_retry_wait=0.2)
    # A quiet symbol is polled only well after it is reported stale: tests that move a REST-only
    # price ("no tick said so yet") or wait for staleness see it, whatever the time of day.
    quiet = 4 * stale_after
    options: dict[str, Any] = {
        "stale_after": stale_after, "poll_after": stale_after, "poll_silent_after": quiet, "poll_near_level_after": quiet,
        "seed": 1, **(feed_options or {}),
    }
    feed = OpenAlgoFeed(sim.ws_url, API_KEY, broker=broker, clock=clock, **options)
    engine = Engine(
        store=store,
        broker=broker,
        feed=feed,
        clock=clock,
        settings=settings or FAST_SETTINGS,
        account=account,
        strategies=strategies,
        alert_sinks=alert_sinks,
        tick_recorder=tick_recorder,
    )
    return store, broker, feed, engine


@contextlib.contextmanager
def running_stack(
    tmp_path: Path,
    *,
    strategies: Sequence[Strategy] = (),
    clock: Clock | None = None,
    sim_kwargs: dict | None = None,
    settings: EngineSettings | None = None,
    account: AccountLimits = AccountLimits(),
    client_timeout: float = 1.0,
    stale_after: float = 30.0,
    alert_sinks: Sequence[AlertSink] = (),
    db_name: str = "tmtool.db",
    feed_options: dict[str, Any] | None = None,
    tick_recorder: TickRecorder | None = None,
) -> Iterator[Stack]:
    """Start simulator, store, client, feed and engine; tear all of them down afterwards.

    ``clock`` (default: the system clock) is shared by every part, simulator included,
    so order-book times and the engine's intents agree.  ``stale_after`` is the feed's
    per-symbol staleness window; ``feed_options`` override the feed's other keyword arguments.
    """
    clock = clock or SystemClock()
    options = {"api_key": API_KEY, "tick_interval": None, "clock": clock, **(sim_kwargs or {})}
    sim = Simulator(**options)
    sim.start()
    db_path = Path(tmp_path) / db_name
    store = None
    stack: Stack | None = None
    try:
        store, broker, feed, engine = build_engine(
            sim, db_path, strategies=strategies, clock=clock, settings=settings, account=account,
            client_timeout=client_timeout, stale_after=stale_after, alert_sinks=alert_sinks, feed_options=feed_options, tick_recorder=tick_recorder,
        )
        store.start()
        stack = Stack(
            sim=sim, store=store, broker=broker, feed=feed, engine=engine, clock=clock, db_path=db_path,
            strategies=strategies, settings=settings, account=account, client_timeout=client_timeout, stale_after=stale_after,
            alert_sinks=alert_sinks, feed_options=feed_options, tick_recorder=tick_recorder,
        )
        engine.start()
        yield stack
    finally:
        if stack is not None:
            if stack.engine.running:
                stack.engine.stop(timeout=5.0)
            stack.broker.close()
        if store is not None:
            store.close()
        sim.stop()
