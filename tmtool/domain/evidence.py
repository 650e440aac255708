"""Deciding what became of an order whose reply was lost, by evidence alone.

A lost reply (timeout, 5xx, a crash before the reply) leaves an order whose
outcome is unknown: it may sit at the broker, filled or working, while the
broker's order book and positionbook show it only after a lag.  Sending it again
on a guess is how a trade manager exits twice and reverses a position, so the
rules here never rule an order out by a clock window and never call it absent
on one look:

- **Found**: the order id is known, or the order book holds an order that
  matches symbol, exchange, product, side and quantity and that no other ledger
  row has claimed.  Timestamps only *order* several candidates (nearest to the
  intent first); they never exclude one, because brokers write naive times in
  zones of their own.
- **Moved**: the broker's net position moved from the one recorded with the
  intent by exactly the order's quantity in the order's direction, while no
  other order of ours was working on that position, continuously for ``grace``
  seconds (a lagging positionbook may show an older position for a while): the
  order filled, though the book does not show it yet (a move by more has
  another cause too: it proves nothing).
- **Absent**: the order book shows no candidate *and* the position still equals
  the one recorded with the intent, continuously for ``grace`` seconds (long
  enough to cover the book's lag).  Only then may an exit be sent again or an
  entry be cancelled.  The recorded position came from a read that may not show
  our own latest fills yet (``OrderIntent.lag_fills``): a position equal to it
  with some of them applied stands where the order found it too, and can prove
  neither a move nor anything but absence.
- **Unknown** otherwise: the order stays UNKNOWN (visible and alerted) and
  blocks further exit quantity on its position until one of the above holds.

Reduce-only capacity lives here too: how much an exit may send without the net
position crossing zero, given every order working against that position.

Pure: the caller passes the time in; nothing here reads a clock or does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from enum import Enum
from typing import Sequence

from tmtool.domain.broker import OrderInfo
from tmtool.domain.calendar import IST
from tmtool.domain.models import Side

_TIME_FORMATS = (
    "%d-%b-%Y %H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%S.%f",
    "%d-%m-%Y %H:%M:%S",
    "%H:%M:%S %d-%m-%Y",
    "%d/%m/%Y %H:%M:%S",
)

_WORKING = frozenset({"open", "pending", "trigger pending", "trigger_pending", "validation pending", "put order req received"})


def is_working(status: str) -> bool:
    """An order in this broker status may still fill."""
    return (status or "").strip().lower() in _WORKING


def parse_broker_time(text: str, zone: tzinfo = IST) -> float | None:
    """Epoch seconds of a broker timestamp; a naive time is read in ``zone`` (the
    zone the broker writes in: IST unless the config says otherwise)."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        return number / (1000.0 if number > 1e11 else 1.0)
    parsed: datetime | None = None
    for fmt in _TIME_FORMATS:
        try:
            parsed = datetime.strptime(text, fmt)
            break
        except ValueError:
            continue
    if parsed is None:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.timestamp()


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """What tmtool recorded when it decided to send an order."""

    symbol: str
    exchange: str
    product: str
    action: str  # BUY / SELL
    quantity: int
    created_at: float  # epoch seconds
    net_before: int | None  # the broker's signed net position on (symbol, exchange, product) when it was sent
    strategy: str = ""  # the strategy tag it was sent with (a row tagged with another strategy is not it)
    # signed fills of our own orders on the position in the lag before the intent, oldest first:
    # the read ``net_before`` came from may not show the latest of them yet (``OrderRecord.lag_fills``)
    lag_fills: tuple[int, ...] = ()

    def baselines(self) -> tuple[int, ...]:
        """Every position the intent may really have moved from: ``net_before``, and ``net_before``
        with our latest fills that its read may not have shown yet (newest first)."""
        if self.net_before is None:
            return ()
        out, net = [self.net_before], self.net_before
        for quantity in reversed(self.lag_fills):
            net += quantity
            out.append(net)
        return tuple(out)


class Outcome(str, Enum):
    FOUND = "FOUND"  # the order is in the order book
    MOVED = "MOVED"  # the position moved by the order's quantity: it filled, the book lags
    ABSENT = "ABSENT"  # proven never placed: book and position agreed over the grace period
    UNKNOWN = "UNKNOWN"  # no proof either way yet


@dataclass(frozen=True, slots=True)
class Resolution:
    outcome: Outcome
    why: str
    order: OrderInfo | None = None
    absent_since: float | None = None  # when book and position first agreed the order is absent (carry to the next look)
    moved_since: float | None = None  # when the position first showed the order's move (carry to the next look)


def candidates(
    orders: Sequence[OrderInfo], intent: OrderIntent, claimed_order_ids: set[str] | frozenset[str], zone: tzinfo = IST
) -> list[OrderInfo]:
    """Unclaimed orders that match the intent, nearest in time to it first (undated ones last)."""
    matching = [
        order
        for order in orders
        if order.order_id not in claimed_order_ids
        and order.symbol == intent.symbol
        and order.exchange == intent.exchange
        and (not order.product or order.product.upper() == intent.product.upper())
        and order.action.upper() == intent.action.upper()
        and int(order.quantity) == intent.quantity
        and (not order.strategy or not intent.strategy or order.strategy == intent.strategy)
    ]
    return sorted(matching, key=lambda order: _distance(order, intent, zone))


