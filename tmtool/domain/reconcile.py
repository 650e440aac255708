"""Pure decisions about the broker's view of positions and orders.

No I/O and no clock reads: the engine hands in what it knows (trades, the
positionbook, orders in flight) and applies what comes back.

Positions are netted by the broker per (symbol, exchange, product) — the
``PositionKey`` — whatever strategy or trade opened them, so everything here
works per key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from tmtool.domain.models import (
    OrderState,
    Trade,
    TradeStatus,
)

PositionKey = tuple[str, str, str]  # (symbol, exchange, product)

RECONCILED_STATUSES = frozenset({TradeStatus.ACTIVE, TradeStatus.EXITING, TradeStatus.EXIT_FAILED})


def position_key(trade: Trade) -> PositionKey:
    return (trade.symbol, trade.exchange, trade.product.value)


@dataclass(frozen=True, slots=True)
class QuantityChange:
    """Set a trade's open quantity to ``new_quantity`` (0 = closed outside tmtool)."""

    trade_id: int
    old_quantity: int
    new_quantity: int


@dataclass(frozen=True, slots=True)
class Discrepancy:
    """One difference between tmtool's trades and the broker's net position on a key.

    kind: CLOSED (the broker holds nothing in the trades' direction), SMALLER
    (it holds less: newest trades shrink first), LARGER (it holds more than
    tmtool manages: unmanaged quantity, nothing changes), MIXED (long and short
    trades on one key and a net that does not add up: cannot be attributed,
    nothing changes).
    """

    key: PositionKey
    kind: str
    broker_quantity: int
    managed_quantity: int  # signed sum of the trades' open quantities
    changes: tuple[QuantityChange, ...] = ()

    @property
    def text(self) -> str:
        symbol, exchange, product = self.key
        where = f"{exchange}:{symbol} {product}"
        if self.kind == "CLOSED":
            return f"{where}: position closed outside tmtool (broker net {self.broker_quantity}, trades {self.managed_quantity})"
        if self.kind == "SMALLER":
            return f"{where}: broker holds {self.broker_quantity}, trades hold {self.managed_quantity}; newest trades shrunk"
        if self.kind == "LARGER":
            return f"{where}: broker holds {self.broker_quantity}, trades hold {self.managed_quantity} (unmanaged quantity)"
        return f"{where}: broker net {self.broker_quantity} does not match long and short trades netting {self.managed_quantity}"


def reconcile_positions(
    trades: Iterable[Trade],
    positions: Mapping[PositionKey, int],
    busy_keys: frozenset[PositionKey] | set[PositionKey] = frozenset(),
) -> list[Discrepancy]:
    """Compare open trades with the positionbook's signed net quantities.

    Keys with orders of ours in flight (``busy_keys``) are skipped: the book may
    or may not include those fills yet, so any difference there is not evidence.
    When the broker holds less than the trades in their direction, the newest
    trades (latest ``opened_at``, then highest id) give up quantity first — the
    oldest positions are the ones most likely to be what the broker still holds.
    """
    by_key: dict[PositionKey, list[Trade]] = {}
    for trade in trades:
        if trade.status in RECONCILED_STATUSES and trade.quantity > 0:
            by_key.setdefault(position_key(trade), []).append(trade)
    out: list[Discrepancy] = []
    for key, group in by_key.items():
        if key in busy_keys:
            continue
        net = int(positions.get(key, 0))
        managed = sum(t.quantity * t.side.sign for t in group)
        sides = {t.side for t in group}
        if len(sides) > 1:
            if net != managed:
                out.append(Discrepancy(key, "MIXED", net, managed))
            continue
        side = group[0].side
        held = max(0, net * side.sign)
        wanted = abs(managed)
        if held == wanted:
            continue
        if held > wanted:
            out.append(Discrepancy(key, "LARGER", net, managed))
            continue
        changes = _shrink_newest_first(group, wanted - held)
        out.append(Discrepancy(key, "CLOSED" if held == 0 else "SMALLER", net, managed, tuple(changes)))
    return out


def _shrink_newest_first(group: Sequence[Trade], excess: int) -> list[QuantityChange]:
    changes: list[QuantityChange] = []
    for trade in sorted(group, key=lambda t: (t.opened_at or t.created_at, t.id), reverse=True):
        if excess <= 0:
            break
        cut = min(trade.quantity, excess)
        changes.append(QuantityChange(trade.id, trade.quantity, trade.quantity - cut))
        excess -= cut
    return changes


def split_quantity(quantity: int, freeze_quantity: int | None, lot_size: int = 1) -> list[int]:
    """Split an order into pieces of at most the freeze quantity (whole lots each)."""
    if quantity <= 0:
        return []
    if not freeze_quantity or quantity <= freeze_quantity:
        return [quantity]
    piece = freeze_quantity
    if lot_size > 1 and freeze_quantity >= lot_size:
        piece = freeze_quantity - freeze_quantity % lot_size
    pieces = [piece] * (quantity // piece)
    if quantity % piece:
        pieces.append(quantity % piece)
    return pieces


@dataclass(frozen=True, slots=True)
class OrderProgress:
    """An order's broker status read as ledger terms."""

    state: OrderState
    filled_quantity: int
    average_price: float


_CANCELLED = {"cancelled", "canceled", "expired", "lapsed"}
_OPEN = {"open", "pending", "trigger pending", "trigger_pending", "validation pending", "put order req received"}


def order_progress(status: str, quantity: int, filled_quantity: int | None, average_price: float) -> OrderProgress:
    """Translate a broker order status; unknown statuses count as not final.

    A ``complete`` order whose reply gives no filled quantity (live orderstatus)
    filled its whole quantity.
    """
    status = (status or "").strip().lower()
    filled = filled_quantity if filled_quantity is not None else 0
    if status == "complete":
        return OrderProgress(OrderState.COMPLETE, filled_quantity if filled_quantity else quantity, average_price)
    if status == "rejected":
        return OrderProgress(OrderState.REJECTED, filled, average_price)
    if status in _CANCELLED:
        return OrderProgress(OrderState.CANCELLED, filled, average_price)
    return OrderProgress(OrderState.PARTIAL if filled > 0 else OrderState.OPEN, filled, average_price)
