"""Domain models of tmtool.

Everything here is plain data: enums, frozen settings, and the few mutable
records the engine thread owns (``Trade``, ``PortfolioState``).  No I/O, no
clock reads.  Collections inside mutable records are tuples, so a shallow
``copy.copy`` of a record is a safe snapshot to hand to another thread.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, fields
from typing import Any, Callable
from datetime import date, time
from enum import Enum

DEFAULT_TICK_SIZE = 0.05

EXCHANGES = frozenset(
    {"NSE", "BSE", "NFO", "BFO", "CDS", "BCD", "MCX", "NCDEX", "NCO", "CRYPTO"}
)
DATA_ONLY_EXCHANGES = frozenset({"NSE_INDEX", "BSE_INDEX", "MCX_INDEX", "GLOBAL_INDEX"})
# Futures and options (equity, currency, commodity): positions there block margin, not their notional.
DERIVATIVE_EXCHANGES = frozenset({"NFO", "BFO", "CDS", "BCD", "MCX", "NCDEX", "NCO"})
MANUAL_STRATEGY = "manual"


class Side(str, Enum):
    LONG = "LONG"
    SHORT = "SHORT"

    @property
    def sign(self) -> int:
        return 1 if self is Side.LONG else -1

    @property
    def entry_action(self) -> str:
        return "BUY" if self is Side.LONG else "SELL"

    @property
    def exit_action(self) -> str:
        return "SELL" if self is Side.LONG else "BUY"

    @property
    def opposite(self) -> "Side":
        return Side.SHORT if self is Side.LONG else Side.LONG


class TradeStatus(str, Enum):
    PENDING_ENTRY = "PENDING_ENTRY"
    ACTIVE = "ACTIVE"
    EXITING = "EXITING"
    CLOSED = "CLOSED"
    EXIT_FAILED = "EXIT_FAILED"
    CLOSED_EXTERNALLY = "CLOSED_EXTERNALLY"
    CANCELLED = "CANCELLED"

    @property
    def is_open(self) -> bool:
        return self in OPEN_STATUSES

    @property
    def is_final(self) -> bool:
        return not self.is_open


OPEN_STATUSES = frozenset(
    {TradeStatus.PENDING_ENTRY, TradeStatus.ACTIVE, TradeStatus.EXITING, TradeStatus.EXIT_FAILED}
)


class ExitReason(str, Enum):
    STOP_LOSS = "STOP_LOSS"
    TARGET = "TARGET"
    PARTIAL_TARGET = "PARTIAL_TARGET"
    TRAILING_SL = "TRAILING_SL"
    PORTFOLIO_SL = "PORTFOLIO_SL"
    PORTFOLIO_TARGET = "PORTFOLIO_TARGET"
    PORTFOLIO_TRAILING = "PORTFOLIO_TRAILING"
    DAILY_LOSS_LIMIT = "DAILY_LOSS_LIMIT"
    ACCOUNT_LOSS_LIMIT = "ACCOUNT_LOSS_LIMIT"
    ACCOUNT_TARGET = "ACCOUNT_TARGET"
    SQUARE_OFF_TIME = "SQUARE_OFF_TIME"
    MANUAL = "MANUAL"
    PANIC = "PANIC"
    STRATEGY_DELETED = "STRATEGY_DELETED"
    LOCKOUT = "LOCKOUT"
    CLOSED_EXTERNALLY = "CLOSED_EXTERNALLY"


class DistanceMode(str, Enum):
    """How a per-trade distance is measured from its reference price."""

    POINTS = "POINTS"
    PERCENT = "PERCENT"


class AmountMode(str, Enum):
    """How a portfolio amount is given: rupees, or percent of allocated funds."""

    AMOUNT = "AMOUNT"
    PERCENT = "PERCENT"


class SizingMode(str, Enum):
    FIXED_QUANTITY = "FIXED_QUANTITY"
    FIXED_VALUE = "FIXED_VALUE"
    PERCENT_ALLOCATION = "PERCENT_ALLOCATION"
    RISK_BASED = "RISK_BASED"


class Product(str, Enum):
    MIS = "MIS"
    CNC = "CNC"
    NRML = "NRML"


class PriceType(str, Enum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"


class StrategyState(str, Enum):
    ACTIVE = "ACTIVE"
    HALTED = "HALTED"


class FeedState(str, Enum):
    LIVE = "LIVE"
    RECONNECTING = "RECONNECTING"
    POLLING = "POLLING"
    DOWN = "DOWN"


class AlertPriority(str, Enum):
    INFO = "INFO"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"

    @property
    def rank(self) -> int:
        return {"INFO": 0, "WARNING": 1, "CRITICAL": 2}[self.value]


class AlertCategory(str, Enum):
    TRADE = "TRADE"
    PORTFOLIO = "PORTFOLIO"
    SYSTEM = "SYSTEM"


class OrderPurpose(str, Enum):
    ENTRY = "ENTRY"
    EXIT = "EXIT"


class OrderState(str, Enum):
    """Life of one order tmtool sends, as recorded in the durable order ledger.

    INTENT is written (durably) before the order leaves; SENT once the request
    went out; UNKNOWN when the reply was lost (timeout, 5xx) and the outcome
    must be looked up before anything else is sent.
    """

    INTENT = "INTENT"
    SENT = "SENT"
    AWAITING_APPROVAL = "AWAITING_APPROVAL"
    OPEN = "OPEN"
    PARTIAL = "PARTIAL"
    COMPLETE = "COMPLETE"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"
    UNKNOWN = "UNKNOWN"
    NOT_SENT = "NOT_SENT"

    @property
    def is_final(self) -> bool:
        return self in (OrderState.COMPLETE, OrderState.REJECTED, OrderState.CANCELLED, OrderState.NOT_SENT)


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True, slots=True)
class Distance:
    """A per-trade distance: ``value`` points, or ``value`` percent of the price it is measured from."""

    value: float
    mode: DistanceMode = DistanceMode.POINTS

    def points(self, reference_price: float) -> float:
        if self.mode is DistanceMode.PERCENT:
            return reference_price * self.value / 100.0
        return self.value

    def describe(self) -> str:
        """``20`` for 20 points, ``1.5%`` for 1.5 percent (the form the TUI's fields take)."""
        return f"{self.value:g}{'%' if self.mode is DistanceMode.PERCENT else ''}"


@dataclass(frozen=True, slots=True)
class Amount:
    """A portfolio amount: ``value`` rupees, or ``value`` percent of allocated funds."""

    value: float
    mode: AmountMode = AmountMode.AMOUNT

    def rupees(self, allocated_funds: float) -> float:
        if self.mode is AmountMode.PERCENT:
            return allocated_funds * self.value / 100.0
        return self.value


@dataclass(frozen=True, slots=True)
class TrailingSettings:
    """Trailing stop settings.

    Continuous trailing: the stop follows the best price seen at ``distance``.
    Step trailing (``step_trigger`` and ``step_move`` both set): the stop starts
    at entry minus ``distance`` (LONG) and moves by ``step_move`` each time the
    price has gained another ``step_trigger``.
    ``activation``: trailing begins only once the price has moved this far in
    favour from entry.

    A distance in PERCENT is a percent of the price it is measured from: the
    trailing ``distance`` of the best price (of the entry for the first step of
    step trailing), ``activation`` of the entry, each ``step_trigger`` of the
    previous step's trigger price (the first: of the entry), each ``step_move``
    of the stop's level before the step.  ``tmtool.domain.rules`` has the formulas.
    """

    distance: Distance
    activation: Distance | None = None
    step_trigger: Distance | None = None
    step_move: Distance | None = None

    @property
    def is_step(self) -> bool:
        return self.step_trigger is not None and self.step_move is not None


@dataclass(frozen=True, slots=True)
class PartialTarget:
    """Scale out ``fraction`` (0..1) of the entry quantity at ``distance`` in favour of entry."""

    distance: Distance
    fraction: float


@dataclass(frozen=True, slots=True)
class TradeRisk:
    """Per-trade risk defaults of a strategy (distances from the entry price)."""

    stop_loss: Distance | None = None
    target: Distance | None = None
    trailing: TrailingSettings | None = None
    breakeven_after: Distance | None = None
    partial_targets: tuple[PartialTarget, ...] = ()


@dataclass(frozen=True, slots=True)
class PortfolioRisk:
    """Portfolio limits of one strategy (P&L = realised today + unrealised)."""

    stop_loss: Amount | None = None
    target: Amount | None = None
    trailing_activation: Amount | None = None  # lock arms once P&L reaches this
    trailing_distance: Amount | None = None  # exit all when P&L falls this far from its peak
    daily_loss_limit: Amount | None = None  # exit all and halt until the next trading day


@dataclass(frozen=True, slots=True)
class Sizing:
    """Position sizing.

    FIXED_QUANTITY: ``value`` units. FIXED_VALUE: ``value`` rupees of notional.
    PERCENT_ALLOCATION: ``value`` percent of the strategy's allocated funds.
    RISK_BASED: ``value`` rupees risked; quantity = value / stop distance.
    """

    mode: SizingMode = SizingMode.FIXED_QUANTITY
    value: float = 1.0


@dataclass(frozen=True, slots=True)
class ExitOrderSettings:
    """How exits are sent: MARKET, or a marketable LIMIT re-priced when unfilled."""

    price_type: PriceType = PriceType.MARKET
    protection_percent: float = 0.5
    reprice_after_seconds: float = 3.0
    max_reprices: int = 5


@dataclass(frozen=True, slots=True)
class Strategy:
    name: str
    trade_risk: TradeRisk = TradeRisk()
    portfolio: PortfolioRisk = PortfolioRisk()
    allocated_funds: float = 0.0
    sizing: Sizing = Sizing()
    max_open_positions: int | None = None
    max_trades_per_day: int | None = None
    square_off_time: time | None = None  # Asia/Kolkata wall-clock time
    exit_order: ExitOrderSettings = ExitOrderSettings()
    product: Product = Product.MIS
    exchange: str = "NSE"
    adopt_fills: bool = False  # adopt new tradebook fills carrying this strategy's tag


@dataclass(frozen=True, slots=True)
class AccountLimits:
    """Account-wide limits across all strategies (rupees); None = off."""

    daily_loss_limit: float | None = None
    daily_profit_target: float | None = None


@dataclass(frozen=True, slots=True)
class Instrument:
    symbol: str
    exchange: str
    tick_size: float = DEFAULT_TICK_SIZE
    lot_size: int = 1
    freeze_quantity: int | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.exchange, self.symbol)


