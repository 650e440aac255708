"""``SimBroker``: an OpenAlgo-like account in memory, implementing the engine's ``Broker`` port.

Net positions per (symbol, exchange, product), an order book, a trade book;
MARKET orders fill at the current price (unless told to fill late or in part),
LIMIT orders fill when the price crosses them.  ``book_lag`` seconds make new
orders, fills and positions visible in the order book, trade book, positionbook
and ``openposition`` only after that delay (``orderstatus`` by id is current).

The broker also keeps the ground truth the invariants need: every order says
who sent it (tmtool, with the trade id and purpose the executor tagged it with,
or someone outside tmtool), and per key the quantity tmtool's trades really
hold (``tmtool_held``) apart from positions held outside tmtool.  An exit fill
that would take more than tmtool holds on the key is recorded in
``reduce_only_breaches`` when it happens — unless the user closed quantity on
that key outside tmtool after tmtool decided to send the exit (the send was queued,
``decided_seq``): a race no one can prevent, since every exit is sized from what
was known of the position when it was decided.

Faults at placement are handed in by the executor (``place_fault``): "reject",
"server_before", "rate_limited", "lost_reply", "delay_fill", "partial".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from tmtool.clock import ManualClock
from tmtool.domain.broker import BrokerError, Fill, Funds, OrderAck, OrderInfo, OrderUpdate, Position, Quote, SymbolInfo
from tmtool.domain.calendar import IST

Key = tuple[str, str, str]  # (symbol, exchange, product)


@dataclass
class SimOrder:
    order_id: str
    symbol: str
    exchange: str
    action: str
    quantity: int
    product: str
    price_type: str
    price: float
    strategy: str
    placed_at: float
    placed_seq: int  # the broker's event counter when it was placed: orders before and after an event
    owner: str  # "tmtool" or "outside"
    trade_id: int | None = None
    purpose: str | None = None  # "ENTRY" / "EXIT" for tmtool's orders
    status: str = "open"
    filled: int = 0
    average: float = 0.0
    fill_after: float | None = None  # a delayed MARKET order fills at or after this time
    fill_cap: int | None = None  # a partly filled order fills no further than this until released
    rejection_reason: str = ""
    external_close: bool = False  # an outside order closing quantity tmtool's trades hold
    decided_seq: int | None = None  # tmtool's orders: the first event counter after tmtool decided to send it

    @property
    def key(self) -> Key:
        return (self.symbol, self.exchange, self.product)

    @property
    def is_open(self) -> bool:
        return self.status == "open"


@dataclass(frozen=True)
class Breach:
    """An exit of tmtool's that took more than tmtool held on its key."""

    time: float
    order_id: str
    trade_id: int | None
    key: Key
    quantity: int
    held_before: int  # tmtool's own holding in the exit's direction before the fill
    net_before: int


@dataclass
class TradeTruth:
    """What really filled for one trade at the broker."""

    entered: int = 0
    exited: int = 0
    adopted: int = 0


