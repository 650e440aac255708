"""Portfolio rules: strategy P&L limits, trailing lock, halts, day roll, account limits, square-off."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, time, timezone

import pytest

from tmtool.domain.calendar import IST
from tmtool.domain.models import (
    AccountLimits,
    Amount,
    AmountMode,
    ExitReason,
    PortfolioRisk,
    PortfolioState,
    Strategy,
)
from tmtool.domain.portfolio import (
    evaluate_account,
    evaluate_portfolio,
    halt,
    limit_rupees,
    needs_roll,
    new_day_state,
    portfolio_pnl,
    record_realised,
    record_trade_opened,
    roll_day,
    square_off_due,
)

PCT = AmountMode.PERCENT


def ist(year, month, day, hour, minute, second=0) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=IST).timestamp()


TS = ist(2026, 1, 5, 10, 0)
DAY = date(2026, 1, 5)


def strategy(**portfolio) -> Strategy:
    return Strategy(name="momentum", allocated_funds=100_000.0, portfolio=PortfolioRisk(**portfolio))


def state(**fields) -> PortfolioState:
    return PortfolioState(strategy="momentum", trading_day=DAY, **fields)


def test_pnl_is_realised_today_plus_unrealised():
    assert portfolio_pnl(state(realised_pnl=-1200.0), 500.0) == -700.0


def test_amounts_in_percent_are_of_allocated_funds_and_off_without_funds():
    assert limit_rupees(Amount(2, PCT), 100_000.0) == 2000.0
    assert limit_rupees(Amount(2500), 0.0) == 2500.0
    assert limit_rupees(Amount(2, PCT), 0.0) is None
    assert limit_rupees(None, 100_000.0) is None


def test_nothing_changing_returns_none():
    assert evaluate_portfolio(strategy(stop_loss=Amount(5000)), state(), 0.0, TS) is None
    assert evaluate_portfolio(strategy(), state(peak_pnl=100.0, trough_pnl=-50.0), 20.0, TS) is None


def test_new_peak_and_trough_are_kept_in_a_new_state():
    before = state()
    evaluation = evaluate_portfolio(strategy(), before, 300.0, TS)
    assert (evaluation.state.peak_pnl, evaluation.state.trough_pnl, evaluation.exit_reason) == (300.0, 0.0, None)
    assert evaluation.state is not before and before.peak_pnl == 0.0  # the argument is untouched
    evaluation = evaluate_portfolio(strategy(), evaluation.state, -200.0, TS)
    assert (evaluation.state.peak_pnl, evaluation.state.trough_pnl) == (300.0, -200.0)


@pytest.mark.parametrize(
    "limit, pnl, reason",
    [
        (Amount(5000), -5000.0, ExitReason.PORTFOLIO_SL),
        (Amount(5, PCT), -5000.0, ExitReason.PORTFOLIO_SL),
    ],
)
def test_portfolio_stop_exits_all_at_the_loss_limit(limit, pnl, reason):
    rules = strategy(stop_loss=limit)
    assert evaluate_portfolio(rules, state(), pnl + 0.01, TS).exit_reason is None
    evaluation = evaluate_portfolio(rules, state(), pnl, TS)
    assert (evaluation.exit_reason, evaluation.halt, evaluation.pnl) == (reason, False, pnl)


def test_portfolio_target_counts_realised_and_unrealised():
    rules = strategy(target=Amount(3, PCT))
    evaluation = evaluate_portfolio(rules, state(realised_pnl=2000.0), 1000.0, TS)
    assert evaluation.exit_reason is ExitReason.PORTFOLIO_TARGET
    assert evaluate_portfolio(rules, state(realised_pnl=2000.0), 999.0, TS).exit_reason is None


def test_trailing_lock_arms_rises_only_and_exits_at_the_lock():
    rules = strategy(trailing_activation=Amount(4000), trailing_distance=Amount(1500))
    current = state()
    assert evaluate_portfolio(rules, current, 3999.0, TS).state.trailing_armed is False
    evaluation = evaluate_portfolio(rules, current, 4000.0, TS)
    assert (evaluation.armed_now, evaluation.state.trailing_armed, evaluation.state.trailing_lock) == (True, True, 2500.0)
    current = evaluation.state
    current = evaluate_portfolio(rules, current, 6000.0, TS).state
    assert current.trailing_lock == 4500.0
    evaluation = evaluate_portfolio(rules, current, 5000.0, TS)
    assert evaluation is None or evaluation.state.trailing_lock == 4500.0  # never falls
    evaluation = evaluate_portfolio(rules, current, 4500.0, TS)
    assert (evaluation.exit_reason, evaluation.armed_now) == (ExitReason.PORTFOLIO_TRAILING, False)


def test_daily_loss_limit_exits_all_and_halts_until_the_next_trading_day():
    rules = strategy(daily_loss_limit=Amount(3000), stop_loss=Amount(2000))
    evaluation = evaluate_portfolio(rules, state(realised_pnl=-2500.0), -600.0, TS)
    assert (evaluation.exit_reason, evaluation.halt) == (ExitReason.DAILY_LOSS_LIMIT, True)
    halted = evaluation.state
    assert halted.halted and "3000.00" in halted.halt_reason
    assert evaluate_portfolio(rules, halted, -600.0, TS) is None  # no second exit while halted
    next_morning = ist(2026, 1, 6, 9, 15)
    assert needs_roll(halted, next_morning)
    fresh = roll_day(halted, next_morning)
    assert (fresh.trading_day, fresh.halted, fresh.realised_pnl, fresh.trades_today) == (date(2026, 1, 6), False, 0.0, 0)


def test_the_trading_day_is_the_asia_kolkata_date():
    late_utc_evening = datetime(2026, 1, 5, 19, 0, tzinfo=timezone.utc).timestamp()  # 00:30 on the 6th in Kolkata
    assert new_day_state("x", late_utc_evening).trading_day == date(2026, 1, 6)
    same_day = state()
    assert roll_day(same_day, ist(2026, 1, 5, 15, 29)) is same_day


def test_state_helpers_return_new_copies():
    before = state()
    assert record_realised(before, -250.0, TS).realised_pnl == -250.0
    assert record_trade_opened(before, TS).trades_today == 1
    halted = halt(before, "manual halt", TS)
    assert (halted.halted, halted.halt_reason) == (True, "manual halt")
    assert before == state()


def test_account_limits_across_strategies():
    limits = AccountLimits(daily_loss_limit=10_000.0, daily_profit_target=20_000.0)
    assert evaluate_account(limits, -9_999.0) is None
    assert evaluate_account(limits, -10_000.0).exit_reason is ExitReason.ACCOUNT_LOSS_LIMIT
    assert evaluate_account(limits, 20_000.0).exit_reason is ExitReason.ACCOUNT_TARGET
    assert evaluate_account(AccountLimits(), -1e9) is None


def test_square_off_uses_asia_kolkata_wall_time():
    rules = dataclasses.replace(strategy(), square_off_time=time(15, 15))
    assert not square_off_due(rules, ist(2026, 1, 5, 15, 14, 59))
    assert square_off_due(rules, ist(2026, 1, 5, 15, 15))
    assert square_off_due(rules, datetime(2026, 1, 5, 10, 0, tzinfo=timezone.utc).timestamp())  # 15:30 IST
    assert not square_off_due(rules, datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc).timestamp())  # 14:30 IST
    assert not square_off_due(strategy(), ist(2026, 1, 5, 23, 0))
