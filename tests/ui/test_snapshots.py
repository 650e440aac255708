"""Snapshot tests: the dashboard, each dialog and the other screens, at pinned sizes.

An engine double serves a fixed snapshot (the UI's only input) and the clock
is fixed, so every render is deterministic; no engine thread runs here.
"""

from __future__ import annotations

from textual.widgets import Input

from tests.ui.fixtures import EngineDouble, snapshot_app
from tests.ui.helpers import until
from tmtool.screens.modals.pickers import DeleteStrategyModal
from tmtool.screens.strategies import StrategiesScreen, StrategyFormModal

SIZE = (100, 30)
LOADERS = ("instrument", "history", "alert-history")  # thread workers that fetch data for a screen


async def settle(pilot) -> None:
    """Stop cursors blinking and let pending work finish before the picture is taken."""
    await pilot.pause()
    for widget in pilot.app.screen.query(Input):
        widget.cursor_blink = False
    await until(
        pilot,
        lambda: not any(w.group in LOADERS and not w.is_finished for w in pilot.app.workers),
        what="data loaders",
    )
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()
    await pilot.pause()


def keys(*presses: str):
    async def run_before(pilot) -> None:
        await pilot.pause()
        await pilot.press(*presses)
        await settle(pilot)

    return run_before


def test_dashboard(snap_compare):
    assert snap_compare(snapshot_app(), terminal_size=SIZE, run_before=settle)


def test_dashboard_at_80_by_24(snap_compare):
    assert snap_compare(snapshot_app(), terminal_size=(80, 24), run_before=settle)


def test_dashboard_filtered_and_sorted_with_marks(snap_compare):
    assert snap_compare(
        snapshot_app(), terminal_size=SIZE, run_before=keys("space", "down", "down", "space", "o", "s", "s", "r")
    )


def test_new_trade_modal_with_preview(snap_compare):
    presses = ("n", *"SBIN", "tab", "tab", "tab", "tab", "tab", "tab", "tab", *"820", "tab", *"810")
    assert snap_compare(snapshot_app(), terminal_size=SIZE, run_before=keys(*presses))


def test_modify_modal_with_inline_error(snap_compare):
    async def run_before(pilot) -> None:
        await pilot.press("m")
        await pilot.pause()
        pilot.app.screen.query_one("#stop", Input).value = "825"
        await settle(pilot)

    assert snap_compare(snapshot_app(), terminal_size=SIZE, run_before=run_before)


def test_exit_confirmation(snap_compare):
    assert snap_compare(snapshot_app(), terminal_size=SIZE, run_before=keys("down", "x"))


def test_panic_dialog_armed(snap_compare):
    assert snap_compare(snapshot_app(), terminal_size=SIZE, run_before=keys("f9", "y"))


def test_exit_strategy_picker(snap_compare):
    assert snap_compare(snapshot_app(), terminal_size=SIZE, run_before=keys("e"))


def test_help(snap_compare):
    assert snap_compare(snapshot_app(), terminal_size=SIZE, run_before=keys("question_mark"))


def test_strategies_screen(snap_compare):
    assert snap_compare(snapshot_app(), terminal_size=SIZE, run_before=keys("t"))


async def open_strategies(pilot) -> None:
    await pilot.press("t")
    await until(pilot, lambda: isinstance(pilot.app.screen, StrategiesScreen) and pilot.app.screen.views)


def test_strategy_form_with_warnings(snap_compare):
    async def run_before(pilot) -> None:
        await open_strategies(pilot)
        await pilot.press("e")
        form = await until(pilot, lambda: isinstance(pilot.app.screen, StrategyFormModal) and pilot.app.screen)
        form.query_one("#daily_loss", Input).value = "50"
        await settle(pilot)

    assert snap_compare(snapshot_app(), terminal_size=SIZE, run_before=run_before)


def test_delete_strategy_with_open_trades(snap_compare):
    async def run_before(pilot) -> None:
        await open_strategies(pilot)
        await pilot.press("d")
        await until(pilot, lambda: isinstance(pilot.app.screen, DeleteStrategyModal))
        await settle(pilot)

    assert snap_compare(snapshot_app(), terminal_size=SIZE, run_before=run_before)


def test_history_screen(snap_compare):
    assert snap_compare(snapshot_app(EngineDouble()), terminal_size=SIZE, run_before=keys("h"))


def test_alert_history_screen(snap_compare):
    assert snap_compare(snapshot_app(), terminal_size=SIZE, run_before=keys("l"))
