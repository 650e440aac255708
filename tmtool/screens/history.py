"""History: closed trades by date and strategy, analytics, an equity curve, CSV export.

Reading the trades (the engine asks its store) and writing the CSV happen in
thread workers; the UI thread only renders the results.
"""

from __future__ import annotations

import csv
import dataclasses
from datetime import date, datetime, time, timedelta
from pathlib import Path

import platformdirs
from typing import cast

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Label, Select, Sparkline, Static

from tmtool.domain import analytics
from tmtool.domain.analytics import AnalyticsReport, TradeResult
from tmtool.domain.calendar import IST, to_ist, trading_day
from tmtool.domain.models import Trade
from tmtool.screens.formatting import (
    Palette,
    format_money,
    format_price,
    format_timestamp,
    pnl_text,
)
from tmtool.screens.forms import FieldError, optional_date
from tmtool.screens.host import ScreenHost
from tmtool.screens.modals.pickers import PathModal

ALL_STRATEGIES = "*all*"
DEFAULT_DAYS = 30
INITIAL_STOP_LOOKUPS = 500  # trades whose audit log is read for R-multiples

# Column key, header, width: what a trader reads first (P&L, R multiple) fits on an 80-column terminal.
HISTORY_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("id", "#", 5),
    ("closed", "Closed (IST)", 19),
    ("symbol", "Symbol", 11),
    ("side", "Side", 5),
    ("pnl", "P&L", 11),
    ("r", "R mult", 6),
    ("qty", "Qty", 6),
    ("entry", "Entry", 10),
    ("exit", "Exit", 10),
    ("reason", "Reason", 14),
    ("strategy", "Strategy", 12),
)


def day_bounds(start: date, end: date) -> tuple[float, float]:
    """Epoch seconds from the start of ``start`` to the end of ``end``, Asia/Kolkata days."""
    first = datetime.combine(start, time(0, 0), IST).timestamp()
    last = datetime.combine(end + timedelta(days=1), time(0, 0), IST).timestamp()
    return first, last


def equity_curve(report: AnalyticsReport) -> list[float]:
    """Cumulative P&L after each trade, in closing order (starting from zero)."""
    total, curve = 0.0, [0.0]
    for result in report.trades:
        total += result.pnl
        curve.append(total)
    return curve


def summary_text(report: AnalyticsReport, palette: Palette) -> Text:
    stats = report.overall
    if not stats.trades:
        return Text("No closed trades in this range.")

    def ratio(value: float | None, fmt: str = "{:.2f}") -> str:
        return "–" if value is None else fmt.format(value)

    text = Text.assemble(
        ("Trades ", "bold"),
        f"{stats.trades} ({stats.wins}W/{stats.losses}L/{stats.breakeven}BE)  ",
        ("Win rate ", "bold"),
        ratio(stats.win_rate, "{:.0%}"),
        "  ",
        ("Net ", "bold"),
        pnl_text(stats.net_pnl, palette),
        "  ",
        ("PF ", "bold"),
        ratio(stats.profit_factor),
        "  ",
        ("Expectancy ", "bold"),
        format_money(stats.expectancy, signed=True) if stats.expectancy is not None else "–",
        "\n",
        ("Max DD ", "bold"),
        format_money(stats.max_drawdown, decimals=0),
        "  ",
        ("Best ", "bold"),
        format_money(stats.largest_win, signed=True) if stats.largest_win is not None else "–",
        "  ",
        ("Worst ", "bold"),
        format_money(stats.largest_loss, signed=True) if stats.largest_loss is not None else "–",
        "  ",
        ("Avg R ", "bold"),
        ratio(stats.average_r),
        "  ",
        ("Slippage ", "bold"),
        f"{ratio(report.slippage.average_ticks, '{:.1f}')} ticks avg over {report.slippage.measured}",
    )
    if report.by_strategy and len(report.by_strategy) > 1:
        text.append("\n")
        text.append("By strategy ", style="bold")
        text.append("  ".join(f"{group.name} {format_money(group.stats.net_pnl, signed=True)}" for group in report.by_strategy))
    return text


def default_export_dir() -> Path:
    """Where CSV exports go unless the user names another place: the user's data folder, not the working directory."""
    return platformdirs.user_data_path("tmtool") / "exports"


def unused_path(path: Path) -> Path:
    """``path``, or ``name-2.csv``, ``name-3.csv``... when it is taken: an export never replaces an earlier one unasked."""
    candidate, number = path, 2
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
        number += 1
    return candidate


