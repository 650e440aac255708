"""Modify: the trade's partial targets and breakeven are shown, hints never pose as values,
and removing a live stop needs a confirmation."""

from __future__ import annotations

import dataclasses

from textual.widgets import Input

from tests.ui.fixtures import EngineDouble, snapshot_app
from tests.ui.helpers import select_trade, static_text, until
from tmtool.domain.commands import ModifyTrade
from tmtool.domain.models import PartialLevel
from tmtool.screens.modals.confirm import ConfirmModal
from tmtool.screens.modals.modify_trade import FIELD_HINTS, ModifyTradeModal

SIZE = (100, 30)


async def _modify(pilot, app, trade_id: int) -> ModifyTradeModal:
    await select_trade(pilot, trade_id)
    await pilot.press("m")
    return await until(pilot, lambda: isinstance(app.screen, ModifyTradeModal) and app.screen)


async def test_modify_shows_the_trades_partials_and_breakeven():
    engine = EngineDouble()
    trades = list(engine.current.trades)
    trades[0] = dataclasses.replace(
        trades[0], partial_levels=(PartialLevel(820.0, 50, done=True), PartialLevel(826.5, 25)), breakeven_done=True
    )
    engine.bump(trades=tuple(trades))
    app = snapshot_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await _modify(pilot, app, 1)
        levels = static_text(pilot, "#modify-levels")
    assert "820.00×50 done" in levels and "826.50×25 pending" in levels
    assert "breakeven: 1%, done" in levels


async def test_fields_have_no_placeholder_and_their_hints_show_in_full():
    app = snapshot_app(EngineDouble())
    async with app.run_test(size=(80, 24)) as pilot:
        modal = await _modify(pilot, app, 2)
        for field_id, hint in FIELD_HINTS.items():
            assert modal.query_one(f"#{field_id}", Input).placeholder == ""
            message = modal.query_one(f"#{field_id}-message")
            assert str(message.render()) == hint
            assert message.region.width >= len(hint) or message.region.height > 1, field_id


async def test_clearing_the_stop_asks_before_removing_it():
    engine = EngineDouble()
    app = snapshot_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        modal = await _modify(pilot, app, 2)
        modal.query_one("#stop", Input).value = ""
        await pilot.pause()
        await pilot.press("ctrl+s")
        confirm = await until(pilot, lambda: isinstance(app.screen, ConfirmModal) and app.screen)
        assert "Remove the stop of trade #2" in confirm.title_text
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is modal)
        assert engine.commands == []
        assert "nothing was sent" in static_text(pilot, "#form-error")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await until(pilot, lambda: engine.commands)
    assert engine.commands == [ModifyTrade(2, stop_loss=None)]