# --------------------------------------------------------------------------- engine-owned state


@dataclass(frozen=True, slots=True)
class PartialLevel:
    """One scale-out level of a live trade: exit ``quantity`` at ``price``."""

    price: float
    quantity: int
    done: bool = False


@dataclass(frozen=True, slots=True)
class OrderFill:
    """How much of one of its orders (the ledger row ``key``, a BUY or SELL) a trade has taken in, and at what average."""

    key: str
    action: str
    filled_quantity: int
    average_price: float


@dataclass(slots=True)
class Trade:
    """One managed position.  Owned and mutated by the engine thread only.

    ``stop_loss`` is the fixed stop (moved only by the user or by breakeven);
    ``trailing_stop`` is the current trailing level.  The effective stop is the
    tighter of the two.  ``quantity`` is the open quantity; ``entry_quantity``
    what was filled at entry.  ``order_fills`` is what the trade has taken in of
    each of its orders' fills, in the same row as the quantities it moved: after
    a crash it, not the order's ledger row, says which fills are new.
    """

    id: int
    strategy: str
    symbol: str
    exchange: str
    product: Product
    side: Side
    quantity: int
    entry_price: float
    status: TradeStatus = TradeStatus.ACTIVE
    entry_quantity: int = 0
    requested_quantity: int = 0
    stop_loss: float | None = None
    target: float | None = None
    trailing: TrailingSettings | None = None
    trailing_stop: float | None = None
    breakeven_after: Distance | None = None
    breakeven_done: bool = False
    partial_levels: tuple[PartialLevel, ...] = ()
    high_watermark: float = 0.0
    low_watermark: float = 0.0
    last_price: float = 0.0
    tick_size: float = DEFAULT_TICK_SIZE
    lot_size: int = 1
    entry_order_id: str | None = None
    entry_price_type: PriceType = PriceType.MARKET
    entry_limit_price: float | None = None
    exit_order_ids: tuple[str, ...] = ()
    exit_reason: ExitReason | None = None
    exit_trigger_price: float | None = None  # the level that triggered the exit
    exit_price: float | None = None  # average fill price of all exits
    exited_quantity: int = 0
    realised_pnl: float = 0.0
    paused: bool = False
    degraded: bool = False
    created_at: float = 0.0  # epoch seconds
    opened_at: float | None = None
    closed_at: float | None = None
    updated_at: float = 0.0
    note: str = ""
    order_fills: tuple[OrderFill, ...] = ()

    @property
    def instrument_key(self) -> tuple[str, str]:
        return (self.exchange, self.symbol)

    @property
    def effective_stop(self) -> float | None:
        """The tighter of the fixed and the trailing stop."""
        a, b = self.stop_loss, self.trailing_stop
        if a is None:
            return b
        if b is None:
            return a
        return max(a, b) if self.side is Side.LONG else min(a, b)

    def unrealised_pnl(self, price: float | None = None) -> float:
        p = self.last_price if price is None else price
        if not p or self.quantity <= 0 or self.status in (TradeStatus.PENDING_ENTRY,) or self.status.is_final:
            return 0.0
        return (p - self.entry_price) * self.quantity * self.side.sign


