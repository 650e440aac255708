"""Wiring: builds the real store, broker, feed, engine, control API and alert
delivery from the config, and runs them as one unit.

``Runtime`` is also the engine handle the TUI holds: it implements
``EngineHandle`` by delegating each call to the engine, and its ``start``/``stop``
(``EngineLifecycle``) bring the whole stack up and down in the right order.
Textual-free.
"""

from __future__ import annotations

import gc
import logging
import os
import random
import secrets
import threading
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path

from tmtool.config import Config
from tmtool.clock import Clock, SystemClock
from tmtool.domain.calendar import trading_day
from tmtool.domain.commands import Command, CreateTrade, Result
from tmtool.engine.engine import Engine
from tmtool.openalgo.feed import OpenAlgoFeed
from tmtool.domain.models import (
    Alert,
    AlertPriority,
    Amount,
    AmountMode,
    Distance,
    DistanceMode,
    Instrument,
    PartialTarget,
    PortfolioRisk,
    Side,
    Sizing,
    SizingMode,
    Strategy,
    Trade,
    TradeEvent,
    TradeRisk,
    TrailingSettings,
)
from tmtool.openalgo.client import OpenAlgoClient
from tmtool.engine.settings import EngineSettings, engine_default
from tmtool.engine.snapshot import EngineSnapshot

log = logging.getLogger("tmtool")


class StartupError(Exception):
    """The stack could not be built: a message for the user (database in use, bad settings...).

    ``engine_socket``: when another tmtool runs on the database, where its control API's
    Unix socket would be (so the caller can offer to attach to it).
    """

    def __init__(self, message: str, engine_socket: Path | None = None) -> None:
        super().__init__(message)
        self.engine_socket = engine_socket


def engine_settings(config: Config, *, simulated: bool) -> EngineSettings:
    """The engine's settings from the config file (whose defaults are the engine's own)."""
    engine = config.engine
    instruments = {}
    for key, override in engine.instruments.items():
        exchange, _, symbol = key.partition(":")
        instruments[key] = Instrument(
            symbol=symbol,
            exchange=exchange,
            tick_size=override.tick_size or engine_default("default_tick_size"),
            lot_size=override.lot_size or 1,
            freeze_quantity=override.freeze_quantity,
        )
    trail_alerts = engine_default("trail_alerts")
    if config.alerts_table:
        from tmtool.alerts.config import AlertsConfig

        trail_alerts = AlertsConfig.from_table(config.alerts_table).level_changes
    return EngineSettings(
        snapshot_hz=engine.snapshot_hz,
        reconcile_interval=engine.reconcile_interval_seconds,
        exit_max_attempts=engine.exit_max_attempts,
        exit_retry_backoff=engine.exit_retry_backoff_seconds,
        order_status_poll=engine.order_status_poll_seconds,
        absence_grace=engine.absence_grace_seconds,
        unknown_alert_after=engine.unknown_alert_after_seconds,
        broker_time_zone=engine.broker_time_zone,
        fno_margin_percent=engine.fno_margin_percent,
        freeze_quantities=dict(engine.freeze_quantities),
        instruments=instruments,
        tick_band_percent=config.feed.tick_band_percent,
        tick_confirm=config.feed.confirm_ticks,
        trail_alerts=trail_alerts,
        account=config.account,
        simulated=simulated,
    )


# --------------------------------------------------------------------------- demo


def demo_strategies() -> tuple[Strategy, ...]:
    """Strategies for the demo: tight levels so exits happen within a minute."""
    momentum = Strategy(
        name="momentum",
        trade_risk=TradeRisk(
            stop_loss=Distance(0.4, DistanceMode.PERCENT),
            target=Distance(0.8, DistanceMode.PERCENT),
            trailing=TrailingSettings(
                distance=Distance(0.25, DistanceMode.PERCENT), activation=Distance(0.15, DistanceMode.PERCENT)
            ),
        ),
        portfolio=PortfolioRisk(
            stop_loss=Amount(2.0, AmountMode.PERCENT),
            target=Amount(3.0, AmountMode.PERCENT),
            daily_loss_limit=Amount(3.0, AmountMode.PERCENT),
        ),
        allocated_funds=500_000.0,
        sizing=Sizing(SizingMode.FIXED_VALUE, 100_000.0),
        max_open_positions=6,
    )
    scalper = Strategy(
        name="scalper",
        trade_risk=TradeRisk(
            stop_loss=Distance(3.0),
            target=Distance(6.0),
            breakeven_after=Distance(2.0),
            partial_targets=(PartialTarget(Distance(3.0), 0.5),),
        ),
        portfolio=PortfolioRisk(
            trailing_activation=Amount(1_500.0), trailing_distance=Amount(750.0), daily_loss_limit=Amount(5_000.0)
        ),
        allocated_funds=300_000.0,
        sizing=Sizing(SizingMode.RISK_BASED, 600.0),
        max_open_positions=4,
    )
    return (momentum, scalper)


