"""Property-based tests of the per-trade rules over random price paths.

Prices are whole ticks (0.05) around an entry of 2500.00.  ``apply`` below is a
small reference of what the engine does with a ``TickEvaluation``.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction
from itertools import accumulate

from hypothesis import given, settings
from hypothesis import strategies as st

from tmtool.domain.models import (
    Distance,
    DistanceMode,
    PartialTarget,
    Side,
    Trade,
    TradeRisk,
    TradeStatus,
    TrailingSettings,
)
from tmtool.domain.rules import TickEvaluation, evaluate_tick, initial_levels
from tests.domain.test_rules import make_trade

TICK = 0.05
ENTRY_TICKS = 50_000  # 2500.00
ENTRY = ENTRY_TICKS * TICK
FAST = settings(max_examples=200, derandomize=True, deadline=None)


def price_of(ticks: int) -> float:
    return round(ticks * TICK, 2)


def ticks_of(price: float | None) -> int | None:
    return None if price is None else round(price / TICK)


# --------------------------------------------------------------------------- the reference engine


def apply(trade: Trade, price: float, evaluation: TickEvaluation | None) -> None:
    """Apply one evaluation to ``trade`` the way the engine does."""
    trade.last_price = price
    if evaluation is None:
        return
    trade.high_watermark = evaluation.high_watermark
    trade.low_watermark = evaluation.low_watermark
    for change in evaluation.changes:
        setattr(trade, change.field, change.new)
        if change.kind == "BREAKEVEN":
            trade.breakeven_done = True
    signal = evaluation.exit
    if signal is None:
        return
    if signal.partial_indexes:
        trade.partial_levels = tuple(
            dataclasses.replace(level, done=True) if i in signal.partial_indexes else level
            for i, level in enumerate(trade.partial_levels)
        )
    trade.exited_quantity += signal.quantity
    trade.quantity -= signal.quantity
    if trade.quantity == 0:
        trade.status = TradeStatus.CLOSED
        trade.exit_reason = signal.reason
        trade.exit_trigger_price = signal.trigger_price


def open_trade(side: Side, risk: TradeRisk, quantity: int = 100, lot_size: int = 1) -> Trade:
    levels = initial_levels(side, ENTRY, risk, TICK, quantity, lot_size)
    return make_trade(
        side,
        entry=ENTRY,
        quantity=quantity,
        lot_size=lot_size,
        stop_loss=levels.stop_loss,
        target=levels.target,
        trailing=risk.trailing,
        trailing_stop=levels.trailing_stop,
        breakeven_after=risk.breakeven_after,
        partial_levels=levels.partial_levels,
    )


def run(trade: Trade, prices: list[float]) -> list[tuple[int, TickEvaluation]]:
    """Feed ``prices`` one by one; the (tick index, evaluation) of every non-None result."""
    seen = []
    for index, price in enumerate(prices):
        evaluation = evaluate_tick(trade, price, float(index))
        if evaluation is not None:
            seen.append((index, evaluation))
        apply(trade, price, evaluation)
    return seen


# --------------------------------------------------------------------------- generators


def points(max_ticks: int) -> st.SearchStrategy[Distance]:
    return st.integers(1, max_ticks).map(lambda n: Distance(n * TICK))


def percents(max_ticks: int) -> st.SearchStrategy[Distance]:
    return st.integers(1, max_ticks // 5).map(lambda n: Distance(n / 100, DistanceMode.PERCENT))  # of 2500: n x 0.25 pts


def distances(max_ticks: int) -> st.SearchStrategy[Distance]:
    return st.one_of(points(max_ticks), percents(max_ticks))


@st.composite
def step_pairs(draw, distance: st.SearchStrategy[Distance]) -> tuple[Distance, Distance]:
    """(step_trigger, step_move) with the move no larger than the trigger when both share a mode."""
    trigger = draw(distance)
    move = draw(distance)
    if move.mode is trigger.mode and move.value > trigger.value:
        move = dataclasses.replace(move, value=trigger.value)
    return trigger, move


@st.composite
def trailings(draw, in_points: bool = False) -> TrailingSettings:
    """Trailing settings; ``in_points`` keeps the distance and the steps in POINTS.

    The activation may be PERCENT either way: it is measured from the entry.
    """
    measured = points if in_points else distances
    distance = draw(measured(200))
    activation = draw(st.none() | distances(200))
    if draw(st.booleans()):
        trigger, move = draw(step_pairs(measured(100)))
        return TrailingSettings(distance, activation, trigger, move)
    return TrailingSettings(distance, activation)


@st.composite
def risks(draw, trailing_in_points: bool = False) -> TradeRisk:
    fractions = draw(st.lists(st.sampled_from([0.1, 0.2, 0.25, 0.3, 0.4]), max_size=2))
    partials = tuple(PartialTarget(draw(distances(300)), f) for f in fractions)
    return TradeRisk(
        stop_loss=draw(st.none() | distances(200)),
        target=draw(st.none() | distances(400)),
        trailing=draw(st.none() | trailings(trailing_in_points)),
        breakeven_after=draw(st.none() | distances(200)),
        partial_targets=partials,
    )


# Favourable offsets from the entry in ticks: a random walk that stays well above 0.
# Small steps touch levels exactly; large ones gap through them.
steps = st.one_of(st.integers(-3, 3), st.integers(-12, 12), st.integers(-60, 60))
paths = st.lists(steps, min_size=1, max_size=100).map(lambda moves: list(accumulate(moves)))
sides = st.sampled_from([Side.LONG, Side.SHORT])


def prices_for(side: Side, offsets: list[int]) -> list[float]:
    return [price_of(ENTRY_TICKS + side.sign * offset) for offset in offsets]


# --------------------------------------------------------------------------- properties


@FAST
@given(side=sides, risk=risks(), offsets=paths)
def test_the_trailing_stop_never_loosens(side, risk, offsets):
    trade = open_trade(side, risk)
    previous = trade.trailing_stop
    for index, price in enumerate(prices_for(side, offsets)):
        apply(trade, price, evaluate_tick(trade, price, float(index)))
        current = trade.trailing_stop
        if previous is not None:
            assert current is not None
            assert (current >= previous) if side is Side.LONG else (current <= previous)
        previous = current


@FAST
@given(side=sides, risk=risks(), offsets=paths, lots=st.integers(1, 8), lot_size=st.sampled_from([1, 25, 50]))
def test_a_trade_exits_at_most_once_and_never_more_than_it_holds(side, risk, offsets, lots, lot_size):
    quantity = lots * lot_size
    trade = open_trade(side, risk, quantity, lot_size)
    exits = [e.exit for _, e in run(trade, prices_for(side, offsets)) if e.exit is not None]
    whole = [signal for signal in exits if signal.reason.value != "PARTIAL_TARGET"]
    assert len(whole) <= 1
    assert all(signal.quantity > 0 and signal.quantity % lot_size == 0 for signal in exits)
    partials = [signal for signal in exits if signal.reason.value == "PARTIAL_TARGET"]
    assert sum(signal.quantity for signal in partials) < quantity  # a partial never takes it all
    assert sum(signal.quantity for signal in exits) <= quantity
    assert trade.quantity == quantity - trade.exited_quantity >= 0
    if whole:
        assert exits[-1] is whole[0]  # nothing after the whole exit
        assert trade.status is TradeStatus.CLOSED and trade.quantity == 0


def _mirror_record(trade: Trade, seen: list[tuple[int, TickEvaluation]]):
    """Everything observable, in ticks measured in the trade's favour from the entry."""
    sign = trade.side.sign

    def rel(price):
        return None if price is None else (ticks_of(price) - ENTRY_TICKS) * sign

    events = []
    for index, evaluation in seen:
        best = evaluation.high_watermark if sign > 0 else evaluation.low_watermark
        worst = evaluation.low_watermark if sign > 0 else evaluation.high_watermark
        signal = evaluation.exit
        events.append(
            (
                index,
                rel(best),
                rel(worst),
                tuple((c.field, rel(c.old), rel(c.new), c.kind) for c in evaluation.changes),
                None
                if signal is None
                else (signal.reason, signal.quantity, rel(signal.trigger_price), rel(signal.price), signal.partial_indexes),
            )
        )
    return events, rel(trade.stop_loss), rel(trade.trailing_stop), trade.quantity, trade.status


