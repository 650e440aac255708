"""Per-trade rules: initial levels, tick evaluation, retrail — on both sides.

Prices are written as offsets from the entry in the trade's favour, so one
test covers a LONG and the mirrored SHORT: ``at(side, 2500, +10)`` is 2510 for a
LONG and 2490 for a SHORT.
"""

from __future__ import annotations

import dataclasses

import pytest

from tmtool.domain.models import (
    Distance,
    DistanceMode,
    ExitReason,
    PartialLevel,
    PartialTarget,
    Product,
    Side,
    Trade,
    TradeRisk,
    TradeStatus,
    TrailingSettings,
)
from tmtool.domain.rules import (
    LevelChange,
    evaluate_tick,
    initial_levels,
    breakeven_stop,
    retrail,
)

SIDES = pytest.mark.parametrize("side", [Side.LONG, Side.SHORT])
PCT = DistanceMode.PERCENT
TS = 1_767_240_000.0


def at(side: Side, entry: float, offset: float) -> float:
    """A price ``offset`` points in the trade's favour from ``entry`` (negative: against)."""
    return round(entry + side.sign * offset, 6)


def make_trade(side: Side, entry: float = 2500.0, quantity: int = 100, **fields) -> Trade:
    """An ACTIVE trade with watermarks at the entry (as the engine opens one)."""
    values = dict(
        id=1,
        strategy="manual",
        symbol="RELIANCE",
        exchange="NSE",
        product=Product.MIS,
        side=side,
        quantity=quantity,
        entry_price=entry,
        entry_quantity=quantity,
        high_watermark=entry,
        low_watermark=entry,
        last_price=entry,
    )
    values.update(fields)
    return Trade(**values)


# --------------------------------------------------------------------------- initial levels


@SIDES
def test_points_stop_and_target_lie_on_either_side_of_entry(side):
    risk = TradeRisk(stop_loss=Distance(10), target=Distance(20))
    levels = initial_levels(side, 2500.0, risk, 0.05, 100)
    assert levels.stop_loss == at(side, 2500, -10)
    assert levels.target == at(side, 2500, 20)
    assert levels.trailing_stop is None and levels.partial_levels == ()


@SIDES
def test_percent_distances_are_percent_of_entry(side):
    risk = TradeRisk(stop_loss=Distance(1.0, PCT), target=Distance(2.0, PCT))
    levels = initial_levels(side, 2500.0, risk, 0.05, 100)
    assert levels.stop_loss == at(side, 2500, -25)
    assert levels.target == at(side, 2500, 50)


def test_levels_round_protectively_to_the_tick():
    risk = TradeRisk(stop_loss=Distance(1), target=Distance(2))
    long = initial_levels(Side.LONG, 100.03, risk, 0.05, 1)
    short = initial_levels(Side.SHORT, 100.03, risk, 0.05, 1)
    assert long.stop_loss == 99.05  # 99.03 rounded up: never further than asked
    assert long.target == 102.00  # 102.03 rounded down: never further than asked
    assert short.stop_loss == 101.00  # 101.03 rounded down
    assert short.target == 98.05  # 98.03 rounded up


@SIDES
def test_trailing_starts_at_distance_or_waits_for_activation(side):
    continuous = TradeRisk(trailing=TrailingSettings(Distance(15)))
    waiting = TradeRisk(trailing=TrailingSettings(Distance(15), activation=Distance(30)))
    step = TradeRisk(trailing=TrailingSettings(Distance(15), step_trigger=Distance(10), step_move=Distance(5)))
    assert initial_levels(side, 2500.0, continuous, 0.05, 1).trailing_stop == at(side, 2500, -15)
    assert initial_levels(side, 2500.0, waiting, 0.05, 1).trailing_stop is None
    assert initial_levels(side, 2500.0, step, 0.05, 1).trailing_stop == at(side, 2500, -15)


@SIDES
def test_partial_levels_are_whole_lots_nearest_first(side):
    risk = TradeRisk(
        partial_targets=(PartialTarget(Distance(20), 0.3), PartialTarget(Distance(10), 0.5)),
    )
    levels = initial_levels(side, 2500.0, risk, 0.05, 100, lot_size=25)
    assert levels.partial_levels == (
        PartialLevel(at(side, 2500, 10), 50),  # 0.5 of 100 = 2 lots
        PartialLevel(at(side, 2500, 20), 25),  # 0.3 of 100 = 1.2 lots -> 1 lot
    )


