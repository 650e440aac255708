"""Recent alerts (newest first), keyed by alert id; unacknowledged ones stand out.

Unattended (not focused, or the cursor on the newest row) the panel stays at the
top, so new alerts come into view; with focus on an older alert the cursor stays
on that alert while newer ones arrive above it.
"""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist

from tmtool.domain.calendar import to_ist
from tmtool.domain.models import Alert, AlertPriority
from tmtool.screens.formatting import PLAIN_PALETTE, Palette

ALERT_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("time", "Time", 8),
    ("priority", "Level", 8),
    ("text", "Alert", 200),
)


def priority_style(priority: AlertPriority, palette: Palette) -> str:
    return {
        AlertPriority.INFO: "",
        AlertPriority.WARNING: palette.warning,
        AlertPriority.CRITICAL: f"bold {palette.loss}",
    }[priority]


class AlertTimeCell:
    """The first cell of an alert row; carries the alert id so rows can be ranked."""

    __slots__ = ("alert_id", "text")

    def __init__(self, alert_id: int, text: Text) -> None:
        self.alert_id = alert_id
        self.text = text

    def __rich__(self) -> Text:
        return self.text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AlertTimeCell) and (other.alert_id, other.text) == (self.alert_id, self.text)

    def __hash__(self) -> int:
        return hash(self.alert_id)


def alert_cells(alert: Alert, palette: Palette) -> tuple[AlertTimeCell, Text, Text]:
    muted = palette.muted if alert.acknowledged else ""
    when = to_ist(alert.last_ts or alert.ts).strftime("%H:%M:%S")
    level = Text(alert.priority.value, style=muted or priority_style(alert.priority, palette))
    repeat = f" (×{alert.count})" if alert.count > 1 else ""
    text = Text(f"{'' if alert.acknowledged else '• '}{alert.text}{repeat}", style=muted or "bold")
    return AlertTimeCell(alert.id, Text(when, style=muted)), level, text


class AlertsPanel(DataTable):
    """The dashboard's alert list."""

    BINDINGS = [
        Binding("a", "acknowledge_selected", "Ack alert", id="ack_alert"),
    ]

    class AcknowledgeRequested(Message):
        """The user asked to acknowledge these alert ids (empty: all)."""

        def __init__(self, alert_ids: tuple[int, ...]) -> None:
            super().__init__()
            self.alert_ids = alert_ids

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", show_header=False)
        self.palette: Palette = PLAIN_PALETTE
        self._alerts: dict[int, Alert] = {}
        self._order: list[int] = []

    def on_mount(self) -> None:
        for key, label, width in ALERT_COLUMNS:
            self.add_column(label, width=width, key=key)

    def selected_alert_id(self) -> int | None:
        if self.row_count == 0:
            return None
        try:
            row_key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except CellDoesNotExist:
            return None
        return int(row_key.value) if row_key.value is not None else None

    def action_acknowledge_selected(self) -> None:
        alert_id = self.selected_alert_id()
        if alert_id is not None:
            self.post_message(self.AcknowledgeRequested((alert_id,)))

    def set_palette(self, palette: Palette) -> None:
        self.palette = palette
        alerts = tuple(self._alerts[alert_id] for alert_id in self._order)
        self._alerts = {}
        for alert_id in list(self._order):
            self.remove_row(str(alert_id))
        self._order = []
        self.reconcile(alerts)

    def reconcile(self, alerts: tuple[Alert, ...]) -> None:
        """Show ``alerts`` (newest first) keeping the cursor on the same alert."""
        cursor_alert = self.selected_alert_id()
        wanted = {alert.id: alert for alert in alerts}
        for alert_id in [alert_id for alert_id in self._alerts if alert_id not in wanted]:
            self.remove_row(str(alert_id))
            del self._alerts[alert_id]
        for alert in alerts:
            previous = self._alerts.get(alert.id)
            if previous is None:
                self.add_row(*alert_cells(alert, self.palette), key=str(alert.id))
            elif previous != alert:
                for key, cell in zip(("time", "priority", "text"), alert_cells(alert, self.palette)):
                    self.update_cell(str(alert.id), key, cell)
            self._alerts[alert.id] = alert
        order = [alert.id for alert in alerts]
        if order != self._order:
            rank = {alert_id: index for index, alert_id in enumerate(order)}
            self.sort("time", key=lambda cell: rank[cell.alert_id])
            self._order = order
        following_newest = not self.has_focus or self.cursor_row == 0 or cursor_alert is None
        if following_newest:
            # Unattended, the panel shows the newest alerts: the top row, scrolled home.
            if self.row_count and self.cursor_row != 0:
                self.move_cursor(row=0, scroll=False)
            self.scroll_home(animate=False, immediate=True)
        elif cursor_alert in self._alerts:
            index = self.get_row_index(str(cursor_alert))
            if index != self.cursor_row:
                self.move_cursor(row=index, scroll=False)
