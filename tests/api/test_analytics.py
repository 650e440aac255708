"""Analytics over hand-built closed trades, with exact expected numbers."""

from __future__ import annotations

from datetime import date

import pytest

from tmtool.domain.analytics import analyse, initial_stop_from_events, max_drawdown
from tmtool.domain.models import (
    ExitReason,
    PartialLevel,
    Product,
    Side,
    Trade,
    TradeEvent,
    TradeStatus,
)

DAY_ONE = 1_767_240_000.0  # 2026-01-01 09:30 Asia/Kolkata
DAY_TWO = DAY_ONE + 86_400


def closed_trade(trade_id: int, **fields) -> Trade:
    values = dict(
        id=trade_id,
        strategy="alpha",
        symbol="RELIANCE",
        exchange="NSE",
        product=Product.MIS,
        side=Side.LONG,
        quantity=0,
        entry_price=100.0,
        status=TradeStatus.CLOSED,
    )
    values.update(fields)
    values.setdefault("entry_quantity", 10)
    values.setdefault("exited_quantity", values["entry_quantity"])
    return Trade(**values)


@pytest.fixture
def trades() -> list[Trade]:
    target_hit = closed_trade(
        1, entry_price=100.0, entry_quantity=10, exit_price=110.0, exit_trigger_price=110.0,
        realised_pnl=100.0, exit_reason=ExitReason.TARGET, high_watermark=111.0, low_watermark=98.0,
        opened_at=DAY_ONE, closed_at=DAY_ONE + 600,
    )
    gapped_stop = closed_trade(
        2, side=Side.SHORT, symbol="SBIN", entry_price=200.0, entry_quantity=5, exit_price=206.0,
        exit_trigger_price=205.0, realised_pnl=-30.0, exit_reason=ExitReason.STOP_LOSS,
        high_watermark=206.5, low_watermark=198.0, opened_at=DAY_ONE + 1000, closed_at=DAY_ONE + 1300,
    )
    manual = closed_trade(
        3, strategy="beta", entry_price=50.0, entry_quantity=20, exit_price=49.0, realised_pnl=-20.0,
        exit_reason=ExitReason.MANUAL, high_watermark=50.5, low_watermark=48.0,
        opened_at=DAY_TWO, closed_at=DAY_TWO + 900,
    )
    never_filled = closed_trade(4, status=TradeStatus.CANCELLED, entry_quantity=0, realised_pnl=0.0)
    still_open = closed_trade(5, status=TradeStatus.ACTIVE, realised_pnl=500.0)
    return [manual, gapped_stop, target_hit, never_filled, still_open]


def test_overall_statistics_of_closed_trades(trades):
    report = analyse(trades, initial_stops={1: 95.0, 2: 205.0})
    overall = report.overall
    assert (overall.trades, overall.wins, overall.losses, overall.breakeven) == (3, 1, 2, 0)
    assert overall.win_rate == 0.3333
    assert (overall.net_pnl, overall.gross_profit, overall.gross_loss) == (50.0, 100.0, -50.0)
    assert (overall.average_win, overall.average_loss) == (100.0, -25.0)
    assert overall.profit_factor == 2.0
    assert overall.expectancy == 16.67
    assert (overall.largest_win, overall.largest_loss) == (100.0, -30.0)
    assert overall.max_drawdown == 50.0  # +100, then -30 and -20 in closing order
    assert overall.average_holding_seconds == 600.0
    assert (overall.r_trades, overall.average_r, overall.total_r) == (2, 0.4, 0.8)


def test_per_trade_r_slippage_and_excursions(trades):
    report = analyse(trades, initial_stops={1: 95.0, 2: 205.0})
    by_id = {r.trade_id: r for r in report.trades}
    assert [r.trade_id for r in report.trades] == [1, 2, 3]  # closing order, unfilled and open left out

    target = by_id[1]
    assert (target.initial_risk, target.r_multiple) == (50.0, 2.0)
    assert (target.slippage_points, target.slippage_ticks, target.slippage_rupees) == (0.0, 0.0, 0.0)
    assert (target.mfe_points, target.mae_points, target.mfe_rupees, target.mae_rupees) == (11.0, 2.0, 110.0, 20.0)
    assert target.holding_seconds == 600.0

    stop = by_id[2]  # a SHORT stopped at 205 but filled at 206: a gap through the stop
    assert (stop.initial_risk, stop.r_multiple) == (25.0, -1.2)
    assert (stop.slippage_points, stop.slippage_ticks, stop.slippage_rupees) == (1.0, 20.0, 5.0)
    assert (stop.mfe_points, stop.mae_points, stop.mfe_rupees, stop.mae_rupees) == (2.0, 6.5, 10.0, 32.5)

    manual = by_id[3]
    assert (manual.initial_stop, manual.initial_risk, manual.r_multiple) == (None, None, None)
    assert manual.slippage_points is None  # no level triggered a manual exit


