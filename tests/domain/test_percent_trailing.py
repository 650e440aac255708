"""Trailing distances in PERCENT, each a percent of the price it is measured from.

Definitions (LONG; a SHORT mirrors every sign):

- distance d% (continuous trailing): stop = best × (1 − d/100), best = the high watermark.
- activation a%: trailing starts once best ≥ entry × (1 + a/100) (a profit of a% of the entry).
- step trailing: the stop starts at entry × (1 − d/100).  Step k is reached when
  best ≥ T(k), T(0) = entry, T(k) = T(k−1) × (1 + t/100) (each step trigger is
  t% beyond the previous step's trigger price); at step k the stop is
  S(k) = S(k−1) × (1 + m/100) (each step moves the stop m% of its own level).

Every expected value below is worked out by hand from these definitions for an
entry of 2500.00 and a tick of 0.05; stops round to the tick on the protective
side (a LONG's up, a SHORT's down).
"""

from __future__ import annotations

import pytest

from tmtool.domain.models import Distance, DistanceMode, Side, TradeRisk, TrailingSettings
from tmtool.domain.rules import LevelChange, evaluate_tick, initial_levels, retrail
from tests.domain.test_rules import TS, make_trade

PCT = DistanceMode.PERCENT
L, S = Side.LONG, Side.SHORT


def pct(value: float) -> Distance:
    return Distance(value, PCT)


def walk(trade, prices):
    """Feed ``prices`` and apply watermarks and level changes as the engine does; the trailing stop after each."""
    stops = []
    for price in prices:
        evaluation = evaluate_tick(trade, price, TS)
        trade.last_price = price
        if evaluation is not None:
            assert evaluation.exit is None, f"unexpected exit at {price}"
            trade.high_watermark, trade.low_watermark = evaluation.high_watermark, evaluation.low_watermark
            for change in evaluation.changes:
                setattr(trade, change.field, change.new)
        stops.append(trade.trailing_stop)
    return stops


# --------------------------------------------------------------------------- continuous


@pytest.mark.parametrize(
    "side, start, prices, stops",
    [
        # 1% of the best: 2600 → 2574.00 (1% of the entry would give 2575.00)
        (L, 2475.0, [2600.0, 2610.0, 2590.0], [2574.0, 2583.9, 2583.9]),
        (S, 2525.0, [2400.0, 2390.0, 2410.0], [2424.0, 2413.9, 2413.9]),
    ],
)
def test_continuous_percent_trailing_is_a_percent_of_the_best_price(side, start, prices, stops):
    trailing = TrailingSettings(pct(1.0))
    assert initial_levels(side, 2500.0, TradeRisk(trailing=trailing), 0.05, 100).trailing_stop == start
    trade = make_trade(side, trailing=trailing, trailing_stop=start)
    assert walk(trade, prices) == stops


@pytest.mark.parametrize(
    "side, best, stop",
    [
        (L, 2601.35, 2575.35),  # 2575.3365 rounds up
        (S, 2398.65, 2422.60),  # 2422.6365 rounds down
    ],
)
def test_percent_trailing_rounds_protectively(side, best, stop):
    trade = make_trade(side, trailing=TrailingSettings(pct(1.0)), trailing_stop=2475.0 if side is L else 2525.0)
    evaluation = evaluate_tick(trade, best, TS)
    assert evaluation.changes == (LevelChange("trailing_stop", trade.trailing_stop, stop, "TRAIL"),)


@pytest.mark.parametrize(
    "side, before, at_activation, stop",
    [
        (L, 2549.95, 2550.0, 2524.5),  # activation 2% of 2500 = 50 points; then 1% of 2550
        (S, 2450.05, 2450.0, 2474.5),
    ],
)
def test_percent_activation_is_a_profit_measured_from_the_entry(side, before, at_activation, stop):
    trailing = TrailingSettings(pct(1.0), activation=pct(2.0))
    assert initial_levels(side, 2500.0, TradeRisk(trailing=trailing), 0.05, 100).trailing_stop is None
    trade = make_trade(side, trailing=trailing)
    assert walk(trade, [before, at_activation]) == [None, stop]


# --------------------------------------------------------------------------- step


STEP = TrailingSettings(pct(2.0), step_trigger=pct(1.0), step_move=pct(1.0))


