"""Per-trade decision rules: pure functions of a trade, a price and a time.

CONTRACT (the engine calls exactly these; keep the signatures):

    initial_levels(side, entry_price, risk, tick_size, quantity, lot_size) -> InitialLevels
    evaluate_tick(trade, price, ts) -> TickEvaluation | None
    retrail(trade, new_trailing) -> float | None

Nothing here reads a clock, does I/O, or mutates its arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

from tmtool.engine.models import (
    ExitReason,
    PartialLevel,
    Side,
    Trade,
    TradeRisk,
    TrailingSettings,
)


@dataclass(frozen=True, slots=True)
class InitialLevels:
    stop_loss: float | None
    target: float | None
    trailing_stop: float | None  # None while trailing waits for its activation move
    partial_levels: tuple[PartialLevel, ...]


@dataclass(frozen=True, slots=True)
class LevelChange:
    """A level the rules moved: ``field`` is "stop_loss" or "trailing_stop"."""

    field: str
    old: float | None
    new: float
    kind: str  # "TRAIL" (trailing ratchet) or "BREAKEVEN"


@dataclass(frozen=True, slots=True)
class ExitSignal:
    """Exit ``quantity`` because ``price`` (the tick) crossed ``trigger_price`` (the level)."""

    reason: ExitReason
    quantity: int
    trigger_price: float
    price: float
    ts: float
    partial_indexes: tuple[int, ...] = ()  # which partial levels this exit fills


@dataclass(frozen=True, slots=True)
class TickEvaluation:
    high_watermark: float
    low_watermark: float
    changes: tuple[LevelChange, ...] = ()
    exit: ExitSignal | None = None


def initial_levels(
    side: Side,
    entry_price: float,
    risk: TradeRisk,
    tick_size: float,
    quantity: int,
    lot_size: int = 1,
) -> InitialLevels:
    raise NotImplementedError


def evaluate_tick(trade: Trade, price: float, ts: float) -> TickEvaluation | None:
    """Evaluate one accepted tick for an ACTIVE, un-paused trade.

    Returns None when the tick changes nothing but the last price (the hot path).
    Order of checks: effective stop (reason TRAILING_SL when the trailing stop is
    the tighter level, else STOP_LOSS), target (whole open quantity), partial
    levels; then watermarks, trailing ratchet and breakeven.  Touching a level
    counts as crossing it.
    """
    raise NotImplementedError


def retrail(trade: Trade, new_trailing: TrailingSettings | None) -> float | None:
    """The trailing stop after the user changes trailing settings: never looser than now."""
    raise NotImplementedError
