"""The snapshot bridge, the keyed table, toasts and dialogs, over an engine double (no threads)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading

from textual.widgets import Input
from textual.widgets._toast import Toast, ToastRack

from tests.ui.fixtures import EngineDouble, fixed_clock, seeded_snapshot, snapshot_app, trade_view
from tests.ui.helpers import cell, notifications, select_trade, static_text, trades_table, until
from tmtool.domain.commands import (
    CreateTrade,
    Denied,
    ExitAll,
    ExitTrade,
    ModifyTrade,
    UNSET,
)
from tmtool.domain.models import (
    Alert,
    AlertCategory,
    AlertPriority,
    ExitReason,
    PriceType,
    Side,
    TradeStatus,
)
from tmtool.screens.dashboard import DashboardScreen
from tmtool.screens.history import HistoryScreen
from tmtool.screens.strategies import StrategiesScreen
from tmtool.screens.modals.confirm import ConfirmModal, PanicModal
from tmtool.screens.modals.new_trade import NewTradeModal
from tmtool.screens.widgets.alerts_panel import AlertsPanel
from tmtool.screens.widgets.trades_table import TradeFilter, TradeOrder

SIZE = (120, 36)


def moved(engine: EngineDouble, trade_id: int, **changes) -> None:
    trades = tuple(dataclasses.replace(t, **changes) if t.id == trade_id else t for t in engine.current.trades)
    engine.bump(trades=trades)


async def test_cursor_stays_on_the_same_trade_through_sorts_and_removals():
    engine = EngineDouble()
    app = snapshot_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        table = trades_table(pilot)
        await select_trade(pilot, 3)
        table.set_order(TradeOrder("pnl", reverse=True))
        assert table.selected_trade_id() == 3
        engine.bump(trades=tuple(t for t in engine.current.trades if t.id not in (1, 2)))
        await until(pilot, lambda: 1 not in table.shown_trade_ids())
        assert table.selected_trade_id() == 3
        moved(engine, 3, ltp=1500.0, pnl=-3520.0)  # now the worst P&L: its row moves to the bottom
        await until(pilot, lambda: table.shown_trade_ids()[-2:] == [3, 5] or table.shown_trade_ids().index(3) == 1)
        assert table.selected_trade_id() == 3


async def test_only_changed_cells_are_updated_and_unchanged_versions_are_skipped(monkeypatch):
    engine = EngineDouble()
    app = snapshot_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        table = trades_table(pilot)
        await until(pilot, lambda: table.row_count == 4)
        updates: list[tuple[str, str]] = []
        original = type(table).update_cell

        def spy(self, row_key, column_key, value, *, update_width=False):
            assert not update_width
            updates.append((str(row_key), str(column_key)))
            return original(self, row_key, column_key, value)

        monkeypatch.setattr(type(table), "update_cell", spy)
        applied: list[int] = []
        dashboard = app.screen_stack[0]
        original_apply = DashboardScreen.apply_snapshot
        monkeypatch.setattr(
            DashboardScreen, "apply_snapshot", lambda self, snap: (applied.append(snap.version), original_apply(self, snap))
        )
        app.refresh_frame()
        assert applied == [] and updates == []  # same version: the frame is skipped
        view = engine.current.trade(2)
        moved(engine, 2, ltp=2925.0, pnl=123.0)
        app.refresh_frame()
        assert applied == [engine.current.version]
        assert set(updates) == {("2", "ltp"), ("2", "pnl")}
        assert cell(pilot, 2, "ltp").startswith("▼")  # the price fell: marked
        assert view.ltp > 2925.0
        assert dashboard is app.screen


async def test_price_only_snapshots_wait_for_the_price_frame_and_everything_else_shows_at_once(monkeypatch):
    engine = EngineDouble()
    app = snapshot_app(engine)  # polls at 8 Hz: prices show on every second poll (4 Hz)
    async with app.run_test(size=SIZE) as pilot:
        table = trades_table(pilot)
        await until(pilot, lambda: table.row_count == 4)
        app.poll_timer.pause()  # the test drives the polls
        applied: list[int] = []
        original_apply = DashboardScreen.apply_snapshot
        monkeypatch.setattr(
            DashboardScreen, "apply_snapshot", lambda self, snap: (applied.append(snap.version), original_apply(self, snap))
        )
        while app._polls % app._price_frame_every:
            app._poll()  # line up: the next poll is not a price frame
        moved(engine, 2, ltp=2925.0, pnl=123.0)
        app._poll()
        assert applied == []  # prices only: waits
        app._poll()
        assert applied == [engine.current.version]  # the price frame
        assert cell(pilot, 2, "ltp").endswith("2,925.00")
        moved(engine, 2, ltp=2920.0, status=TradeStatus.EXITING)
        app._poll()  # not a price frame, but a status changed: shown at once
        assert applied[-1] == engine.current.version and cell(pilot, 2, "status") == "EXITING"
        moved(engine, 2, ltp=2915.0, pnl=150.0)
        app.refresh_frame()  # an explicit frame (after a command) shows prices at once too
        assert applied[-1] == engine.current.version


async def test_rows_out_of_view_show_fresh_prices_once_scrolled_in():
    engine = EngineDouble()
    below = tuple(trade_view(100 + i, f"SYM{i:02d}", Side.LONG, 10, 500.0, 501.0) for i in range(40))
    engine.bump(trades=engine.current.trades + below)
    app = snapshot_app(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        table = trades_table(pilot)
        await until(pilot, lambda: table.row_count == 44)
        moved(engine, 139, ltp=477.5, pnl=-225.0)  # the last row, far below the view
        app.refresh_frame()
        table.move_cursor(row=table.get_row_index("139"))  # scrolls it into view
        await pilot.pause()
        assert table.scroll_offset.y > 0
        assert cell(pilot, 139, "ltp") == "▼ 477.50" and cell(pilot, 139, "pnl") == "-225.00"
        table.move_cursor(row=0)
        moved(engine, 139, ltp=478.0, pnl=-220.0)
        app.refresh_frame()
        await pilot.press("ctrl+end")  # scrolled in by a key this time
        await pilot.pause()
        assert cell(pilot, 139, "ltp") == "▲ 478.00"


async def test_filter_by_text_status_and_strategy():
    app = snapshot_app()
    async with app.run_test(size=SIZE) as pilot:
        table = trades_table(pilot)
        await until(pilot, lambda: table.row_count == 4)
        await pilot.press("slash", *"scalp")
        assert table.shown_trade_ids() == [4]
        await pilot.press("escape")
        assert table.has_focus
        table.set_filter(TradeFilter("", "ALL", None))
        assert sorted(table.shown_trade_ids()) == [1, 2, 3, 4, 5]
        table.set_filter(TradeFilter("", "CLOSED", "scalper"))
        assert table.shown_trade_ids() == [5]


async def test_new_trade_modal_builds_the_command_and_shows_the_answer():
    engine = EngineDouble()
    app = snapshot_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        modal = await until(pilot, lambda: isinstance(app.screen, NewTradeModal) and app.screen)
        modal.query_one("#symbol", Input).value = "sbin"
        modal.query_one("#price", Input).value = "820"
        modal.query_one("#stop", Input).value = "830"  # above the price for a LONG
        await pilot.pause()
        assert "INVALID_STOP" in static_text(pilot, "#preview")  # the live preview says so at once
        await pilot.press("ctrl+s")
        assert "stop 830.00 must be below" in static_text(pilot, "#form-error")
        assert engine.commands == []
        modal.query_one("#stop", Input).value = "810"
        await pilot.pause()
        assert "qty 100" in static_text(pilot, "#preview")  # RISK_BASED: 1,000 / (820 - 810)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: engine.commands)
    assert engine.commands == [
        CreateTrade(
            strategy="momentum",  # the strategy of the trade under the cursor
            symbol="SBIN",
            exchange="NSE",
            side=Side.LONG,
            product=engine.current.strategies[0].strategy.product,
            quantity=100,  # the size the preview showed
            price_type=PriceType.MARKET,
            limit_price=None,
            stop_loss=810.0,
            target=None,
        )
    ]


async def test_modify_sends_only_what_changed():
    engine = EngineDouble()
    app = snapshot_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await select_trade(pilot, 1)
        await pilot.press("m")
        await pilot.pause()
        app.screen.query_one("#target", Input).value = ""
        app.screen.query_one("#stop", Input).value = "810"
        await pilot.pause()
        assert "removed" in static_text(pilot, "#target-message")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: engine.commands)
    assert engine.commands == [ModifyTrade(1, stop_loss=810.0, target=None, trailing=UNSET, partial_targets=UNSET)]


async def test_denied_answer_is_shown_to_the_user():
    engine = EngineDouble()
    engine.answer = Denied("UNKNOWN_TRADE", "trade #1 is not open")
    app = snapshot_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await select_trade(pilot, 1)
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await until(pilot, lambda: any("UNKNOWN_TRADE: trade #1 is not open" == n.message for n in app._notifications))
    assert engine.commands == [ExitTrade(1, ExitReason.MANUAL)]


async def test_panic_is_never_one_key_and_never_stacks():
    engine = EngineDouble()
    app = snapshot_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f9", "f9", "enter")
        await until(pilot, lambda: not isinstance(app.screen, PanicModal))
        assert engine.commands == []
        await pilot.press("ctrl+x")
        await until(pilot, lambda: isinstance(app.screen, PanicModal))
        await pilot.press("tab", "enter")  # the button is disabled until "y" arms it
        assert isinstance(app.screen, PanicModal) and engine.commands == []
        await pilot.press("y", "enter")
        await until(pilot, lambda: engine.commands)
    assert engine.commands == [ExitAll(strategy=None, reason=ExitReason.PANIC, panic=True)]


async def test_new_alerts_toast_and_ring_the_bell_when_critical(monkeypatch):
    engine = EngineDouble()
    app = snapshot_app(engine)
    rings: list[int] = []
    monkeypatch.setattr(type(app), "bell", lambda self: rings.append(1))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert not app._notifications  # what was there before the UI came up is not toasted
        critical = Alert(9, engine.current.ts, AlertCategory.SYSTEM, AlertPriority.CRITICAL, "database unavailable: memory only")
        engine.bump(alerts=(critical, *engine.current.alerts))
        app.refresh_frame()
        await pilot.pause()
        assert [n.message for n in app._notifications] == ["database unavailable: memory only"]
        assert rings == [1]
        engine.bump()  # a new version with the same alert: no second toast, no second bell
        app.refresh_frame()
        await pilot.pause()
        assert rings == [1] and len(app._notifications) == 1


async def test_info_alerts_stay_in_the_panel_and_warnings_toast():
    engine = EngineDouble()
    app = snapshot_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        info = Alert(20, engine.current.ts, AlertCategory.TRADE, AlertPriority.INFO, "trade #1 [SBIN] entered")
        warning = Alert(21, engine.current.ts, AlertCategory.SYSTEM, AlertPriority.WARNING, "feed [reconnecting]")
        engine.bump(alerts=(info, *engine.current.alerts))
        app.refresh_frame()
        await pilot.pause()
        alerts_panel = app.screen.query_one(AlertsPanel)
        assert "20" in [str(key.value) for key in alerts_panel.rows]  # listed in the panel...
        assert notifications(pilot) == []  # ...but no toast
        engine.bump(alerts=(warning, *engine.current.alerts))
        app.refresh_frame()
        await pilot.pause()
        assert notifications(pilot) == ["feed [reconnecting]"]  # shown as written, not as markup


async def test_toasts_wait_while_a_dialog_is_open(monkeypatch):
    engine = EngineDouble()
    app = snapshot_app(engine)
    rings: list[int] = []
    monkeypatch.setattr(type(app), "bell", lambda self: rings.append(1))
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await pilot.pause()
        app.notify("shown before the dialog opened")
        await pilot.press("f9")
        modal = await until(pilot, lambda: isinstance(app.screen, PanicModal) and app.screen)
        critical = Alert(30, engine.current.ts, AlertCategory.TRADE, AlertPriority.CRITICAL, "exit of #2 failed")
        engine.bump(alerts=(critical, *engine.current.alerts))
        app.refresh_frame()
        await pilot.pause()
        assert rings == [1]  # the bell still rings at once
        assert "exit of #2 failed" not in notifications(pilot)  # held: no toast over the dialog
        assert shown_toasts(modal) == []  # and the toast from before is not drawn over the dialog either
        await pilot.press("escape")
        await until(pilot, lambda: "exit of #2 failed" in notifications(pilot), what="the held toast")
        await until(pilot, lambda: "exit of #2 failed" in shown_toasts(app.screen), what="the held toast on screen")
        assert "shown before the dialog opened" in shown_toasts(app.screen)


def shown_toasts(screen) -> list[str]:
    """The messages of the toasts drawn on ``screen``."""
    return [
        toast._notification.message
        for toast in screen.get_child_by_type(ToastRack).query(Toast)
        if toast.parent.display and toast.region.area
    ]


async def test_engine_starts_off_the_loop_and_status_says_starting_until_then():
    release = threading.Event()

    class SlowEngine(EngineDouble):
        started = stopped = False

        def start(self) -> None:
            release.wait(10)
            self.started = True

        def stop(self) -> str:
            self.stopped = True
            return "stopped cleanly"

    engine = SlowEngine()
    app = snapshot_app(engine, lifecycle=engine)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "ENGINE STARTING" in static_text(pilot, "#status-text")  # the loop is not blocked by start()
        assert trades_table(pilot).row_count == 0
        release.set()
        await until(pilot, lambda: "ENGINE OK" in static_text(pilot, "#status-text"))
        await until(pilot, lambda: trades_table(pilot).row_count == 4)
    assert app.stop_engine() == "stopped cleanly" and engine.stopped


async def test_a_screen_opened_between_polls_shows_the_status_at_once():
    app = snapshot_app()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "FEED LIVE" in static_text(pilot, "#status-text"))
        app.poll_timer.pause()  # no poll will fill it in
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, StrategiesScreen))
        await pilot.pause()
        assert "FEED LIVE" in str(app.screen.query_one("#status-text").content)


async def test_late_snapshots_do_not_reach_closed_screens():
    engine = EngineDouble()
    app = snapshot_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("h")
        await until(pilot, lambda: isinstance(app.screen, HistoryScreen))
        await until(pilot, lambda: "Trades 5" in static_text(pilot, "#history-summary"))
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HistoryScreen))
        engine.bump(trades=(trade_view(7, "ITC", Side.LONG, 1, 400.0, 401.0),))
        app.refresh_frame()
        assert trades_table(pilot).shown_trade_ids() == [7]


def test_the_app_does_not_pull_in_storage_or_the_broker():
    code = (
        "import sys, tmtool.screens.app; "
        "bad = [m for m in sys.modules if m.startswith(('tmtool.storage', 'peewee', 'tmtool.openalgo.client', "
        "'tmtool.engine.engine', 'tmtool.openalgo.feed', 'tmtool.sim', 'httpx', "
        "'pyarrow', 'textual_plotext', 'tmtool.replay'))]; print(bad)"  # replay loads when History draws a path
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_seeded_snapshot_matches_the_fixture_assumptions():
    snapshot = seeded_snapshot()
    assert [t.id for t in snapshot.open_trades] == [1, 2, 3, 4]


async def test_an_app_sharing_the_engines_process_hands_the_interpreter_lock_over_every_millisecond():
    """The UI thread is CPU-bound while it draws; with Python's default 5 ms switch interval every hop
    an exit makes between threads (feed, engine, executor) can wait that long behind it.  The app
    shortens the interval while it runs beside the engine and puts it back when it ends; an attached
    app (its engine in another process) leaves it alone."""
    default = sys.getswitchinterval()
    from tmtool.screens.app import IN_PROCESS_SWITCH_INTERVAL, TmtoolApp

    assert IN_PROCESS_SWITCH_INTERVAL < default
    async with snapshot_app(EngineDouble()).run_test(size=SIZE):
        assert sys.getswitchinterval() == IN_PROCESS_SWITCH_INTERVAL
    assert sys.getswitchinterval() == default
    attached = TmtoolApp(EngineDouble(), config_path=None, clock=fixed_clock(), simulated=True, bell=False,
                         engine_in_process=False)
    async with attached.run_test(size=SIZE):
        assert sys.getswitchinterval() == default
    assert sys.getswitchinterval() == default
