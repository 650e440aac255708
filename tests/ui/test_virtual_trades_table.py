"""The trades table over a big book: only the rows in view are built, yet scrolling, the cursor,
sorting, filtering and every action work on the whole book and on the trade under the cursor."""

from __future__ import annotations

import dataclasses

from tests.ui.fixtures import EngineDouble, seeded_snapshot, snapshot_app, trade_view
from tests.ui.helpers import select_trade, trades_table, until
from tmtool.domain.models import Side, TradeStatus
from tmtool.screens.modals.modify_trade import ModifyTradeModal
from tmtool.screens.trade_story import TradeStoryScreen
from tmtool.screens.widgets.trades_table import TradeFilter, TradeOrder, TradesTable

BOOK = 2_000
SIZE = (120, 36)


def big_book() -> tuple:
    return tuple(
        trade_view(
            trade_id,
            f"SYM{trade_id % 50:02d}",
            Side.LONG if trade_id % 2 else Side.SHORT,
            10,
            500.0,
            500.0 + (trade_id % 13) * (1 if trade_id % 2 else -1),
            stop=490.0 if trade_id % 2 else 510.0,
        )
        for trade_id in range(1, BOOK + 1)
    )


def big_engine() -> EngineDouble:
    return EngineDouble(seeded_snapshot(trades=big_book()))


def replace_trades(engine: EngineDouble, changes: dict[int, dict]) -> None:
    trades = tuple(dataclasses.replace(t, **changes[t.id]) if t.id in changes else t for t in engine.current.trades)
    engine.bump(trades=trades)


def screen_lines(table: TradesTable) -> list[str]:
    """The table's lines as they are painted now (header first)."""
    return ["".join(segment.text for segment in table.render_line(y)) for y in range(table.size.height)]


def painted_trade_ids(table: TradesTable) -> list[int]:
    return [int(line.split()[0].lstrip("●")) for line in screen_lines(table)[1:] if line.strip()]


def cursor_line_trade(table: TradesTable) -> int:
    line = screen_lines(table)[table.cursor_row - round(table.scroll_y) + 1]
    return int(line.split()[0].lstrip("●"))


async def loaded(pilot) -> TradesTable:
    table = trades_table(pilot)
    await until(pilot, lambda: table.row_count == BOOK, what="the whole book in the table")
    return table


async def test_scrolling_to_the_end_shows_the_last_trade():
    app = snapshot_app(big_engine())
    async with app.run_test(size=SIZE) as pilot:
        table = await loaded(pilot)
        assert painted_trade_ids(table)[0] == 1
        await pilot.press("ctrl+end")
        await until(pilot, lambda: table.selected_trade_id() == BOOK)
        assert table.scroll_offset.y > 0
        assert painted_trade_ids(table)[-1] == BOOK
        assert cursor_line_trade(table) == BOOK
        await pilot.press("ctrl+home")
        await until(pilot, lambda: table.selected_trade_id() == 1)
        assert table.scroll_offset.y == 0 and painted_trade_ids(table)[0] == 1


async def test_rows_are_built_only_for_the_view(monkeypatch):
    engine = big_engine()
    app = snapshot_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        table = await loaded(pilot)
        built = {trade_id for trade_id, state in table._rows.items() if state.cells}
        assert 0 < len(built) < 100
        updated: list[int] = []
        original = TradesTable.update_cell

        def spy(self, row_key, column_key, value):
            updated.append(int(row_key))
            return original(self, row_key, column_key, value)

        monkeypatch.setattr(TradesTable, "update_cell", spy)
        replace_trades(engine, {t.id: {"ltp": t.ltp + 1.0, "pnl": t.pnl + 10.0} for t in engine.current.trades})
        app.refresh_frame()
        assert updated and set(updated) <= built  # every price moved; only the rows in view were rendered


