"""Commands sent to the engine (imperative nouns) and its answers.

Every front end (TUI, control API, CLI) builds one of these and calls
``engine.submit(command)``, which only enqueues and returns a
``concurrent.futures.Future`` resolved by the engine thread with an
``Accepted`` or a ``Denied``.  The engine re-checks everything (a trade may have
closed between a key press and the command).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from tmtool.domain.models import (
    ExitReason,
    PartialTarget,
    PriceType,
    Product,
    Side,
    Strategy,
    TrailingSettings,
)


class _Unset:
    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET = _Unset()  # "leave as it is" (None means "clear")


@dataclass(frozen=True, slots=True)
class CreateTrade:
    """Start managing a trade.

    With ``order_id``: adopt an OpenAlgo order that has filled (tmtool reads its fill).
    With ``entry_price`` and no order id: adopt a position already held (no order sent).
    Otherwise: tmtool places the entry (MARKET, or LIMIT at ``limit_price``), sized by
    ``quantity`` or, when it is None, by the strategy's sizing.
    Levels given here are absolute prices; None takes the strategy's defaults.
    ``breakeven_after`` (a distance from the entry): UNSET takes the strategy's
    default, None turns breakeven off for this trade.
    """

    strategy: str
    symbol: str
    exchange: str
    side: Side
    product: Product | None = None
    quantity: int | None = None
    price_type: PriceType = PriceType.MARKET
    limit_price: float | None = None
    order_id: str | None = None
    entry_price: float | None = None
    stop_loss: float | None = None
    target: float | None = None
    trailing: TrailingSettings | None = None
    partial_targets: tuple[PartialTarget, ...] | None = None
    breakeven_after: object = UNSET  # Distance | None | UNSET
    note: str = ""


@dataclass(frozen=True, slots=True)
class ModifyTrade:
    """Change levels of an open trade; UNSET leaves a field, None clears it.

    ``breakeven_after`` set to a new distance arms breakeven afresh (it moves the
    stop to the entry once the best price is that far in profit, never loosening it).
    """

    trade_id: int
    stop_loss: object = UNSET  # float | None | UNSET
    target: object = UNSET
    trailing: object = UNSET  # TrailingSettings | None | UNSET
    partial_targets: object = UNSET  # tuple[PartialTarget, ...] | UNSET
    breakeven_after: object = UNSET  # Distance | None | UNSET


@dataclass(frozen=True, slots=True)
class ExitTrade:
    trade_id: int
    reason: ExitReason = ExitReason.MANUAL


@dataclass(frozen=True, slots=True)
class ExitTrades:
    """Exit several trades (bulk exit from the UI)."""

    trade_ids: tuple[int, ...]
    reason: ExitReason = ExitReason.MANUAL


@dataclass(frozen=True, slots=True)
class ExitAll:
    """Exit every open trade, or every open trade of one strategy.

    ``panic`` (every strategy only) is the kill switch: besides the exits, new
    entries are refused in every strategy until a ``Rearm``; the halt is persisted.
    """

    strategy: str | None = None
    reason: ExitReason = ExitReason.PANIC
    panic: bool = False


@dataclass(frozen=True, slots=True)
class Rearm:
    """Lift the panic halt: new entries are taken again (strategy and account limits still apply)."""


@dataclass(frozen=True, slots=True)
class PauseTrade:
    trade_id: int


@dataclass(frozen=True, slots=True)
class ResumeTrade:
    trade_id: int


@dataclass(frozen=True, slots=True)
class SaveStrategy:
    """Create or replace a strategy's settings."""

    strategy: Strategy


@dataclass(frozen=True, slots=True)
class DeleteStrategy:
    """Delete a strategy.  With open trades: refused unless ``open_trades`` is
    "exit" (exit them, reason STRATEGY_DELETED) or "move" (to ``move_to``)."""

    name: str
    open_trades: str = "refuse"  # "refuse" | "exit" | "move"
    move_to: str | None = None


@dataclass(frozen=True, slots=True)
class AcknowledgeAlerts:
    """Acknowledge alerts by id; an empty tuple acknowledges all."""

    alert_ids: tuple[int, ...] = ()
    dismiss: bool = False


@dataclass(frozen=True, slots=True)
class Reconcile:
    """Compare open trades with the broker's positionbook now."""


Command = Union[
    CreateTrade,
    ModifyTrade,
    ExitTrade,
    ExitTrades,
    ExitAll,
    Rearm,
    PauseTrade,
    ResumeTrade,
    SaveStrategy,
    DeleteStrategy,
    AcknowledgeAlerts,
    Reconcile,
]


@dataclass(frozen=True, slots=True)
class Accepted:
    message: str = ""
    trade_id: int | None = None
    trade_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Denied:
    """``code`` is upper case (e.g. UNKNOWN_TRADE, INVALID_STOP, HALTED); ``message`` for humans."""

    code: str
    message: str


Result = Union[Accepted, Denied]