def test_partials_that_round_to_nothing_are_dropped_and_one_lot_always_stays():
    tiny = TradeRisk(partial_targets=(PartialTarget(Distance(10), 0.1),))
    assert initial_levels(Side.LONG, 2500.0, tiny, 0.05, 100, lot_size=25).partial_levels == ()
    greedy = TradeRisk(partial_targets=(PartialTarget(Distance(10), 0.5), PartialTarget(Distance(20), 0.49)))
    two_lots = initial_levels(Side.LONG, 2500.0, greedy, 0.05, 50, lot_size=25).partial_levels
    assert two_lots == (PartialLevel(2510.0, 25),)  # the second would take the last lot
    assert initial_levels(Side.LONG, 2500.0, greedy, 0.05, 25, lot_size=25).partial_levels == ()
    four_lots = initial_levels(Side.LONG, 2500.0, greedy, 0.05, 100, lot_size=25).partial_levels
    assert [level.quantity for level in four_lots] == [50, 25]
    assert sum(level.quantity for level in four_lots) < 100


# --------------------------------------------------------------------------- the hot path


@SIDES
def test_tick_inside_the_watermarks_changes_nothing(side):
    trade = make_trade(side, stop_loss=at(side, 2500, -10), target=at(side, 2500, 20))
    trade.high_watermark, trade.low_watermark = 2505.0, 2495.0
    assert evaluate_tick(trade, 2500.0, TS) is None
    assert evaluate_tick(trade, 2505.0, TS) is None


@SIDES
def test_new_watermark_is_reported_without_level_changes(side):
    trade = make_trade(side, stop_loss=at(side, 2500, -10))
    evaluation = evaluate_tick(trade, at(side, 2500, 3), TS)
    assert evaluation is not None and evaluation.exit is None and evaluation.changes == ()
    best = at(side, 2500, 3)
    if side is Side.LONG:
        assert (evaluation.high_watermark, evaluation.low_watermark) == (best, 2500.0)
    else:
        assert (evaluation.high_watermark, evaluation.low_watermark) == (2500.0, best)


def test_unset_watermarks_count_as_the_entry():
    trade = make_trade(Side.LONG, high_watermark=0.0, low_watermark=0.0)
    evaluation = evaluate_tick(trade, 2490.0, TS)
    assert (evaluation.high_watermark, evaluation.low_watermark) == (2500.0, 2490.0)


@SIDES
@pytest.mark.parametrize("offset", [-10, -10.05, -60])  # touching, one tick through, a gap
def test_stop_fires_when_touched_or_crossed(side, offset):
    stop = at(side, 2500, -10)
    trade = make_trade(side, stop_loss=stop)
    price = at(side, 2500, offset)
    signal = evaluate_tick(trade, price, TS).exit
    assert (signal.reason, signal.quantity, signal.trigger_price, signal.price, signal.ts) == (
        ExitReason.STOP_LOSS, 100, stop, price, TS,
    )


@SIDES
def test_stop_does_not_fire_one_tick_before(side):
    trade = make_trade(side, stop_loss=at(side, 2500, -10))
    trade.high_watermark, trade.low_watermark = 2510.0, 2490.0
    assert evaluate_tick(trade, at(side, 2500, -9.95), TS) is None


@SIDES
def test_target_exits_the_whole_open_quantity(side):
    trade = make_trade(side, quantity=60, target=at(side, 2500, 20))
    signal = evaluate_tick(trade, at(side, 2500, 20), TS).exit
    assert (signal.reason, signal.quantity, signal.trigger_price) == (ExitReason.TARGET, 60, at(side, 2500, 20))
    assert evaluate_tick(trade, at(side, 2500, 19.95), TS).exit is None


@SIDES
def test_reason_follows_the_tighter_stop(side):
    fixed, trail = at(side, 2500, -10), at(side, 2500, -5)
    tighter_trail = make_trade(side, stop_loss=fixed, trailing_stop=trail, trailing=TrailingSettings(Distance(5)))
    signal = evaluate_tick(tighter_trail, at(side, 2500, -5), TS).exit
    assert (signal.reason, signal.trigger_price) == (ExitReason.TRAILING_SL, trail)

    tighter_fixed = make_trade(side, stop_loss=trail, trailing_stop=fixed, trailing=TrailingSettings(Distance(10)))
    signal = evaluate_tick(tighter_fixed, at(side, 2500, -5), TS).exit
    assert (signal.reason, signal.trigger_price) == (ExitReason.STOP_LOSS, trail)

    equal = make_trade(side, stop_loss=fixed, trailing_stop=fixed, trailing=TrailingSettings(Distance(10)))
    assert evaluate_tick(equal, fixed, TS).exit.reason is ExitReason.STOP_LOSS


