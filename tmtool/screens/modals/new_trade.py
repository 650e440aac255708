"""New trade: symbol, side, product, strategy, size (or the strategy's sizing), entry, levels, breakeven.

The preview line is recomputed on every keystroke from the engine's own sizing
and level rules; the instrument's lot and tick size are looked up off the UI
loop (the engine may have to ask the broker).  A price the form filled in from
the last known price follows the symbol; what is sent is what the preview showed
(the previewed quantity, never a re-sizing at another price), and input that
fails validation shows no preview.  The dialog submits through ``submit`` and
stays open with the engine's reason when the trade is refused, so nothing typed
is lost.
"""

from __future__ import annotations

import dataclasses
from typing import Awaitable, Callable

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.widgets import Button, Input, Label, Select, Static

from tmtool.domain import validation
from tmtool.domain.commands import UNSET, Accepted, CreateTrade, Denied, Result
from tmtool.domain.models import (
    DEFAULT_TICK_SIZE,
    EXCHANGES,
    MANUAL_STRATEGY,
    Instrument,
    PriceType,
    Product,
    Side,
    Strategy,
)
from tmtool.engine.snapshot import StrategyView
from tmtool.screens.modals.form import FormModal
from tmtool.screens.forms import FieldError, distance_text, optional_distance, optional_price, optional_quantity
from tmtool.screens.risk_preview import trade_preview

InstrumentLookup = Callable[[str, str], Instrument]
SubmitTrade = Callable[[CreateTrade], Awaitable[Result | None]]
CLEAR_WORD = "none"


def manual_strategy_view() -> StrategyView:
    """The view of the ``manual`` strategy when the engine has none configured."""
    return StrategyView(
        name=MANUAL_STRATEGY,
        strategy=Strategy(name=MANUAL_STRATEGY),
        realised_pnl=0.0,
        unrealised_pnl=0.0,
        total_pnl=0.0,
        pnl_series=(),
        open_positions=0,
        max_open_positions=None,
        trades_today=0,
        portfolio_stop=None,
        portfolio_target=None,
        trailing_lock=None,
        trailing_armed=False,
        peak_pnl=0.0,
        daily_loss_used=0.0,
        daily_loss_limit=None,
        halted=False,
        halt_reason="",
        funds_used=0.0,
        allocated_funds=0.0,
    )