@pytest.mark.parametrize(
    "side, start, prices, stops",
    [
        # T(1) = 2525, T(2) = 2550.25, T(3) = 2575.7525; S(k) = 2450 × 1.01^k
        (
            L,
            2450.0,
            [2524.95, 2525.0, 2550.2, 2550.25, 2575.7, 2575.8],
            [2450.0, 2474.5, 2474.5, 2499.25, 2499.25, 2524.25],
        ),
        # T(1) = 2475, T(2) = 2450.25, T(3) = 2425.7475; S(k) = 2550 × 0.99^k
        (
            S,
            2550.0,
            [2475.05, 2475.0, 2450.3, 2450.25, 2425.8, 2425.7],
            [2550.0, 2524.5, 2524.5, 2499.25, 2499.25, 2474.25],
        ),
    ],
)
def test_each_percent_step_is_measured_from_the_previous_step(side, start, prices, stops):
    assert initial_levels(side, 2500.0, TradeRisk(trailing=STEP), 0.05, 100).trailing_stop == start
    trade = make_trade(side, trailing=STEP, trailing_stop=start)
    assert walk(trade, prices) == stops


@pytest.mark.parametrize("side, gap, stop", [(L, 2551.0, 2499.25), (S, 2449.0, 2499.25)])
def test_a_gap_through_two_percent_steps_takes_both(side, gap, stop):
    trade = make_trade(side, trailing=STEP, trailing_stop=2450.0 if side is L else 2550.0)
    assert walk(trade, [gap]) == [stop]


@pytest.mark.parametrize(
    "side, prices, stops",
    [
        # LONG: S(1) = 2450 × 1.005 = 2462.25, S(2) = 2450 × 1.005² = 2474.56125 → 2474.60
        # SHORT: S(1) = 2550 × 0.995 = 2537.25, S(2) = 2550 × 0.995² = 2524.56375 → 2524.55
        (L, [2525.0, 2550.25], [2462.25, 2474.6]),
        (S, [2475.0, 2450.25], [2537.25, 2524.55]),
    ],
)
def test_a_percent_step_move_is_a_percent_of_the_stop(side, prices, stops):
    trailing = TrailingSettings(pct(2.0), step_trigger=pct(1.0), step_move=pct(0.5))
    trade = make_trade(side, trailing=trailing, trailing_stop=2450.0 if side is L else 2550.0)
    assert walk(trade, prices) == stops


@pytest.mark.parametrize(
    "side, prices, stops",
    [
        # activation 1.5% of 2500 = 37.5 points: at 2530 step 1 is reached but trailing waits
        (L, [2530.0, 2537.5, 2550.25], [None, 2474.5, 2499.25]),
        (S, [2470.0, 2462.5, 2450.25], [None, 2524.5, 2499.25]),
    ],
)
def test_percent_step_trailing_waits_for_its_activation(side, prices, stops):
    trailing = TrailingSettings(pct(2.0), activation=pct(1.5), step_trigger=pct(1.0), step_move=pct(1.0))
    assert initial_levels(side, 2500.0, TradeRisk(trailing=trailing), 0.05, 100).trailing_stop is None
    trade = make_trade(side, trailing=trailing)
    assert walk(trade, prices) == stops


# --------------------------------------------------------------------------- user changes and old stops


@pytest.mark.parametrize("side, best, last, stop", [(L, 2600.0, 2590.0, 2574.0), (S, 2400.0, 2410.0, 2424.0)])
def test_retrail_in_percent_measures_from_the_best_price(side, best, last, stop):
    trade = make_trade(side, trailing=TrailingSettings(Distance(200)), trailing_stop=2300.0 if side is L else 2700.0)
    if side is L:
        trade.high_watermark = best
    else:
        trade.low_watermark = best
    trade.last_price = last
    assert retrail(trade, TrailingSettings(pct(1.0))) == stop


def test_a_long_stop_stored_under_the_old_meaning_is_kept_until_the_new_one_is_tighter():
    # 1% of the entry trailed 2600 to 2575.00; under 1% of the best the stop at 2600.50
    # would be 2574.50, looser: the stored stop stays.  At 2605 the new level 2578.95 is tighter.
    trade = make_trade(L, trailing=TrailingSettings(pct(1.0)), trailing_stop=2575.0, high_watermark=2600.0)
    assert walk(trade, [2600.5, 2601.0, 2605.0]) == [2575.0, 2575.0, 2578.95]
    assert retrail(trade, TrailingSettings(pct(1.0))) == 2578.95


def test_a_short_stop_stored_under_the_old_meaning_tightens_on_the_next_best_price():
    # Old meaning at best 2400: 2425.00; the new one at 2399.95 gives 2423.9495 → 2423.90.
    trade = make_trade(S, trailing=TrailingSettings(pct(1.0)), trailing_stop=2425.0, low_watermark=2400.0)
    assert walk(trade, [2410.0, 2399.95]) == [2425.0, 2423.9]