@SIDES
def test_one_partial_level_scales_out_its_quantity(side):
    levels = (PartialLevel(at(side, 2500, 10), 50), PartialLevel(at(side, 2500, 20), 25))
    trade = make_trade(side, partial_levels=levels, target=at(side, 2500, 30))
    signal = evaluate_tick(trade, at(side, 2500, 12), TS).exit
    assert (signal.reason, signal.quantity, signal.partial_indexes, signal.trigger_price) == (
        ExitReason.PARTIAL_TARGET, 50, (0,), at(side, 2500, 10),
    )


@SIDES
def test_partials_crossed_together_add_up_and_done_ones_are_skipped(side):
    levels = (PartialLevel(at(side, 2500, 10), 50), PartialLevel(at(side, 2500, 20), 25))
    trade = make_trade(side, partial_levels=levels)
    signal = evaluate_tick(trade, at(side, 2500, 25), TS).exit
    assert (signal.reason, signal.quantity, signal.partial_indexes, signal.trigger_price) == (
        ExitReason.PARTIAL_TARGET, 75, (0, 1), at(side, 2500, 20),
    )
    trade.partial_levels = (dataclasses.replace(levels[0], done=True), levels[1])
    trade.quantity = 50
    signal = evaluate_tick(trade, at(side, 2500, 25), TS).exit
    assert (signal.quantity, signal.partial_indexes) == (25, (1,))


@SIDES
def test_partials_taking_all_that_is_open_become_a_target(side):
    levels = (PartialLevel(at(side, 2500, 10), 50),)
    trade = make_trade(side, quantity=40, partial_levels=levels)  # 60 already left some other way
    signal = evaluate_tick(trade, at(side, 2500, 10), TS).exit
    assert (signal.reason, signal.quantity, signal.partial_indexes) == (ExitReason.TARGET, 40, (0,))


@SIDES
def test_partials_exactly_equal_to_the_open_quantity_become_a_target(side):
    levels = (PartialLevel(at(side, 2500, 10), 30), PartialLevel(at(side, 2500, 20), 20))
    trade = make_trade(side, quantity=50, partial_levels=levels)
    signal = evaluate_tick(trade, at(side, 2500, 20), TS).exit
    assert (signal.reason, signal.quantity, signal.partial_indexes) == (ExitReason.TARGET, 50, (0, 1))


@SIDES
def test_the_stop_is_checked_before_target_and_partials(side):
    # Nonsense levels (stop beyond the target) must still resolve to the stop.
    trade = make_trade(side, stop_loss=at(side, 2500, 5), target=at(side, 2500, 3))
    assert evaluate_tick(trade, at(side, 2500, 4), TS).exit.reason is ExitReason.STOP_LOSS


@SIDES
@pytest.mark.parametrize("status", [TradeStatus.EXITING, TradeStatus.PENDING_ENTRY, TradeStatus.CLOSED])
def test_trades_that_are_not_active_are_left_alone(side, status):
    trade = make_trade(side, stop_loss=at(side, 2500, -10), status=status)
    assert evaluate_tick(trade, at(side, 2500, -50), TS) is None


@SIDES
def test_paused_or_empty_trades_are_left_alone(side):
    assert evaluate_tick(make_trade(side, stop_loss=at(side, 2500, -10), paused=True), at(side, 2500, -50), TS) is None
    assert evaluate_tick(make_trade(side, quantity=0, stop_loss=at(side, 2500, -10)), at(side, 2500, -50), TS) is None


# --------------------------------------------------------------------------- trailing and breakeven


@SIDES
def test_trailing_ratchets_from_the_best_price_and_never_loosens(side):
    trade = make_trade(side, trailing=TrailingSettings(Distance(15)), trailing_stop=at(side, 2500, -15))
    evaluation = evaluate_tick(trade, at(side, 2500, 40), TS)
    assert evaluation.exit is None
    assert evaluation.changes == (LevelChange("trailing_stop", at(side, 2500, -15), at(side, 2500, 25), "TRAIL"),)
    trade.trailing_stop = at(side, 2500, 25)
    trade.high_watermark = max(trade.high_watermark, evaluation.high_watermark)
    trade.low_watermark = min(trade.low_watermark, evaluation.low_watermark)
    assert evaluate_tick(trade, at(side, 2500, 30), TS) is None  # a retrace changes nothing