@dataclass(slots=True)
class PortfolioState:
    """Per-strategy, per-trading-day portfolio state.  Engine-owned."""

    strategy: str
    trading_day: date
    realised_pnl: float = 0.0
    peak_pnl: float = 0.0
    trough_pnl: float = 0.0
    trailing_armed: bool = False
    trailing_lock: float | None = None  # P&L level below which everything exits
    halted: bool = False
    halt_reason: str = ""
    trades_today: int = 0
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """One order in tmtool's durable order ledger (entries and exits)."""

    key: str  # tmtool's own id for the order (unique), e.g. "x-12-1"
    trade_id: int
    purpose: OrderPurpose
    action: str  # BUY / SELL
    quantity: int
    state: OrderState
    reason: ExitReason | None = None
    price_type: PriceType = PriceType.MARKET
    price: float = 0.0
    order_id: str | None = None  # OpenAlgo's order id, once known
    filled_quantity: int = 0
    average_price: float = 0.0
    attempt: int = 1
    message: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0
    # The broker's signed net position on the order's (symbol, exchange, product) that the
    # order's own fills move from: seen when the intent was made, then moved by the fills of
    # our other orders there.  An unknown outcome is judged against it (None: not known).
    net_before: int | None = None
    # The fills ``net_before`` holds: (ledger key, filled quantity) of each of our other orders on
    # the key as far as they had filled then.  After a crash the restart may count some of them
    # again, or not at all; it moves ``net_before`` by the difference (``OrderManager.rebase_restored``).
    # None: not recorded (a row written before schema version 5).
    fills_before: tuple[tuple[str, int], ...] | None = None
    # Signed fills of our own orders on the key applied within ``absence_grace`` before the intent,
    # oldest first: the position read ``net_before`` came from may not show the latest of them yet
    # (the positionbook lags ``orderstatus``), so a position that differs from it by them proves no
    # move (``evidence.OrderIntent.baselines``).  Empty for rows from before schema version 6.
    lag_fills: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class TradeEvent:
    """One entry of the append-only audit log."""

    trade_id: int
    ts: float
    kind: str  # CREATED, LEVEL, TRAIL, BREAKEVEN, STATUS, EXIT_INTENT, EXIT_FILL, PARTIAL, ...
    field: str = ""
    old: str = ""
    new: str = ""
    reason: str = ""
    price: float | None = None
    strategy: str = ""


