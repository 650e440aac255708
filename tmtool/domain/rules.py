"""Per-trade decision rules: pure functions of a trade, a price and a time.

CONTRACT (the engine calls exactly these; keep the signatures):

    initial_levels(side, entry_price, risk, tick_size, quantity, lot_size) -> InitialLevels
    evaluate_tick(trade, price, ts) -> TickEvaluation | None
    retrail(trade, new_trailing) -> float | None
    breakeven_stop(trade) -> float | None

Nothing here reads a clock, does I/O, or mutates its arguments.

Conventions shared by every rule:

- "Favourable move" is ``(price - entry) * side.sign``: positive when the trade
  is in profit.
- A PERCENT distance is a percent of the price it is measured from (LONG shown;
  a SHORT mirrors every sign):

  * stop loss, target, partial targets, breakeven and trailing activation are
    measured from the entry: ``entry × (1 ∓ value/100)``;
  * the continuous trailing stop from the best price (the high watermark):
    ``best × (1 − distance/100)``;
  * step trailing starts at ``entry × (1 − distance/100)``; step k is reached
    when the best price touches ``T(k) = T(k−1) × (1 + step_trigger/100)``,
    ``T(0) = entry`` (each trigger measured from the previous step's trigger
    price, not from the tick that crossed it), and moves the stop to
    ``S(k) = S(k−1) × (1 + step_move/100)`` (each move measured from the
    stop's own level).  With step_move = step_trigger the stop keeps its
    distance percent below every step's trigger price.

  A POINTS distance is the same number of points from any of these prices.
- Stops are rounded with ``round_stop`` (never looser than asked), targets and
  partial levels with ``round_target`` (never further than asked).
- A watermark of 0.0 means "not set yet" and counts as the entry price.
- A level the rules move by themselves (trailing ratchet, breakeven) is never
  placed at or through the current price: such a move waits for a better price
  instead of firing the stop on the very next tick.
- The trailing stop only ever tightens; the fixed stop is moved by the rules
  only by breakeven, and only towards profit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from operator import attrgetter

from tmtool.domain.models import (
    Distance,
    DistanceMode,
    ExitReason,
    PartialLevel,
    Side,
    Trade,
    TradeRisk,
    TradeStatus,
    TrailingSettings,
    round_stop,
    round_target,
)

_STEP_EPSILON = 1e-9  # float dust allowance when counting trailing steps
_LONG = Side.LONG
_ACTIVE = TradeStatus.ACTIVE


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


# --------------------------------------------------------------------------- initial levels


def initial_levels(
    side: Side,
    entry_price: float,
    risk: TradeRisk,
    tick_size: float,
    quantity: int,
    lot_size: int = 1,
) -> InitialLevels:
    """The levels of a new trade from its strategy's per-trade risk.

    Partial levels are ordered nearest first; their quantities are whole lots of
    the entry ``quantity`` and always leave at least one lot for the final
    target or the trailing stop (later levels are cut first).
    """
    sign = side.sign
    stop_loss = None
    if risk.stop_loss is not None:
        stop_loss = round_stop(entry_price - sign * risk.stop_loss.points(entry_price), side, tick_size)
    target = None
    if risk.target is not None:
        target = round_target(entry_price + sign * risk.target.points(entry_price), side, tick_size)
    trailing_stop = None
    if risk.trailing is not None:
        trailing_stop = trailing_level(risk.trailing, side, entry_price, entry_price, tick_size)
    partials = _partial_levels(side, entry_price, risk, tick_size, quantity, lot_size)
    return InitialLevels(stop_loss, target, trailing_stop, partials)


def _partial_levels(
    side: Side, entry_price: float, risk: TradeRisk, tick_size: float, quantity: int, lot_size: int
) -> tuple[PartialLevel, ...]:
    if not risk.partial_targets:
        return ()
    lot = max(1, lot_size)
    lots_available = quantity // lot - 1  # one lot always stays for the final exit
    if lots_available <= 0:
        return ()
    priced = sorted(
        (
            (round_target(entry_price + side.sign * p.distance.points(entry_price), side, tick_size), p.fraction)
            for p in risk.partial_targets
        ),
        key=lambda pair: pair[0] * side.sign,
    )
    levels: list[PartialLevel] = []
    for price, fraction in priced:
        lots = min(int(math.floor(quantity * fraction / lot + _STEP_EPSILON)), lots_available)
        if lots <= 0:
            continue
        lots_available -= lots
        levels.append(PartialLevel(price=price, quantity=lots * lot))
    return tuple(levels)


# --------------------------------------------------------------------------- trailing


def trailing_level(
    settings: TrailingSettings, side: Side, entry_price: float, best_price: float, tick_size: float
) -> float | None:
    """Where the trailing stop belongs given the best price seen (no ratchet applied).

    None while the favourable move from entry is short of ``activation``
    (PERCENT: a percent of the entry).  Continuous trailing: ``best_price`` ∓
    distance (PERCENT: a percent of ``best_price``).  Step trailing: entry ∓
    distance, moved by ``step_move`` for each step reached (see the module
    docstring for how PERCENT steps are measured).
    """
    sign = side.sign
    move = (best_price - entry_price) * sign
    if settings.activation is not None and move < settings.activation.points(entry_price) - _STEP_EPSILON:
        return None
    if settings.is_step:
        start = entry_price - sign * settings.distance.points(entry_price)
        steps = _steps_reached(settings.step_trigger, side, entry_price, best_price)  # type: ignore[arg-type]
        raw = _stop_after_steps(settings.step_move, side, start, steps)  # type: ignore[arg-type]
    else:
        raw = best_price - sign * settings.distance.points(best_price)
    return round_stop(raw, side, tick_size)


def _steps_reached(trigger: Distance, side: Side, entry_price: float, best_price: float) -> int:
    """How many step triggers ``best_price`` has touched, counting from the entry.

    POINTS: step k's trigger lies k × value from the entry.  PERCENT: it lies
    value % beyond the previous step's trigger, ``entry × (1 ± value/100)^k``.
    """
    sign = side.sign
    move = (best_price - entry_price) * sign
    if move <= 0:
        return 0
    if trigger.mode is not DistanceMode.PERCENT:
        return math.floor(move / trigger.value + _STEP_EPSILON) if trigger.value > 0 else 0
    factor = 1.0 + sign * trigger.value / 100.0
    if factor <= 0.0 or factor == 1.0:  # validation keeps PERCENT values in (0, 100)
        return 0
    # A first guess from logarithms, then settled by the trigger prices themselves.
    steps = max(0, math.floor(math.log(best_price / entry_price) / math.log(factor)))
    while steps > 0 and not _touched(_step_trigger_price(entry_price, factor, steps), best_price, sign):
        steps -= 1
    while _touched(_step_trigger_price(entry_price, factor, steps + 1), best_price, sign):
        steps += 1
    return steps


def _step_trigger_price(entry_price: float, factor: float, steps: int) -> float:
    return entry_price * factor**steps


def _touched(level: float, best_price: float, sign: int) -> bool:
    """True when ``best_price`` has reached ``level`` in the trade's favour (float dust allowed)."""
    return (best_price - level) * sign >= -_STEP_EPSILON * level