def _distance(order: OrderInfo, intent: OrderIntent, zone: tzinfo) -> float:
    """Seconds between the intent and the row's time, read as the whole second it names
    (brokers write whole seconds: 10:00:06 is any time from 10:00:06.000 to 10:00:06.999)."""
    placed = parse_broker_time(order.timestamp, zone)
    if placed is None:
        return float("inf")
    return max(0.0, placed - intent.created_at, intent.created_at - (placed + 1.0))


def nearer_to_others(
    orders: Sequence[OrderInfo],
    intent: OrderIntent,
    rivals: Sequence[OrderIntent],
    claimed_order_ids: set[str] | frozenset[str],
    zone: tzinfo = IST,
) -> set[str]:
    """Ids of the rows that match ``intent`` but are strictly nearer in time to one of ``rivals``
    (other intents whose outcome is unknown too): those rows are left to them.  Times only
    *assign* rows among our own intents; a row matching one intent alone is never excluded."""
    reserved: set[str] = set()
    for order in candidates(orders, intent, claimed_order_ids, zone):
        mine = _distance(order, intent, zone)
        for rival in rivals:
            if order in candidates([order], rival, claimed_order_ids, zone) and _distance(order, rival, zone) < mine:
                reserved.add(order.order_id)
                break
    return reserved


def resolve_unknown_order(
    intent: OrderIntent,
    *,
    orders: Sequence[OrderInfo],
    claimed_order_ids: set[str] | frozenset[str],
    net_now: int | None,
    others_working: bool,
    now: float,
    absent_since: float | None,
    grace: float,
    zone: tzinfo = IST,
    moved_since: float | None = None,
) -> Resolution:
    """One look at the evidence for an order whose reply was lost.

    ``orders`` is the order book just read, ``net_now`` the position read with it,
    ``others_working`` whether any other order of ours on the same position was
    working (then a moved position proves nothing), ``absent_since`` and
    ``moved_since`` what the previous look returned.  Like absence, a move must
    hold over ``grace``: a positionbook that lags may show a position from before
    the intent's own baseline for a while.
    """
    found = candidates(orders, intent, claimed_order_ids, zone)
    if found:
        return Resolution(Outcome.FOUND, "found in the order book", order=found[0])
    if net_now is None or intent.net_before is None:
        return Resolution(Outcome.UNKNOWN, "no position recorded with the intent to compare with")
    direction = 1 if intent.action.upper() == "BUY" else -1
    moved = (net_now - intent.net_before) * direction
    # The position stands where the order found it: at ``net_before``, or where a baseline read that
    # did not show our latest fills yet would have put it (then a "move" by the order's size may be
    # those fills showing up, not the order: the order book alone can tell, within the grace).
    if moved == 0 or net_now in intent.baselines():
        since = now if absent_since is None else absent_since
        if now - since >= grace:
            return Resolution(
                Outcome.ABSENT,
                f"not in the order book and the position stayed at {net_now} for {now - since:.1f} s",
                absent_since=since,
            )
        return Resolution(Outcome.UNKNOWN, "not in the order book yet; the position has not moved", absent_since=since)
    if others_working:
        return Resolution(Outcome.UNKNOWN, f"the position moved by {moved} while other orders of ours were working")
    if moved == intent.quantity:
        since = now if moved_since is None else moved_since
        why = f"the position moved by {moved} in the order's direction (net {intent.net_before} -> {net_now})"
        if now - since >= grace:
            return Resolution(Outcome.MOVED, f"{why} for {now - since:.1f} s", moved_since=since)
        return Resolution(Outcome.UNKNOWN, f"{why}; not in the order book yet", moved_since=since)
    return Resolution(Outcome.UNKNOWN, f"the position moved by {moved}, not by the order's {intent.quantity}")


@dataclass(frozen=True, slots=True)
class ExitRoom:
    """How much an exit may send on a position, and why not more."""

    quantity: int
    blocked_by_unknown: bool = False  # an exit of ours with an unknown outcome holds the position


def working_closing_quantity(orders: Sequence[OrderInfo], *, symbol: str, exchange: str, product: str, side: Side, exclude_order_ids: set[str] | frozenset[str]) -> int:
    """Unfilled quantity of working orders in the book that close a ``side`` position on the key,
    whoever placed them (``exclude_order_ids``: ours, already counted as exits in flight)."""
    closing_action = side.exit_action
    total = 0
    for order in orders:
        if order.order_id in exclude_order_ids or order.symbol != symbol or order.exchange != exchange:
            continue
        if order.product and order.product.upper() != product.upper():
            continue
        if order.action.upper() != closing_action or not is_working(order.status):
            continue
        filled = order.filled_quantity or 0
        total += max(0, int(order.quantity) - int(filled))
    return total


def exit_room(
    side: Side,
    *,
    broker_net: int,
    opposite_open: int,
    own_exits_in_flight: int,
    own_exits_unknown: int,
    others_working_closing: int = 0,
) -> ExitRoom:
    """Reduce-only: at most the net position in the trade's direction, minus every working
    order that closes it (ours in flight and anyone else's in the book); nothing while an
    exit of ours on the position has an unknown outcome.

    ``opposite_open`` is the open quantity of trades of the other side on the key (netted
    into ``broker_net``); with long and short trades on one key a net position cannot tell
    a hedge leg closed outside tmtool from one still open, so they count as held.
    """
    if own_exits_unknown > 0:
        return ExitRoom(0, blocked_by_unknown=True)
    held = broker_net * side.sign + opposite_open
    return ExitRoom(max(0, held - own_exits_in_flight - others_working_closing))