@dataclass(frozen=True, slots=True)
class Alert:
    id: int
    ts: float
    category: AlertCategory
    priority: AlertPriority
    text: str
    key: str = ""  # folding key: repeats with the same key fold into one alert with a count
    trade_id: int | None = None
    strategy: str | None = None
    count: int = 1
    acknowledged: bool = False
    last_ts: float = 0.0


@dataclass(frozen=True, slots=True)
class Tick:
    """One price for one instrument.  ``ts`` is epoch seconds when tmtool received it."""

    exchange: str
    symbol: str
    price: float
    ts: float

    @property
    def key(self) -> tuple[str, str]:
        return (self.exchange, self.symbol)


def is_valid_price(price: object) -> bool:
    """True for a finite, positive number (bools are not numbers here)."""
    if isinstance(price, bool) or not isinstance(price, (int, float)):
        return False
    return math.isfinite(price) and price > 0


def round_to_tick(price: float, tick_size: float = DEFAULT_TICK_SIZE) -> float:
    """Round to the nearest multiple of ``tick_size`` (half away from zero), clean of float dust."""
    if tick_size <= 0:
        return price
    steps = math.floor(price / tick_size + 0.5 + 1e-9)
    decimals = max(0, -math.floor(math.log10(tick_size)) + 2)
    return round(steps * tick_size, decimals)