def _stop_after_steps(step_move: Distance, side: Side, start: float, steps: int) -> float:
    """The step-trailing stop after ``steps`` steps from ``start``.

    POINTS: ``start`` ± steps × value.  PERCENT: each step moves the stop value %
    of its own level, ``start × (1 ± value/100)^steps``.
    """
    if steps <= 0:
        return start
    sign = side.sign
    if step_move.mode is DistanceMode.PERCENT:
        return start * (1.0 + sign * step_move.value / 100.0) ** steps
    return start + sign * steps * step_move.value


def _tighter(level: float, than: float | None, side: Side) -> bool:
    """True when ``level`` is a tighter stop than ``than`` (None counts as absent)."""
    if than is None:
        return True
    return level > than if side is Side.LONG else level < than


def _below_price(level: float, price: float, side: Side) -> bool:
    """True when a stop at ``level`` is not yet crossed by ``price``."""
    return level < price if side is Side.LONG else level > price


# --------------------------------------------------------------------------- ticks


def evaluate_tick(trade: Trade, price: float, ts: float) -> TickEvaluation | None:
    """Evaluate one accepted tick for an ACTIVE, un-paused trade.

    Returns None when the tick changes nothing but the last price (the hot path).
    Order of checks: effective stop (reason TRAILING_SL when the trailing stop is
    the tighter level, else STOP_LOSS), target (whole open quantity), partial
    levels; then watermarks, trailing ratchet and breakeven.  Touching a level
    counts as crossing it.

    Exit checks use the levels as they were before this tick.  When the exit
    takes the whole open quantity no level changes are reported (the trade is
    leaving); after a partial exit the ratchet and breakeven still apply.
    """
    if trade.status is not _ACTIVE or trade.paused or trade.quantity <= 0:
        return None
    entry = trade.entry_price
    high = trade.high_watermark
    low = trade.low_watermark
    new_high = high if high > 0 else entry
    new_low = low if low > 0 else entry
    if price > new_high:
        new_high = price
    if price < new_low:
        new_low = price
    moved_watermark = new_high != high or new_low != low

    exit_signal = _exit_signal(trade, price, ts)
    if exit_signal is None and not moved_watermark:
        return None
    changes: tuple[LevelChange, ...] = ()
    if moved_watermark and (exit_signal is None or exit_signal.quantity < trade.quantity):
        best = new_high if trade.side is _LONG else new_low
        changes = _level_changes(trade, best, price)
    return TickEvaluation(new_high, new_low, changes, exit_signal)


