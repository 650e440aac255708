"""The alerts panel lists newest first and keeps the newest in view; toasts do not cover it."""

from __future__ import annotations

from tests.ui.fixtures import FIXED_NOW, EngineDouble, snapshot_app
from tests.ui.helpers import until
from tmtool.domain.models import Alert, AlertCategory, AlertPriority
from tmtool.screens.widgets.alerts_panel import AlertsPanel

SIZE = (100, 30)


def alerts(ids: range, prefix: str) -> tuple[Alert, ...]:
    return tuple(
        Alert(id=i, ts=FIXED_NOW - 1000 + i, category=AlertCategory.SYSTEM, priority=AlertPriority.INFO, text=f"{prefix} {i}")
        for i in reversed(ids)
    )


def first_visible_text(panel: AlertsPanel) -> str:
    row = panel.get_row_at(int(panel.scroll_y))
    return row[2].plain


async def test_new_alerts_come_into_view_at_the_top():
    engine = EngineDouble()
    start = alerts(range(1, 11), "start-up")
    engine.bump(alerts=start)
    app = snapshot_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        panel = app.screen.query_one(AlertsPanel)
        await until(pilot, lambda: panel.row_count == 10)
        engine.bump(alerts=alerts(range(11, 16), "newer") + start)
        await until(pilot, lambda: panel.row_count == 15)
        await pilot.pause()
        assert panel.scroll_y == 0 and panel.cursor_row == 0
        assert "newer 15" in first_visible_text(panel)


async def test_a_focused_older_alert_keeps_the_cursor():
    engine = EngineDouble()
    start = alerts(range(1, 11), "start-up")
    engine.bump(alerts=start)
    app = snapshot_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        panel = app.screen.query_one(AlertsPanel)
        await until(pilot, lambda: panel.row_count == 10)
        panel.focus()
        panel.move_cursor(row=3)
        await pilot.pause()
        chosen = panel.selected_alert_id()
        engine.bump(alerts=alerts(range(11, 13), "newer") + start)
        await until(pilot, lambda: panel.row_count == 12)
        await pilot.pause()
        assert panel.selected_alert_id() == chosen


async def test_toasts_do_not_cover_the_alerts_panel():
    app = snapshot_app(EngineDouble())
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        panel = app.screen.query_one(AlertsPanel)
        app.notify("a toast " * 5, timeout=30)
        await until(pilot, lambda: list(app.screen.query("Toast")))
        await pilot.pause()
        for toast in app.screen.query("Toast"):
            assert not toast.region.overlaps(panel.region), (toast.region, panel.region)
