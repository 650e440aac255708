"""At 80x24 the desk shows what the README promises without horizontal scrolling: three strategy
cards, the trades table through its Status column, History through P&L and R, most of an alert's text, the
strategy form's buttons even with warnings, and a footer with every screen key."""

from __future__ import annotations

import dataclasses

import pytest
from textual.widgets import Input

from tests.ui.fixtures import MOMENTUM, EngineDouble, snapshot_app
from tests.ui.helpers import until
from tests.ui.test_small_terminal import strategy_form
from tests.ui.test_snapshots import settle
from tmtool.screens.alert_history import AlertHistoryScreen
from tmtool.screens.history import HistoryScreen
from tmtool.screens.widgets.strategy_cards import StrategyCard

SMALL = (80, 24)


def screen_lines(app) -> list[str]:
    return ["".join(segment.text for segment in strip) for strip in app.screen._compositor.render_strips()]


def three_strategies() -> EngineDouble:
    engine = EngineDouble()
    first = engine.current.strategies[0]
    third = dataclasses.replace(first, name="swing", strategy=dataclasses.replace(MOMENTUM, name="swing"))
    engine.bump(strategies=engine.current.strategies + (third,))
    return engine


async def test_three_strategy_cards_fit_side_by_side():
    app = snapshot_app(three_strategies())
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        cards = list(app.screen.query(StrategyCard))
        assert len(cards) == 3
        for card in cards:
            assert card.region.right <= SMALL[0], card.region
        assert all("P&L" in str(card.query_one(".card-totals").render()) for card in cards)


async def test_the_trades_table_shows_through_the_status_with_no_column_cut():
    app = snapshot_app()
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        header = next(line for line in screen_lines(app) if "Symbol" in line)
        assert header.rstrip().endswith("Status")  # the next column starts past the edge, not half shown
        assert "PAUSED" in next(line for line in screen_lines(app) if " INFY " in line)
        assert "813.95" in next(line for line in screen_lines(app) if " SBIN " in line)


async def test_history_shows_pnl_and_r_without_scrolling():
    app = snapshot_app()
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("h")
        await until(pilot, lambda: isinstance(app.screen, HistoryScreen) and app.screen.report)
        await settle(pilot)
        header = next(line for line in screen_lines(app) if "Symbol" in line)
        assert "P&L" in header and "R mult" in header
        assert "+145.00" in next(line for line in screen_lines(app) if "WIPRO" in line)


async def test_the_alert_log_shows_most_of_each_alert():
    app = snapshot_app()
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, AlertHistoryScreen))
        await settle(pilot)
        assert any("#5 HDFCBANK exited at target 1,656.00" in line for line in screen_lines(app))


async def test_the_strategy_form_keeps_its_buttons_on_screen_with_warnings():
    app = snapshot_app()
    async with app.run_test(size=SMALL) as pilot:
        await strategy_form(pilot)
        form = app.screen
        form.query_one("#daily_loss", Input).value = "50"
        form.query_one("#p_stop", Input).value = "90000"
        await settle(pilot)
        assert "⚠" in str(form.query_one("#preview").render())
        for button_id in ("#save", "#cancel"):
            assert form.query_one(button_id).region.bottom <= SMALL[1]


@pytest.mark.parametrize("width", [80, 100])
async def test_the_footer_shows_the_screen_keys(width):
    app = snapshot_app()
    async with app.run_test(size=(width, 24)) as pilot:
        await settle(pilot)
        footer = screen_lines(app)[-1]
        for entry in ("f9 PANIC", "n New", "m Modify", "x Exit", "p Pause", "t Strategies", "h History", "? Help", "q Quit"):
            assert entry in footer, (entry, footer)


@pytest.mark.parametrize(("size", "alert_rows"), [((80, 24), 5), ((160, 45), 9)])
async def test_the_alerts_panel_grows_with_the_terminal(size, alert_rows):
    from tmtool.screens.widgets.alerts_panel import AlertsPanel
    from tmtool.screens.widgets.trades_table import TradesTable

    app = snapshot_app()
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        panel, table = app.screen.query_one(AlertsPanel), app.screen.query_one(TradesTable)
        assert panel.region.height >= alert_rows
        assert table.region.height >= 10
        assert panel.region.bottom == size[1] - 1  # the footer is the last row: nothing empty in between
