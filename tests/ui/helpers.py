"""Helpers for Pilot tests: wait on the app's state with a deadline, read the table and dialogs."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

from textual.pilot import Pilot
from textual.widgets import Static

from tmtool.screens.widgets.trades_table import TradesTable

T = TypeVar("T")


async def until(pilot: Pilot, predicate: Callable[[], T], timeout: float = 10.0, what: str = "") -> T:
    """Let the app run until ``predicate`` holds; fail after ``timeout`` seconds.

    The engine runs on its own threads, so the UI has to keep polling snapshots
    while we wait: this yields to the app's loop between checks.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate!r}")
        await pilot.pause(0.02)


def trades_table(pilot: Pilot) -> TradesTable:
    return pilot.app.screen_stack[0].query_one(TradesTable)


def cell(pilot: Pilot, trade_id: int, column: str) -> str:
    value = trades_table(pilot).get_cell(str(trade_id), column)
    return value.__rich__().plain if hasattr(value, "__rich__") else getattr(value, "plain", str(value))


def static_text(pilot: Pilot, selector: str) -> str:
    widget = pilot.app.screen.query_one(selector, Static)
    return str(widget.render())


def notifications(pilot: Pilot) -> list[str]:
    return [notification.message for notification in pilot.app._notifications]


async def select_trade(pilot: Pilot, trade_id: int) -> None:
    table = trades_table(pilot)
    await until(pilot, lambda: trade_id in table.shown_trade_ids(), what=f"row of trade #{trade_id}")
    table.move_cursor(row=table.get_row_index(str(trade_id)))
    await pilot.pause()
    assert table.selected_trade_id() == trade_id