DEMO_TRADES: tuple[tuple[str, str, Side], ...] = (
    ("momentum", "RELIANCE", Side.LONG),
    ("momentum", "INFY", Side.SHORT),
    ("momentum", "HDFCBANK", Side.LONG),
    ("scalper", "SBIN", Side.LONG),
    ("scalper", "SBIN", Side.SHORT),
    ("momentum", "TCS", Side.SHORT),
)
DEMO_OPEN_TARGET = 5  # the demo keeps about this many trades open


class DemoDriver:
    """Keeps the demo lively: whenever fewer than ``DEMO_OPEN_TARGET`` trades are
    open, enters another one (seeded choice) through the engine like any user would."""

    def __init__(self, engine: Engine, *, seed: int, interval: float = 6.0) -> None:
        self._engine = engine
        self._random = random.Random(seed)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tmtool-demo", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.step()

    def step(self) -> Future | None:
        """Enter one more trade when fewer than ``DEMO_OPEN_TARGET`` are open; after a panic
        (entries halted until re-armed) it enters nothing.  Returns the entry's Future, if any."""
        snapshot = self._engine.snapshot()
        if snapshot.system.entries_halted or len(snapshot.open_trades) >= DEMO_OPEN_TARGET:
            return None
        strategy, symbol, side = self._random.choice(DEMO_TRADES)
        if self._random.random() < 0.5:
            side = side.opposite
        return self._engine.submit(CreateTrade(strategy=strategy, symbol=symbol, exchange="NSE", side=side))


# --------------------------------------------------------------------------- runtime


def _log_adoption(future: Future) -> None:
    result = future.result()
    log.info("event=adopt_positions result=%r", getattr(result, "message", result))


def settle_heap() -> None:
    """Collect once, freeze every object alive (``gc.freeze``), and from then on freeze what each
    full collection leaves alive (``_FrozenSurvivors``).

    Python's full collections walk every tracked object while holding the interpreter lock, and
    everything alive once monitoring starts (the process's modules, the loaded trades, the UI's
    widgets) lives as long as the process.  With the TUI in the engine's process and a heap of
    2 million objects they took 180–370 ms each, an exit waiting behind one that long; frozen,
    30–56 ms (gc.callbacks around benchmarks.bench_latency.with_tui on a heap bloated to
    2 million objects, 2026-12-07).  Objects are still freed by reference counting as before.

    What full collections then walked was what the process made since: with the TUI, mostly
    Textual's bounded render caches (strips, segments, their crop caches; 55,000–92,000 objects
    during the latency benchmark, 25–35 ms of CPU a walk), at Python's pace 24 walks in that
    benchmark's 40 s, and an exit that meets one waits it out.  Freezing each walk's survivors
    leaves the next one only what is new: walks of at most 11 ms, and the benchmark's p99 with
    the TUI in process fell from 40–54 ms to 16.5–17.5 ms (3 runs each, 200 stop crossings a
    run, 2026-12-07)."""
    gc.collect()
    gc.freeze()
    _FROZEN_SURVIVORS.start()


def unsettle_heap() -> None:
    """Undo ``settle_heap``: every frozen object back to the collector, which works as Python's own again."""
    _FROZEN_SURVIVORS.stop()
    gc.unfreeze()


class _FrozenSurvivors:
    """The ``gc.callbacks`` entry that freezes what each full collection leaves alive.

    A frozen object is still freed when nothing refers to it, but a reference cycle that dies
    frozen (the widgets of a dismissed dialog, say) is never found.  So the frozen set is
    watched: when it has grown to ``_THAW_GROWTH`` times its size at the last thaw (or at
    settling), and by ``_THAW_MARGIN`` objects at least, it is thawed, the next full collection
    walks everything once (90–100 ms with the TUI's caches full) and frees such cycles, and
    freezing resumes with its survivors.  The TUI's caches fill to about twice the heap
    frozen at settling and stay there, so a process that leaks nothing is not thawed again.

    Nothing here logs: a collection can start inside any allocation, on any thread, while
    it holds a lock (a queue's, a log handler's) that logging would take again."""

    def __init__(self) -> None:
        self.limit = 0
        self.thawed = False
        self.thaws = 0

    def start(self) -> None:
        self.limit = _thaw_limit(gc.get_freeze_count())
        self.thawed = False
        if self.after_collection not in gc.callbacks:
            gc.callbacks.append(self.after_collection)

    def stop(self) -> None:
        if self.after_collection in gc.callbacks:
            gc.callbacks.remove(self.after_collection)

    def after_collection(self, phase: str, info: dict) -> None:
        if phase != "stop" or info.get("generation") != 2:
            return
        gc.freeze()
        frozen = gc.get_freeze_count()
        if self.thawed:
            self.thawed = False
            self.limit = _thaw_limit(frozen)
        elif frozen > self.limit:
            gc.unfreeze()
            self.thawed = True
            self.thaws += 1


