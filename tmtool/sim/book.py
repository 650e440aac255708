"""The simulated broker account: orders, fills, trades, net positions and funds.

Not thread-safe on its own: the simulator calls it under its state lock.
Every order state change is reported to ``on_order_event`` (the WebSocket
order-update stream).  The ``visible_*`` methods are the books as the REST API
shows them: the live state, or its state ``order_book_lag`` / ``position_lag``
seconds ago while a lag fault is on (versions kept in :class:`History`).
"""

from __future__ import annotations

import copy
import itertools
import random
from dataclasses import dataclass
from typing import Callable

from tmtool.clock import Clock
from tmtool.domain.calendar import to_ist
from tmtool.sim.faults import Faults
from tmtool.sim.lag import History
from tmtool.sim.market import Market, Quote

STARTING_CAPITAL = 10_000_000.0
MARGIN_RATE = {"MIS": 0.2, "NRML": 0.2, "CNC": 1.0}
WORKING = ("open", "trigger pending")


@dataclass(frozen=True)
class OrderRequest:
    """A validated order, as the REST layer hands it over."""

    symbol: str
    exchange: str
    action: str  # BUY | SELL
    quantity: int
    pricetype: str = "MARKET"
    product: str = "MIS"
    price: float = 0.0
    trigger_price: float = 0.0
    strategy: str = ""


@dataclass
class SimOrder:
    orderid: str
    request: OrderRequest
    mode: str  # "live" | "analyze"
    created_at: float
    status: str = "open"
    filled_quantity: int = 0
    average_price: float = 0.0
    rejection_reason: str = ""
    partial_fraction: float | None = None
    fill_blocked: bool = False  # partly filled by a fault: the rest waits for cancel or fill_order
    held: bool = False  # a market order parked by hold_fills or delay_fills
    fill_due: float | None = None  # delay_fills: clock.monotonic() at which it may fill

    @property
    def pending_quantity(self) -> int:
        return self.request.quantity - self.filled_quantity if self.status in WORKING else 0

    @property
    def working(self) -> bool:
        return self.status in WORKING

    def as_dict(self) -> dict:
        r = self.request
        return {
            "orderid": self.orderid, "symbol": r.symbol, "exchange": r.exchange, "action": r.action,
            "quantity": r.quantity, "filled_quantity": self.filled_quantity,
            "pending_quantity": self.pending_quantity, "average_price": self.average_price,
            "pricetype": r.pricetype, "price": r.price, "trigger_price": r.trigger_price,
            "product": r.product, "strategy": r.strategy, "status": self.status,
            "rejection_reason": self.rejection_reason, "mode": self.mode, "ts": self.created_at,
        }


@dataclass
class Trade:
    orderid: str
    symbol: str
    exchange: str
    product: str
    action: str
    quantity: int
    price: float
    ts: float


@dataclass
class Position:
    symbol: str
    exchange: str
    product: str
    quantity: int = 0
    average_price: float = 0.0
    realised_pnl: float = 0.0

    def apply_fill(self, signed_quantity: int, price: float) -> None:
        """Net a fill into the position: weighted average when adding, realised P&L when reducing."""
        if self.quantity == 0 or (self.quantity > 0) == (signed_quantity > 0):
            total = abs(self.quantity) + abs(signed_quantity)
            self.average_price = (abs(self.quantity) * self.average_price + abs(signed_quantity) * price) / total
            self.quantity += signed_quantity
            return
        closing = min(abs(signed_quantity), abs(self.quantity))
        direction = 1 if self.quantity > 0 else -1
        self.realised_pnl += closing * (price - self.average_price) * direction
        self.quantity += signed_quantity
        if self.quantity == 0:
            self.average_price = 0.0
        elif (self.quantity > 0) != (direction > 0):  # reversed through zero
            self.average_price = price

    def unrealised_pnl(self, ltp: float) -> float:
        return (ltp - self.average_price) * self.quantity if self.quantity else 0.0