@SIDES
def test_exit_uses_the_levels_before_this_tick(side):
    trade = make_trade(side, trailing=TrailingSettings(Distance(15)), trailing_stop=at(side, 2500, -15))
    evaluation = evaluate_tick(trade, at(side, 2500, -15), TS)
    assert evaluation.exit.reason is ExitReason.TRAILING_SL
    assert evaluation.exit.trigger_price == at(side, 2500, -15)
    assert evaluation.changes == ()


@SIDES
def test_a_whole_exit_reports_no_level_moves_but_a_partial_one_does(side):
    trailing = TrailingSettings(Distance(15))
    whole = make_trade(side, trailing=trailing, trailing_stop=at(side, 2500, -15), target=at(side, 2500, 20))
    evaluation = evaluate_tick(whole, at(side, 2500, 20), TS)
    assert evaluation.exit.reason is ExitReason.TARGET and evaluation.changes == ()

    partial = make_trade(
        side, trailing=trailing, trailing_stop=at(side, 2500, -15), partial_levels=(PartialLevel(at(side, 2500, 20), 50),)
    )
    evaluation = evaluate_tick(partial, at(side, 2500, 20), TS)
    assert evaluation.exit.reason is ExitReason.PARTIAL_TARGET
    assert evaluation.changes == (LevelChange("trailing_stop", at(side, 2500, -15), at(side, 2500, 5), "TRAIL"),)


@SIDES
def test_trailing_waits_for_its_activation_move(side):
    trailing = TrailingSettings(Distance(10), activation=Distance(30))
    trade = make_trade(side, trailing=trailing)
    evaluation = evaluate_tick(trade, at(side, 2500, 29.95), TS)
    assert evaluation.changes == ()
    trade.high_watermark, trade.low_watermark = evaluation.high_watermark, evaluation.low_watermark
    evaluation = evaluate_tick(trade, at(side, 2500, 30), TS)  # touching the activation counts
    assert evaluation.changes == (LevelChange("trailing_stop", None, at(side, 2500, 20), "TRAIL"),)


@SIDES
def test_step_trailing_moves_in_whole_steps(side):
    trailing = TrailingSettings(Distance(5), step_trigger=Distance(10), step_move=Distance(5))
    trade = make_trade(side, trailing=trailing, trailing_stop=at(side, 2500, -5))
    assert evaluate_tick(trade, at(side, 2500, 9.95), TS).changes == ()
    assert evaluate_tick(trade, at(side, 2500, 10), TS).changes[0].new == at(side, 2500, 0)
    assert evaluate_tick(trade, at(side, 2500, 29), TS).changes[0].new == at(side, 2500, 5)


@SIDES
def test_breakeven_moves_the_stop_to_the_entry_once(side):
    trade = make_trade(side, stop_loss=at(side, 2500, -20), breakeven_after=Distance(15))
    assert evaluate_tick(trade, at(side, 2500, 14.95), TS).changes == ()
    evaluation = evaluate_tick(trade, at(side, 2500, 15), TS)
    assert evaluation.changes == (LevelChange("stop_loss", at(side, 2500, -20), 2500.0, "BREAKEVEN"),)
    trade.breakeven_done = True
    assert evaluate_tick(trade, at(side, 2500, 30), TS).changes == ()


@SIDES
def test_breakeven_never_loosens_a_stop_already_in_profit(side):
    trade = make_trade(side, stop_loss=at(side, 2500, 5), breakeven_after=Distance(15))
    assert evaluate_tick(trade, at(side, 2500, 20), TS).changes == ()


@SIDES
def test_breakeven_rounds_an_odd_entry_protectively(side):
    trade = make_trade(side, entry=2500.12, breakeven_after=Distance(10))
    change = evaluate_tick(trade, at(side, 2500.12, 10), TS).changes[0]
    assert change.new == (2500.15 if side is Side.LONG else 2500.10)


@SIDES
def test_a_moved_stop_is_never_placed_at_the_price(side):
    # A distance below one tick would round onto the price itself: the move waits.
    trade = make_trade(side, trailing=TrailingSettings(Distance(0.01)), trailing_stop=at(side, 2500, -1))
    assert evaluate_tick(trade, at(side, 2500, 5), TS).changes == ()


# --------------------------------------------------------------------------- retrail


@SIDES
def test_retrail_tightens_from_the_best_price(side):
    trade = make_trade(side, trailing=TrailingSettings(Distance(20)), trailing_stop=at(side, 2500, 20))
    trade.high_watermark, trade.low_watermark = (2540.0, 2500.0) if side is Side.LONG else (2500.0, 2460.0)
    trade.last_price = at(side, 2500, 38)
    assert retrail(trade, TrailingSettings(Distance(10))) == at(side, 2500, 30)


