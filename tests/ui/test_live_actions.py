"""Every dashboard action, driven by key presses, against a running engine on the simulator."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path

import pytest

from tests.stack import running_stack
from tests.ui.helpers import cell, select_trade, trades_table, until
from tmtool.domain.commands import CreateTrade, ExitTrade
from tmtool.domain.models import (
    MANUAL_STRATEGY,
    Distance,
    ExitReason,
    Side,
    Sizing,
    SizingMode,
    Strategy,
    TradeRisk,
    TradeStatus,
)
from tmtool.screens.app import TmtoolApp
from tmtool.screens.modals.confirm import ConfirmModal, PanicModal
from tmtool.screens.modals.modify_trade import FIELD_HINTS, ModifyTradeModal
from tmtool.screens.modals.new_trade import NewTradeModal
from tmtool.screens.strategies import StrategiesScreen, StrategyFormModal

SIZE = (120, 36)
MANUAL = Strategy(MANUAL_STRATEGY, sizing=Sizing(SizingMode.FIXED_QUANTITY, 10))
SWING = Strategy("swing", trade_risk=TradeRisk(stop_loss=Distance(20.0)), sizing=Sizing(SizingMode.FIXED_QUANTITY, 5))
GONE = (TradeStatus.EXITING, TradeStatus.CLOSED)


@pytest.fixture
def stack(tmp_path):
    with running_stack(tmp_path, strategies=(MANUAL, SWING)) as running:
        yield running


def make_app(stack, tmp_path: Path | None = None) -> TmtoolApp:
    config_path = tmp_path / "tmtool.toml" if tmp_path is not None else None
    return TmtoolApp(
        stack.engine, config_path=config_path, clock=stack.clock, simulated=True, bell=False
    )


def open_trade(stack, symbol: str, quantity: int = 10, strategy: str = MANUAL_STRATEGY, side: Side = Side.LONG) -> int:
    trade_id = stack.create(CreateTrade(strategy, symbol, "NSE", side, quantity=quantity))
    stack.wait_status(trade_id, TradeStatus.ACTIVE)
    return trade_id


def status_of(stack, trade_id: int) -> TradeStatus:
    view = stack.engine.snapshot().trade(trade_id)
    if view is not None:
        return view.status
    return next(t.status for t in stack.engine.closed_trades() if t.id == trade_id)


async def test_new_trade_modal_places_the_entry(stack):
    app = make_app(stack)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        modal = await until(pilot, lambda: isinstance(app.screen, NewTradeModal) and app.screen)
        await pilot.press(*"SBIN")
        await pilot.click("#quantity")
        await pilot.press("1", "0")
        await pilot.click("#price")
        await pilot.press(*"800")
        await pilot.click("#stop")
        await pilot.press(*"790")
        await until(pilot, lambda: "qty 10" in str(modal.query_one("#preview").render()), what="live preview")
        assert "risk 100" in str(modal.query_one("#preview").render())
        await pilot.press("ctrl+s")
        view = await until(
            pilot,
            lambda: next(
                (t for t in stack.engine.snapshot().open_trades if t.symbol == "SBIN" and t.status is TradeStatus.ACTIVE),
                None,
            ),
            what="the new SBIN trade, filled",
        )
        await until(pilot, lambda: stack.position("SBIN") == 10, what="the simulator's position")
        await until(pilot, lambda: view.id in trades_table(pilot).shown_trade_ids(), what="the new row")
        assert view.stop_loss == 790.0
        assert cell(pilot, view.id, "symbol") == "SBIN"


async def test_exit_confirms_and_exits_the_trade_captured_at_key_press(stack):
    first = open_trade(stack, "SBIN")
    second = open_trade(stack, "INFY")
    app = make_app(stack)
    async with app.run_test(size=SIZE) as pilot:
        await select_trade(pilot, first)
        await pilot.press("x")
        modal = await until(pilot, lambda: isinstance(app.screen, ConfirmModal) and app.screen)
        assert f"#{first}" in modal.title_text
        # The cursor moves to the other trade while the dialog is up (a refresh, a sort)...
        table = trades_table(pilot)
        table.move_cursor(row=table.get_row_index(str(second)))
        await pilot.press("y")
        # ...and the trade captured at the key press is the one that exits.
        await until(pilot, lambda: status_of(stack, first) in GONE, what="first trade exiting")
        await until(pilot, lambda: stack.position("SBIN") == 0, what="SBIN flat")
        assert status_of(stack, second) is TradeStatus.ACTIVE
        assert stack.position("INFY") == 10


async def test_exit_dialog_refuses_on_enter_because_focus_starts_on_no(stack):
    trade_id = open_trade(stack, "SBIN")
    app = make_app(stack)
    async with app.run_test(size=SIZE) as pilot:
        await select_trade(pilot, trade_id)
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("enter")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmModal))
        assert status_of(stack, trade_id) is TradeStatus.ACTIVE
        assert stack.position("SBIN") == 10


async def test_engine_refusal_is_shown(stack):
    trade_id = open_trade(stack, "SBIN")
    app = make_app(stack)
    async with app.run_test(size=SIZE) as pilot:
        await select_trade(pilot, trade_id)
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        # The trade closes elsewhere while the dialog is open; the engine re-checks the id.
        stack.submit(ExitTrade(trade_id))
        await until(pilot, lambda: status_of(stack, trade_id) is TradeStatus.CLOSED, what="closed elsewhere")
        await pilot.press("y")
        refusals = await until(
            pilot,
            lambda: [n for n in pilot.app._notifications if n.title == "Refused by the engine"],
            what="the engine's refusal",
        )
        assert refusals[0].severity == "error"
        assert f"#{trade_id}" in refusals[0].message or str(trade_id) in refusals[0].message


async def test_modify_stop_and_inline_validation(stack):
    trade_id = open_trade(stack, "SBIN")
    stack.tick("SBIN", 800.0)
    app = make_app(stack)
    async with app.run_test(size=SIZE) as pilot:
        await select_trade(pilot, trade_id)
        await pilot.press("m")
        modal = await until(pilot, lambda: isinstance(app.screen, ModifyTradeModal) and app.screen)
        assert f"#{trade_id}" in str(modal.query_one("#modify-title").render())
        stop = modal.query_one("#stop")
        stop.value = "805"  # above the last price for a LONG
        await pilot.pause()
        assert "below the current price" in str(modal.query_one("#stop-message").render())
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, ModifyTradeModal), "a bad stop is not sent"
        stop.value = "785.5"
        await pilot.pause()
        assert str(modal.query_one("#stop-message").render()) == FIELD_HINTS["stop"]
        await pilot.press("ctrl+s")
        await until(pilot, lambda: stack.engine.snapshot().trade(trade_id).stop_loss == 785.5, what="stop moved")
        await until(pilot, lambda: cell(pilot, trade_id, "stop").endswith("785.50"), what="stop cell")


async def test_pause_and_resume(stack):
    trade_id = open_trade(stack, "SBIN")
    app = make_app(stack)
    async with app.run_test(size=SIZE) as pilot:
        await select_trade(pilot, trade_id)
        await pilot.press("p")
        await until(pilot, lambda: stack.engine.snapshot().trade(trade_id).paused, what="paused")
        await until(pilot, lambda: cell(pilot, trade_id, "status") == "PAUSED", what="PAUSED shown")
        await pilot.press("p")
        await until(pilot, lambda: not stack.engine.snapshot().trade(trade_id).paused, what="resumed")


async def test_bulk_exit_of_marked_trades(stack):
    first, second, kept = open_trade(stack, "SBIN"), open_trade(stack, "INFY"), open_trade(stack, "TCS")
    app = make_app(stack)
    async with app.run_test(size=SIZE) as pilot:
        for trade_id in (first, second):
            await select_trade(pilot, trade_id)
            await pilot.press("space")
        assert trades_table(pilot).marked_trade_ids() == (first, second)
        await pilot.press("X")
        modal = await until(pilot, lambda: isinstance(app.screen, ConfirmModal) and app.screen)
        lines = str(modal.query_one("#confirm-lines").render())
        assert f"#{first}" in lines and f"#{second}" in lines and f"#{kept}" not in lines
        await pilot.press("y")
        await until(pilot, lambda: stack.position("SBIN") == 0 and stack.position("INFY") == 0, what="both flat")
        assert status_of(stack, kept) is TradeStatus.ACTIVE
        await until(pilot, lambda: not trades_table(pilot).marked, what="marks cleared")


async def test_exit_all_of_one_strategy(stack):
    manual = open_trade(stack, "SBIN")
    swing_a = open_trade(stack, "INFY", 5, strategy="swing")
    swing_b = open_trade(stack, "TCS", 5, strategy="swing")
    app = make_app(stack)
    async with app.run_test(size=SIZE) as pilot:
        await select_trade(pilot, swing_a)
        await pilot.press("e")
        await until(pilot, lambda: app.screen.__class__.__name__ == "ChooseStrategyModal")
        await pilot.press("enter")  # the selected trade's strategy is highlighted
        modal = await until(pilot, lambda: isinstance(app.screen, ConfirmModal) and app.screen)
        assert "'swing'" in modal.title_text
        await pilot.press("y")
        await until(pilot, lambda: stack.position("INFY") == 0 and stack.position("TCS") == 0, what="swing flat")
        assert {status_of(stack, swing_a), status_of(stack, swing_b)} <= set(GONE)
        assert status_of(stack, manual) is TradeStatus.ACTIVE


async def test_panic_exit_needs_two_keys_never_stacks_and_closes_everything(stack):
    trade_ids = [open_trade(stack, "SBIN"), open_trade(stack, "INFY", 5, strategy="swing"), open_trade(stack, "RELIANCE", 3, side=Side.SHORT)]
    app = make_app(stack)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(trades_table(pilot).shown_trade_ids()) == 3)
        await pilot.press("f9")
        modal = await until(pilot, lambda: isinstance(app.screen, PanicModal) and app.screen)
        listed = str(modal.query_one("#panic-trades").render())
        assert all(f"#{trade_id}" in listed for trade_id in trade_ids)
        await pilot.press("f9", "ctrl+x")  # the panic key again: no second dialog
        assert sum(isinstance(screen, PanicModal) for screen in app.screen_stack) == 1
        await pilot.press("enter")  # focus starts on "No"
        await until(pilot, lambda: not isinstance(app.screen, PanicModal))
        assert all(status_of(stack, trade_id) is TradeStatus.ACTIVE for trade_id in trade_ids)

        await pilot.press("ctrl+x")
        await until(pilot, lambda: isinstance(app.screen, PanicModal))
        await pilot.press("y", "enter")
        await until(pilot, lambda: all(q == 0 for q in stack.sim.positions().values()), what="flat everywhere")
        await until(pilot, lambda: all(status_of(stack, trade_id) in GONE for trade_id in trade_ids))
        await until(pilot, lambda: {t.id for t in stack.engine.closed_trades()} >= set(trade_ids), what="closed")
        closed = {t.id: t for t in stack.engine.closed_trades()}
        assert all(closed[trade_id].exit_reason is ExitReason.PANIC for trade_id in trade_ids)


def status_bar_text(app) -> str:
    from textual.widgets import Static

    content = app.screen_stack[0].query_one("#status-text", Static).content
    return getattr(content, "plain", str(content))


async def test_panic_halts_entries_shown_in_the_status_bar_until_re_armed_with_confirmation(stack):
    trade_id = open_trade(stack, "SBIN")
    app = make_app(stack)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: trades_table(pilot).shown_trade_ids() == [trade_id])
        assert "HALTED" not in status_bar_text(app)
        await pilot.press("f10")  # nothing to re-arm: no dialog
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmModal)

        await pilot.press("f9")
        modal = await until(pilot, lambda: isinstance(app.screen, PanicModal) and app.screen)
        assert "halt" in str(modal.query_one("#panic-summary").render()).lower()
        await pilot.press("y", "enter")
        await until(pilot, lambda: status_of(stack, trade_id) in GONE and stack.position("SBIN") == 0, what="flat")
        await until(pilot, lambda: "HALTED" in status_bar_text(app), what="the halt in the status bar")
        denied = stack.submit(CreateTrade(MANUAL_STRATEGY, "INFY", "NSE", Side.LONG, quantity=1))
        assert getattr(denied, "code", "") == "PANIC_HALT"

        await pilot.press("f10")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("escape")  # changed my mind: still halted
        await until(pilot, lambda: not isinstance(app.screen, ConfirmModal))
        assert stack.engine.snapshot().system.entries_halted

        await pilot.press("f10")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await until(pilot, lambda: not stack.engine.snapshot().system.entries_halted, what="re-armed")
        await until(pilot, lambda: "HALTED" not in status_bar_text(app), what="the status bar cleared")
        assert open_trade(stack, "INFY", 1)


async def test_acknowledge_all_alerts(stack):
    trade_id = open_trade(stack, "SBIN")
    stack.submit(ExitTrade(trade_id))
    stack.wait_status(trade_id, TradeStatus.CLOSED)
    before = stack.wait_snapshot(lambda snap: any(not alert.acknowledged for alert in snap.alerts))
    pending = {alert.id for alert in before.alerts if not alert.acknowledged}
    app = make_app(stack)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("A")

        def acknowledged() -> bool:
            alerts = {alert.id: alert for alert in stack.engine.snapshot().alerts}
            return all(alerts[alert_id].acknowledged for alert_id in pending if alert_id in alerts)

        await until(pilot, acknowledged, what="the alerts shown at the key press acknowledged")


async def test_strategy_saved_through_the_form(stack, tmp_path):
    """The write-back keeps every comment of the user's file and leaves it readable by its owner only."""
    example = (Path(__file__).resolve().parents[2] / "config.example.toml").read_text()
    config_path = tmp_path / "tmtool.toml"
    config_path.write_text(example)
    config_path.chmod(0o644)
    app = make_app(stack, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, StrategiesScreen))
        await pilot.press("n")
        form = await until(pilot, lambda: isinstance(app.screen, StrategyFormModal) and app.screen)
        form.query_one("#name").value = "breakout"
        form.query_one("#sizing_value").value = "25"
        form.query_one("#stop").value = "1%"
        await pilot.press("ctrl+s")
        await until(
            pilot, lambda: any(s.name == "breakout" for s in stack.engine.snapshot().strategies), what="engine has it"
        )
        await until(pilot, lambda: "breakout" in config_path.read_text(), what="config written")
        await until(pilot, lambda: stat.S_IMODE(config_path.stat().st_mode) == 0o600, what="config written")
        text = config_path.read_text()
        assert text.startswith(example.rstrip("\n"))  # every comment and the layout kept; the strategy appended
        comments = [line for line in example.splitlines() if line.lstrip().startswith("#")]
        assert len(comments) >= 85 and all(line in text.splitlines() for line in comments)
        data = tomllib.loads(text)
        assert data["openalgo"]["host"] == "http://127.0.0.1:5000"
        assert [s["name"] for s in data["strategies"]] == ["momentum", "manual", "breakout"]
