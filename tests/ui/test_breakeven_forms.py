"""Breakeven per trade in the New trade and Modify forms, over an engine double."""

from __future__ import annotations

import pytest
from textual.widgets import Input

from tests.ui.fixtures import EngineDouble, snapshot_app
from tests.ui.helpers import select_trade, static_text, until
from tmtool.domain.commands import UNSET, CreateTrade, ModifyTrade
from tmtool.domain.models import Distance, DistanceMode
from tmtool.screens.modals.modify_trade import FIELD_HINTS, ModifyTradeModal
from tmtool.screens.modals.new_trade import NewTradeModal

SIZE = (120, 36)
PCT = DistanceMode.PERCENT


async def _modify(pilot, app, trade_id: int) -> ModifyTradeModal:
    await select_trade(pilot, trade_id)
    await pilot.press("m")
    return await until(pilot, lambda: isinstance(app.screen, ModifyTradeModal) and app.screen)


@pytest.mark.parametrize(
    ("typed", "expected", "message"),
    [
        ("15", Distance(15), FIELD_HINTS["breakeven"]),
        ("0.5%", Distance(0.5, PCT), FIELD_HINTS["breakeven"]),
        ("", None, "breakeven switches off (the stop stays where it is)"),
    ],
)
async def test_modify_shows_the_trades_breakeven_and_sends_a_change(typed, expected, message):
    engine = EngineDouble()
    app = snapshot_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        modal = await _modify(pilot, app, 1)
        field = modal.query_one("#breakeven", Input)
        assert field.value == "1%"  # trade #1's own setting
        field.value = typed
        await pilot.pause()
        assert static_text(pilot, "#breakeven-message") == message
        await pilot.press("ctrl+s")
        await until(pilot, lambda: engine.commands)
    assert engine.commands == [ModifyTrade(1, breakeven_after=expected)]


async def test_modify_refuses_a_bad_breakeven_and_sends_nothing():
    engine = EngineDouble()
    app = snapshot_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        modal = await _modify(pilot, app, 1)
        modal.query_one("#breakeven", Input).value = "100%"
        await pilot.pause()
        assert "breakeven: a percentage must be below 100" in static_text(pilot, "#breakeven-message")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, ModifyTradeModal) and engine.commands == []


async def test_modify_of_a_trade_without_breakeven_starts_empty_and_leaves_it_alone():
    engine = EngineDouble()
    app = snapshot_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        modal = await _modify(pilot, app, 2)
        assert modal.query_one("#breakeven", Input).value == ""
        modal.query_one("#target", Input).value = "2870"
        await pilot.pause()
        await pilot.press("ctrl+s")
        await until(pilot, lambda: engine.commands)
    assert engine.commands == [ModifyTrade(2, target=2870.0)]
    assert engine.commands[0].breakeven_after is UNSET


@pytest.mark.parametrize(
    ("typed", "expected"),
    [("", UNSET), ("12.5", Distance(12.5)), ("1.5%", Distance(1.5, PCT)), ("none", None), ("NONE", None)],
)
async def test_new_trade_sets_breakeven_for_this_trade(typed, expected):
    engine = EngineDouble()
    app = snapshot_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        modal = await until(pilot, lambda: isinstance(app.screen, NewTradeModal) and app.screen)
        modal.query_one("#symbol", Input).value = "SBIN"
        modal.query_one("#quantity", Input).value = "10"
        modal.query_one("#breakeven", Input).value = typed
        await pilot.pause()
        await pilot.press("ctrl+s")
        await until(pilot, lambda: engine.commands)
    [command] = engine.commands
    assert isinstance(command, CreateTrade) and command.breakeven_after == expected


async def test_new_trade_refuses_a_bad_breakeven_and_hints_the_strategy_default():
    engine = EngineDouble()
    app = snapshot_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        modal = await until(pilot, lambda: isinstance(app.screen, NewTradeModal) and app.screen)
        field = modal.query_one("#breakeven", Input)
        assert field.placeholder == "off by default; e.g. 1%"
        modal.query_one("#symbol", Input).value = "SBIN"
        modal.query_one("#quantity", Input).value = "10"
        field.value = "-3"
        await pilot.pause()
        assert "breakeven: must be greater than zero" in static_text(pilot, "#form-error")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, NewTradeModal) and engine.commands == []
