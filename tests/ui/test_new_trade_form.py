"""The New trade form: the price and preview follow the symbol, what is sent is what was previewed,
invalid input shows no preview, and a refused trade keeps the dialog open with the reason."""

from __future__ import annotations

from textual.widgets import Input

from tests.ui.fixtures import EngineDouble, snapshot_app
from tests.ui.helpers import static_text, until
from tmtool.domain.commands import CreateTrade, Denied
from tmtool.screens.modals.new_trade import NewTradeModal

SIZE = (120, 36)


async def _open(pilot, app) -> NewTradeModal:
    await pilot.press("n")
    return await until(pilot, lambda: isinstance(app.screen, NewTradeModal) and app.screen)


async def test_the_filled_in_price_follows_the_symbol_and_the_previewed_size_is_sent():
    engine = EngineDouble()
    app = snapshot_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        modal = await _open(pilot, app)
        symbol = modal.query_one("#symbol", Input)
        symbol.value = "TCS"
        await pilot.pause()
        assert modal.query_one("#price", Input).value == "4090.50"  # TCS's last price, filled in
        symbol.value = "SBIN"
        await pilot.pause()
        assert modal.query_one("#price", Input).value == "818.95"  # now SBIN's, not TCS's
        await until(pilot, lambda: "qty " in static_text(pilot, "#preview"), what="the SBIN preview")
        preview = static_text(pilot, "#preview")
        symbol.value = "NEWCO"  # no known price: the filled-in SBIN price must not linger
        await pilot.pause()
        assert modal.query_one("#price", Input).value == ""
        symbol.value = "SBIN"
        await pilot.pause()
        await until(pilot, lambda: static_text(pilot, "#preview") == preview, what="the same preview again")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: engine.commands)
    [command] = engine.commands
    assert isinstance(command, CreateTrade) and command.symbol == "SBIN"
    assert f"qty {command.quantity} " in preview  # the size the preview showed, not a re-sizing


async def test_a_typed_price_stays_when_the_symbol_changes():
    engine = EngineDouble()
    app = snapshot_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        modal = await _open(pilot, app)
        modal.query_one("#price", Input).value = "500"
        modal.query_one("#symbol", Input).value = "SBIN"
        await pilot.pause()
        assert modal.query_one("#price", Input).value == "500"


async def test_invalid_input_shows_no_preview():
    engine = EngineDouble()
    app = snapshot_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        modal = await _open(pilot, app)
        modal.query_one("#symbol", Input).value = "SBIN"
        modal.query_one("#price", Input).value = "820"
        modal.query_one("#quantity", Input).value = "2"
        await until(pilot, lambda: "qty 2 " in static_text(pilot, "#preview"))
        modal.query_one("#quantity", Input).value = "2.5"
        await pilot.pause()
        assert "quantity: must be a whole number" in static_text(pilot, "#form-error")
        assert "qty" not in static_text(pilot, "#preview")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert engine.commands == []


async def test_a_refused_trade_keeps_the_form_open_with_the_reason_and_the_values():
    engine = EngineDouble()
    engine.answer = Denied("UNKNOWN_SYMBOL", "NSE:NOSUCH is not a known instrument")
    app = snapshot_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        modal = await _open(pilot, app)
        modal.query_one("#symbol", Input).value = "NOSUCH"
        modal.query_one("#quantity", Input).value = "7"
        await until(pilot, lambda: modal.instrument is not None)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: engine.commands)
        await until(pilot, lambda: "UNKNOWN_SYMBOL" in static_text(pilot, "#form-error"), what="the reason")
        assert app.screen is modal
        assert modal.query_one("#symbol", Input).value == "NOSUCH"
        assert modal.query_one("#quantity", Input).value == "7"