# Every field of a trade that ``evaluate_tick`` reads (tests/engine/test_level_index.py checks it).
EVALUATION_FIELDS = (
    "status", "paused", "quantity", "side", "entry_price", "high_watermark", "low_watermark", "stop_loss",
    "trailing_stop", "target", "partial_levels", "trailing", "tick_size", "breakeven_after", "breakeven_done",
)
_evaluation_key = attrgetter(*EVALUATION_FIELDS)


def evaluation_key(trade: Trade) -> tuple:
    """The values of ``EVALUATION_FIELDS``: two trades with equal keys get equal evaluations of any
    tick, so a book of trades opened alike can evaluate one of them per tick."""
    return _evaluation_key(trade)


def stop_crossed(trade: Trade, price: float) -> bool:
    """Whether ``price`` is at or beyond the trade's effective stop (False without a stop or a price)."""
    stop = trade.effective_stop
    if stop is None or not price or price <= 0:
        return False
    return price <= stop if trade.side is _LONG else price >= stop


def _exit_signal(trade: Trade, price: float, ts: float) -> ExitSignal | None:
    long = trade.side is _LONG
    stop = trade.stop_loss
    trail = trade.trailing_stop
    if trail is not None and (stop is None or (trail > stop if long else trail < stop)):
        if (price <= trail) if long else (price >= trail):
            return ExitSignal(ExitReason.TRAILING_SL, trade.quantity, trail, price, ts)
    elif stop is not None and ((price <= stop) if long else (price >= stop)):
        return ExitSignal(ExitReason.STOP_LOSS, trade.quantity, stop, price, ts)
    target = trade.target
    if target is not None and ((price >= target) if long else (price <= target)):
        return ExitSignal(ExitReason.TARGET, trade.quantity, target, price, ts)
    if trade.partial_levels:
        return _partial_exit(trade, price, ts, long)
    return None


