"""Strategies: the list, the risk form with a live preview, and deletion."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, cast

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, DataTable, Footer, Input, Label, Select, Static

from tmtool import config, config_file
from tmtool.domain import validation
from tmtool.domain.commands import Accepted, DeleteStrategy, SaveStrategy
from tmtool.domain.models import (
    EXCHANGES,
    PortfolioRisk,
    Product,
    Sizing,
    SizingMode,
    Strategy,
    TradeRisk,
    TrailingSettings,
)
from tmtool.engine.snapshot import EngineSnapshot, StrategyView
from tmtool.screens.formatting import format_money
from tmtool.screens.host import ScreenHost
from tmtool.screens.modals.form import FormModal
from tmtool.screens.forms import (
    FieldError,
    amount_text,
    distance_text,
    optional_amount,
    optional_distance,
    optional_positive,
    optional_price,
    optional_quantity,
    optional_time,
    partial_targets,
    partial_targets_text,
)
from tmtool.screens.modals.pickers import DeleteStrategyModal
from tmtool.screens.risk_preview import strategy_preview
from tmtool.screens.widgets.status_bar import StatusBar

NAME_CHARACTERS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")
DEFAULT_EXAMPLE_PRICE = "1000"

STRATEGY_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("name", "Strategy", 14),
    ("funds", "Funds", 11),
    ("sizing", "Sizing", 16),
    ("trade", "Stop/target", 13),
    ("portfolio", "Port. SL/TG", 13),
    ("daily", "Daily loss", 10),
    ("open", "Open", 6),
    ("pnl", "P&L", 11),
)


def strategy_row(view: StrategyView) -> tuple[str, ...]:
    strategy = view.strategy
    risk = strategy.trade_risk
    portfolio = strategy.portfolio
    maximum = "∞" if view.max_open_positions is None else str(view.max_open_positions)
    return (
        view.name + (" (HALTED)" if view.halted else ""),
        format_money(strategy.allocated_funds, decimals=0),
        f"{strategy.sizing.mode.value.split('_')[0].lower()} {strategy.sizing.value:g}",
        f"{distance_text(risk.stop_loss) or '–'}/{distance_text(risk.target) or '–'}",
        f"{amount_text(portfolio.stop_loss) or '–'}/{amount_text(portfolio.target) or '–'}",
        amount_text(portfolio.daily_loss_limit) or "–",
        f"{view.open_positions}/{maximum}",
        format_money(view.total_pnl, signed=True),
    )


class StrategyFormModal(FormModal[Strategy | None]):
    """Create or edit a strategy's risk settings with a live preview; dismisses with the new ``Strategy``."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="strategy_cancel"),
        Binding("ctrl+s", "submit", "Save", id="strategy_submit", priority=True),
    ]

    def __init__(self, existing: Strategy | None, taken_names: set[str]) -> None:
        super().__init__(classes="form-modal strategy-form")
        self.existing = existing
        self.taken_names = taken_names

    def _initial(self) -> dict[str, str]:
        strategy = self.existing or Strategy(name="")
        risk, portfolio = strategy.trade_risk, strategy.portfolio
        trailing = risk.trailing
        return {
            "name": strategy.name,
            "funds": f"{strategy.allocated_funds:g}" if strategy.allocated_funds else "",
            "sizing_value": f"{strategy.sizing.value:g}",
            "max_open": str(strategy.max_open_positions or ""),
            "max_day": str(strategy.max_trades_per_day or ""),
            "stop": distance_text(risk.stop_loss),
            "target": distance_text(risk.target),
            "trail": distance_text(trailing.distance) if trailing else "",
            "trail_after": distance_text(trailing.activation) if trailing else "",
            "breakeven": distance_text(risk.breakeven_after),
            "partials": partial_targets_text(risk.partial_targets),
            "p_stop": amount_text(portfolio.stop_loss),
            "p_target": amount_text(portfolio.target),
            "p_trail_at": amount_text(portfolio.trailing_activation),
            "p_trail": amount_text(portfolio.trailing_distance),
            "daily_loss": amount_text(portfolio.daily_loss_limit),
            "square_off": strategy.square_off_time.strftime("%H:%M") if strategy.square_off_time else "",
            "example": DEFAULT_EXAMPLE_PRICE,
        }

    def compose(self) -> ComposeResult:
        strategy = self.existing or Strategy(name="")
        initial = self._initial()
        title = f"Strategy '{strategy.name}'" if self.existing else "New strategy"
        with Vertical(classes="dialog"):
            yield Static(title, classes="dialog-title", markup=False)
            with VerticalScroll(classes="form-scroll"):
                with Grid(classes="form-grid"):
                    yield from self._field("name", "Name", initial, "letters, digits, _ - .", disabled=self.existing is not None)
                    yield from self._field("funds", "Funds", initial, "allocated ₹, blank: none")
                    yield Label("Sizing")
                    yield Select(
                        [(mode.value, mode) for mode in SizingMode],
                        value=strategy.sizing.mode,
                        allow_blank=False,
                        id="sizing_mode",
                        compact=True,
                    )
                    yield from self._field("sizing_value", "Size value", initial, "qty / ₹ / % / ₹ risked")
                    yield from self._field("max_open", "Max open", initial, "positions, blank: no cap")
                    yield from self._field("max_day", "Max/day", initial, "trades a day, blank: no cap")
                    yield Label("Exchange")
                    yield Select(
                        [(name, name) for name in sorted(EXCHANGES)],
                        value=strategy.exchange,
                        allow_blank=False,
                        id="exchange",
                        compact=True,
                    )
                    yield Label("Product")
                    yield Select(
                        [(product.value, product) for product in Product],
                        value=strategy.product,
                        allow_blank=False,
                        id="product",
                        compact=True,
                    )
                    yield from self._field("stop", "Trade stop", initial, "20 pts or 1%")
                    yield from self._field("target", "Trade target", initial, "40 pts or 2%")
                    yield from self._field("trail", "Trailing", initial, "distance, blank: off")
                    yield from self._field("trail_after", "Trail after", initial, "activation move")
                    yield from self._field("breakeven", "Breakeven at", initial, "move in favour")
                    yield from self._field("partials", "Partials", initial, "20:0.5, 40:0.25")
                    yield from self._field("p_stop", "Portf. stop", initial, "₹ or % of funds")
                    yield from self._field("p_target", "Portf. target", initial, "₹ or % of funds")
                    yield from self._field("p_trail_at", "Lock arms at", initial, "₹ or %")
                    yield from self._field("p_trail", "Lock distance", initial, "₹ or %")
                    yield from self._field("daily_loss", "Daily loss", initial, "₹ or %, halts the day")
                    yield from self._field("square_off", "Square-off", initial, "HH:MM IST")
                    yield from self._field("example", "Example price", initial, "for the preview")
            with VerticalScroll(classes="preview-scroll"):
                yield Static("", id="preview", classes="preview", markup=False)
            yield Static("", id="form-error", classes="form-error", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel (esc)", id="cancel", compact=True)
                yield Button("Save (ctrl+s)", id="save", variant="success", compact=True)

    @staticmethod
    def _field(field_id: str, label: str, initial: dict[str, str], placeholder: str, disabled: bool = False):
        yield Label(label)
        yield Input(initial[field_id], placeholder=placeholder, id=field_id, compact=True, disabled=disabled)

    def on_mount(self) -> None:
        self.query_one("#funds" if self.existing else "#name", Input).focus()
        self._refresh_preview()

    def on_input_changed(self, _event: Input.Changed) -> None:
        self._refresh_preview()

    def on_select_changed(self, _event: Select.Changed) -> None:
        self._refresh_preview()

    def action_submit(self) -> None:
        try:
            strategy = self.build()
        except FieldError as error:
            self.query_one("#form-error", Static).update(str(error))
            return
        self.dismiss(strategy)

    def _text(self, field_id: str) -> str:
        return self.query_one(f"#{field_id}", Input).value

    def build(self, *, for_preview: bool = False) -> Strategy:
        """The strategy the form describes, or FieldError saying which field is wrong and why.

        ``for_preview`` skips the name checks (the preview works before a name is typed).
        """
        name = self._text("name").strip()
        if for_preview:
            name = name or "preview"
        elif not name:
            raise FieldError("name: required")
        elif not set(name) <= NAME_CHARACTERS:
            raise FieldError(f"name: '{name}' may use only letters, digits, '_', '-' and '.'")
        elif self.existing is None and name in self.taken_names:
            raise FieldError(f"name: a strategy called '{name}' already exists")
        sizing_value = optional_positive(self._text("sizing_value"), "size value")
        if sizing_value is None:
            raise FieldError("size value: required")
        mode = self.query_one("#sizing_mode", Select).value
        funds = optional_positive(self._text("funds"), "funds") or 0.0
        if mode is SizingMode.PERCENT_ALLOCATION and sizing_value > 100:
            raise FieldError("size value: a percentage of funds must be at most 100")
        trail = optional_distance(self._text("trail"), "trailing distance")
        trail_after = optional_distance(self._text("trail_after"), "trail after")
        if trail is None and trail_after is not None:
            raise FieldError("trail after: needs a trailing distance")
        trade_risk = TradeRisk(
            stop_loss=optional_distance(self._text("stop"), "trade stop"),
            target=optional_distance(self._text("target"), "trade target"),
            trailing=TrailingSettings(trail, activation=trail_after) if trail is not None else None,
            breakeven_after=optional_distance(self._text("breakeven"), "breakeven at"),
            partial_targets=partial_targets(self._text("partials")),
        )
        p_trail_at = optional_amount(self._text("p_trail_at"), "lock arms at")
        p_trail = optional_amount(self._text("p_trail"), "lock distance")
        if (p_trail_at is None) != (p_trail is None):
            raise FieldError("portfolio lock: give both 'lock arms at' and 'lock distance', or neither")
        portfolio = PortfolioRisk(
            stop_loss=optional_amount(self._text("p_stop"), "portfolio stop"),
            target=optional_amount(self._text("p_target"), "portfolio target"),
            trailing_activation=p_trail_at,
            trailing_distance=p_trail,
            daily_loss_limit=optional_amount(self._text("daily_loss"), "daily loss"),
        )
        base = self.existing or Strategy(name=name)
        strategy = dataclasses.replace(
            base,
            name=name,
            trade_risk=trade_risk,
            portfolio=portfolio,
            allocated_funds=funds,
            sizing=Sizing(mode, sizing_value),
            max_open_positions=optional_quantity(self._text("max_open"), "max open"),
            max_trades_per_day=optional_quantity(self._text("max_day"), "max/day"),
            square_off_time=optional_time(self._text("square_off"), "square-off"),
            exchange=str(self.query_one("#exchange", Select).value),
            product=self.query_one("#product", Select).value,
        )
        denial = validation.validate_strategy(strategy)
        if denial is not None:
            raise FieldError(f"{denial.code}: {denial.message}")
        return strategy

    def _refresh_preview(self) -> None:
        error = self.query_one("#form-error", Static)
        preview = self.query_one("#preview", Static)
        try:
            strategy = self.build(for_preview=True)
            price = optional_price(self._text("example"), "example price")
        except FieldError as problem:
            error.update(str(problem))
            preview.set_class(False, "-warning")
            preview.update("Preview: none until every field is valid.")
            return
        error.update("")
        if price is None:
            preview.update("Preview: enter an example price.")
            return
        result = strategy_preview(strategy, price)
        text = Text("\n".join(result.lines))
        for warning in result.warnings:
            text.append(f"\n⚠ {warning}", style="bold")
        preview.set_class(bool(result.warnings), "-warning")
        preview.update(text)


class StrategiesScreen(Screen):
    """All strategies; n creates, e edits, d deletes."""

    BINDINGS = [
        Binding("escape", "back", "Back", id="strategies_back"),
        Binding("n", "new_strategy", "New", id="strategy_new"),
        Binding("e", "edit_strategy", "Edit", id="strategy_edit"),
        Binding("d", "delete_strategy", "Delete", id="strategy_delete"),
    ]

    def __init__(self) -> None:
        super().__init__(id="strategies")
        self.views: dict[str, StrategyView] = {}
        self.snapshot: EngineSnapshot | None = None
        self._ready = False

    @property
    def tmtool(self) -> ScreenHost:
        return cast(ScreenHost, self.app)

    def compose(self) -> ComposeResult:
        yield StatusBar()
        yield Static("Strategies", classes="screen-title")
        yield DataTable(id="strategy-table", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, label, width in STRATEGY_COLUMNS:
            table.add_column(label, width=width, key=key)
        table.focus()
        self._ready = True
        if self.tmtool.latest is not None:
            self.apply_snapshot(self.tmtool.latest)

    def apply_snapshot(self, snapshot: EngineSnapshot) -> None:
        self.snapshot = snapshot
        if not self._ready:
            return
        table = self.query_one(DataTable)
        wanted = {view.name: view for view in snapshot.strategies}
        for name in [name for name in self.views if name not in wanted]:
            table.remove_row(name)
            del self.views[name]
        for name, view in wanted.items():
            row = strategy_row(view)
            if name not in self.views:
                table.add_row(*row, key=name)
            elif strategy_row(self.views[name]) != row:
                for (key, _, _), cell in zip(STRATEGY_COLUMNS, row):
                    table.update_cell(name, key, cell)
            self.views[name] = view

    def _selected(self) -> StrategyView | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        row_key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return self.views.get(str(row_key.value))

    def on_data_table_row_selected(self, _event: DataTable.RowSelected) -> None:
        self.action_edit_strategy()

    def action_back(self) -> None:
        self.dismiss()

    def action_new_strategy(self) -> None:
        self._edit_flow(None)

    def action_edit_strategy(self) -> None:
        view = self._selected()
        if view is None:
            self.notify("No strategy selected.", severity="warning")
            return
        self._edit_flow(view.strategy)

    @work(group="flows")
    async def _edit_flow(self, existing: Strategy | None) -> None:
        strategy = await self.app.push_screen_wait(StrategyFormModal(existing, set(self.views)))
        if strategy is None:
            return
        result = await self.tmtool.send_command(SaveStrategy(strategy), success=f"Strategy '{strategy.name}' saved")
        if isinstance(result, Accepted) and self.tmtool.config_path is not None:
            self._write_config(strategy)

    def _write_config(self, strategy: Strategy) -> None:
        self._update_config(
            lambda path: config_file.save_strategy(path, strategy), "Saved in the engine, but not in", "Written to"
        )

    @work(thread=True, group="config", exit_on_error=False)
    def _update_config(self, change: Callable[[Path], object], failed: str, done: str) -> None:
        """Apply ``change`` to the config file off the event loop; say how it went."""
        path = self.tmtool.config_path
        try:
            change(path)
        except (OSError, config.ConfigError) as error:
            self.app.call_from_thread(self.notify, f"{failed} {path}: {error}", severity="error", timeout=15)
            return
        self.app.call_from_thread(self.notify, f"{done} {path}")

    def action_delete_strategy(self) -> None:
        view = self._selected()
        if view is None:
            self.notify("No strategy selected.", severity="warning")
            return
        others = sorted(name for name in self.views if name != view.name)
        self._delete_flow(view, others)

    @work(group="flows")
    async def _delete_flow(self, view: StrategyView, others: list[str]) -> None:
        choice = await self.app.push_screen_wait(DeleteStrategyModal(view.name, view.open_positions, others))
        if choice is None:
            return
        result = await self.tmtool.send_command(
            DeleteStrategy(view.name, choice.open_trades, choice.move_to), success=f"Strategy '{view.name}' deleted"
        )
        if isinstance(result, Accepted) and self.tmtool.config_path is not None:
            self._remove_from_config(view.name)

    def _remove_from_config(self, name: str) -> None:
        self._update_config(
            lambda path: config_file.remove_strategy(path, name), "Deleted in the engine, but not from", "Removed from"
        )
