"""The Textual app: one bridge to the engine (snapshots in, commands out).

The app reads ``engine.snapshot()`` on a timer and hands a new one to the
screens only when its version changed.  A snapshot that only moved prices and
P&L waits for the next price frame (``PRICE_FRAME_HZ``); anything else (a
status, a level, an alert, the feed or broker state) shows on the next poll,
and a command's answer shows at once.  Alert toasts (WARNING and CRITICAL only)
wait while a dialog is open, so they never cover what it asks.  Commands go out through
``engine.submit()`` and their futures are awaited without blocking the loop.
When the app is given the engine's lifecycle, it starts the engine off the
loop when it mounts, and ``stop_engine`` stops it after the UI is gone.  The app
and its screens know the engine only as an ``EngineHandle``; the screens know
the app only as a ``ScreenHost``.  Nothing here imports the storage layer or the
broker.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from functools import partial
from operator import attrgetter
from datetime import date
from pathlib import Path

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.worker import Worker, WorkerState

from tmtool.clock import Clock
from tmtool.domain.commands import (
    Accepted,
    Command,
    Denied,
    ExitAll,
    Rearm,
    Result,
)
from tmtool.domain.models import AccountLimits, AlertPriority, ExitReason, Instrument
from tmtool.engine.ports import EngineHandle, EngineLifecycle
from tmtool.engine.snapshot import EngineSnapshot
from tmtool.screens.alert_history import AlertHistoryScreen
from tmtool.screens.at_risk import MoneyAtRiskScreen
from tmtool.screens.orders_positions import OrdersPositionsScreen
from tmtool.screens.dashboard import DashboardScreen
from tmtool.screens.formatting import Palette
from tmtool.screens.legend import LEGEND
from tmtool.screens.history import HistoryScreen
from tmtool.screens.modals.confirm import ConfirmModal, PanicModal
from tmtool.screens.modals.help import HelpModal
from tmtool.screens.trade_story import TradeStoryScreen
from tmtool.screens.strategies import StrategiesScreen
from tmtool.screens.widgets.alerts_panel import AlertsPanel
from tmtool.screens.widgets.status_bar import (
    PHASE_RUNNING,
    PHASE_STARTING,
    PHASE_STOPPED,
    StatusBar,
    status_line,
)
from tmtool.screens.widgets.trades_table import TradesTable

COMMAND_TIMEOUT = 15.0  # seconds to wait for the engine's answer before telling the user
PRICE_FRAME_HZ = 4.0  # snapshots that only move prices and P&L are shown at most this often
MAX_TOASTS_PER_FRAME = 3
ENGINE_START_WAIT = 30.0  # how long stop_engine waits for a start still in progress

# INFO alerts go to the alerts panel only; these priorities also pop up a toast.
TOAST_SEVERITY = {
    AlertPriority.WARNING: "warning",
    AlertPriority.CRITICAL: "error",
}


# What of a trade a trader must see at once (not its moving price and P&L); attrgetter builds the tuple in C.
TRADE_SHAPE = attrgetter(
    "id", "status", "paused", "degraded", "awaiting_approval", "exit_wait", "quantity", "effective_stop", "target",
    "trailing_stop",
)


def snapshot_shape(snapshot: EngineSnapshot) -> tuple:
    """Everything a trader must see at once: all of a snapshot but the moving prices and P&L.

    A snapshot whose shape differs from the one on screen is shown on the next
    poll; one that only moved prices waits for the next price frame.
    """
    system = snapshot.system
    return (
        tuple(map(TRADE_SHAPE, snapshot.trades)),
        tuple((alert.id, alert.count, alert.acknowledged) for alert in snapshot.alerts),
        tuple((view.name, view.halted, view.open_positions, view.trailing_armed) for view in snapshot.strategies),
        (system.engine_running, system.feed_state, system.broker_state, system.db_state, system.server_mode),
        system.stale_symbols,
    )


class AlertToaster:
    """Decides which alerts of a snapshot are new (or repeated) and deserve a toast (WARNING and up)."""

    def __init__(self) -> None:
        self._seen: dict[int, int] | None = None  # alert id -> count already shown

    def fresh(self, snapshot: EngineSnapshot) -> list:
        counts = {alert.id: alert.count for alert in snapshot.alerts}
        if self._seen is None:  # what was there before the UI came up is in the panel, not toasted
            self._seen = counts
            return []
        fresh = [
            alert
            for alert in reversed(snapshot.alerts)  # oldest first
            if alert.priority in TOAST_SEVERITY and not alert.acknowledged and self._seen.get(alert.id, 0) < alert.count
        ]
        self._seen.update(counts)
        return fresh


# The interpreter-lock switch interval while the app runs in the engine's own process.  Drawing
# keeps the UI thread busy for tens of milliseconds at a time, and with Python's default of 5 ms
# each thread an exit passes through (feed, engine, executor) can wait that long for the lock
# behind it: tick→exit p99 with the TUI in process measured 34–91 ms at 5 ms and 14–20 ms (one
# run 60) at 1 ms (benchmarks.bench_latency.with_tui, 100 stop crossings a run, 2026-12-07).
# Headless (no UI thread) is better off at the default (p99 5.5–6.0 ms against 7.0–7.8 ms at
# 1 ms), so only the app sets it.
IN_PROCESS_SWITCH_INTERVAL = 0.001


class TmtoolApp(App[str | None]):
    """tmtool's terminal UI over a running engine (the screens' ``ScreenHost``)."""

    CSS_PATH = [Path(__file__).parent / "tmtool.tcss"]
    TITLE = "tmtool"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("f9", "panic", "PANIC", priority=True, id="panic"),
        Binding("ctrl+x", "panic", "PANIC", priority=True, show=False, id="panic_chord"),
        Binding("f10", "rearm", "Re-arm entries after a panic", show=False, id="rearm"),
        Binding("question_mark", "help", "Help", id="help"),
        Binding("q", "quit_app", "Quit", id="quit"),
    ]

    def __init__(
        self,
        engine: EngineHandle,
        *,
        config_path: Path | None,
        clock: Clock,
        simulated: bool,
        bell: bool = True,
        refresh_hz: float = 8.0,
        lifecycle: EngineLifecycle | None = None,
        market_holidays: frozenset[date] = frozenset(),
        recordings: Path | None = None,
        account: AccountLimits = AccountLimits(),
        engine_in_process: bool = True,
    ) -> None:
        """``lifecycle``: what the app starts on mount (off the loop) and ``stop_engine`` stops,
        usually the object that is also ``engine``.  ``market_holidays``: the configured exchange
        holidays the status bar shows as HOLIDAY.  ``recordings``: the folder of the engine's
        recorded ticks (History replays a closed trade's day from it), None when not recorded;
        ``account``: the account limits a replay applies.  ``engine_in_process``: False when
        ``engine`` is a handle on an engine in another process (``tmtool attach``); otherwise the
        app shortens the interpreter's switch interval while it runs (``IN_PROCESS_SWITCH_INTERVAL``).

        Leave it None when the caller runs the engine's life itself (tests, the headless wiring).
        """
        super().__init__()
        if not 0 < refresh_hz <= 30:
            raise ValueError(f"refresh_hz {refresh_hz!r} must be above 0 and at most 30")
        self.engine = engine
        self.config_path = config_path
        self.clock = clock
        self.simulated = simulated
        self.bell_enabled = bell
        self.refresh_hz = refresh_hz
        self.lifecycle = lifecycle
        self.market_holidays = market_holidays
        self.recordings = recordings
        self.account_limits = account
        self.engine_in_process = engine_in_process
        self._switch_interval_before: float | None = None
        self.engine_phase = PHASE_STARTING if lifecycle is not None else PHASE_RUNNING
        self.latest: EngineSnapshot | None = None
        self.palette = Palette.from_theme_variables({})
        self._version: int | None = None
        self._shape: tuple | None = None
        self._polls = 0
        # Every how many polls a prices-only snapshot is shown (1 when polling no faster than PRICE_FRAME_HZ).
        self._price_frame_every = max(1, round(refresh_hz / PRICE_FRAME_HZ))
        self._toaster = AlertToaster()
        self._held_alerts: list = []  # toasts waiting for the dialog on top to close
        self._start_done = threading.Event()
        self._engine_started = False
        if lifecycle is None:
            self._start_done.set()

    # ------------------------------------------------------------------ life

    def get_default_screen(self) -> DashboardScreen:
        return DashboardScreen()

    def on_mount(self) -> None:
        if self.engine_in_process:
            self._switch_interval_before = sys.getswitchinterval()
            sys.setswitchinterval(min(IN_PROCESS_SWITCH_INTERVAL, self._switch_interval_before))
        self.palette = Palette.from_theme_variables(self.theme_variables)
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        if self.lifecycle is not None:
            self.run_worker(
                partial(self._start_engine, self.lifecycle),
                thread=True,
                name="engine-start",
                group="engine",
                exit_on_error=False,
            )
        self.refresh_frame()
        self.poll_timer = self.set_interval(1.0 / self.refresh_hz, self._poll, name="snapshot-poll")

    def on_unmount(self) -> None:
        self.theme_changed_signal.unsubscribe(self)
        if self._switch_interval_before is not None:
            sys.setswitchinterval(self._switch_interval_before)
            self._switch_interval_before = None

    def _start_engine(self, lifecycle: EngineLifecycle) -> None:
        try:
            lifecycle.start()
            self._engine_started = True
        finally:
            self._start_done.set()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.name != "engine-start":
            return
        if event.state is WorkerState.SUCCESS:
            self.engine_phase = PHASE_RUNNING
            self.refresh_frame()
        elif event.state is WorkerState.ERROR:
            self.engine_phase = f"failed: {event.worker.error}"
            self.notify(f"The engine did not start: {event.worker.error}", severity="error", timeout=30)
            self.refresh_frame()

    def stop_engine(self) -> str | None:
        """Stop the engine this app started (call after the UI has exited, off any event loop)."""
        if self.lifecycle is None:
            return None
        self._start_done.wait(ENGINE_START_WAIT)
        if not self._engine_started:
            return None
        self._engine_started = False
        self.engine_phase = PHASE_STOPPED
        return self.lifecycle.stop()

    # ------------------------------------------------------------------ the snapshot bridge

    def refresh_frame(self) -> None:
        """One frame now: read the latest snapshot; repaint only what a new version changed.

        Called on start, after every command's answer and on engine phase
        changes, so what the user just did shows at once.
        """
        self._frame(prices_due=True)

    def _poll(self) -> None:
        """The timer's frame: a prices-only change waits for the next price frame."""
        self._polls += 1
        self._frame(prices_due=self._polls % self._price_frame_every == 0)

    def _frame(self, *, prices_due: bool) -> None:
        if self._exit:
            return  # shutting down: no frame may reach widgets being removed
        if self._held_alerts and not self.dialog_open:
            held, self._held_alerts = self._held_alerts, []
            self._show_toasts(held)
        snapshot = self.latest
        if self.engine_phase == PHASE_RUNNING:
            snapshot = self.engine.snapshot()
        if snapshot is None or snapshot.version == self._version:
            self._update_status(snapshot)
            return
        shape = snapshot_shape(snapshot)
        if not prices_due and shape == self._shape:
            self._update_status(self.latest)  # the clock and the feed age still move
            return
        self._version, self._shape = snapshot.version, shape
        self._update_status(snapshot)
        self.latest = snapshot
        for screen in self.screen_stack:
            apply = getattr(screen, "apply_snapshot", None)
            if apply is not None and screen.is_attached:
                apply(snapshot)
        self._toast_alerts(snapshot)

    def refresh_status(self) -> None:
        """Repaint the status bars from the snapshot on screen (a newly mounted bar asks for this)."""
        if not self._exit:
            self._update_status(self.latest)

    def _update_status(self, snapshot: EngineSnapshot | None) -> None:
        shown = snapshot if self.engine_phase != PHASE_STARTING else None
        now = self.clock.time()
        holidays = self.market_holidays
        full = status_line(shown, now, self.engine_phase, self.palette, holidays=holidays)
        compact = status_line(shown, now, self.engine_phase, self.palette, compact=True, holidays=holidays)
        simulated = self.simulated or (snapshot is not None and snapshot.system.simulated)
        for screen in self.screen_stack:
            if screen.is_attached:
                for bar in screen.query(StatusBar):
                    bar.show(full, compact, simulated)

    @property
    def dialog_open(self) -> bool:
        """A dialog is on top: toasts would cover what it asks about."""
        return isinstance(self.screen, ModalScreen)

    def _toast_alerts(self, snapshot: EngineSnapshot) -> None:
        fresh = self._toaster.fresh(snapshot)
        if not fresh:
            return
        if self.bell_enabled and any(alert.priority is AlertPriority.CRITICAL for alert in fresh):
            self.bell()
        if self.dialog_open:
            self._held_alerts.extend(fresh)  # shown when the dialog closes (the panel has them meanwhile)
        else:
            self._show_toasts(fresh)

    def _show_toasts(self, alerts: list) -> None:
        for alert in alerts[-MAX_TOASTS_PER_FRAME:]:
            self.notify(
                alert.text,
                title=f"{alert.category.value} {alert.priority.value}",
                severity=TOAST_SEVERITY[alert.priority],
                timeout=10 if alert.priority is AlertPriority.CRITICAL else 5,
                markup=False,
            )
        if len(alerts) > MAX_TOASTS_PER_FRAME:
            self.notify(f"{len(alerts) - MAX_TOASTS_PER_FRAME} more new alerts in the alerts panel", severity="warning")

    def _theme_changed(self, _theme: object) -> None:
        self.palette = Palette.from_theme_variables(self.theme_variables)
        for screen in self.screen_stack:
            apply = getattr(screen, "apply_palette", None)
            if apply is not None and screen.is_attached:
                apply(self.palette)
        self._version = self._shape = None  # repaint everything with the new colours on the next frame

    # ------------------------------------------------------------------ commands

    async def send_command(self, command: Command, *, success: str | None = None) -> Result | None:
        """Submit ``command`` and await the engine's answer without blocking the loop.

        A Denied is shown with the engine's reason; so is a lost answer.
        """
        try:
            future = self.engine.submit(command)
            result = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), COMMAND_TIMEOUT)
        except asyncio.TimeoutError:
            self.notify(
                f"No answer from the engine to {type(command).__name__} within {COMMAND_TIMEOUT:.0f}s; "
                "check the trades before trying again.",
                severity="error",
                timeout=15,
            )
            return None
        except Exception as error:  # the engine refused to take the command at all (stopped, full...)
            self.notify(f"{type(command).__name__} not sent: {error}", severity="error", timeout=15)
            return None
        if isinstance(result, Denied):
            self.notify(f"{result.code}: {result.message}", title="Refused by the engine", severity="error", timeout=10)
        elif isinstance(result, Accepted):
            self.notify(result.message or success or "Done", title="Accepted")
        self.refresh_frame()
        return result

    @work(group="commands")
    async def run_command(self, command: Command, *, success: str | None = None) -> None:
        """Fire-and-report form of ``send_command`` for actions that need no follow-up."""
        await self.send_command(command, success=success)

    def instrument_lookup(self, exchange: str, symbol: str) -> Instrument:
        """The engine's instrument data (call from a thread worker: it may ask the broker)."""
        return self.engine.instrument(exchange, symbol)

    # ------------------------------------------------------------------ app-wide actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "panic":
            # A second panic key press while the dialog is up must not stack another one.
            return not any(isinstance(screen, PanicModal) for screen in self.screen_stack)
        return True

    def action_panic(self) -> None:
        open_trades = self.latest.open_trades if self.latest is not None else ()
        self._panic_flow(PanicModal(open_trades))

    @work(group="panic")
    async def _panic_flow(self, modal: PanicModal) -> None:
        if await self.push_screen_wait(modal):
            await self.send_command(
                ExitAll(strategy=None, reason=ExitReason.PANIC, panic=True),
                success="PANIC exit sent for every open trade; new entries are halted until you re-arm (F10)",
            )

    def action_rearm(self) -> None:
        system = self.latest.system if self.latest is not None else None
        if system is None or not system.entries_halted:
            self.notify("New entries are not halted: nothing to re-arm", title="Re-arm")
            return
        if any(isinstance(screen, ConfirmModal) for screen in self.screen_stack):
            return
        self._rearm_flow()

    @work(group="panic")
    async def _rearm_flow(self) -> None:
        confirmed = await self.push_screen_wait(
            ConfirmModal(
                "Re-arm new entries?",
                [
                    "New entries are halted in every strategy since the panic exit.",
                    "Re-arming lets tmtool enter new trades again (strategy limits still apply).",
                ],
                confirm_label="Re-arm",
            )
        )
        if confirmed:
            await self.send_command(Rearm(), success="Re-armed: new entries are taken again")

    def action_help(self) -> None:
        if any(isinstance(screen, HelpModal) for screen in self.screen_stack):
            return
        self.push_screen(HelpModal(self.help_groups()))

    def help_groups(self) -> list[tuple[str, list[tuple[str, str]]]]:
        def rows(bindings: list[Binding]) -> list[tuple[str, str]]:
            grouped: dict[str, list[str]] = {}
            for binding in bindings:
                if binding.action.startswith("app."):
                    continue  # a screen's footer entry for an app-wide key, listed under "Everywhere"
                keys = grouped.setdefault(binding.description or binding.action, [])
                keys.append(self.get_key_display(binding))
            return [(" / ".join(keys), what) for what, keys in grouped.items()]

        return [
            ("Everywhere", rows(self.BINDINGS)),
            ("Dashboard", rows(DashboardScreen.BINDINGS)),
            ("Trades table", rows([b for b in TradesTable.BINDINGS if b.description]) + [("↑ ↓ PgUp PgDn", "move between trades")]),
            ("Alerts panel (tab to focus)", rows(AlertsPanel.BINDINGS)),
            ("Strategies screen", rows(StrategiesScreen.BINDINGS)),
            ("History screen", rows(HistoryScreen.BINDINGS)),
            ("Money at risk", rows(MoneyAtRiskScreen.BINDINGS)),
            ("Trade story", rows(TradeStoryScreen.BINDINGS)),
            ("Orders and positions", rows(OrdersPositionsScreen.BINDINGS)),
        ] + [(f"What it shows: {where}", list(entries)) for where, entries in LEGEND]

    def action_quit_app(self) -> None:
        open_count = len(self.latest.open_trades) if self.latest is not None else 0
        if self.lifecycle is not None and open_count:
            self._quit_flow(open_count)
        else:
            self.exit()

    @work(group="flows")
    async def _quit_flow(self, open_count: int) -> None:
        confirmed = await self.push_screen_wait(
            ConfirmModal(
                "Quit tmtool?",
                [
                    f"{open_count} trade(s) are open. Once the engine stops, tmtool no longer watches",
                    "their stops, targets and trailing stops (nothing is left at the broker).",
                ],
                confirm_label="Quit",
            )
        )
        if confirmed:
            self.exit()

    def open_strategies(self) -> None:
        self.push_screen(StrategiesScreen())

    def open_history(self) -> None:
        self.push_screen(HistoryScreen())

    def open_alert_history(self) -> None:
        self.push_screen(AlertHistoryScreen())

    def open_money_at_risk(self) -> None:
        self.push_screen(MoneyAtRiskScreen())

    def open_trade_story(self, trade_id: int) -> None:
        self.push_screen(TradeStoryScreen(trade_id))

    def open_orders_positions(self) -> None:
        self.push_screen(OrdersPositionsScreen())


def run_tui(
    engine: EngineHandle,
    *,
    lifecycle: EngineLifecycle,
    config_path: Path | None,
    clock: Clock,
    simulated: bool,
    bell: bool = True,
    refresh_hz: float = 8.0,
) -> str | None:
    """Run the TUI until the user quits; then stop the engine (the UI is gone by then).

    Returns what ``lifecycle.stop()`` returned (a shutdown summary).
    """
    app = TmtoolApp(
        engine,
        config_path=config_path,
        clock=clock,
        simulated=simulated,
        bell=bell,
        refresh_hz=refresh_hz,
        lifecycle=lifecycle,
    )
    try:
        app.run()
    finally:
        summary = app.stop_engine()
    return summary