@SIDES
def test_retrail_never_loosens_but_removing_trailing_is_allowed(side):
    trade = make_trade(side, trailing=TrailingSettings(Distance(20)), trailing_stop=at(side, 2500, 20))
    trade.high_watermark, trade.low_watermark = (2540.0, 2500.0) if side is Side.LONG else (2500.0, 2460.0)
    trade.last_price = at(side, 2500, 38)
    assert retrail(trade, TrailingSettings(Distance(30))) == at(side, 2500, 20)
    assert retrail(trade, TrailingSettings(Distance(5), activation=Distance(100))) == at(side, 2500, 20)
    assert retrail(trade, None) is None


@SIDES
def test_retrail_through_the_last_price_measures_from_the_last_price(side):
    trade = make_trade(side, trailing=TrailingSettings(Distance(50)), trailing_stop=at(side, 2500, -10))
    trade.high_watermark, trade.low_watermark = (2540.0, 2500.0) if side is Side.LONG else (2500.0, 2460.0)
    trade.last_price = at(side, 2500, 10)
    assert retrail(trade, TrailingSettings(Distance(5))) == at(side, 2500, 5)  # not 35, past the price


@SIDES
def test_retrail_before_activation_stays_off(side):
    trade = make_trade(side)
    assert retrail(trade, TrailingSettings(Distance(5), activation=Distance(20))) is None
    assert retrail(trade, TrailingSettings(Distance(5))) == at(side, 2500, -5)


def test_rules_do_not_mutate_the_trade():
    trade = make_trade(
        Side.LONG, stop_loss=2490.0, trailing=TrailingSettings(Distance(5)), trailing_stop=2495.0,
        breakeven_after=Distance(5), partial_levels=(PartialLevel(2510.0, 50),),
    )
    before = dataclasses.replace(trade)
    evaluate_tick(trade, 2520.0, TS)
    evaluate_tick(trade, 2480.0, TS)
    retrail(trade, TrailingSettings(Distance(1)))
    assert trade == before


# --------------------------------------------------------------------------- breakeven set by the user


@SIDES
def test_breakeven_set_on_a_trade_already_in_profit_moves_the_stop_now(side):
    trade = make_trade(side, stop_loss=at(side, 2500, -20), breakeven_after=Distance(15), last_price=at(side, 2500, 12))
    trade.high_watermark, trade.low_watermark = (2518.0, 2500.0) if side is Side.LONG else (2500.0, 2482.0)
    assert breakeven_stop(trade) == 2500.0  # the best price (18 in profit) passed 15 points


@SIDES
def test_breakeven_set_short_of_its_distance_waits(side):
    trade = make_trade(side, stop_loss=at(side, 2500, -20), breakeven_after=Distance(1.0, PCT), last_price=at(side, 2500, 12))
    trade.high_watermark, trade.low_watermark = (2524.95, 2500.0) if side is Side.LONG else (2500.0, 2475.05)
    assert breakeven_stop(trade) is None  # 1% of 2500 is 25 points; the best is 24.95 in profit


@SIDES
def test_breakeven_set_by_the_user_never_loosens_nor_fires_the_stop(side):
    in_profit = make_trade(side, stop_loss=at(side, 2500, 5), breakeven_after=Distance(10), last_price=at(side, 2500, 20))
    in_profit.high_watermark, in_profit.low_watermark = (2530.0, 2500.0) if side is Side.LONG else (2500.0, 2470.0)
    assert breakeven_stop(in_profit) is None  # the stop already locks more than the entry
    back_at_entry = make_trade(side, stop_loss=at(side, 2500, -20), breakeven_after=Distance(10), last_price=2500.0)
    back_at_entry.high_watermark, back_at_entry.low_watermark = (2530.0, 2500.0) if side is Side.LONG else (2500.0, 2470.0)
    assert breakeven_stop(back_at_entry) is None  # a stop at the entry would fire at once
    done = make_trade(side, stop_loss=at(side, 2500, -20), breakeven_after=Distance(10), breakeven_done=True)
    done.high_watermark, done.low_watermark = (2530.0, 2500.0) if side is Side.LONG else (2500.0, 2470.0)
    done.last_price = at(side, 2500, 20)
    assert breakeven_stop(done) is None
    assert breakeven_stop(make_trade(side, stop_loss=at(side, 2500, -20))) is None  # no breakeven set
