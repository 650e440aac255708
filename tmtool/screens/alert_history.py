"""Alert history from the engine's store, filtered by category and priority."""

from __future__ import annotations

from typing import cast

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, Select, Static

from tmtool.domain.models import Alert, AlertCategory, AlertPriority
from tmtool.screens.formatting import format_timestamp
from tmtool.screens.host import ScreenHost
from tmtool.screens.widgets.alerts_panel import priority_style

ANY = "*any*"
HISTORY_LIMIT = 500

# The alert's text comes right after when, whether it was acknowledged and its level, so an
# 80-column terminal shows most of it; the category and the repeat count follow.
ALERT_HISTORY_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("when", "When (IST)", 19),
    ("ack", "Ack", 3),
    ("priority", "Level", 8),
    ("text", "Alert", 120),
    ("count", "Times", 5),
    ("category", "Category", 9),
)


class AlertHistoryScreen(Screen):
    BINDINGS = [
        Binding("escape", "back", "Back", id="alert_history_back"),
        Binding("ctrl+r", "load", "Reload", id="alert_history_reload"),
    ]

    def __init__(self) -> None:
        super().__init__(id="alert-history")

    @property
    def tmtool(self) -> ScreenHost:
        return cast(ScreenHost, self.app)

    def compose(self) -> ComposeResult:
        yield Static("Alert history", classes="screen-title")
        with Horizontal(id="alert-filters"):
            yield Label("Category")
            yield Select(
                [("any", ANY)] + [(category.value, category.value) for category in AlertCategory],
                value=ANY,
                allow_blank=False,
                id="category",
                compact=True,
            )
            yield Label("Priority")
            yield Select(
                [("any", ANY)] + [(priority.value, priority.value) for priority in AlertPriority],
                value=ANY,
                allow_blank=False,
                id="priority",
                compact=True,
            )
        yield Static("Loading…", id="alert-history-summary", markup=False)
        yield DataTable(id="alert-history-table", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, label, width in ALERT_HISTORY_COLUMNS:
            table.add_column(label, width=width, key=key)
        table.focus()
        self.action_load()

    def on_select_changed(self, _event: Select.Changed) -> None:
        self.action_load()

    def action_back(self) -> None:
        self.dismiss()

    def action_load(self) -> None:
        category = self.query_one("#category", Select).value
        priority = self.query_one("#priority", Select).value
        self._load(None if category == ANY else str(category), None if priority == ANY else str(priority))

    @work(thread=True, exclusive=True, group="alert-history", exit_on_error=False)
    def _load(self, category: str | None, priority: str | None) -> None:
        try:
            alerts = self.tmtool.engine.alert_history(category=category, priority=priority, limit=HISTORY_LIMIT)
        except Exception as error:  # the engine's store said no; show why
            self.app.call_from_thread(self._show_error, str(error))
            return
        self.app.call_from_thread(self._show, alerts)

    def _show_error(self, message: str) -> None:
        if self.is_attached:
            self.query_one("#alert-history-summary", Static).update(f"Could not read the alert history: {message}")

    def _show(self, alerts: list[Alert]) -> None:
        if not self.is_attached:
            return
        palette = self.tmtool.palette
        self.query_one("#alert-history-summary", Static).update(
            f"{len(alerts)} alert(s){' (the newest ' + str(HISTORY_LIMIT) + ')' if len(alerts) >= HISTORY_LIMIT else ''}"
        )
        table = self.query_one(DataTable)
        table.clear()
        for alert in alerts:
            cells = {
                "when": format_timestamp(alert.last_ts or alert.ts),
                "category": alert.category.value,
                "priority": Text(alert.priority.value, style=priority_style(alert.priority, palette)),
                "count": str(alert.count),
                "ack": "✓" if alert.acknowledged else "",
                "text": alert.text,
            }
            table.add_row(*(cells[key] for key, _, _ in ALERT_HISTORY_COLUMNS), key=str(alert.id))
