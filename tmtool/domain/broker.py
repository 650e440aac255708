"""What the broker tells tmtool: order acks, orders, positions, fills, quotes, funds,
symbol facts, order updates and the feed's status — plain values, and the error
a broker call fails with.  The adapters in ``tmtool.openalgo`` make them; the
engine and the pure reconciliation arithmetic read them.
"""

from __future__ import annotations

from dataclasses import dataclass

from tmtool.domain.models import FeedState


class BrokerError(Exception):
    """An OpenAlgo call failed; ``kind`` says how, for the caller's decision."""

    # kinds: "validation" (400), "auth" (403: key wrong or broker session expired),
    # "not_found" (404), "rate_limited" (429), "server" (5xx), "timeout",
    # "connection", "rejected" (broker rejected an order), "protocol" (bad reply),
    # "semi_auto" (403: the server's semi-auto mode refuses a modify or cancel),
    # "unknown_order" (the order id named in a request is not at the broker),
    # "unsupported" (501: the server's broker lacks the feature, e.g. the margin calculator)
    def __init__(self, kind: str, message: str, status_code: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status_code = status_code
        self.retry_after = retry_after

    @property
    def ambiguous(self) -> bool:
        """True when an order request may or may not have reached the broker."""
        return self.kind in ("timeout", "server", "connection_after_send")


@dataclass(frozen=True, slots=True)
class OrderAck:
    order_id: str | None  # None when queued for approval (semi-auto)
    mode: str = "live"  # "live", "analyze" or "semi_auto"
    message: str = ""
    pending_order_id: str | None = None

    @property
    def awaiting_approval(self) -> bool:
        return self.mode == "semi_auto"


@dataclass(frozen=True, slots=True)
class OrderInfo:
    order_id: str
    symbol: str
    exchange: str
    action: str
    quantity: int
    status: str  # lower case as OpenAlgo gives: open, complete, rejected, cancelled, trigger pending, ...
    average_price: float = 0.0
    filled_quantity: int | None = None  # None when the server does not say
    price: float = 0.0
    price_type: str = "MARKET"
    product: str = ""
    timestamp: str = ""
    rejection_reason: str = ""
    strategy: str = ""  # the order's strategy tag where the server reports it (analyzer rows); "" otherwise


@dataclass(frozen=True, slots=True)
class Position:
    symbol: str
    exchange: str
    product: str
    quantity: int  # signed net quantity
    average_price: float = 0.0
    ltp: float = 0.0
    pnl: float = 0.0


@dataclass(frozen=True, slots=True)
class Fill:
    order_id: str
    symbol: str
    exchange: str
    product: str
    action: str
    quantity: int
    average_price: float
    timestamp: str = ""
    strategy: str = ""


@dataclass(frozen=True, slots=True)
class Quote:
    symbol: str
    exchange: str
    ltp: float
    bid: float = 0.0
    ask: float = 0.0
    open: float = 0.0
    high: float = 0.0
    low: float = 0.0
    prev_close: float = 0.0
    volume: int = 0


@dataclass(frozen=True, slots=True)
class Funds:
    available_cash: float
    collateral: float = 0.0
    m2m_realized: float = 0.0
    m2m_unrealized: float = 0.0
    utilised: float = 0.0


@dataclass(frozen=True, slots=True)
class SymbolInfo:
    symbol: str
    exchange: str
    tick_size: float
    lot_size: int
    freeze_quantity: int | None = None
    name: str = ""
    instrument_type: str = ""


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """One order-update event from the WebSocket stream (de-duplicated by the feed)."""

    order_id: str
    symbol: str
    exchange: str
    action: str
    quantity: int
    status: str
    filled_quantity: int
    pending_quantity: int
    average_price: float
    product: str = ""
    mode: str = "live"
    rejection_reason: str = ""


@dataclass(frozen=True, slots=True)
class FeedStatus:
    state: FeedState
    last_tick_ts: float | None = None
    stale: tuple[tuple[str, str], ...] = ()  # (exchange, symbol) without a price (socket or REST) in their window
    polled: tuple[tuple[str, str], ...] = ()  # (exchange, symbol) whose socket ticks stopped: REST polling covers them
    subscribed: int = 0
    frames: int = 0
    malformed: int = 0
    errors: int = 0
    reconnects: int = 0
    order_updates: bool = False  # the server offers the order-update stream
    polls: int = 0  # REST quote requests made for polled symbols
    polled_ticks: int = 0  # prices delivered from REST polling

    @property
    def order_updates_flowing(self) -> bool:
        """Order updates can be trusted to arrive: the server offers them, the socket is up, and
        no symbol's ticks have gone silent (a socket that stopped ticking may stop updating too)."""
        return self.order_updates and self.state is FeedState.LIVE and not self.polled