@FAST
@given(risk=risks(trailing_in_points=True), offsets=paths)
def test_a_long_behaves_exactly_like_a_short_on_the_mirrored_path(risk, offsets):
    """Every level measured from the entry mirrors exactly; so does trailing in POINTS.

    Trailing in PERCENT is measured from the best price (``best × (1 − d)`` for a
    LONG, ``best × (1 + d)`` for a SHORT), which no reflection about the entry
    maps onto each other; it is checked against its formula below instead.
    """
    long = open_trade(Side.LONG, risk)
    short = open_trade(Side.SHORT, risk)
    long_seen = run(long, prices_for(Side.LONG, offsets))
    short_seen = run(short, prices_for(Side.SHORT, offsets))  # 2 x entry - the LONG's prices
    assert _mirror_record(long, long_seen) == _mirror_record(short, short_seen)


def _crossed(trade: Trade, price: float) -> bool:
    """Does ``price`` touch or cross any live level of ``trade`` (an independent oracle)?"""
    sign = trade.side.sign
    stops = [level for level in (trade.stop_loss, trade.trailing_stop) if level is not None]
    profits = [trade.target] if trade.target is not None else []
    profits += [level.price for level in trade.partial_levels if not level.done]
    return any((price - level) * sign <= 1e-9 for level in stops) or any(
        (price - level) * sign >= -1e-9 for level in profits
    )