def write_csv(path: Path, results: tuple[TradeResult, ...]) -> int:
    """Write one row per closed trade; returns the number of rows written."""
    names = [field.name for field in dataclasses.fields(TradeResult)]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(names + ["opened_at_ist", "closed_at_ist"])
        for result in results:
            row = [getattr(result, name) for name in names]
            writer.writerow(row + [format_timestamp(result.opened_at), format_timestamp(result.closed_at)])
    return len(results)


class HistoryScreen(Screen):
    """Closed trades with filters, analytics and an equity curve."""

    BINDINGS = [
        Binding("escape", "back", "Back", id="history_back"),
        Binding("ctrl+r", "load", "Reload", id="history_reload"),
        Binding("ctrl+e", "export", "Export CSV", id="history_export"),
        Binding("p", "trade_path", "Trade path", id="history_path"),
    ]

    def __init__(self) -> None:
        super().__init__(id="history")
        self.report: AnalyticsReport | None = None
        self.range: tuple[date, date] | None = None

    @property
    def tmtool(self) -> ScreenHost:
        return cast(ScreenHost, self.app)

    def compose(self) -> ComposeResult:
        today = to_ist(self.tmtool.clock.time()).date()
        strategies = sorted({view.name for view in self.tmtool.latest.strategies}) if self.tmtool.latest else []
        yield Static("History", classes="screen-title")
        with Horizontal(id="history-filters"):
            yield Label("From")
            yield Input((today - timedelta(days=DEFAULT_DAYS)).isoformat(), id="from", compact=True)
            yield Label("To")
            yield Input(today.isoformat(), id="to", compact=True)
            yield Label("Strategy")
            yield Select(
                [("all", ALL_STRATEGIES)] + [(name, name) for name in strategies],
                value=ALL_STRATEGIES,
                allow_blank=False,
                id="strategy",
                compact=True,
            )
        yield Static("Loading…", id="history-summary", markup=False)
        yield Sparkline([0.0], id="equity-curve")
        yield DataTable(id="history-table", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, label, width in HISTORY_COLUMNS:
            table.add_column(label, width=width, key=key)
        table.focus()
        self.action_load()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_load()

    def on_select_changed(self, _event: Select.Changed) -> None:
        self.action_load()

    def action_back(self) -> None:
        self.dismiss()

    def action_load(self) -> None:
        try:
            start = optional_date(self.query_one("#from", Input).value, "from")
            end = optional_date(self.query_one("#to", Input).value, "to")
        except FieldError as error:
            self.query_one("#history-summary", Static).update(str(error))
            return
        if start is None or end is None:
            self.query_one("#history-summary", Static).update("Both dates are needed (YYYY-MM-DD).")
            return
        if end < start:
            self.query_one("#history-summary", Static).update("'To' is before 'From'.")
            return
        strategy = self.query_one("#strategy", Select).value
        self.query_one("#history-summary", Static).update("Loading…")
        self._load(start, end, None if strategy == ALL_STRATEGIES else str(strategy))

    @work(thread=True, exclusive=True, group="history", exit_on_error=False)
    def _load(self, start: date, end: date, strategy: str | None) -> None:
        first, last = day_bounds(start, end)
        try:
            trades = self.tmtool.engine.closed_trades(first, last, strategy)
            stops = self._initial_stops(trades[:INITIAL_STOP_LOOKUPS])
        except Exception as error:  # the engine's store said no; show why
            self.app.call_from_thread(self._failed, str(error))
            return
        report = analytics.analyse(trades, stops)
        self.app.call_from_thread(self._show, report, (start, end))

    def _initial_stops(self, trades: list[Trade]) -> dict[int, float]:
        stops: dict[int, float] = {}
        for trade in trades:
            stop = analytics.initial_stop_from_events(self.tmtool.engine.trade_events(trade.id))
            if stop is not None:
                stops[trade.id] = stop
        return stops

    def _failed(self, message: str) -> None:
        if self.is_attached:
            self.query_one("#history-summary", Static).update(f"Could not read the history: {message}")

    def _show(self, report: AnalyticsReport, date_range: tuple[date, date]) -> None:
        if not self.is_attached:
            return
        self.report, self.range = report, date_range
        palette = self.tmtool.palette
        self.query_one("#history-summary", Static).update(summary_text(report, palette))
        self.query_one("#equity-curve", Sparkline).data = equity_curve(report)
        table = self.query_one(DataTable)
        table.clear()
        for result in reversed(report.trades):  # newest first
            pnl = pnl_text(result.pnl, palette)
            pnl.justify = "right"
            cells = {
                "id": str(result.trade_id),
                "closed": format_timestamp(result.closed_at),
                "symbol": result.symbol,
                "side": result.side,
                "qty": str(result.quantity),
                "entry": format_price(result.entry_price),
                "exit": format_price(result.exit_price),
                "pnl": pnl,
                "r": "–" if result.r_multiple is None else f"{result.r_multiple:+.2f}",
                "reason": result.exit_reason,
                "strategy": result.strategy,
            }
            table.add_row(*(cells[key] for key, _, _ in HISTORY_COLUMNS), key=str(result.trade_id))

    def action_trade_path(self) -> None:
        """Chart the selected trade's price path, live against its day replayed from the recorded ticks."""
        table = self.query_one(DataTable)
        if self.report is None or table.row_count == 0:
            self.notify("No closed trade selected.", severity="warning")
            return
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        result = next((r for r in self.report.trades if str(r.trade_id) == row_key.value), None)
        if result is None or result.opened_at is None:
            self.notify("No closed trade selected.", severity="warning")
            return
        recordings = self.tmtool.recordings
        if recordings is None:
            self.notify("Ticks are not recorded on this desk ([recording] is off): no path to draw.", severity="warning")
            return
        self.notify(f"Replaying the day of trade #{result.trade_id}…")
        self._replay_path(result.trade_id, trading_day(result.opened_at), recordings)

    @work(thread=True, exclusive=True, group="path", exit_on_error=False)
    def _replay_path(self, trade_id: int, day: date, recordings: Path) -> None:
        # imported here: pyarrow and plotext load only when a path is asked for (an attached desk never needs them otherwise)
        from tmtool.replay.path import trade_path_of
        from tmtool.replay.reader import read_day
        from tmtool.replay.replay import replay
        from tmtool.replay.trades import live_trades
        from tmtool.screens.trade_path import TradePathScreen

        host = self.tmtool
        first, _ = day_bounds(day, day)
        try:
            tape = read_day(recordings, day)  # first: without ticks the day's trades need not be read
            if len(tape) == 0:
                self.app.call_from_thread(
                    self.notify,
                    f"No ticks were recorded on {day.isoformat()}. `tmtool replay --day {day.isoformat()} --candles --plot {trade_id}` "
                    "draws it from 1-minute candles.",
                    severity="warning", timeout=15,
                )
                return
            opened = [t for t in host.engine.closed_trades(first, None) if t.opened_at is not None and trading_day(t.opened_at) == day]
            day_trades = live_trades(opened, host.engine.trade_events)
        except Exception as error:  # a store or file that cannot be read: say so
            self.app.call_from_thread(self.notify, f"Could not read trade #{trade_id}'s day: {error}", severity="error", timeout=15)
            return
        strategies = {view.name: view.strategy for view in host.latest.strategies} if host.latest is not None else {}
        path = trade_path_of(trade_id, day_trades, replay(day_trades, strategies, host.account_limits, tape), tape)
        if path is None:
            self.app.call_from_thread(self.notify, f"Trade #{trade_id} never held a position: no path to draw.", severity="warning")
            return
        self.app.call_from_thread(self.app.push_screen, TradePathScreen(path))

    def action_export(self) -> None:
        if self.report is None or self.range is None:
            self.notify("Nothing loaded yet.", severity="warning")
            return
        start, end = self.range
        default = unused_path(default_export_dir() / f"tmtool-trades-{start.isoformat()}-{end.isoformat()}.csv")
        self._export_flow(default, self.report.trades)

    @work(group="flows")
    async def _export_flow(self, default: Path, results: tuple[TradeResult, ...]) -> None:
        path = await self.app.push_screen_wait(PathModal("Export closed trades to CSV", default, create_parent=default.parent))
        if path is not None:
            self._write(path, results)

    @work(thread=True, group="export", exit_on_error=False)
    def _write(self, path: Path, results: tuple[TradeResult, ...]) -> None:
        try:
            count = write_csv(path, results)
        except OSError as error:
            self.app.call_from_thread(self.notify, f"Could not write {path}: {error}", severity="error", timeout=15)
            return
        self.app.call_from_thread(self.notify, f"Wrote {count} trade(s) to {path}")
