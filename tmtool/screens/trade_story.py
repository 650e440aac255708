"""A trade's story: its money at risk now and its audit trail from the database (every level
change, ratchet, order, fill and alert, oldest first)."""

from __future__ import annotations

from typing import cast

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from tmtool.domain.models import TradeEvent
from tmtool.engine.snapshot import EngineSnapshot, TradeView
from tmtool.screens.exposure import held_text, trade_exposure
from tmtool.screens.formatting import format_money, format_price, format_timestamp
from tmtool.screens.host import ScreenHost
from tmtool.screens.widgets.status_bar import StatusBar

STORY_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("when", "IST", 8),
    ("kind", "Event", 11),
    ("change", "Change", 30),
    ("price", "Price", 10),
    ("reason", "Why", 60),
)


def change_text(event: TradeEvent) -> str:
    """``stop_loss 804.30 → 813.95``; an alert's text; or what the event names."""
    if event.kind == "ALERT":
        return event.new
    if event.field and (event.old or event.new):
        return f"{event.field} {event.old or '–'} → {event.new or '–'}"
    return event.field or event.new


def story_rows(events: list[TradeEvent]) -> list[tuple[str, str, str, str, str]]:
    rows = []
    for event in sorted(events, key=lambda e: e.ts):
        rows.append(
            (
                format_timestamp(event.ts)[11:],
                event.kind,
                change_text(event),
                format_price(event.price) if event.price else "",
                event.reason,
            )
        )
    return rows


def risk_summary(view: TradeView, now: float) -> str:
    exposure = trade_exposure(view, now)
    parts = [
        f"#{view.id} {view.side.value} {view.quantity} {view.exchange}:{view.symbol} [{view.strategy}] {view.status.value}"
        + (f" (the exit waits: {view.exit_wait})" if view.exit_wait else ""),
        f"entry {format_price(view.entry_price, view.tick_size)} at {format_timestamp(view.opened_at)[11:16] if view.opened_at else '–'}"
        f" · held {held_text(exposure.held_seconds)} · P&L {format_money(view.pnl, signed=True)}",
        f"₹ to stop {format_money(exposure.to_stop, signed=True) if exposure.to_stop is not None else 'no stop'}"
        f" · ₹ to target {format_money(exposure.to_target, signed=True) if exposure.to_target is not None else 'none'}"
        f" · R now {'–' if exposure.r_now is None else f'{exposure.r_now:+.2f}'}",
    ]
    return "\n".join(parts)


class TradeStoryScreen(Screen):
    """One trade: the risk it carries now, then everything the engine recorded about it."""

    BINDINGS = [
        Binding("escape", "back", "Back", id="story_back"),
        Binding("ctrl+r", "load", "Reload", id="story_reload"),
    ]

    def __init__(self, trade_id: int) -> None:
        super().__init__(id="trade-story")
        self.trade_id = trade_id
        self.events: list[TradeEvent] | None = None
        self._ready = False

    @property
    def tmtool(self) -> ScreenHost:
        return cast(ScreenHost, self.app)

    def compose(self) -> ComposeResult:
        yield StatusBar()
        yield Static(f"Trade #{self.trade_id}: its story", classes="screen-title")
        yield Static("", id="story-risk", markup=False)
        yield Static("Loading the audit trail…", id="story-summary", markup=False)
        yield DataTable(id="story-table", cursor_type="row")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, label, width in STORY_COLUMNS:
            table.add_column(label, width=width, key=key)
        table.focus()
        self._ready = True
        if self.tmtool.latest is not None:
            self.apply_snapshot(self.tmtool.latest)
        self.action_load()

    def action_back(self) -> None:
        self.dismiss()

    def apply_snapshot(self, snapshot: EngineSnapshot) -> None:
        view = snapshot.trade(self.trade_id)
        if view is not None and self._ready:
            self.query_one("#story-risk", Static).update(risk_summary(view, self.tmtool.clock.time()))

    def action_load(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="trade-story", exit_on_error=False)
    def _load(self) -> None:
        try:
            events = list(self.tmtool.engine.trade_events(self.trade_id))
        except Exception as error:  # the engine's store said no; show why
            self.app.call_from_thread(self._failed, str(error))
            return
        self.app.call_from_thread(self._show, events)

    def _failed(self, message: str) -> None:
        if self.is_attached:
            self.query_one("#story-summary", Static).update(f"Could not read the audit trail: {message}")

    def _show(self, events: list[TradeEvent]) -> None:
        if not self.is_attached:
            return
        self.events = events
        self.query_one("#story-summary", Static).update(f"{len(events)} event(s), oldest first")
        table = self.query_one(DataTable)
        table.clear()
        for index, row in enumerate(story_rows(events)):
            table.add_row(*row, key=str(index))