@FAST
@given(side=sides, risk=risks(), offsets=paths)
def test_an_exit_fires_on_the_first_tick_that_crosses_a_level_never_before(side, risk, offsets):
    trade = open_trade(side, risk)
    for index, price in enumerate(prices_for(side, offsets)):
        if trade.status is not TradeStatus.ACTIVE:
            break
        crossed = _crossed(trade, price)
        evaluation = evaluate_tick(trade, price, float(index))
        fired = evaluation is not None and evaluation.exit is not None
        assert fired == crossed, f"tick {index} at {price}: crossed={crossed} fired={fired}"
        apply(trade, price, evaluation)


@FAST
@given(side=sides, risk=risks(), offsets=paths)
def test_levels_stay_on_the_tick_grid_and_moved_stops_stay_behind_the_price(side, risk, offsets):
    trade = open_trade(side, risk)
    for index, price in enumerate(prices_for(side, offsets)):
        evaluation = evaluate_tick(trade, price, float(index))
        for change in evaluation.changes if evaluation else ():
            assert abs(change.new / TICK - round(change.new / TICK)) < 1e-6
            assert (change.new - price) * side.sign < 0
        apply(trade, price, evaluation)


# --------------------------------------------------------------------------- PERCENT trailing against its formula


def _percent(hundredths: int) -> Distance:
    return Distance(hundredths / 100, DistanceMode.PERCENT)


@st.composite
def percent_trailings(draw) -> tuple[TrailingSettings, dict]:
    """PERCENT trailing settings and the same numbers in hundredths of a percent (exact)."""
    numbers = {"d": draw(st.integers(1, 300)), "a": draw(st.none() | st.integers(1, 400)), "t": None, "m": None}
    if draw(st.booleans()):
        numbers["t"] = draw(st.integers(20, 200))
        numbers["m"] = draw(st.integers(1, numbers["t"]))
    settings = TrailingSettings(
        _percent(numbers["d"]),
        None if numbers["a"] is None else _percent(numbers["a"]),
        None if numbers["t"] is None else _percent(numbers["t"]),
        None if numbers["m"] is None else _percent(numbers["m"]),
    )
    return settings, numbers


_DUST = Fraction(1, 10**9)


def formula_stop_ticks(side: Side, best_ticks: int, numbers: dict) -> int | None:
    """The trailing stop, in ticks, straight from the written definitions, in exact arithmetic.

    LONG (a SHORT flips every sign): None until best ≥ entry × (1 + a%); continuous:
    best × (1 − d%); step: entry × (1 − d%) × (1 + m%)^k for the largest k with
    best ≥ entry × (1 + t%)^k.  Rounded to the tick on the protective side.
    """
    sign = side.sign
    entry = Fraction(ENTRY_TICKS)
    best = Fraction(best_ticks)
    hundredth = Fraction(1, 10_000)
    if numbers["a"] is not None and (best - entry) * sign < entry * numbers["a"] * hundredth - _DUST:
        return None
    if numbers["t"] is None:
        raw = best * (1 - sign * numbers["d"] * hundredth)
    else:
        trigger_factor = 1 + sign * numbers["t"] * hundredth
        steps, trigger = 0, entry * trigger_factor
        while (best - trigger) * sign >= -_DUST * trigger:
            steps, trigger = steps + 1, trigger * trigger_factor
        raw = entry * (1 - sign * numbers["d"] * hundredth) * (1 + sign * numbers["m"] * hundredth) ** steps
    return math.ceil(raw - _DUST) if side is Side.LONG else math.floor(raw + _DUST)


@FAST
@given(side=sides, trailing=percent_trailings(), offsets=paths)
def test_percent_trailing_follows_its_formula_on_random_paths(side, trailing, offsets):
    settings, numbers = trailing
    trade = open_trade(side, TradeRisk(trailing=settings))
    assert ticks_of(trade.trailing_stop) == formula_stop_ticks(side, ENTRY_TICKS, numbers)
    best = ENTRY_TICKS
    for index, price in enumerate(prices_for(side, offsets)):
        evaluation = evaluate_tick(trade, price, float(index))
        apply(trade, price, evaluation)
        if trade.status is not TradeStatus.ACTIVE:
            break
        ticks = ticks_of(price)
        best = max(best, ticks) if side is Side.LONG else min(best, ticks)
        assert ticks_of(trade.trailing_stop) == formula_stop_ticks(side, best, numbers), f"tick {index} at {price}"
