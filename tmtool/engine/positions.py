"""The broker position cache: what the engine knows of each net position.

One ``KeyState`` per (symbol, exchange, product): the broker's signed net
quantity (from positionbook reads, ``openposition`` reads, order updates and our
own fills), the unfilled quantity of our exits in flight per direction, how many
of our orders are live there, the trades whose exit waits for the key to
settle, the working orders of others that close the position (from every
order-book read and foreign order update: a closing order anyone placed counts
against an exit's room), and a generation that every order sent and fill seen
bumps (a read older than a change is stale; fills of others' orders also bump a
``foreign_generation``, which even a read that ignores our own exits' fills must
respect), and whether the net is confirmed: read
from the broker since the order-update stream last started or stopped flowing
(without the stream a sale in the broker's own app reaches the cache only with
the next read, so exits trust the cache only while it is confirmed and the
stream flows; ``exits.ExitController.drive_exit``).  How much an exit may send is
decided by the order manager (``orders.OrderManager.exit_room``) from this cache.

An order-book read is the newest word on the orders it lists, except those whose
order update arrived after the read was asked for (the update is newer), and it
says nothing of orders it does not list (a lagging book may not show a new
order yet).  So a read neither revives an order the stream saw cancelled nor
drops one the stream saw placed — the latter would widen an exit's room past a
closing order and reverse the position (``note_order_book``).
"""

from __future__ import annotations

from typing import Iterable

from tmtool.domain.broker import OrderInfo, OrderUpdate
from tmtool.domain.evidence import is_working
from tmtool.domain.models import Side, Trade
from tmtool.domain.reconcile import PositionKey
from tmtool.engine.state import EXPOSED, EngineState


class KeyState:
    """What the engine knows of the broker's net position on one (symbol, exchange, product)."""

    __slots__ = ("net", "confirmed", "exit_buy", "exit_sell", "live_orders", "waiting", "generation",
                 "foreign_generation", "foreign_working", "own_fills")

    def __init__(self) -> None:
        self.net: int | None = None  # signed; None = not known
        self.confirmed = False  # net read from the broker since order updates last started or stopped flowing
        self.generation = 0  # bumped by every order sent and fill seen: a read older than a change is stale
        self.foreign_generation = 0  # bumped by every fill of others' orders seen
        self.exit_buy = 0  # unfilled quantity of exit orders in flight, per direction
        self.exit_sell = 0
        self.live_orders = 0  # our orders (entries and exits) not final on this key
        self.waiting: set[int] = set()  # trades whose exit waits for this key to settle
        self.foreign_working: dict[str, tuple[str, int]] = {}  # others' working orders: order id -> (action, unfilled)
        # (engine time, signed quantity) of our own fills here within the positionbook's lag: a read
        # may not show them yet, so a new intent records them with its baseline (``lag_fills``)
        self.own_fills: list[tuple[float, int]] = []

    def take_read(self, net: int) -> None:
        """The broker's net position as a positionbook or ``openposition`` read just gave it."""
        self.net = net
        self.confirmed = True

    def note_own_fill(self, at: float, quantity: int, lag: float) -> None:
        """A fill of ours (signed ``quantity``) applied at ``at``; those older than ``lag`` are forgotten."""
        fills = self.own_fills
        while fills and fills[0][0] <= at - lag:
            del fills[0]
        fills.append((at, quantity))

    def recent_own_fills(self, now: float, lag: float) -> tuple[int, ...]:
        """Our fills here within ``lag`` before ``now``, oldest first (what a read may not show yet)."""
        return tuple(quantity for at, quantity in self.own_fills if at > now - lag)

    @property
    def exits_in_flight(self) -> int:
        return self.exit_buy + self.exit_sell

    def foreign_closing(self, side: Side) -> int:
        """Unfilled quantity of others' working orders that close a ``side`` position here."""
        action = side.exit_action
        return sum(quantity for order_action, quantity in self.foreign_working.values() if order_action == action)


