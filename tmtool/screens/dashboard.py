"""The dashboard: status, strategy cards, the trades table, alerts; every trade action starts here."""

from __future__ import annotations

from typing import cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from tmtool.domain.commands import (
    AcknowledgeAlerts,
    Accepted,
    CreateTrade,
    ExitAll,
    ExitTrade,
    ExitTrades,
    PauseTrade,
    ResumeTrade,
    Result,
)
from tmtool.domain.models import ExitReason, TradeStatus
from tmtool.engine.snapshot import EngineSnapshot, TradeView
from tmtool.screens.formatting import Palette
from tmtool.screens.host import ScreenHost
from tmtool.screens.modals.confirm import ConfirmModal, trade_line
from tmtool.screens.modals.modify_trade import ModifyTradeModal
from tmtool.screens.modals.new_trade import NewTradeModal
from tmtool.screens.modals.pickers import ChooseStrategyModal
from tmtool.screens.widgets.alerts_panel import AlertsPanel
from tmtool.screens.widgets.status_bar import StatusBar
from tmtool.screens.widgets.strategy_cards import StrategyCards
from tmtool.screens.widgets.trades_table import (
    SORT_COLUMNS,
    STATUS_FILTERS,
    TradeFilter,
    TradeOrder,
    TradesTable,
)

SHOWN_IN_CONFIRM = 15


def confirm_lines(views: list[TradeView]) -> list[str]:
    lines = [trade_line(view) for view in views[:SHOWN_IN_CONFIRM]]
    if len(views) > SHOWN_IN_CONFIRM:
        lines.append(f"… and {len(views) - SHOWN_IN_CONFIRM} more")
    return lines


