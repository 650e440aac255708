"""Money at risk: what each open trade, each strategy and the account stand to lose to their stops
and gain to their targets, in rupees, with the R multiple now, the entry time and the holding time."""

from __future__ import annotations

from typing import cast

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from tmtool.domain import analytics
from tmtool.domain.calendar import to_ist
from tmtool.engine.snapshot import EngineSnapshot
from tmtool.screens.exposure import ExposureTotals, TradeExposure, by_strategy, held_text, open_exposures
from tmtool.screens.formatting import Palette, format_money, pnl_text
from tmtool.screens.host import ScreenHost
from tmtool.screens.widgets.status_bar import StatusBar

TOTAL_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("name", "Strategy", 12),
    ("trades", "Open", 4),
    ("pnl", "P&L ₹", 11),
    ("to_stop", "₹ to stop", 11),
    ("to_target", "₹ to target", 11),
    ("no_stop", "No stop", 7),
)
TRADE_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("id", "#", 4),
    ("symbol", "Symbol", 10),
    ("pnl", "P&L ₹", 10),
    ("to_stop", "₹ to stop", 10),
    ("to_target", "₹ to target", 11),
    ("r", "R now", 6),
    ("entry", "Entry", 5),
    ("held", "Held", 7),
    ("at_stop", "P&L at stop", 11),
    ("strategy", "Strategy", 12),
)


def money_cell(value: float | None, palette: Palette, *, none: str = "no stop") -> Text:
    if value is None:
        return Text(none, style=f"bold {palette.warning}", justify="right")
    text = pnl_text(value, palette)
    text.justify = "right"
    return text


def total_row(total: ExposureTotals, palette: Palette) -> tuple:
    name = Text(total.name, style="bold" if total.name == "account" else "")
    return (
        name,
        Text(str(total.trades), justify="right"),
        money_cell(total.pnl, palette),
        money_cell(total.to_stop, palette),
        money_cell(total.to_target, palette),
        Text(str(total.without_stop), justify="right", style=f"bold {palette.warning}" if total.without_stop else ""),
    )


def trade_row(exposure: TradeExposure, palette: Palette) -> tuple:
    return (
        str(exposure.trade_id),
        f"{exposure.symbol} {exposure.side[0]}",
        money_cell(exposure.pnl, palette),
        money_cell(exposure.to_stop, palette),
        money_cell(exposure.to_target, palette, none="none"),
        Text("–" if exposure.r_now is None else f"{exposure.r_now:+.2f}", justify="right"),
        to_ist(exposure.opened_at).strftime("%H:%M") if exposure.opened_at else "–",
        held_text(exposure.held_seconds),
        money_cell(exposure.stop_pnl, palette),
        exposure.strategy,
    )


class MoneyAtRiskScreen(Screen):
    """Totals per strategy and for the account on top, one row per open trade below."""

    BINDINGS = [Binding("escape", "back", "Back", id="at_risk_back")]

    def __init__(self) -> None:
        super().__init__(id="at-risk")
        self.initial_stops: dict[int, float] = {}
        self._ready = False
        self._asked: set[int] = set()

    @property
    def tmtool(self) -> ScreenHost:
        return cast(ScreenHost, self.app)

    def compose(self) -> ComposeResult:
        yield StatusBar()
        yield Static("Money at risk", classes="screen-title")
        yield Static(
            "₹ to stop: gained (+) or lost (−) from the last price if the stop fills now · "
            "R now: P&L per unit over the first stop's risk per unit",
            id="at-risk-hint",
            markup=False,
        )
        yield DataTable(id="at-risk-totals", cursor_type="none", show_cursor=False)
        yield DataTable(id="at-risk-trades", cursor_type="row")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        totals, trades = self.query_one("#at-risk-totals", DataTable), self.query_one("#at-risk-trades", DataTable)
        for key, label, width in TOTAL_COLUMNS:
            totals.add_column(label, width=width, key=key)
        for key, label, width in TRADE_COLUMNS:
            trades.add_column(label, width=width, key=key)
        trades.focus()
        self._ready = True
        if self.tmtool.latest is not None:
            self.apply_snapshot(self.tmtool.latest)

    def action_back(self) -> None:
        self.dismiss()

    def apply_snapshot(self, snapshot: EngineSnapshot) -> None:
        if not self._ready:
            return
        palette = self.tmtool.palette
        exposures = open_exposures(snapshot.trades, self.tmtool.clock.time(), self.initial_stops)
        totals_table, trades_table = self.query_one("#at-risk-totals", DataTable), self.query_one("#at-risk-trades", DataTable)
        totals_table.clear()
        for total in by_strategy(exposures):
            totals_table.add_row(*total_row(total, palette), key=total.name)
        cursor = trades_table.cursor_row
        trades_table.clear()
        for exposure in exposures:
            trades_table.add_row(*trade_row(exposure, palette), key=str(exposure.trade_id))
        if trades_table.row_count:
            trades_table.move_cursor(row=min(cursor, trades_table.row_count - 1), scroll=False)
        missing = [e.trade_id for e in exposures if e.trade_id not in self._asked]
        if missing:
            self._asked.update(missing)
            self._load_initial_stops(missing)

    @work(thread=True, group="at-risk", exit_on_error=False)
    def _load_initial_stops(self, trade_ids: list[int]) -> None:
        """Each trade's first stop from its audit trail (R is measured against it, not a moved stop)."""
        found: dict[int, float] = {}
        for trade_id in trade_ids:
            try:
                stop = analytics.initial_stop_from_events(self.tmtool.engine.trade_events(trade_id))
            except Exception:  # the store is unreadable: R falls back to the current stop
                continue
            if stop is not None:
                found[trade_id] = stop
        if found:
            self.app.call_from_thread(self._stops_found, found)

    def _stops_found(self, found: dict[int, float]) -> None:
        if not self.is_attached:
            return
        self.initial_stops.update(found)
        if self.tmtool.latest is not None:
            self.apply_snapshot(self.tmtool.latest)
