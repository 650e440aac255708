"""What the order manager tells the controllers, and the working copy of an order.

``LiveOrder`` is the engine's copy of a ledger row that is not final (owned by
``orders.OrderManager``).  The event values are past-tense facts the manager
emits; ``handlers.OrderEventRouter`` applies each to the controllers (entries,
exits, the broker session) at the moment it happens.
"""

from __future__ import annotations

from dataclasses import dataclass

from tmtool.domain.models import OrderRecord, OrderState, Trade
from tmtool.domain.reconcile import PositionKey


class LiveOrder:
    """The engine's working copy of a ledger row that is not final."""

    __slots__ = (
        "record", "strategy", "pos_key", "remaining", "net_shift", "unknown_since", "absent_since", "moved_since",
        "unknown_alerted", "reprices", "reprice_failures", "modifying", "polling", "poll_due", "cancel_wanted",
        "cancelling", "cancel_attempts",
    )

    def __init__(self, record: OrderRecord, strategy: str, pos_key: PositionKey) -> None:
        self.record = record
        self.strategy = strategy
        self.pos_key = pos_key
        self.remaining = record.quantity - record.filled_quantity
        # fills of our other orders on the key since the intent, not yet folded into ``record.net_before``
        # (the executor writes the intent row itself; it is folded in when the outcome turns unknown)
        self.net_shift = 0
        self.unknown_since: float | None = None  # when the outcome became unknown (engine clock, wall time)
        self.absent_since: float | None = None  # since when book and position agree it is absent (the evidence's carry)
        self.moved_since: float | None = None  # since when the position shows the order's move (the evidence's carry)
        self.unknown_alerted = False  # the CRITICAL "unknown for long" alert was raised
        self.reprices = 0  # modifications of a LIMIT exit that the broker took
        self.reprice_failures = 0  # modifications refused or lost in a row
        self.modifying = False  # a modifyorder is in flight
        self.polling = False  # a status poll is scheduled or in flight
        self.poll_due = 0.0  # when the scheduled poll falls due (engine clock, monotonic)
        self.cancel_wanted = False  # an entry order to be cancelled (as soon as it has an order id)
        self.cancelling = False  # a cancelorder is in flight
        self.cancel_attempts = 0


@dataclass(frozen=True, slots=True)
class OrderFilled:
    """``quantity`` more of ``order`` filled at ``price`` (the price of just these fills)."""

    trade: Trade
    order: LiveOrder
    quantity: int
    price: float


@dataclass(frozen=True, slots=True)
class OrderFinal:
    """``order`` reached a final state and is released (its in-flight quantity too)."""

    trade: Trade
    order: LiveOrder
    state: OrderState


@dataclass(frozen=True, slots=True)
class PositionSettled:
    """No exit of ours is in flight on ``pos_key`` any more."""

    pos_key: PositionKey


@dataclass(frozen=True, slots=True)
class UnknownResolved:
    """No exit of ours with an unknown outcome is left on ``pos_key``: exits it held back may go."""

    pos_key: PositionKey


@dataclass(frozen=True, slots=True)
class ExitNotSent:
    """An exit order surely did not go out for a reason that is no failure of the exit
    (rate limit, expired session): the attempt is not counted; ``parked`` exits wait
    for the session."""

    trade: Trade
    parked: bool


@dataclass(frozen=True, slots=True)
class SessionExpired:
    message: str


@dataclass(frozen=True, slots=True)
class BrokerAnswered:
    """The broker took an order: the session works."""


OrderEvent = OrderFilled | OrderFinal | PositionSettled | UnknownResolved | ExitNotSent | SessionExpired | BrokerAnswered