async def test_the_cursor_far_down_opens_that_trades_edit_form():
    app = snapshot_app(big_engine())
    async with app.run_test(size=SIZE) as pilot:
        table = await loaded(pilot)
        for _ in range(40):
            await pilot.press("pagedown")
        await pilot.press("down", "down")
        chosen = table.selected_trade_id()
        assert chosen is not None and chosen > 500
        assert cursor_line_trade(table) == chosen
        await pilot.press("m")
        modal = await until(pilot, lambda: isinstance(app.screen, ModifyTradeModal) and app.screen)
        assert modal.view.id == chosen


async def test_sorting_and_filtering_keep_the_selection_on_the_same_trade():
    app = snapshot_app(big_engine())
    async with app.run_test(size=SIZE) as pilot:
        table = await loaded(pilot)
        await select_trade(pilot, 1234)
        table.set_order(TradeOrder("pnl", reverse=True))
        assert table.selected_trade_id() == 1234
        assert table.shown_trade_ids()[table.cursor_row] == 1234
        table.set_order(TradeOrder("symbol"))
        assert table.selected_trade_id() == 1234
        table.set_filter(TradeFilter("SYM34", "OPEN", None))  # 1234 trades SYM34
        assert table.row_count == BOOK // 50
        assert table.selected_trade_id() == 1234
        table.set_filter(TradeFilter("", "OPEN", None))
        assert table.row_count == BOOK and table.selected_trade_id() == 1234
        table.move_cursor(row=table.cursor_row)  # scrolls it into view
        await pilot.pause()
        assert cursor_line_trade(table) == 1234


async def test_a_closing_trade_leaves_without_taking_the_cursor_elsewhere():
    engine = big_engine()
    app = snapshot_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        table = await loaded(pilot)
        await select_trade(pilot, 1500)
        replace_trades(engine, {1499: {"status": TradeStatus.CLOSED, "quantity": 0}})  # the row above goes
        await until(pilot, lambda: 1499 not in table.shown_trade_ids())
        assert table.selected_trade_id() == 1500
        assert cursor_line_trade(table) == 1500
        replace_trades(engine, {1500: {"status": TradeStatus.CLOSED, "quantity": 0}})  # the selected one goes
        await until(pilot, lambda: 1500 not in table.shown_trade_ids())
        assert table.selected_trade_id() == 1501  # the trade that took its line, not one far away
        assert cursor_line_trade(table) == 1501
        table.set_filter(TradeFilter("", "ALL", None))
        assert table.row_count == BOOK and table.selected_trade_id() == 1501


async def test_home_and_end_scroll_the_columns_not_the_rows():
    app = snapshot_app(big_engine())
    async with app.run_test(size=(80, 24)) as pilot:
        table = await loaded(pilot)
        await select_trade(pilot, 700)
        scroll_y = table.scroll_offset.y
        await pilot.press("end")
        await until(pilot, lambda: table.scroll_offset.x > 0)
        assert "Exch" in screen_lines(table)[0]
        assert table.scroll_offset.y == scroll_y and table.selected_trade_id() == 700
        await pilot.press("home")
        await until(pilot, lambda: table.scroll_offset.x == 0)
        assert table.selected_trade_id() == 700 and cursor_line_trade(table) == 700


async def test_enter_and_a_click_open_the_story_of_the_trade_on_that_line():
    app = snapshot_app(big_engine())
    async with app.run_test(size=SIZE) as pilot:
        table = await loaded(pilot)
        await select_trade(pilot, 1800)
        await pilot.press("enter")
        story = await until(pilot, lambda: isinstance(app.screen, TradeStoryScreen) and app.screen)
        assert story.trade_id == 1800
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.screen_stack[0])
        clicked = painted_trade_ids(table)[2]  # the third trade line (the header is line 0)
        await pilot.click(TradesTable, offset=(3, 3))
        story = await until(pilot, lambda: isinstance(app.screen, TradeStoryScreen) and app.screen)
        assert story.trade_id == clicked and table.selected_trade_id() == clicked
