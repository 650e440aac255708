"""The money-at-risk view and a trade's story: the numbers in rupees, and the audit trail from the store."""

from __future__ import annotations

import dataclasses

import pytest
from textual.widgets import DataTable

from tests.ui.fixtures import FIXED_NOW, EngineDouble, seeded_snapshot, snapshot_app, trade_view
from tests.ui.helpers import select_trade, static_text, until
from tests.ui.test_snapshots import settle
from tmtool.screens.at_risk import MoneyAtRiskScreen
from tmtool.screens.exposure import by_strategy, held_text, open_exposures, trade_exposure
from tmtool.screens.orders_positions import OrdersPositionsScreen
from tmtool.domain.models import Side, TradeStatus
from tmtool.screens.trade_story import TradeStoryScreen, risk_summary, story_rows

SIZES = [(80, 24), (160, 45)]


def test_a_long_trades_money_to_stop_and_target_and_r():
    view = seeded_snapshot().trade(1)  # LONG 100 SBIN at 812.40, LTP 818.95, trail 813.95, target 828.65
    exposure = trade_exposure(view, FIXED_NOW, initial_stop=804.30)
    assert exposure.to_stop == pytest.approx((813.95 - 818.95) * 100)  # -500: given back if the trail fills
    assert exposure.stop_pnl == pytest.approx((813.95 - 812.40) * 100)  # +155 kept
    assert exposure.to_target == pytest.approx((828.65 - 818.95) * 100)
    assert exposure.r_now == pytest.approx(round((818.95 - 812.40) / (812.40 - 804.30), 2))
    assert exposure.held_seconds == FIXED_NOW - view.opened_at


def test_a_short_trade_counts_the_other_way():
    view = seeded_snapshot().trade(2)  # SHORT 20 RELIANCE at 2921.10, LTP 2930.55, stop 2950.35, target 2862.70
    exposure = trade_exposure(view, FIXED_NOW)
    assert exposure.to_stop == pytest.approx((2930.55 - 2950.35) * 20)
    assert exposure.to_target == pytest.approx((2930.55 - 2862.70) * 20)


def test_totals_per_strategy_and_for_the_account():
    exposures = open_exposures(seeded_snapshot().trades, FIXED_NOW)
    rows = {row.name: row for row in by_strategy(exposures)}
    assert set(rows) == {"momentum", "scalper", "account"}
    assert rows["account"].trades == 4  # open trades only
    assert rows["account"].to_stop == pytest.approx(rows["momentum"].to_stop + rows["scalper"].to_stop)
    assert held_text(3900) == "1h 05m" and held_text(45) == "45s"


async def test_v_opens_money_at_risk_with_the_account_row():
    app = snapshot_app(EngineDouble())
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("v")
        screen = await until(pilot, lambda: isinstance(app.screen, MoneyAtRiskScreen) and app.screen)
        totals = screen.query_one("#at-risk-totals", DataTable)
        await until(pilot, lambda: totals.row_count == 3)
        account = totals.get_row("account")
        assert account[3].plain == "-1,973.00"
        trades = screen.query_one("#at-risk-trades", DataTable)
        await until(pilot, lambda: trades.get_row("1")[5].plain == "+0.81", what="R against the first stop")


async def test_enter_on_a_trade_tells_its_story():
    engine = EngineDouble()
    app = snapshot_app(engine)
    async with app.run_test(size=(100, 30)) as pilot:
        await select_trade(pilot, 1)
        await pilot.press("enter")
        screen = await until(pilot, lambda: isinstance(app.screen, TradeStoryScreen) and app.screen)
        await until(pilot, lambda: screen.events is not None)
        table = screen.query_one("#story-table", DataTable)
        assert table.row_count == len(engine.trade_events(1))
        assert "₹ to stop -500.00" in static_text(pilot, "#story-risk")
    rows = story_rows(engine.trade_events(1))
    assert rows[-2][1] == "TRAIL" and "804.3 → 813.95" in rows[-2][2]


async def open_risk(pilot) -> None:
    await pilot.press("v")
    await until(pilot, lambda: isinstance(pilot.app.screen, MoneyAtRiskScreen))
    await until(pilot, lambda: not any(w.group == "at-risk" and not w.is_finished for w in pilot.app.workers))
    await settle(pilot)


async def open_story(pilot) -> None:
    await pilot.press("i")
    await until(pilot, lambda: isinstance(pilot.app.screen, TradeStoryScreen) and pilot.app.screen.events is not None)
    await settle(pilot)


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_money_at_risk_snapshot(snap_compare, size):
    assert snap_compare(snapshot_app(), terminal_size=size, run_before=open_risk)


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_trade_story_snapshot(snap_compare, size):
    assert snap_compare(snapshot_app(), terminal_size=size, run_before=open_story)


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_dashboard_snapshot(snap_compare, size):
    assert snap_compare(snapshot_app(), terminal_size=size, run_before=settle)


async def test_b_shows_positions_with_the_differences_and_the_live_orders():
    app = snapshot_app(EngineDouble())
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("b")
        screen = await until(pilot, lambda: isinstance(app.screen, OrdersPositionsScreen) and app.screen)
        positions = screen.query_one("#positions-table", DataTable)
        await until(pilot, lambda: positions.row_count == 4)
        assert positions.get_row("NSE:INFY:MIS")[3].plain == "DIFFERS by -10"
        assert positions.get_row("NSE:SBIN:MIS")[3].plain == "matches"
        assert positions.get_row("NSE:TCS:MIS")[3].plain == "not read yet"
        orders = screen.query_one("#orders-table", DataTable)
        row = orders.get_row("x-4-1")
        assert row[1] == "EXIT SELL 10 TCS" and row[3] == "4/10" and row[5] == "STOP_LOSS"


async def open_orders(pilot) -> None:
    await pilot.press("b")
    await until(pilot, lambda: isinstance(pilot.app.screen, OrdersPositionsScreen))
    await settle(pilot)


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_orders_and_positions_snapshot(snap_compare, size):
    assert snap_compare(snapshot_app(), terminal_size=size, run_before=open_orders)


def test_a_trade_whose_exit_waits_says_why_in_its_story():
    view = dataclasses.replace(
        trade_view(7, "SBIN", Side.LONG, 10, 800.0, 795.0, stop=790.0, status=TradeStatus.EXITING),
        exit_wait="others' orders",
    )
    summary = risk_summary(view, view.opened_at or 0.0)
    assert "EXITING (the exit waits: others' orders)" in summary
    plain = risk_summary(dataclasses.replace(view, exit_wait=""), view.opened_at or 0.0)
    assert "waits" not in plain