def round_stop(price: float, side: Side, tick_size: float = DEFAULT_TICK_SIZE) -> float:
    """Round a stop to the tick grid on the protective side (never looser than asked).

    A LONG's stop rounds up, a SHORT's rounds down, so rounding never adds risk.
    """
    if tick_size <= 0:
        return price
    q = price / tick_size
    steps = math.ceil(q - 1e-9) if side is Side.LONG else math.floor(q + 1e-9)
    decimals = max(0, -math.floor(math.log10(tick_size)) + 2)
    return round(steps * tick_size, decimals)


def round_target(price: float, side: Side, tick_size: float = DEFAULT_TICK_SIZE) -> float:
    """Round a target to the tick grid so it is never further than asked.

    A LONG's target rounds down, a SHORT's rounds up.
    """
    return round_stop(price, side.opposite, tick_size)


@dataclass(frozen=True, slots=True)
class Denial:
    """Why something was refused: an upper-case code and a sentence for humans."""

    code: str
    message: str

    def __str__(self) -> str:  # pragma: no cover - trivial
        return f"{self.code}: {self.message}"


def _make_trade_copier() -> Callable[[Trade], Trade]:
    """A shallow copy of a ``Trade`` about fifteen times faster than ``copy.copy`` (which goes
    through ``__reduce_ex__``); generated from the dataclass fields so it follows the model."""
    names = [f.name for f in fields(Trade)]
    lines = ["def copy_trade(trade, _new=object.__new__, _cls=Trade):", "    clone = _new(_cls)"]
    lines += [f"    clone.{name} = trade.{name}" for name in names]
    lines.append("    return clone")
    namespace: dict[str, Any] = {"Trade": Trade}
    exec("\n".join(lines), namespace)  # noqa: S102 - source built above from the dataclass's own field names
    return namespace["copy_trade"]


copy_trade = _make_trade_copier()


def _make_event_builder() -> Callable[..., TradeEvent]:
    """``TradeEvent(...)`` by position, about two and a half times faster than the frozen dataclass's own
    ``__init__`` (which sets each field through ``object.__setattr__``): every trailing ratchet makes
    one.  Each slot is set through its own descriptor; generated from the fields, so it follows the
    model, and the result is an ordinary, equal, frozen ``TradeEvent``."""
    names = [f.name for f in fields(TradeEvent)]
    defaults = {f.name: f.default for f in fields(TradeEvent) if f.default is not MISSING}
    params = [f"{name}=_default_{name}" if name in defaults else name for name in names]
    setters = [f"_set_{name}=_slots[{name!r}]" for name in names]
    lines = [f"def trade_event({', '.join(params)}, *, _new=object.__new__, _cls=TradeEvent, {', '.join(setters)}):",
             "    event = _new(_cls)"]
    lines += [f"    _set_{name}(event, {name})" for name in names]
    lines.append("    return event")
    namespace: dict[str, Any] = {"TradeEvent": TradeEvent, "_slots": {name: getattr(TradeEvent, name).__set__ for name in names}}
    namespace.update({f"_default_{name}": value for name, value in defaults.items()})
    exec("\n".join(lines), namespace)  # noqa: S102 - source built above from the dataclass's own field names
    return namespace["trade_event"]


trade_event = _make_event_builder()


def level_event(trade: Trade, ts: float, kind: str, field: str, old: object, new: object, reason: str, price: float | None) -> TradeEvent:
    """The audit event of a change of one of ``trade``'s fields (levels as their text; None as "")."""
    return trade_event(
        trade.id, ts, kind, field, "" if old is None else str(old), "" if new is None else str(new), reason, price, trade.strategy
    )