class NewTradeModal(FormModal[CreateTrade | None]):
    """Build a ``CreateTrade``; dismisses with None when cancelled."""

    SUBMIT_BUTTON = "create"
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="new_trade_cancel"),
        Binding("ctrl+s", "submit", "Create", id="new_trade_submit", priority=True),
    ]

    def __init__(
        self,
        strategies: tuple[StrategyView, ...],
        last_prices: dict[tuple[str, str], float],
        instrument_lookup: InstrumentLookup | None,
        default_strategy: str | None = None,
        submit: SubmitTrade | None = None,
    ) -> None:
        super().__init__(classes="form-modal")
        views = {view.name: view for view in strategies}
        views.setdefault(MANUAL_STRATEGY, manual_strategy_view())
        self.strategies = views
        self.last_prices = last_prices
        self.instrument_lookup = instrument_lookup
        self.default_strategy = default_strategy if default_strategy in views else MANUAL_STRATEGY
        self.instrument: Instrument | None = None
        self.submit = submit
        self._filled_price: str | None = None  # the price text the form filled in itself (not typed)
        self._previewed_quantity: int | None = None  # the quantity the preview shows now, None when none
        self._sending = False

    def compose(self) -> ComposeResult:
        strategy = self.strategies[self.default_strategy].strategy
        with Vertical(classes="dialog"):
            yield Static("New trade", classes="dialog-title")
            with Grid(classes="form-grid"):
                yield Label("Symbol")
                yield Input(placeholder="e.g. SBIN", id="symbol", compact=True)
                yield Label("Exchange")
                yield Select(
                    [(name, name) for name in sorted(EXCHANGES)],
                    value=strategy.exchange if strategy.exchange in EXCHANGES else "NSE",
                    allow_blank=False,
                    id="exchange",
                    compact=True,
                )
                yield Label("Side")
                yield Select([(side.value, side) for side in Side], value=Side.LONG, allow_blank=False, id="side", compact=True)
                yield Label("Product")
                yield Select(
                    [(product.value, product) for product in Product],
                    value=strategy.product,
                    allow_blank=False,
                    id="product",
                    compact=True,
                )
                yield Label("Strategy")
                yield Select(
                    [(name, name) for name in sorted(self.strategies)],
                    value=self.default_strategy,
                    allow_blank=False,
                    id="strategy",
                    compact=True,
                )
                yield Label("Quantity")
                yield Input(placeholder="blank: strategy sizing", id="quantity", compact=True)
                yield Label("Entry")
                yield Select(
                    [(price_type.value, price_type) for price_type in PriceType],
                    value=PriceType.MARKET,
                    allow_blank=False,
                    id="price_type",
                    compact=True,
                )
                yield Label("Price", id="price-label")
                yield Input(placeholder="expected price", id="price", compact=True)
                yield Label("Stop")
                yield Input(placeholder="blank: strategy default", id="stop", compact=True)
                yield Label("Target")
                yield Input(placeholder="blank: strategy default", id="target", compact=True)
                yield Label("Breakeven")
                yield Input(placeholder=self._breakeven_hint(strategy), id="breakeven", compact=True)
            yield Static("", id="preview", classes="preview", markup=False)
            yield Static("", id="form-error", classes="form-error", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel (esc)", id="cancel", compact=True)
                yield Button("Create (ctrl+s)", id="create", variant="success", compact=True)

    def on_mount(self) -> None:
        self.query_one("#symbol", Input).focus()
        self._refresh_preview()

    # ------------------------------------------------------------------ events

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "symbol":
            self._prefill_price()
            self._look_up_instrument()
        self._refresh_preview()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "exchange":
            self._prefill_price()
            self._look_up_instrument()
        if event.select.id == "strategy":
            strategy = self.strategies[str(event.value)].strategy
            self.query_one("#product", Select).value = strategy.product
            self.query_one("#breakeven", Input).placeholder = self._breakeven_hint(strategy)
        if event.select.id == "price_type":
            limit = event.value is PriceType.LIMIT
            self.query_one("#price-label", Label).update("Limit" if limit else "Price")
            self.query_one("#price", Input).placeholder = "limit price" if limit else "expected price"
        self._refresh_preview()

    def action_submit(self) -> None:
        if self._sending:
            return
        try:
            command = self._command()
        except FieldError as error:
            self._show_error(str(error))
            return
        if self.submit is None:
            self.dismiss(command)
            return
        self._sending = True
        self._show_error(f"sending {command.side.value} {command.symbol}…")
        self._send(command)

    @work(exclusive=True, group="new_trade_send")
    async def _send(self, command: CreateTrade) -> None:
        assert self.submit is not None
        try:
            result = await self.submit(command)
        finally:
            self._sending = False
        if isinstance(result, Denied):
            self._show_error(f"Refused by the engine: {result.code}: {result.message}")
            return
        if isinstance(result, Accepted) or result is None:
            # None: no answer (already reported); closing avoids a second, duplicate entry on retry.
            self.dismiss(command)

    # ------------------------------------------------------------------ form state

    def _value(self, widget_id: str) -> str:
        return self.query_one(f"#{widget_id}", Input).value

    def _symbol(self) -> str:
        return self._value("symbol").strip().upper()

    def _exchange(self) -> str:
        return str(self.query_one("#exchange", Select).value)

    def _prefill_price(self) -> None:
        """Fill the price from the symbol's last price; a filled-in price follows the symbol, a typed one stays."""
        price_input = self.query_one("#price", Input)
        current = price_input.value.strip()
        if current and current != self._filled_price:
            return  # the user typed it
        known = self.last_prices.get((self._exchange(), self._symbol()))
        text = f"{known:.2f}" if known else ""
        self._filled_price = text or None
        if current != text:
            price_input.value = text

    @work(exclusive=True, group="instrument", thread=True)
    def _look_up_instrument(self) -> None:
        symbol, exchange = self._symbol(), self._exchange()
        if not symbol or self.instrument_lookup is None:
            return
        try:
            instrument = self.instrument_lookup(exchange, symbol)
        except Exception as error:  # the engine says why (unknown symbol, broker down...)
            self.app.call_from_thread(self._instrument_failed, symbol, exchange, str(error))
            return
        self.app.call_from_thread(self._instrument_found, instrument)

    def _instrument_found(self, instrument: Instrument) -> None:
        if not self.is_attached or instrument.key != (self._exchange(), self._symbol()):
            return
        self.instrument = instrument
        self._refresh_preview()

    def _instrument_failed(self, symbol: str, exchange: str, message: str) -> None:
        if not self.is_attached or (exchange, symbol) != (self._exchange(), self._symbol()):
            return
        self.instrument = None
        self._show_error(f"{exchange}:{symbol}: {message}")

    @staticmethod
    def _breakeven_hint(strategy: Strategy) -> str:
        """The field's hint: blank keeps the strategy's default (shown), "none" switches it off."""
        default = strategy.trade_risk.breakeven_after
        if default is None:
            return "off by default; e.g. 1%"
        return f"default {distance_text(default)}; {CLEAR_WORD}: off"

    def _breakeven(self) -> object:
        """UNSET (blank: the strategy's default), None ("none": off for this trade) or a distance."""
        text = self._value("breakeven").strip()
        if not text:
            return UNSET
        if text.lower() == CLEAR_WORD:
            return None
        return optional_distance(text, "breakeven")

    def _lot_and_tick(self) -> tuple[int, float]:
        if self.instrument is not None and self.instrument.key == (self._exchange(), self._symbol()):
            return self.instrument.lot_size, self.instrument.tick_size
        return 1, DEFAULT_TICK_SIZE

    def _command(self) -> CreateTrade:
        symbol = self._symbol()
        if not symbol:
            raise FieldError("symbol: required")
        side = self.query_one("#side", Select).value
        price_type = self.query_one("#price_type", Select).value
        price = optional_price(self._value("price"), "price")
        if price_type is PriceType.LIMIT and price is None:
            raise FieldError("limit price: required for a LIMIT entry")
        stop_loss = optional_price(self._value("stop"), "stop")
        target = optional_price(self._value("target"), "target")
        quantity = optional_quantity(self._value("quantity"))
        if self.instrument_lookup is not None and (self.instrument is None or self.instrument.key != (self._exchange(), symbol)):
            raise FieldError(f"{self._exchange()}:{symbol}: looking up the instrument; wait for the preview")
        command = CreateTrade(
            strategy=str(self.query_one("#strategy", Select).value),
            symbol=symbol,
            exchange=self._exchange(),
            side=side,
            product=self.query_one("#product", Select).value,
            quantity=quantity,
            price_type=price_type,
            limit_price=price if price_type is PriceType.LIMIT else None,
            stop_loss=stop_loss,
            target=target,
            breakeven_after=self._breakeven(),
        )
        lot_size, _ = self._lot_and_tick()
        expected = price if price_type is PriceType.MARKET else None
        denial = validation.validate_create_trade(command, current_price=expected, lot_size=lot_size)
        if denial is not None:
            raise FieldError(f"{denial.code}: {denial.message}")
        if quantity is None and price is not None:
            # What is sent is what the preview showed: the size it computed at this price.
            if self._previewed_quantity is None:
                raise FieldError("nothing to send: the preview shows no size")
            command = dataclasses.replace(command, quantity=self._previewed_quantity)
        return command

    def _refresh_preview(self) -> None:
        preview = self.query_one("#preview", Static)
        self._previewed_quantity = None
        preview.set_class(False, "-denied")
        try:
            price = optional_price(self._value("price"), "price")
            quantity = optional_quantity(self._value("quantity"))
            stop_loss = optional_price(self._value("stop"), "stop")
            target = optional_price(self._value("target"), "target")
            self._breakeven()
        except FieldError as error:
            self._show_error(str(error))
            preview.update("Preview: none until every field is valid.")
            return
        self._show_error("")
        if price is None:
            preview.update("Preview: enter a price to see the size, money at risk and reward.")
            return
        lot_size, tick_size = self._lot_and_tick()
        view = self.strategies[str(self.query_one("#strategy", Select).value)]
        result = trade_preview(
            view, self.query_one("#side", Select).value, price, stop_loss, target, quantity, lot_size, tick_size
        )
        preview.set_class(result.denial is not None, "-denied")
        preview.update(f"Preview: {result.describe(tick_size)}")
        if result.denial is None and result.quantity > 0:
            self._previewed_quantity = result.quantity

    def _show_error(self, message: str) -> None:
        self.query_one("#form-error", Static).update(message)
