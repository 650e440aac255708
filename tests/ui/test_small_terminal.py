"""At 80x24 every dialog fits on screen with nothing cut off, and the dashboard keeps what matters.

Each case opens a screen or dialog the way a user would (keys) and checks the
geometry the compositor laid out: the dialog is inside the screen, and every
part of it (title, list, hint, buttons) lies inside the dialog; long lists
scroll inside the dialog instead of pushing the buttons out.
"""

from __future__ import annotations

import dataclasses
import re

import pytest
from textual.containers import VerticalScroll
from textual.geometry import Region
from textual.widget import Widget
from textual.widgets import Static

from tests.ui.fixtures import EngineDouble, snapshot_app, trade_view
from tests.ui.helpers import trades_table, until
from tests.ui.test_snapshots import settle
from tmtool.domain.models import Side
from tmtool.screens.modals.pickers import DeleteStrategyModal
from tmtool.screens.strategies import StrategiesScreen, StrategyFormModal

SMALL = (80, 24)
EXTRA_TRADES = 25


def engine_with_many_trades() -> EngineDouble:
    engine = EngineDouble()
    extra = tuple(trade_view(100 + i, f"SYM{i:02d}", Side.LONG, 10, 500.0, 501.0 + i) for i in range(EXTRA_TRADES))
    engine.bump(trades=engine.current.trades + extra)
    return engine


async def open_strategies(pilot) -> None:
    await pilot.press("t")
    await until(pilot, lambda: isinstance(pilot.app.screen, StrategiesScreen) and pilot.app.screen.views)


async def strategy_form(pilot) -> None:
    await open_strategies(pilot)
    await pilot.press("e")
    await until(pilot, lambda: isinstance(pilot.app.screen, StrategyFormModal))


async def delete_strategy(pilot) -> None:
    await open_strategies(pilot)
    await pilot.press("d")
    await until(pilot, lambda: isinstance(pilot.app.screen, DeleteStrategyModal))


def keys(*presses: str):
    async def open_it(pilot) -> None:
        await pilot.press(*presses)

    return open_it


async def exit_many_marked(pilot) -> None:
    table = trades_table(pilot)
    await until(pilot, lambda: table.row_count == 4 + EXTRA_TRADES)
    table.marked.update(table.shown_trade_ids()[:18])  # as 18 presses of space would
    await pilot.press("X")

DIALOGS = {
    "new trade": (keys("n"), False),
    "modify": (keys("m"), False),
    "exit one": (keys("down", "x"), False),
    "exit marked (18)": (exit_many_marked, True),
    "exit strategy picker": (keys("e"), False),
    "exit strategy (28)": (keys("e", "enter"), True),
    "panic armed (29)": (keys("f9", "y"), True),
    "help": (keys("question_mark"), False),
    "strategy form": (strategy_form, False),
    "delete strategy": (delete_strategy, False),
    "export path": (keys("h", "ctrl+e"), False),
}


def inside(outer: Region, inner: Region) -> bool:
    return inner.area > 0 and outer.contains_region(inner)


@pytest.mark.parametrize("name", list(DIALOGS))
async def test_every_dialog_fits_an_80_by_24_terminal(name):
    open_dialog, many = DIALOGS[name]
    app = snapshot_app(engine_with_many_trades() if many else EngineDouble())
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        await open_dialog(pilot)
        await settle(pilot)
        screen = app.screen
        dialog = screen.query_one(".dialog", Widget)
        assert inside(screen.region, dialog.region), f"{name}: dialog {dialog.region} is off the screen"
        parts = [child for child in dialog.children if child.display]
        for part in parts:
            assert inside(dialog.region, part.region), f"{name}: {part} at {part.region} is cut off"
        assert parts[-1].region.bottom <= dialog.region.bottom - 1  # the last part sits above the bottom border
        for body in dialog.query(VerticalScroll):
            if body.max_scroll_y:  # a list longer than the room it has scrolls, with its scrollbar shown
                assert body.show_vertical_scrollbar, f"{name}: {body} hides what does not fit"


async def test_the_dashboard_at_80_by_24_keeps_status_pnl_and_rows():
    app = snapshot_app(engine_with_many_trades())
    async with app.run_test(size=SMALL) as pilot:
        await until(pilot, lambda: trades_table(pilot).row_count == 4 + EXTRA_TRADES)
        status = pilot.app.screen.query_one("#status-text", Static)
        text = await until(pilot, lambda: "P&L" in str(status.content) and status.content, what="the status text")
        assert "FEED LIVE" in text.plain and "P&L +1,249.50" in text.plain
        assert text.cell_len <= status.content_region.width  # all of it shows: nothing is cut off
        assert trades_table(pilot).content_region.height >= 8


def screen_lines(app) -> list[str]:
    """The text of each line on screen, as the terminal shows it (from the SVG screenshot)."""
    import html

    rows: dict[float, list[tuple[float, str]]] = {}
    for match in re.finditer(r'<text[^>]*?x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>', app.export_screenshot()):
        rows.setdefault(float(match.group(2)), []).append((float(match.group(1)), html.unescape(match.group(3))))
    return ["".join(text for _, text in sorted(parts)).replace("\xa0", " ") for _, parts in sorted(rows.items())]


async def test_a_paused_trade_shows_paused_at_80_by_24_with_a_scrollbar():
    engine = engine_with_many_trades()
    paused = trade_view(99, "HALTME", Side.LONG, 10, 500.0, 495.0, stop=490.0, paused=True)
    engine.bump(trades=(paused,) + engine.current.trades)
    app = snapshot_app(engine)
    async with app.run_test(size=SMALL) as pilot:
        table = trades_table(pilot)
        await until(pilot, lambda: table.row_count == 5 + EXTRA_TRADES)
        assert table.show_vertical_scrollbar
        await settle(pilot)
        rows = [line for line in screen_lines(app) if "HALTME" in line]
        assert len(rows) == 1 and re.search(r"\bPAUSED\b", rows[0]), rows
        assert "490.00" in rows[0]  # the stop stays in view too


async def test_the_panic_halt_shows_in_the_status_bar_at_80_by_24_with_the_pnl():
    engine = EngineDouble()
    engine.bump(system=dataclasses.replace(engine.current.system, entries_halted=True, entries_halted_since=1.0))
    app = snapshot_app(engine)
    async with app.run_test(size=SMALL) as pilot:
        status = pilot.app.screen.query_one("#status-text", Static)
        text = await until(pilot, lambda: "P&L" in str(status.content) and status.content, what="the status text")
        assert text.plain.startswith("HALTED") and "P&L +1,249.50" in text.plain
        assert text.cell_len <= status.content_region.width
