"""Immutable, versioned views of the engine's state for the UI, API and alerts.

The engine publishes a new ``EngineSnapshot`` at most 10 times a second when
something changed; readers take ``engine.snapshot()`` (an atomic reference read)
and skip work when ``version`` is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from tmtool.domain.models import (
    Alert,
    Distance,
    ExitReason,
    FeedState,
    PartialLevel,
    PriceType,
    Product,
    Side,
    Strategy,
    TradeStatus,
    TrailingSettings,
)


@dataclass(frozen=True, slots=True)
class TradeView:
    id: int
    strategy: str
    symbol: str
    exchange: str
    product: Product
    side: Side
    quantity: int
    entry_quantity: int
    entry_price: float
    ltp: float
    stop_loss: float | None
    target: float | None
    trailing_stop: float | None
    effective_stop: float | None
    trailing: TrailingSettings | None
    partial_levels: tuple[PartialLevel, ...]
    pnl: float  # realised (partials) + unrealised
    unrealised_pnl: float
    realised_pnl: float
    pnl_percent: float  # of entry value
    distance_to_stop: float | None  # points, positive while the stop is not crossed
    high_watermark: float
    low_watermark: float
    status: TradeStatus
    paused: bool
    degraded: bool  # price stale
    exit_reason: ExitReason | None
    exit_price: float | None
    entry_order_id: str | None
    exit_order_ids: tuple[str, ...]
    awaiting_approval: bool
    entry_price_type: PriceType
    opened_at: float | None
    closed_at: float | None
    tick_size: float
    lot_size: int
    breakeven_after: Distance | None = None  # the trade's own setting (from its strategy unless set per trade)
    breakeven_done: bool = False
    exit_wait: str = ""  # why the exit is not going right now ("unknown order": an order's outcome is being looked for)


@dataclass(frozen=True, slots=True)
class StrategyView:
    name: str
    strategy: Strategy
    realised_pnl: float
    unrealised_pnl: float
    total_pnl: float
    pnl_series: tuple[float, ...]  # today's P&L samples for a sparkline (oldest first)
    open_positions: int
    max_open_positions: int | None
    trades_today: int
    portfolio_stop: float | None  # rupees (negative P&L level), None when off
    portfolio_target: float | None
    trailing_lock: float | None  # P&L level of the armed trailing lock
    trailing_armed: bool
    peak_pnl: float
    daily_loss_used: float  # rupees lost today (>= 0)
    daily_loss_limit: float | None
    halted: bool
    halt_reason: str
    funds_used: float  # entry value of open trades
    allocated_funds: float


@dataclass(frozen=True, slots=True)
class SystemView:
    engine_running: bool
    feed_state: FeedState
    last_tick_age: float | None  # seconds
    stale_symbols: tuple[tuple[str, str], ...]
    broker_state: str  # "OK", "ERROR", "SESSION_EXPIRED", "UNKNOWN"
    broker_message: str
    db_state: str  # "OK" or "MEMORY_ONLY"
    db_pending: int
    server_mode: str  # "live", "analyze", "semi_auto" or "" when unknown
    ticks_processed: int
    ticks_refused: int
    simulated: bool  # running against the embedded simulator
    entries_halted: bool = False  # panic: no new entries in any strategy until re-armed
    entries_halted_since: float | None = None  # epoch seconds of the panic
    polled_symbols: tuple[tuple[str, str], ...] = ()  # socket ticks stopped: prices polled over REST


@dataclass(frozen=True, slots=True)
class OrderView:
    """One of tmtool's orders that is not final yet (entries and exits), as the ledger has it."""

    key: str  # tmtool's own id for the order
    trade_id: int
    strategy: str
    symbol: str
    exchange: str
    purpose: str  # ENTRY or EXIT
    action: str  # BUY or SELL
    quantity: int
    filled_quantity: int
    average_price: float
    state: str  # INTENT, SENT, OPEN, UNKNOWN, ...
    reason: str  # why it was sent (the exit reason; "" for an entry)
    price_type: str
    price: float
    order_id: str  # OpenAlgo's id, "" until known
    message: str


@dataclass(frozen=True, slots=True)
class PositionView:
    """One net position: what the broker's positionbook last said against what tmtool's open trades hold."""

    symbol: str
    exchange: str
    product: str
    broker_net: int | None  # signed; None until read
    tmtool_net: int  # signed sum of tmtool's open trades there
    exits_in_flight: int

    @property
    def differs(self) -> bool:
        return self.broker_net is not None and self.broker_net != self.tmtool_net


@dataclass(frozen=True, slots=True)
class EngineSnapshot:
    version: int
    ts: float  # engine clock, epoch seconds
    trades: tuple[TradeView, ...]  # open trades, then today's closed ones
    strategies: tuple[StrategyView, ...]
    system: SystemView
    alerts: tuple[Alert, ...]  # recent alerts, newest first
    account_pnl: float = 0.0
    orders: tuple[OrderView, ...] = ()  # tmtool's orders not final yet
    positions: tuple[PositionView, ...] = ()  # per (symbol, exchange, product) tmtool trades or the broker holds

    def trade(self, trade_id: int) -> TradeView | None:
        for t in self.trades:
            if t.id == trade_id:
                return t
        return None

    @property
    def open_trades(self) -> tuple[TradeView, ...]:
        return tuple(t for t in self.trades if t.status.is_open)
