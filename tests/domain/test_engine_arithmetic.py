"""The engine's arithmetic as pure functions: quiet and near-level bands, portfolio gates, fill prices, P&L, funds check."""

from __future__ import annotations

import math
from datetime import date

import pytest

from tmtool.domain.bands import near_band, portfolio_gates, quiet_band
from tmtool.domain.fills import new_fill_price, realised_pnl, running_average
from tmtool.domain.models import (
    Amount,
    AmountMode,
    PartialLevel,
    PortfolioRisk,
    PortfolioState,
    Product,
    Side,
    Strategy,
    Trade,
    TradeStatus,
)
from tmtool.domain.sizing import funds_denial


def trade(side: Side, **fields) -> Trade:
    values = dict(id=1, strategy="s", symbol="SBIN", exchange="NSE", product=Product.MIS, side=side, quantity=10,
                  entry_price=100.0, high_watermark=104.0, low_watermark=98.0)
    values.update(fields)
    return Trade(**values)


def test_quiet_band_of_a_long_is_bounded_by_stop_and_the_nearest_open_partial_and_target():
    long = trade(Side.LONG, stop_loss=95.0, target=120.0,
                 partial_levels=(PartialLevel(103.0, 5, done=True), PartialLevel(110.0, 5)))
    assert quiet_band([long]) == (98.0, 104.0)  # the watermarks are tighter still
    long.high_watermark, long.low_watermark = 0.0, 0.0  # no watermark yet: the entry price bounds both sides
    assert quiet_band([long]) == (100.0, 100.0)
    long.high_watermark, long.low_watermark = 130.0, 90.0
    assert quiet_band([long]) == (95.0, 110.0)


def test_quiet_band_of_a_short_mirrors_the_long():
    short = trade(Side.SHORT, stop_loss=105.0, target=80.0, high_watermark=130.0, low_watermark=70.0,
                  partial_levels=(PartialLevel(90.0, 5),))
    assert quiet_band([short]) == (90.0, 105.0)


def test_quiet_band_of_a_paused_trade_is_bounded_by_its_stop_on_the_side_the_price_is_not():
    assert quiet_band([trade(Side.LONG, paused=True, stop_loss=95.0, target=120.0, last_price=99.0)]) == (95.0, math.inf)
    assert quiet_band([trade(Side.LONG, paused=True, stop_loss=95.0, last_price=94.0)]) == (-math.inf, 95.0)
    assert quiet_band([trade(Side.SHORT, paused=True, stop_loss=105.0, last_price=101.0)]) == (-math.inf, 105.0)
    assert quiet_band([trade(Side.SHORT, paused=True, stop_loss=105.0, last_price=106.0)]) == (105.0, math.inf)
    assert quiet_band([trade(Side.LONG, paused=True)]) == (-math.inf, math.inf)  # no stop: nothing to watch


def test_quiet_band_ignores_exiting_and_empty_trades():
    band = (-math.inf, math.inf)
    assert quiet_band([]) == band
    assert quiet_band([trade(Side.LONG, status=TradeStatus.EXITING, stop_loss=95.0)]) == band
    assert quiet_band([trade(Side.LONG, quantity=0, stop_loss=95.0)]) == band


def test_near_band_is_half_a_percent_inside_the_stop_and_the_nearest_profit_level():
    long = trade(Side.LONG, stop_loss=95.0, trailing_stop=96.0, target=120.0,
                 partial_levels=(PartialLevel(103.0, 5, done=True), PartialLevel(110.0, 5)))
    lo, hi = near_band([long])
    assert lo == pytest.approx(96.0 * 1.005)  # the effective (tighter) stop
    assert hi == pytest.approx(110.0 * 0.995)  # the open partial, not the done one, not the farther target
    short = trade(Side.SHORT, stop_loss=105.0, target=80.0, partial_levels=(PartialLevel(90.0, 5),))
    lo, hi = near_band([short])
    assert (lo, hi) == (pytest.approx(90.0 * 1.005), pytest.approx(105.0 * 0.995))


def test_near_band_ignores_watermarks_and_trades_that_cannot_exit_by_price():
    assert near_band([trade(Side.LONG)]) == (-math.inf, math.inf)  # no level, only watermarks
    assert near_band([trade(Side.LONG, paused=True, stop_loss=95.0)]) == (-math.inf, math.inf)
    assert near_band([trade(Side.LONG, status=TradeStatus.EXITING, stop_loss=95.0)]) == (-math.inf, math.inf)
    crossed = near_band([trade(Side.LONG, stop_loss=99.9, target=100.1)], fraction=0.01)
    assert crossed[0] >= crossed[1]  # levels closer than the distance: every price is near


def test_quiet_band_of_several_trades_is_their_intersection():
    assert quiet_band([trade(Side.LONG, stop_loss=99.0, high_watermark=0, low_watermark=0, entry_price=101.0),
                       trade(Side.SHORT, stop_loss=103.0, high_watermark=0, low_watermark=0, entry_price=102.0)]) == (102.0, 101.0)


def state(**fields) -> PortfolioState:
    return PortfolioState(strategy="s", trading_day=date(2026, 12, 7), **fields)


def test_portfolio_gates_without_limits_never_close():
    assert portfolio_gates(Strategy("s"), state()) == (-math.inf, math.inf)


def test_portfolio_gates_take_the_tighter_loss_and_subtract_realised_pnl():
    strategy = Strategy("s", allocated_funds=100_000.0, portfolio=PortfolioRisk(
        stop_loss=Amount(5_000.0), daily_loss_limit=Amount(2.0, AmountMode.PERCENT), target=Amount(8_000.0)))
    assert portfolio_gates(strategy, state(realised_pnl=500.0)) == (-2_500.0, 7_500.0)


def test_portfolio_gates_follow_the_trailing_lock():
    strategy = Strategy("s", portfolio=PortfolioRisk(trailing_activation=Amount(1_000.0), trailing_distance=Amount(300.0)))
    assert portfolio_gates(strategy, state()) == (-math.inf, 1_000.0)
    armed = state(trailing_armed=True, trailing_lock=1_200.0, peak_pnl=1_500.0, realised_pnl=100.0)
    assert portfolio_gates(strategy, armed) == (1_100.0, 1_400.0)


def test_a_new_fill_is_priced_from_the_change_of_the_cumulative_average():
    assert new_fill_price(0, 0.0, 10, 100.0, fallback=99.0) == (100.0, 100.0)
    price, average = new_fill_price(10, 100.0, 30, 102.0, fallback=99.0)
    assert price == pytest.approx(103.0) and average == 102.0


def test_a_fill_reported_without_an_average_is_priced_at_the_fallback():
    price, average = new_fill_price(10, 100.0, 20, 0.0, fallback=104.0)
    assert (price, average) == (104.0, 102.0)


def test_running_average_and_realised_pnl():
    assert running_average(0.0, 0, 101.0, 5) == 101.0
    assert running_average(100.0, 10, 106.0, 5) == 102.0
    assert realised_pnl(Side.LONG, 100.0, 103.0, 10) == 30.0
    assert realised_pnl(Side.SHORT, 100.0, 103.0, 10) == -30.0


def test_funds_denial():
    assert funds_denial(10, 100.0, 1_000.0) is None
    denial = funds_denial(11, 100.0, 1_000.0)
    assert denial is not None and denial.code == "INSUFFICIENT_FUNDS"
    assert denial.message == "11 at 100.00 needs 1100.00; 1000.00 available"