class DashboardScreen(Screen):
    """The main screen.  The app hands it each new snapshot (``apply_snapshot``)."""

    BINDINGS = [
        # Shown first in the footer; the app's priority binding of the same key is what fires.
        Binding("f9", "app.panic", "PANIC", id="dashboard_panic"),
        Binding("n", "new_trade", "New", id="new_trade"),
        Binding("m", "modify_trade", "Modify", id="modify_trade"),
        Binding("x", "exit_trade", "Exit", id="exit_trade"),
        Binding("X", "exit_marked", "Exit marked", show=False, id="exit_marked"),
        Binding("e", "exit_strategy", "Exit strategy…", show=False, id="exit_strategy"),
        Binding("p", "pause_resume", "Pause", id="pause_resume"),
        Binding("slash", "focus_filter", "Filter", show=False, id="focus_filter"),
        Binding("o", "cycle_status", "Open/all/closed", show=False, id="cycle_status"),
        Binding("g", "cycle_strategy", "By strategy", show=False, id="cycle_strategy"),
        Binding("s", "cycle_sort", "Sort", show=False, id="cycle_sort"),
        Binding("r", "reverse_sort", "Reverse sort", show=False, id="reverse_sort"),
        Binding("A", "acknowledge_all", "Ack all", show=False, id="ack_all"),
        Binding("t", "strategies", "Strategies", id="strategies"),
        Binding("h", "history", "History", id="history"),
        Binding("l", "alert_log", "Alert log", show=False, id="alert_log"),
        Binding("v", "money_at_risk", "At risk", show=False, id="money_at_risk"),
        Binding("i", "trade_story", "Story", show=False, id="trade_story"),
        Binding("b", "orders_positions", "Orders/positions", show=False, id="orders_positions"),
    ]

    def __init__(self) -> None:
        super().__init__(id="dashboard")
        self.snapshot: EngineSnapshot | None = None
        self._ready = False
        self._filter_state_text: str | None = None

    @property
    def tmtool(self) -> ScreenHost:
        return cast(ScreenHost, self.app)

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status-bar")
        yield StrategyCards(id="cards")
        with Horizontal(id="filter-bar"):
            yield Input(placeholder="/ filter: symbol, strategy, status, id", id="filter", compact=True)
            yield Static("", id="filter-state", markup=False)
        yield TradesTable(id="trades")
        yield AlertsPanel(id="alerts")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(TradesTable).focus()
        self._ready = True
        if self.snapshot is not None:
            self.apply_snapshot(self.snapshot)
        self._show_filter_state()

    # ------------------------------------------------------------------ snapshots

    def apply_snapshot(self, snapshot: EngineSnapshot) -> None:
        """Reconcile every panel with a new snapshot (called on the UI thread by the app)."""
        self.snapshot = snapshot
        if not self._ready:
            return
        try:
            table, cards, alerts = self.query_one(TradesTable), self.query_one(StrategyCards), self.query_one(AlertsPanel)
        except NoMatches:
            return  # a frame that lands while the app shuts down: the widgets are already gone
        table.reconcile(snapshot.trades, snapshot.ts)
        cards.reconcile(snapshot.strategies)
        alerts.reconcile(snapshot.alerts)
        self._show_filter_state()

    def apply_palette(self, palette: Palette) -> None:
        if not self._ready:
            return
        self.query_one(TradesTable).set_palette(palette)
        self.query_one(StrategyCards).set_palette(palette)
        self.query_one(AlertsPanel).set_palette(palette)

    def _show_filter_state(self) -> None:
        table = self.query_one(TradesTable)
        trade_filter, order = table.trade_filter, table.trade_order
        parts = [
            f"o:{trade_filter.status.lower()}",
            f"g:{trade_filter.strategy or 'all'}",
            f"s:{order.column}{'▼' if order.reverse else '▲'}",
            f"{table.row_count} shown",
        ]
        if table.marked:
            parts.append(f"{len(table.marked)} marked")
        text = " · ".join(parts)
        if text != self._filter_state_text:
            self._filter_state_text = text
            self.query_one("#filter-state", Static).update(Text(text))

    # ------------------------------------------------------------------ filter and sort

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        table = self.query_one(TradesTable)
        trade_filter = table.trade_filter
        table.set_filter(TradeFilter(event.value, trade_filter.status, trade_filter.strategy))
        self._show_filter_state()

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        self.query_one(TradesTable).focus()

    def on_key(self, event) -> None:
        if event.key == "escape" and self.focused is self.query_one("#filter", Input):
            event.stop()
            self.query_one(TradesTable).focus()

    def on_trades_table_marks_changed(self, _event: TradesTable.MarksChanged) -> None:
        self._show_filter_state()

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_cycle_status(self) -> None:
        table = self.query_one(TradesTable)
        current = table.trade_filter
        status = STATUS_FILTERS[(STATUS_FILTERS.index(current.status) + 1) % len(STATUS_FILTERS)]
        table.set_filter(TradeFilter(current.text, status, current.strategy))
        self._show_filter_state()

    def action_cycle_strategy(self) -> None:
        table = self.query_one(TradesTable)
        current = table.trade_filter
        names: list[str | None] = [None]
        if self.snapshot is not None:
            names += sorted({view.name for view in self.snapshot.strategies} | {t.strategy for t in self.snapshot.trades})
        index = names.index(current.strategy) if current.strategy in names else 0
        table.set_filter(TradeFilter(current.text, current.status, names[(index + 1) % len(names)]))
        self._show_filter_state()

    def action_cycle_sort(self) -> None:
        table = self.query_one(TradesTable)
        columns = list(SORT_COLUMNS)
        current = table.trade_order
        table.set_order(TradeOrder(columns[(columns.index(current.column) + 1) % len(columns)], current.reverse))
        self._show_filter_state()

    def action_reverse_sort(self) -> None:
        table = self.query_one(TradesTable)
        table.set_order(TradeOrder(table.trade_order.column, not table.trade_order.reverse))
        self._show_filter_state()

    # ------------------------------------------------------------------ trade actions

    def _selected_view(self) -> TradeView | None:
        """The trade under the cursor at this moment (the id is captured here)."""
        trade_id = self.query_one(TradesTable).selected_trade_id()
        if trade_id is None or self.snapshot is None:
            self.notify("No trade selected.", severity="warning")
            return None
        view = self.snapshot.trade(trade_id)
        if view is None:
            self.notify(f"Trade #{trade_id} is gone.", severity="warning")
        return view

    def action_new_trade(self) -> None:
        snapshot = self.snapshot
        strategies = snapshot.strategies if snapshot is not None else ()
        last_prices = {(view.exchange, view.symbol): view.ltp for view in (snapshot.trades if snapshot else ()) if view.ltp}
        selected = self.query_one(TradesTable).selected_trade_id()
        default = None
        if selected is not None and snapshot is not None and snapshot.trade(selected) is not None:
            default = snapshot.trade(selected).strategy
        self.app.push_screen(
            NewTradeModal(strategies, last_prices, self.tmtool.instrument_lookup, default, submit=self._send_new_trade)
        )

    async def _send_new_trade(self, command: CreateTrade) -> Result | None:
        """The dialog's way out: it stays open with the reason when the engine refuses."""
        return await self.tmtool.send_command(command, success=f"Trade in {command.symbol} accepted")

    def action_modify_trade(self) -> None:
        view = self._selected_view()
        if view is None:
            return
        if not view.status.is_open or view.status is TradeStatus.EXITING:
            self.notify(f"Trade #{view.id} is {view.status.value}; its levels can no longer change.", severity="warning")
            return
        self._modify_flow(view)

    @work(group="flows")
    async def _modify_flow(self, view: TradeView) -> None:
        command = await self.app.push_screen_wait(ModifyTradeModal(view))
        if command is not None:
            await self.tmtool.send_command(command, success=f"Trade #{view.id} updated")

    def action_exit_trade(self) -> None:
        view = self._selected_view()
        if view is None:
            return
        if not view.status.is_open:
            self.notify(f"Trade #{view.id} is already {view.status.value}.", severity="warning")
            return
        self._exit_flow(view)

    @work(group="flows")
    async def _exit_flow(self, view: TradeView) -> None:
        confirmed = await self.app.push_screen_wait(
            ConfirmModal(f"Exit trade #{view.id} at market?", [trade_line(view)], confirm_label="Exit")
        )
        if confirmed:
            await self.tmtool.send_command(ExitTrade(view.id, ExitReason.MANUAL), success=f"Exit of #{view.id} sent")

    def action_exit_marked(self) -> None:
        table = self.query_one(TradesTable)
        trade_ids = table.marked_trade_ids()
        if not trade_ids:
            self.notify("No trades marked (space marks the trade under the cursor).", severity="warning")
            return
        views = [view for view in (self.snapshot.trade(trade_id) for trade_id in trade_ids) if view is not None]
        self._exit_marked_flow(trade_ids, views)

    @work(group="flows")
    async def _exit_marked_flow(self, trade_ids: tuple[int, ...], views: list[TradeView]) -> None:
        confirmed = await self.app.push_screen_wait(
            ConfirmModal(f"Exit {len(trade_ids)} marked trade(s) at market?", confirm_lines(views), confirm_label="Exit")
        )
        if confirmed:
            result = await self.tmtool.send_command(
                ExitTrades(trade_ids, ExitReason.MANUAL), success=f"Exit of {len(trade_ids)} trade(s) sent"
            )
            if isinstance(result, Accepted):
                self.query_one(TradesTable).clear_marks()

    def action_exit_strategy(self) -> None:
        if self.snapshot is None:
            return
        open_trades = self.snapshot.open_trades
        counts: dict[str, int] = {}
        for view in open_trades:
            counts[view.strategy] = counts.get(view.strategy, 0) + 1
        if not counts:
            self.notify("No open trades.", severity="warning")
            return
        selected = self.query_one(TradesTable).selected_trade_id()
        selected_view = self.snapshot.trade(selected) if selected is not None else None
        choices = [(name, f"{name}  ({count} open)") for name, count in sorted(counts.items())]
        self._exit_strategy_flow(choices, selected_view.strategy if selected_view else None)

    @work(group="flows")
    async def _exit_strategy_flow(self, choices: list[tuple[str, str]], selected: str | None) -> None:
        name = await self.app.push_screen_wait(ChooseStrategyModal("Exit all trades of which strategy?", choices, selected))
        if name is None or self.snapshot is None:
            return
        views = [view for view in self.snapshot.open_trades if view.strategy == name]
        confirmed = await self.app.push_screen_wait(
            ConfirmModal(
                f"Exit all {len(views)} open trade(s) of '{name}' at market?", confirm_lines(views), confirm_label="Exit all"
            )
        )
        if confirmed:
            await self.tmtool.send_command(ExitAll(strategy=name, reason=ExitReason.MANUAL), success=f"Exit of '{name}' sent")

    def action_pause_resume(self) -> None:
        view = self._selected_view()
        if view is None:
            return
        command = ResumeTrade(view.id) if view.paused else PauseTrade(view.id)
        verb = "resumed" if view.paused else "paused"
        self.tmtool.run_command(command, success=f"Trade #{view.id} {verb}")

    # ------------------------------------------------------------------ alerts and screens

    def on_alerts_panel_acknowledge_requested(self, event: AlertsPanel.AcknowledgeRequested) -> None:
        self.tmtool.run_command(AcknowledgeAlerts(event.alert_ids), success="Alert acknowledged")

    def action_acknowledge_all(self) -> None:
        self.tmtool.run_command(AcknowledgeAlerts(()), success="All alerts acknowledged")

    def action_strategies(self) -> None:
        self.tmtool.open_strategies()

    def action_history(self) -> None:
        self.tmtool.open_history()

    def action_alert_log(self) -> None:
        self.tmtool.open_alert_history()

    def action_money_at_risk(self) -> None:
        self.tmtool.open_money_at_risk()

    def action_orders_positions(self) -> None:
        self.tmtool.open_orders_positions()

    def action_trade_story(self) -> None:
        trade_id = self.query_one(TradesTable).selected_trade_id()
        if trade_id is None:
            self.notify("No trade selected.", severity="warning")
            return
        self.tmtool.open_trade_story(trade_id)

    def on_trades_table_row_selected(self, event: TradesTable.RowSelected) -> None:
        event.stop()
        self.tmtool.open_trade_story(event.trade_id)