class OrderError(Exception):
    """An order operation the broker refuses; ``status`` is the HTTP code to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Book:
    def __init__(self, market: Market, clock: Clock, faults: Faults, seed: int,
                 on_order_event: Callable[[SimOrder], None],
                 on_fill_scheduled: Callable[[], None] = lambda: None) -> None:
        self._market = market
        self._clock = clock
        self._faults = faults
        self._on_order_event = on_order_event
        self._on_fill_scheduled = on_fill_scheduled
        start = random.Random(seed).randint(100_000, 800_000)
        self._live_ids = itertools.count(start)
        self._analyze_ids = itertools.count(start // 10)
        self.orders: dict[str, SimOrder] = {}
        self.trades: list[Trade] = []
        self.positions: dict[tuple[str, str, str], Position] = {}
        self._working_by_key: dict[tuple[str, str], list[SimOrder]] = {}
        self.order_book_lag = 0.0
        self.position_lag = 0.0
        self._order_history = History()  # orderid -> copy of the order
        self._trade_history = History()  # "count" -> len(trades)
        self._position_history = History()  # (symbol, exchange, product) -> copy of the position

    # ---- placing ---------------------------------------------------------------------------

    def _next_orderid(self, mode: str) -> str:
        day = to_ist(self._clock.time()).strftime("%y%m%d")
        if mode == "analyze":
            return f"{day}{next(self._analyze_ids):08d}"
        return f"{day}{next(self._live_ids):09d}"

    def place(self, request: OrderRequest, mode: str, *, apply_faults: bool = True) -> SimOrder:
        """Accept an order (it always gets an id), then reject, park or execute it."""
        order = SimOrder(self._next_orderid(mode), request, mode, self._clock.time())
        self.orders[order.orderid] = order
        instrument = self._market.instrument(request.exchange, request.symbol)
        rejection = self._faults.take_rejection() if apply_faults else None
        if rejection is None and instrument.freeze_qty is not None and request.quantity > instrument.freeze_qty:
            rejection = f"Quantity {request.quantity} exceeds the freeze limit of {instrument.freeze_qty} for {request.symbol}"
        if rejection is not None:
            order.status = "rejected"
            order.rejection_reason = rejection
            self._report(order)
            return order
        if apply_faults:
            order.partial_fraction = self._faults.take_partial_fill()
        if request.pricetype in ("SL", "SL-M"):
            order.status = "trigger pending"
        self._working_by_key.setdefault((request.exchange, request.symbol), []).append(order)
        self._report(order)
        self._execute(order, self._market.quote(request.exchange, request.symbol), apply_hold=apply_faults)
        return order

    # ---- matching --------------------------------------------------------------------------

    def on_price(self, quote: Quote) -> None:
        """Match the working orders of one instrument against its new price."""
        working = self._working_by_key.get(quote.instrument.key)
        if working:
            for order in list(working):
                self._execute(order, quote)

    def _execute(self, order: SimOrder, quote: Quote, *, apply_hold: bool = True) -> None:
        r = order.request
        ltp = quote.ltp
        if order.status == "trigger pending":
            triggered = ltp >= r.trigger_price if r.action == "BUY" else ltp <= r.trigger_price
            if not triggered:
                return
            order.status = "open"
            self._report(order)
        if not order.working or order.fill_blocked:
            return
        if r.pricetype in ("LIMIT", "SL"):
            marketable = ltp <= r.price if r.action == "BUY" else ltp >= r.price
            if not marketable:
                return
        elif apply_hold and self._must_wait(order):
            order.held = True
            return
        quantity = order.pending_quantity
        if order.partial_fraction is not None and order.filled_quantity == 0:
            lot = quote.instrument.lot_size
            quantity = max(lot, int(r.quantity * order.partial_fraction) // lot * lot)
            if quantity < r.quantity:
                order.fill_blocked = True
            quantity = min(quantity, r.quantity)
        self._fill(order, quantity, ltp)

    def _must_wait(self, order: SimOrder) -> bool:
        """A marketable MARKET order is held by hold_fills, or by delay_fills until it is due."""
        if self._faults.holding_fills:
            return True
        if order.fill_due is None:
            delay = self._faults.fill_delay
            if not delay:
                return False
            order.fill_due = self._clock.monotonic() + delay
            self._on_fill_scheduled()
            return True
        return self._clock.monotonic() < order.fill_due

    def fill_due_orders(self) -> float | None:
        """Fill the orders delay_fills holds whose delay has passed, at the LTP (unless hold_fills
        keeps them); returns the earliest delay still to run out (None: none)."""
        now = self._clock.monotonic()
        next_due = None
        for order in [o for o in self.orders.values() if o.held and o.working and o.fill_due is not None]:
            if order.fill_due <= now:
                self._execute(order, self._market.quote(order.request.exchange, order.request.symbol))
            elif next_due is None or order.fill_due < next_due:
                next_due = order.fill_due
        return next_due

    def _report(self, order: SimOrder) -> None:
        if self.order_book_lag:
            self._order_history.record(order.orderid, copy.copy(order), self._clock.monotonic())
        self._on_order_event(order)

    def _fill(self, order: SimOrder, quantity: int, price: float) -> None:
        r = order.request
        now = self._clock.time()
        total = order.filled_quantity + quantity
        order.average_price = round((order.average_price * order.filled_quantity + price * quantity) / total, 4)
        order.filled_quantity = total
        order.held = False
        if total >= r.quantity:
            order.status = "complete"
            self._forget_working(order)
        self.trades.append(Trade(order.orderid, r.symbol, r.exchange, r.product, r.action, quantity, price, now))
        position = self.position(r.symbol, r.exchange, r.product, create=True)
        position.apply_fill(quantity if r.action == "BUY" else -quantity, price)
        if self.order_book_lag:
            self._trade_history.record("count", len(self.trades), self._clock.monotonic())
        if self.position_lag:
            self._position_history.record((r.symbol, r.exchange, r.product), copy.copy(position),
                                          self._clock.monotonic())
        self._report(order)

    def _forget_working(self, order: SimOrder) -> None:
        working = self._working_by_key.get((order.request.exchange, order.request.symbol))
        if working and order in working:
            working.remove(order)

    def release_held(self, forget_fill_delays: bool = False) -> None:
        """Fill every MARKET order that hold_fills or delay_fills parked, at the current LTP, unless a
        fault still in force keeps it (hold_fills on; delay_fills on and its delay not over).

        ``forget_fill_delays``: delay_fills was turned off, so no delay counts any more."""
        for order in [o for o in self.orders.values() if o.held and o.working]:
            order.held = False
            if forget_fill_delays:
                order.fill_due = None
            self._execute(order, self._market.quote(order.request.exchange, order.request.symbol))

    def fill_order(self, orderid: str, price: float | None = None) -> SimOrder:
        """Fill the rest of a working order now, at ``price`` or the LTP (tests, partial fills)."""
        order = self.get(orderid)
        if not order.working:
            raise OrderError(400, f"Order {orderid} is {order.status}; only open orders can be filled")
        quote = self._market.quote(order.request.exchange, order.request.symbol)
        if order.status == "trigger pending":
            order.status = "open"
        order.fill_blocked = False
        self._fill(order, order.pending_quantity, quote.ltp if price is None else price)
        return order

    # ---- modify / cancel -------------------------------------------------------------------

    def get(self, orderid: str) -> SimOrder:
        order = self.orders.get(str(orderid))
        if order is None:
            raise OrderError(404, f"Order {orderid} not found")
        return order

    def modify(self, orderid: str, request: OrderRequest) -> SimOrder:
        order = self.get(orderid)
        if not order.working:
            raise OrderError(400, f"Order {orderid} cannot be modified: it is {order.status}")
        old = order.request
        if (request.symbol, request.exchange) != (old.symbol, old.exchange):
            raise OrderError(400, f"Order {orderid} is for {old.symbol} on {old.exchange}; symbol and exchange cannot change")
        if request.quantity <= order.filled_quantity:
            raise OrderError(400, f"Quantity {request.quantity} must exceed the {order.filled_quantity} already filled")
        order.request = OrderRequest(old.symbol, old.exchange, old.action, request.quantity, request.pricetype,
                                     old.product, request.price, request.trigger_price, old.strategy)
        if request.pricetype in ("MARKET", "LIMIT") and order.status == "trigger pending":
            order.status = "open"
        self._report(order)
        self._execute(order, self._market.quote(old.exchange, old.symbol))
        return order

    def cancel(self, orderid: str) -> SimOrder:
        order = self.get(orderid)
        if not order.working:
            raise OrderError(400, f"Order {orderid} cannot be cancelled: it is {order.status}")
        order.status = "cancelled"
        order.held = False
        self._forget_working(order)
        self._report(order)
        return order

    def cancel_all(self) -> list[str]:
        return [self.cancel(order.orderid).orderid for order in list(self.orders.values()) if order.working]

    # ---- the books as the REST API shows them (lag faults) ---------------------------------

    def set_lags(self, order_book: float, positions: float) -> None:
        """Switch the order-book (orders and trades) and position-book lags; 0 = live."""
        if order_book and not self.order_book_lag:
            self._order_history.start((orderid, copy.copy(order)) for orderid, order in self.orders.items())
            self._trade_history.start([("count", len(self.trades))])
        elif not order_book:
            self._order_history.stop()
            self._trade_history.stop()
        if positions and not self.position_lag:
            self._position_history.start((key, copy.copy(p)) for key, p in self.positions.items())
        elif not positions:
            self._position_history.stop()
        self.order_book_lag = order_book
        self.position_lag = positions

    def visible_orders(self) -> list[SimOrder]:
        """The order book as shown: orders in placement order, each as it was ``order_book_lag`` ago."""
        if not self.order_book_lag:
            return list(self.orders.values())
        seen_at = self._clock.monotonic() - self.order_book_lag
        shown = (self._order_history.as_of(orderid, seen_at) for orderid in self.orders)
        return [order for order in shown if order is not None]

    def visible_order(self, orderid: str) -> SimOrder:
        """One order as the order book shows it; 404 while the lagging book does not have it yet."""
        order = self.get(orderid)
        if not self.order_book_lag:
            return order
        shown = self._order_history.as_of(order.orderid, self._clock.monotonic() - self.order_book_lag)
        if shown is None:
            raise OrderError(404, f"Order {orderid} not found")
        return shown

    def visible_trades(self) -> list[Trade]:
        if not self.order_book_lag:
            return list(self.trades)
        count = self._trade_history.as_of("count", self._clock.monotonic() - self.order_book_lag) or 0
        return self.trades[:count]

    def visible_positions(self) -> list[Position]:
        """The position book as shown: each position as it was ``position_lag`` ago (closed rows included)."""
        if not self.position_lag:
            return list(self.positions.values())
        seen_at = self._clock.monotonic() - self.position_lag
        shown = (self._position_history.as_of(key, seen_at) for key in self.positions)
        return [position for position in shown if position is not None]

    def visible_net_quantity(self, symbol: str, exchange: str, product: str) -> int:
        if not self.position_lag:
            return self.net_quantity(symbol, exchange, product)
        shown = self._position_history.as_of((symbol, exchange, product), self._clock.monotonic() - self.position_lag)
        return shown.quantity if shown is not None else 0

    # ---- positions and funds ---------------------------------------------------------------

    def position(self, symbol: str, exchange: str, product: str, *, create: bool = False) -> Position | None:
        key = (symbol, exchange, product)
        position = self.positions.get(key)
        if position is None and create:
            position = self.positions[key] = Position(symbol, exchange, product)
        return position

    def net_quantity(self, symbol: str, exchange: str, product: str) -> int:
        position = self.positions.get((symbol, exchange, product))
        return position.quantity if position else 0

    def ltp(self, position: Position) -> float:
        return self._market.quote(position.exchange, position.symbol).ltp

    def funds(self) -> dict[str, float]:
        realised = sum(p.realised_pnl for p in self.positions.values())
        unrealised = sum(p.unrealised_pnl(self.ltp(p)) for p in self.positions.values())
        utilised = sum(abs(p.quantity) * p.average_price * MARGIN_RATE[p.product] for p in self.positions.values())
        return {
            "availablecash": round(STARTING_CAPITAL + realised - utilised, 2),
            "collateral": 0.0,
            "m2mrealized": round(realised, 2),
            "m2munrealized": round(unrealised, 2),
            "utiliseddebits": round(utilised, 2),
        }