def test_groups_by_strategy_and_exit_reason(trades):
    report = analyse(trades)
    strategies = {g.name: g.stats for g in report.by_strategy}
    assert list(strategies) == ["alpha", "beta"]
    alpha, beta = strategies["alpha"], strategies["beta"]
    assert (alpha.trades, alpha.win_rate, alpha.net_pnl, alpha.profit_factor, alpha.expectancy) == (2, 0.5, 70.0, 3.3333, 35.0)
    assert alpha.max_drawdown == 30.0
    assert (beta.trades, beta.win_rate, beta.profit_factor, beta.average_win, beta.largest_win) == (1, 0.0, 0.0, None, None)
    assert (beta.average_r, beta.r_trades) == (None, 0)
    reasons = {g.name: (g.stats.trades, g.stats.net_pnl) for g in report.by_exit_reason}
    assert reasons == {"MANUAL": (1, -20.0), "STOP_LOSS": (1, -30.0), "TARGET": (1, 100.0)}


def test_slippage_summary_and_daily_series(trades):
    report = analyse(trades)
    slippage = report.slippage
    assert (slippage.measured, slippage.average_points, slippage.average_ticks) == (2, 0.5, 10.0)
    assert (slippage.worst_ticks, slippage.total_rupees) == (20.0, 5.0)
    series = [(d.day, d.trades, d.pnl, d.cumulative_pnl) for d in report.daily_pnl]
    assert series == [(date(2026, 1, 1), 2, 70.0, 70.0), (date(2026, 1, 2), 1, -20.0, 50.0)]


def test_no_trades_divides_by_nothing():
    report = analyse([])
    overall = report.overall
    assert overall.trades == 0
    assert (overall.win_rate, overall.profit_factor, overall.expectancy, overall.average_win) == (None, None, None, None)
    assert (overall.max_drawdown, overall.net_pnl, overall.average_holding_seconds) == (0.0, 0.0, None)
    assert (report.by_strategy, report.by_exit_reason, report.daily_pnl, report.trades) == ((), (), (), ())
    assert (report.slippage.measured, report.slippage.average_ticks) == (0, None)


def test_a_single_winning_trade_has_no_profit_factor():
    trade = closed_trade(1, realised_pnl=40.0, exit_price=104.0, opened_at=DAY_ONE, closed_at=DAY_ONE + 60)
    overall = analyse([trade], initial_stops={1: 100.0}).overall  # stop at entry: zero risk
    assert (overall.trades, overall.win_rate, overall.profit_factor, overall.expectancy) == (1, 1.0, None, 40.0)
    assert (overall.max_drawdown, overall.r_trades, overall.average_r) == (0.0, 0, None)


def test_breakeven_trade_counts_in_the_win_rate_denominator():
    trades = [closed_trade(1, realised_pnl=0.001, closed_at=DAY_ONE), closed_trade(2, realised_pnl=10.0, closed_at=DAY_ONE + 1)]
    overall = analyse(trades).overall
    assert (overall.wins, overall.losses, overall.breakeven, overall.win_rate) == (1, 0, 1, 0.5)


def test_slippage_is_not_measured_after_partial_exits():
    trade = closed_trade(
        1, exit_price=108.0, exit_trigger_price=110.0, realised_pnl=80.0, closed_at=DAY_ONE,
        partial_levels=(PartialLevel(price=105.0, quantity=5, done=True),),
    )
    assert analyse([trade]).trades[0].slippage_points is None


def test_unseen_watermarks_give_no_excursion():
    trade = closed_trade(1, realised_pnl=5.0, closed_at=DAY_ONE, high_watermark=0.0, low_watermark=0.0)
    result = analyse([trade]).trades[0]
    assert (result.mfe_points, result.mae_points, result.mfe_rupees) == (None, None, None)


def test_max_drawdown_is_measured_from_the_running_peak():
    assert max_drawdown([]) == 0.0
    assert max_drawdown([-10.0, 30.0, -25.0, -10.0, 50.0, -5.0]) == 35.0


def test_initial_stop_is_the_first_stop_in_the_audit_log():
    events = [
        TradeEvent(trade_id=1, ts=30.0, kind="LEVEL", field="stop_loss", old="95.0", new="97.5"),
        TradeEvent(trade_id=1, ts=20.0, kind="LEVEL", field="target", old="", new="120.0"),
        TradeEvent(trade_id=1, ts=10.0, kind="CREATED", field="stop_loss", old="", new="95.0"),
        TradeEvent(trade_id=1, ts=40.0, kind="TRAIL", field="trailing_stop", old="", new="99.0"),
    ]
    assert initial_stop_from_events(events) == 95.0
    filled = [
        TradeEvent(trade_id=2, ts=5.0, kind="CREATED", field="status", new="PENDING_ENTRY"),
        TradeEvent(trade_id=2, ts=6.0, kind="LEVEL", field="levels", new="stop=2490.0 target=2520.0 trail=None"),
        TradeEvent(trade_id=2, ts=7.0, kind="LEVEL", field="stop_loss", old="2490.0", new="2495.0"),
    ]
    assert initial_stop_from_events(filled) == 2490.0
    no_stop_at_fill = [TradeEvent(trade_id=3, ts=6.0, kind="LEVEL", field="levels", new="stop=None target=2520.0 trail=None")]
    assert initial_stop_from_events(no_stop_at_fill) is None
    assert initial_stop_from_events([TradeEvent(trade_id=1, ts=1.0, kind="CREATED", field="stop_loss", new="")]) is None