def _partial_exit(trade: Trade, price: float, ts: float, long: bool) -> ExitSignal | None:
    for level in trade.partial_levels:  # the common case: nothing crossed, nothing allocated
        if not level.done and ((price >= level.price) if long else (price <= level.price)):
            break
    else:
        return None
    quantity = 0
    indexes: list[int] = []
    trigger = 0.0
    for index, level in enumerate(trade.partial_levels):
        if level.done or not ((price >= level.price) if long else (price <= level.price)):
            continue
        if not indexes or (level.price > trigger if long else level.price < trigger):
            trigger = level.price
        indexes.append(index)
        quantity += level.quantity
    if quantity >= trade.quantity:
        return ExitSignal(ExitReason.TARGET, trade.quantity, trigger, price, ts, tuple(indexes))
    return ExitSignal(ExitReason.PARTIAL_TARGET, quantity, trigger, price, ts, tuple(indexes))


def _level_changes(trade: Trade, best: float, price: float) -> tuple[LevelChange, ...]:
    side = trade.side
    changes: list[LevelChange] = []
    if trade.trailing is not None:
        level = trailing_level(trade.trailing, side, trade.entry_price, best, trade.tick_size)
        if level is not None and _tighter(level, trade.trailing_stop, side) and _below_price(level, price, side):
            changes.append(LevelChange("trailing_stop", trade.trailing_stop, level, "TRAIL"))
    level = _breakeven_level(trade, best, price)
    if level is not None:
        changes.append(LevelChange("stop_loss", trade.stop_loss, level, "BREAKEVEN"))
    return tuple(changes)


def _breakeven_level(trade: Trade, best: float, price: float) -> float | None:
    """The entry as a stop once ``best`` is ``breakeven_after`` in profit, when that tightens the stop."""
    if trade.breakeven_after is None or trade.breakeven_done:
        return None
    side = trade.side
    entry = trade.entry_price
    if (best - entry) * side.sign < trade.breakeven_after.points(entry) - _STEP_EPSILON:
        return None
    level = round_stop(entry, side, trade.tick_size)
    if _tighter(level, trade.stop_loss, side) and _below_price(level, price, side):
        return level
    return None


# --------------------------------------------------------------------------- user changes


def breakeven_stop(trade: Trade) -> float | None:
    """The stop breakeven sets right now, after the user set ``breakeven_after``; None: no move.

    Measured on the best price seen so far (a watermark of 0.0 counts as the
    entry), so a trade already that far in profit moves its stop to the entry
    at once instead of waiting for a new best price.  As on a tick, the stop
    only tightens and is never placed at or through the last price.
    """
    if trade.status is not _ACTIVE or trade.last_price <= 0:
        return None
    entry = trade.entry_price
    if trade.side is _LONG:
        best = max(trade.high_watermark, entry)
    else:
        best = min(trade.low_watermark, entry) if trade.low_watermark > 0 else entry
    return _breakeven_level(trade, best, trade.last_price)


def retrail(trade: Trade, new_trailing: TrailingSettings | None) -> float | None:
    """The trailing stop after the user changes trailing settings: never looser than now.

    None settings remove trailing (returns None).  Otherwise the new settings are
    applied to the best price seen; a level that the last price has already
    crossed is measured from the last price instead, so a change of settings
    never fires the stop by itself.  The result is the tighter of that level and
    the current ``trailing_stop`` (None while nothing is active yet).
    """
    if new_trailing is None:
        return None
    side = trade.side
    entry = trade.entry_price
    if side is Side.LONG:
        best = max(trade.high_watermark, entry)
    else:
        best = min(trade.low_watermark, entry) if trade.low_watermark > 0 else entry
    level = trailing_level(new_trailing, side, entry, best, trade.tick_size)
    last = trade.last_price
    if level is not None and last > 0 and not _below_price(level, last, side):
        level = trailing_level(new_trailing, side, entry, last, trade.tick_size)
        if level is not None and not _below_price(level, last, side):
            level = None
    if level is None:
        return trade.trailing_stop
    return level if _tighter(level, trade.trailing_stop, side) else trade.trailing_stop