class PositionCache:
    """``KeyState`` per position key, and the fills of orders that are not ours."""

    def __init__(self, state: EngineState) -> None:
        self.state = state
        self.keys: dict[PositionKey, KeyState] = {}
        self._foreign_filled: dict[str, int] = {}  # order id -> filled quantity counted into the cache
        self.update_mark = 0  # counts others' order updates: an order-book read notes the mark when asked for
        # order id -> (mark, key, action, unfilled while working else 0): the last update of each order not ours
        self._foreign_latest: dict[str, tuple[int, PositionKey, str, int]] = {}

    def key(self, pos_key: PositionKey) -> KeyState:
        """The state of ``pos_key`` (made on first use)."""
        state = self.keys.get(pos_key)
        if state is None:
            state = self.keys[pos_key] = KeyState()
        return state

    def generations(self) -> dict[PositionKey, int]:
        return {k: state.generation for k, state in self.keys.items()}

    def unconfirm_all(self) -> None:
        """Order updates started or stopped flowing: what changed meanwhile may not be in any net
        (a close in the broker's own app while no update came), so every net waits for a read."""
        for state in self.keys.values():
            state.confirmed = False

    def forget_waiting(self, trade_id: int) -> None:
        for state in self.keys.values():
            state.waiting.discard(trade_id)

    def opposite_open(self, trade: Trade) -> int:
        """Open quantity of trades on the other side of ``trade``'s instrument and product."""
        book = self.state.books.get(trade.instrument_key)
        if book is None:
            return 0
        return sum(
            t.quantity
            for t in book.trades
            if t.side is not trade.side and t.status in EXPOSED and t.product is trade.product
        )

    def note_order_book(self, orders: Iterable[OrderInfo], known_order_ids: set[str], asked_mark: int) -> None:
        """Learn others' working orders from an order-book read asked for at ``asked_mark`` (an
        ``update_mark``).

        A row is the read's word on its order (working with its unfilled quantity, or not
        working); an order the read does not list keeps what was known of it (a lagging book
        may not show a new order yet: its absence is no proof it went); and an order whose
        update came after the read was asked for keeps the update's word (it is newer).
        """
        listed: dict[str, tuple[PositionKey, str, int]] = {}
        for order in orders:
            if order.order_id in known_order_ids:
                continue
            unfilled = max(0, int(order.quantity) - int(order.filled_quantity or 0)) if is_working(order.status) else 0
            listed[order.order_id] = ((order.symbol, order.exchange, order.product.upper()), order.action.upper(), unfilled)
        if asked_mark < self.update_mark:
            for order_id, (mark, key, action, unfilled) in self._foreign_latest.items():
                if mark > asked_mark and order_id not in known_order_ids:
                    listed[order_id] = (key, action, unfilled)
        for pos_key, state in self.keys.items():
            working = {oid: entry for oid, entry in state.foreign_working.items() if oid not in listed}
            state.foreign_working = working
        for order_id, (key, action, unfilled) in listed.items():
            state = self.keys.get(key)
            if state is not None and unfilled:
                state.foreign_working[order_id] = (action, unfilled)

    def foreign_update(self, update: OrderUpdate, known_order_ids: set[str]) -> None:
        """An order update of an order not (yet known as) ours: its fills and whether it still works."""
        if not update.product or update.order_id in known_order_ids:
            return
        state = self.keys.get((update.symbol, update.exchange, update.product))
        if state is None:
            return
        unfilled = max(0, int(update.quantity) - int(update.filled_quantity))
        working = unfilled if is_working(update.status) else 0
        if working:
            state.foreign_working[update.order_id] = (update.action.upper(), working)
        else:
            state.foreign_working.pop(update.order_id, None)
        self.update_mark += 1
        self._foreign_latest.pop(update.order_id, None)  # kept in update order: the oldest go first
        self._foreign_latest[update.order_id] = (self.update_mark, (update.symbol, update.exchange, update.product),
                                                 update.action.upper(), working)
        if len(self._foreign_latest) > 10_000:
            self._foreign_latest.pop(next(iter(self._foreign_latest)))
        self.foreign_fill(update, known_order_ids)

    def foreign_fill(self, update: OrderUpdate, known_order_ids: set[str]) -> None:
        """Keep the cache current with fills of orders that are not (yet known as) ours.

        An update may belong to one of our orders whose reply has not arrived yet;
        ``take_back_foreign`` takes the amount back out when the id turns out to be ours.
        """
        if not update.product or update.order_id in known_order_ids:
            return
        state = self.keys.get((update.symbol, update.exchange, update.product))
        if state is None:
            return
        applied = self._foreign_filled.get(update.order_id, 0)
        delta = update.filled_quantity - applied
        if delta <= 0:
            return
        self._foreign_filled[update.order_id] = update.filled_quantity
        if len(self._foreign_filled) > 10_000:  # a day's worth; the oldest are long settled
            self._foreign_filled.pop(next(iter(self._foreign_filled)))
        state.generation += 1
        state.foreign_generation += 1
        if state.net is not None:
            state.net += delta if update.action.upper() == "BUY" else -delta

    def take_back_foreign(self, order_id: str, pos_key: PositionKey, action: str) -> None:
        """``order_id`` turned out to be ours: its fills counted as someone else's come back out
        (our own fill accounting takes over)."""
        state = self.key(pos_key)
        state.foreign_working.pop(order_id, None)
        self._foreign_latest.pop(order_id, None)
        counted = self._foreign_filled.pop(order_id, 0)
        if counted:
            if state.net is not None:
                state.net -= counted if action == "BUY" else -counted