def _thaw_limit(frozen: int) -> int:
    return max(_THAW_GROWTH * frozen, frozen + _THAW_MARGIN)


_THAW_GROWTH = 4
_THAW_MARGIN = 250_000
_FROZEN_SURVIVORS = _FrozenSurvivors()


class Runtime:
    """The whole stack.  ``start``/``stop`` bring it up and down; the ``EngineHandle`` calls delegate to the engine."""

    def __init__(
        self,
        *,
        config: Config,
        clock: Clock,
        store,
        broker: OpenAlgoClient,
        feed: OpenAlgoFeed,
        engine: Engine,
        sim=None,
        api=None,
        dispatcher=None,
        demo_trades: bool = False,
        recorder=None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.store = store
        self.broker = broker
        self.feed = feed
        self.engine = engine
        self.sim = sim
        self.api = api
        self.dispatcher = dispatcher
        self.recorder = recorder  # tmtool.replay.recorder.ParquetTickRecorder, or None when recording is off
        self.demo_trades_on_start = demo_trades
        self.demo_seed = 7
        self.adopt_on_start = False
        # Set by `tmtool run` / `demo` / `serve` (the process is tmtool's own): see ``settle_heap``.
        self.settle_heap_after_start = False
        self._demo_driver: DemoDriver | None = None
        self.unwritten_changes = 0  # changes the store could not write by the end of stop()
        self._started = False
        self._stopped = False

    @property
    def simulated(self) -> bool:
        return self.sim is not None

    # ------------------------------------------------------------------ life

    def start(self) -> None:
        """Start the writer, alert delivery, engine (load, reconcile, resume) and the API."""
        self.store.start()
        if self.dispatcher is not None:
            self.dispatcher.start()
        if self.recorder is not None:
            self.recorder.start(trading_day(self.clock.time()))
        self.engine.start()
        if self.api is not None:
            # Bound now; the application is built and served on the API's thread, so monitoring does
            # not wait for it (about a second of interpreter time: ``ApiServer.start``).
            self.api.start(wait=False, on_failure=self._api_failed)
        self._started = True
        if self.adopt_on_start:
            self.engine.adopt_positions().add_done_callback(_log_adoption)
        if self.demo_trades_on_start:
            self.place_demo_trades()
        if self.settle_heap_after_start:
            settle_heap()

    def _api_failed(self, message: str) -> None:
        self.engine.report_external_alert(message, AlertPriority.WARNING, key="control-api")

    def stop(self, timeout: float = 10.0) -> str:
        """Stop taking ticks, flush every change, close connections; returns the engine's summary line."""
        if self._stopped:
            return ""
        self._stopped = True
        if self._demo_driver is not None:
            self._demo_driver.stop()
        if self.api is not None:
            self.api.stop()
        summary = self.engine.stop(timeout=timeout)
        if self.recorder is not None:
            self.recorder.stop()
        if self.dispatcher is not None:
            self.dispatcher.stop(timeout=2.0)
        self.unwritten_changes = self.store.close() or 0
        self.broker.close()
        if self.sim is not None:
            self.sim.stop()
        log.info("event=shutdown summary=%r", summary)
        return summary

    def banner(self) -> list[str]:
        lines = []
        if self.sim is not None:
            lines.append(f"tmtool: demo on the embedded simulator at {self.sim.rest_url} — simulated, no real orders")
        else:
            system = self.engine.snapshot().system
            host = self.config.openalgo.host
            if system.broker_state == "OK":
                lines.append(f"tmtool: connected to OpenAlgo at {host}; monitoring")
            else:
                lines.append(
                    f"tmtool: NOT connected to OpenAlgo at {host} ({system.broker_state}: "
                    f"{system.broker_message or 'no answer'}); retrying — until it answers, no trade is managed"
                )
        lines.append(f"tmtool: database {self.store.path}")
        if self.recorder is not None:
            from tmtool.replay.recorder import folder_size

            size, days = folder_size(self.recorder.folder)
            lines.append(
                f"tmtool: recording ticks to {self.recorder.folder} ({days} day(s), {size / 1e6:.1f} MB; "
                f"keeping {self.recorder.retention_days} days)"
            )
        if self.api is not None and self.api.port is not None:
            lines.append(f"tmtool: control API on {self.api.url}")
        if self.api is not None and self.api.unix_path is not None:
            lines.append(f"tmtool: attach with `tmtool attach` (socket {self.api.unix_path})")
        return lines

    def place_demo_trades(self) -> list[Future]:
        """Enter the demo trades at market on the simulator (each sized by its strategy),
        and keep entering new ones as they close."""
        futures = [
            self.engine.submit(CreateTrade(strategy=strategy, symbol=symbol, exchange="NSE", side=side))
            for strategy, symbol, side in DEMO_TRADES
        ]
        if self._demo_driver is None:
            self._demo_driver = DemoDriver(self.engine, seed=self.demo_seed)
            self._demo_driver.start()
        return futures

    # ------------------------------------------------------------------ EngineHandle

    def submit(self, command: Command) -> Future[Result]:
        return self.engine.submit(command)

    def adopt_positions(self) -> Future[Result]:
        return self.engine.adopt_positions()

    def snapshot(self) -> EngineSnapshot:
        return self.engine.snapshot()

    def closed_trades(self, start: float | None = None, end: float | None = None, strategy: str | None = None) -> list[Trade]:
        return self.engine.closed_trades(start, end, strategy)

    def trade_events(self, trade_id: int) -> list[TradeEvent]:
        return self.engine.trade_events(trade_id)

    def alert_history(
        self, since: float | None = None, category: str | None = None, priority: str | None = None, limit: int = 500
    ) -> list[Alert]:
        return self.engine.alert_history(since=since, category=category, priority=priority, limit=limit)

    def instrument(self, exchange: str, symbol: str) -> Instrument:
        return self.engine.instrument(exchange, symbol)


def build_runtime(
    config: Config,
    *,
    db_path: Path | None = None,
    demo: bool = False,
    seed: int = 7,
    api_port: int | None = None,
    api_key: str | None = None,
    clock: Clock | None = None,
    demo_trades: bool = False,
    new_database: bool = False,
    engine_socket: bool | Path = False,
) -> Runtime:
    """Build (but do not start) the stack.  Opens the database now, so a second
    instance or a corrupt file is refused before anything else happens.

    ``new_database``: accept a missing, empty or different database file where
    one was used before (otherwise refused, naming the backup to restore).
    ``engine_socket``: True serves the control API on the database's Unix socket
    (``tmtool.api.paths.socket_path_for``; a path picks another place), for
    ``tmtool attach``; it needs no key.  The
    demo's own database (no ``db_path``) starts afresh each time, once its
    single-instance lock is held."""
    from tmtool.api.paths import socket_path_for
    from tmtool.storage import SqliteStore, StorageError
    from tmtool.storage.errors import DatabaseInUse

    clock = clock or SystemClock()
    sim = None
    start_fresh = False
    strategies = config.strategies
    if demo:
        from tmtool.sim import Simulator

        sim_key = secrets.token_urlsafe(24)
        # About 0.45% standard deviation a minute: the demo's stops and targets fire within a minute or two.
        sim = Simulator(api_key=sim_key, seed=seed, tick_interval=0.1, volatility=0.00018, rate_limits=None)
        # Sandbox (analyzer) mode, like paper trading on OpenAlgo: its order book carries strategy tags,
        # so the daily-loss lockout can attribute positions in the demo too.
        sim.analyzer_mode = True
        sim.start()
        rest_url, ws_url, broker_key = sim.rest_url, sim.ws_url, sim_key
        names = {s.name for s in strategies}
        strategies = tuple(strategies) + tuple(s for s in demo_strategies() if s.name not in names)
        if db_path is None:
            db_path = Path(config.database.path).with_name("demo.db")
            start_fresh = True  # each demo starts fresh: the store clears it after taking the lock
    else:
        if not config.openalgo.configured:
            raise StartupError(
                f"OpenAlgo is not configured: set openalgo.api_key or the {config.openalgo.api_key_env} "
                "environment variable, or run `tmtool demo`"
            )
        rest_url, ws_url, broker_key = config.openalgo.host, config.openalgo.ws_url, config.openalgo.api_key

    path = Path(db_path) if db_path is not None else Path(config.database.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    keep = config.database.backups_to_keep
    store = SqliteStore(
        path,
        clock=clock,
        backups_to_keep=max(1, keep),
        backup_on_open=keep > 0,  # backups_to_keep = 0 turns the start-up backup off
        backup_dir=config.database.backup_dir,
        new_database=new_database,
        start_fresh=start_fresh,
    )
    socket_path = None
    if engine_socket:
        from tmtool.api.paths import socket_path_for

        socket_path = socket_path_for(path) if engine_socket is True else Path(engine_socket)
    try:
        store.open()
    except (StorageError, OSError) as exc:
        if sim is not None:
            sim.stop()
        in_use = isinstance(exc, DatabaseInUse)
        raise StartupError(str(exc), engine_socket=socket_path_for(path) if in_use else None) from exc

    broker = OpenAlgoClient(rest_url, broker_key, timeout=config.openalgo.timeout_seconds, clock=clock)
    feed_cfg = config.feed
    feed = OpenAlgoFeed(
        ws_url,
        broker_key,
        broker=broker,
        clock=clock,
        stale_after=feed_cfg.stale_after_seconds,
        poll_after=feed_cfg.poll_after_seconds,
        poll_interval=feed_cfg.poll_interval_seconds,
        poll_silent_after=feed_cfg.poll_silent_after_seconds,
        poll_near_level_after=feed_cfg.poll_near_level_after_seconds,
        max_backoff=feed_cfg.reconnect_max_backoff_seconds,
        seed=seed if demo else None,
        # A socket silent this long while subscribed is treated as dead and reopened; longer than the
        # staleness window so quiet symbols outside market hours do not churn the connection.
        stall_after=max(15.0, 3 * feed_cfg.stale_after_seconds),
    )

    sinks = []
    dispatcher = None
    engine_ref: list[Engine] = []
    if config.alerts_table:
        from tmtool.alerts.config import AlertsConfig
        from tmtool.alerts.dispatcher import AlertDispatcher

        alerts_config = AlertsConfig.from_table(config.alerts_table)

        def _report_failure(channel: str, message: str) -> None:
            if engine_ref:
                engine_ref[0].report_external_alert(
                    f"alert channel {channel} is failing: {message}", AlertPriority.WARNING, key=f"channel:{channel}"
                )

        dispatcher = AlertDispatcher(alerts_config, clock=clock, report_failure=_report_failure)
        sinks.append(dispatcher)

    recorder = None
    if config.recording.enabled:
        from tmtool.replay.recorder import ParquetTickRecorder

        def _recording_failed(message: str) -> None:
            if engine_ref:
                engine_ref[0].report_external_alert(message, AlertPriority.WARNING, key="tick-recording")

        recorder = ParquetTickRecorder(
            config.recording.folder_for(path),
            session=f"{int(clock.time() * 1000)}-{os.getpid()}",
            retention_days=config.recording.retention_days,
            on_failure=_recording_failed,
        )

    engine = Engine(
        store=store,
        broker=broker,
        feed=feed,
        clock=clock,
        settings=engine_settings(config, simulated=demo),
        alert_sinks=sinks,
        account=config.account,
        strategies=strategies,
        tick_recorder=recorder,
    )
    engine_ref.append(engine)

    api = None
    tcp = api_port is not None or config.api.enabled
    if tcp or socket_path is not None:
        from tmtool.api import ApiServer

        key = api_key or config.api.api_key
        if tcp and not key:
            store.close()
            if sim is not None:
                sim.stop()
            raise StartupError(
                f"the control API needs a key: set api.api_key, {config.api.api_key_env}, or pass --api-key"
            )
        try:
            api = ApiServer(
                engine,
                host=config.api.host,
                allow_remote=config.api.allow_remote,
                port=(config.api.port if api_port is None else api_port) if tcp else None,
                unix_path=socket_path,
                api_key=key,
                requests_per_minute=config.api.requests_per_minute,
                clock=clock,
            )
        except ValueError as exc:
            store.close()
            if sim is not None:
                sim.stop()
            raise StartupError(str(exc)) from exc

    runtime = Runtime(
        config=replace(config, strategies=tuple(strategies)),
        clock=clock,
        store=store,
        broker=broker,
        feed=feed,
        engine=engine,
        sim=sim,
        api=api,
        dispatcher=dispatcher,
        demo_trades=demo_trades,
        recorder=recorder,
    )
    runtime.demo_seed = seed
    return runtime