class SimBroker:
    def __init__(self, clock: ManualClock, prices: dict[tuple[str, str], float], book_lag: float = 0.0,
                 tick_size: float = 0.05, live_status: bool = False) -> None:
        self.clock = clock
        # as a live OpenAlgo server: orderstatus and orderbook rows carry no filled quantity (only
        # ``complete`` says how much: all), and partial fills show in the tradebook alone
        self.live_status = live_status
        self.prices = dict(prices)  # (exchange, symbol) -> price
        self.book_lag = book_lag
        self.tick_size = tick_size
        self.orders: dict[str, SimOrder] = {}
        self.fills: list[tuple[float, Fill]] = []
        self.net: dict[Key, int] = {}
        self.tmtool_held: dict[Key, int] = {}  # signed quantity tmtool's trades hold (entries - exits - outside closes)
        self.truth: dict[int, TradeTruth] = {}
        self.reduce_only_breaches: list[Breach] = []
        self.last_external_close: dict[Key, int] = {}  # key -> event counter of the last close made outside tmtool
        self.update_listener: Callable[[OrderUpdate], None] | None = None
        self.tag: tuple[int, str] | None = None  # (trade id, purpose) of the next place_order, set by the executor
        self.decided_seq: int | None = None  # the next place_order's decision counter (``next_seq`` when queued)
        self.place_fault: str | None = None
        self.delay_seconds = 2.0
        self._seq = 0

    # ---------------------------------------------------------------- the market

    def set_price(self, exchange: str, symbol: str, price: float) -> None:
        self.prices[(exchange, symbol)] = price
        self.progress()

    def progress(self, release_partials: bool = False, fill_all_market: bool = False) -> None:
        """Fill what the market allows now: crossed LIMITs, due delayed MARKETs, released partials."""
        now = self.clock.time()
        for order in list(self.orders.values()):
            if not order.is_open:
                continue
            if release_partials:
                order.fill_cap = None
            if fill_all_market and order.price_type == "MARKET":
                order.fill_after = None
            self._try_fill(order, now)

    def _try_fill(self, order: SimOrder, now: float) -> None:
        price = self.prices[(order.exchange, order.symbol)]
        if order.price_type == "MARKET":
            if order.fill_after is not None and now < order.fill_after:
                return
        elif order.price_type == "LIMIT":
            crossed = price <= order.price if order.action == "BUY" else price >= order.price
            if not crossed:
                return
        limit = order.quantity if order.fill_cap is None else min(order.quantity, order.fill_cap)
        quantity = limit - order.filled
        if quantity > 0:
            self._fill(order, quantity, price, now)

    def _fill(self, order: SimOrder, quantity: int, price: float, now: float) -> None:
        key = order.key
        sign = 1 if order.action == "BUY" else -1
        net_before = self.net.get(key, 0)
        held_before = self.tmtool_held.get(key, 0)
        if order.owner == "tmtool":
            truth = self.truth.setdefault(order.trade_id or 0, TradeTruth())
            if order.purpose == "EXIT":
                truth.exited += quantity
                direction = -sign  # the side of the position the exit closes
                if held_before * direction < quantity and self.last_external_close.get(key, -1) < (
                        order.placed_seq if order.decided_seq is None else order.decided_seq):
                    self.reduce_only_breaches.append(
                        Breach(now, order.order_id, order.trade_id, key, quantity, held_before * direction, net_before)
                    )
            else:
                truth.entered += quantity
            self.tmtool_held[key] = held_before + sign * quantity
        elif order.external_close:
            self.tmtool_held[key] = held_before + sign * quantity
            self.last_external_close[key] = order.placed_seq
        self.net[key] = net_before + sign * quantity
        order.average = (order.average * order.filled + price * quantity) / (order.filled + quantity)
        order.filled += quantity
        if order.filled >= order.quantity:
            order.status = "complete"
        self.fills.append((now, Fill(order.order_id, order.symbol, order.exchange, order.product, order.action, quantity,
                                     price, self._stamp(now), order.strategy)))
        self._notify(order)

    def _notify(self, order: SimOrder) -> None:
        if self.update_listener is not None:  # the account's order stream carries every order, whoever placed it
            self.update_listener(OrderUpdate(
                order_id=order.order_id, symbol=order.symbol, exchange=order.exchange, action=order.action,
                quantity=order.quantity, status=order.status, filled_quantity=order.filled,
                pending_quantity=order.quantity - order.filled if order.is_open else 0, average_price=order.average,
                product=order.product, rejection_reason=order.rejection_reason,
            ))

    def _stamp(self, ts: float) -> str:
        return datetime.fromtimestamp(ts, IST).strftime("%Y-%m-%d %H:%M:%S")

    @property
    def next_seq(self) -> int:
        """The event counter the next order or close will carry."""
        return self._seq + 1

    def _new_order(self, **fields) -> SimOrder:
        self._seq += 1
        order = SimOrder(order_id=f"SIM{self._seq:05d}", placed_at=self.clock.time(), placed_seq=self._seq, **fields)
        self.orders[order.order_id] = order
        return order

    # ---------------------------------------------------------------- outside tmtool

    def outside_order(self, symbol: str, exchange: str, product: str, action: str, quantity: int,
                      closes_tmtool: bool = False) -> SimOrder:
        """A MARKET order placed outside tmtool (the user in the broker's app), filled at once."""
        order = self._new_order(symbol=symbol, exchange=exchange, action=action, quantity=quantity, product=product,
                                price_type="MARKET", price=0.0, strategy="outside", owner="outside",
                                external_close=closes_tmtool)
        self._try_fill(order, self.clock.time())
        return order

    def adopted(self, trade_id: int, key: Key, signed_quantity: int) -> None:
        """tmtool took over ``signed_quantity`` held on ``key`` outside it (an accepted adoption)."""
        self.truth.setdefault(trade_id, TradeTruth()).adopted += abs(signed_quantity)
        self.tmtool_held[key] = self.tmtool_held.get(key, 0) + signed_quantity

    # ---------------------------------------------------------------- lagged views

    def _visible(self, ts: float) -> bool:
        return ts <= self.clock.time() - self.book_lag + 1e-9

    def _lagged_net(self, key: Key) -> int:
        total = 0
        for ts, fill in self.fills:
            if (fill.symbol, fill.exchange, fill.product) == key and self._visible(ts):
                total += fill.quantity if fill.action == "BUY" else -fill.quantity
        return total

    def _info(self, order: SimOrder) -> OrderInfo:
        live = self.live_status and order.status != "complete"
        return OrderInfo(order_id=order.order_id, symbol=order.symbol, exchange=order.exchange, action=order.action,
                         quantity=order.quantity, status=order.status, average_price=0.0 if live else order.average,
                         filled_quantity=None if live else order.filled, price=order.price,
                         price_type=order.price_type, product=order.product, timestamp=self._stamp(order.placed_at))
        # no rejection_reason: OpenAlgo's live orderstatus and orderbook carry none, only the order-update stream

    # ---------------------------------------------------------------- the Broker port

    def ping(self) -> str:
        return "ok"

    def place_order(self, *, strategy: str, symbol: str, exchange: str, action: str, quantity: int, product: str,
                    price_type: str = "MARKET", price: float = 0.0, trigger_price: float = 0.0) -> OrderAck:
        fault, self.place_fault = self.place_fault, None
        tag, self.tag = self.tag, None
        decided_seq, self.decided_seq = self.decided_seq, None
        if fault == "server_before":
            raise BrokerError("server", "502 Bad Gateway (not placed)", 502)
        if fault == "rate_limited":
            raise BrokerError("rate_limited", "429 Too Many Requests", 429, retry_after=1.0)
        order = self._new_order(symbol=symbol, exchange=exchange, action=action.upper(), quantity=int(quantity),
                                product=product, price_type=price_type, price=float(price), strategy=strategy,
                                owner="tmtool" if tag else "outside", trade_id=tag[0] if tag else None,
                                purpose=tag[1] if tag else None, decided_seq=decided_seq)
        if fault == "reject":
            order.status = "rejected"
            order.rejection_reason = "RMS: margin exceeds"
            self._notify(order)
        else:
            if fault == "delay_fill" and price_type == "MARKET":
                order.fill_after = self.clock.time() + self.delay_seconds
            if fault == "partial" and order.quantity > 1:
                order.fill_cap = order.quantity // 2  # the rest fills when the harness releases partials
            self._try_fill(order, self.clock.time())
            if order.is_open and order.filled == 0:
                self._notify(order)
        if fault == "lost_reply":
            raise BrokerError("timeout", "read timed out after the request was sent")
        if fault == "lost_reply_5xx":
            raise BrokerError("server", "500 Internal Server Error (placed)", 500)
        return OrderAck(order.order_id)

    def modify_order(self, *, order_id: str, strategy: str, symbol: str, exchange: str, action: str, product: str,
                     price_type: str, price: float, quantity: int, trigger_price: float = 0.0,
                     disclosed_quantity: int = 0) -> OrderAck:
        order = self.orders.get(order_id)
        if order is None:
            raise BrokerError("not_found", f"order {order_id} not found", 404)
        if not order.is_open:
            raise BrokerError("validation", f"order {order_id} is {order.status}", 400)
        order.price_type, order.price = price_type, float(price)
        self._try_fill(order, self.clock.time())
        return OrderAck(order_id)

    def cancel_order(self, order_id: str, strategy: str) -> OrderAck:
        order = self.orders.get(order_id)
        if order is None:
            raise BrokerError("not_found", f"order {order_id} not found", 404)
        if not order.is_open:
            raise BrokerError("validation", f"order {order_id} is {order.status}", 400)
        order.status = "cancelled"
        self._notify(order)
        return OrderAck(order_id)

    def order_status(self, order_id: str, strategy: str) -> OrderInfo:
        order = self.orders.get(order_id)
        if order is None:
            raise BrokerError("not_found", f"order {order_id} not found", 404)
        return self._info(order)

    def order_book(self) -> list[OrderInfo]:
        return [self._info(o) for o in self.orders.values() if self._visible(o.placed_at)]

    def trade_book(self) -> list[Fill]:
        return [fill for ts, fill in self.fills if self._visible(ts)]

    def position_book(self) -> list[Position]:
        out = []
        for key in sorted(self.net):
            symbol, exchange, product = key
            out.append(Position(symbol, exchange, product, self._lagged_net(key), 0.0,
                                self.prices.get((exchange, symbol), 0.0)))
        return out

    def open_position(self, *, strategy: str, symbol: str, exchange: str, product: str) -> int:
        return self._lagged_net((symbol, exchange, product))

    def quotes(self, symbol: str, exchange: str) -> Quote:
        price = self.prices.get((exchange, symbol))
        if price is None:
            raise BrokerError("not_found", f"no quote for {exchange}:{symbol}", 404)
        return Quote(symbol, exchange, price, price, price)

    def multi_quotes(self, instruments: list[tuple[str, str]]) -> dict[tuple[str, str], Quote]:
        return {(e, s): self.quotes(s, e) for s, e in instruments if (e, s) in self.prices}

    def funds(self) -> Funds:
        return Funds(available_cash=1e12)

    def margin_required(
        self, *, symbol: str, exchange: str, action: str, quantity: int, product: str,
        price_type: str = "MARKET", price: float = 0.0,
    ) -> float:
        raise BrokerError("unsupported", "this broker has no margin calculator", 501)

    def symbol_info(self, symbol: str, exchange: str) -> SymbolInfo:
        if (exchange, symbol) not in self.prices:
            raise BrokerError("not_found", f"unknown symbol {exchange}:{symbol}", 404)
        return SymbolInfo(symbol, exchange, self.tick_size, 1)

    def close(self) -> None:
        pass
