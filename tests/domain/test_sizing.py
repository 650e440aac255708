"""Position sizing: every mode, lot rounding, fund caps, pre-trade limits, preview."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tmtool.domain.models import (
    Denial,
    Side,
    Sizing,
    SizingMode,
    Strategy,
)
from tmtool.domain.sizing import (
    entry_denial,
    estimated_margin_rate,
    funds_denial,
    funds_limit,
    preview,
    size_position,
)


def strategy(mode: SizingMode, value: float, **fields) -> Strategy:
    return Strategy(name="momentum", sizing=Sizing(mode, value), **fields)


def size(rules: Strategy, price=100.0, stop=None, lot=1, funds=1_000_000.0, open_positions=0, halted=False,
         trades_today=0, in_use=0.0):
    return size_position(rules, price, stop, lot, funds, open_positions, halted, trades_today, funds_in_use=in_use)


def test_fixed_quantity_rounds_down_to_lots():
    assert size(strategy(SizingMode.FIXED_QUANTITY, 130), lot=25) == 125
    assert size(strategy(SizingMode.FIXED_QUANTITY, 7)) == 7


def test_fixed_value_buys_that_much_notional():
    assert size(strategy(SizingMode.FIXED_VALUE, 50_000), price=2499.0) == 20  # 20.008 -> 20


def test_percent_allocation_is_of_allocated_funds():
    rules = strategy(SizingMode.PERCENT_ALLOCATION, 10, allocated_funds=200_000.0)
    assert size(rules, price=400.0, lot=15) == 45  # 20000 / 400 = 50 -> 3 lots of 15


def test_risk_based_divides_the_rupees_risked_by_the_stop_distance():
    rules = strategy(SizingMode.RISK_BASED, 2000)
    assert size(rules, price=2500.0, stop=2475.0) == 80
    assert size(rules, price=2500.0, stop=2525.0) == 80  # a SHORT's stop sits above
    assert size(rules, price=2500.0, stop=2475.0, lot=50) == 50


def test_money_modes_are_capped_by_funds_and_allocation():
    rules = strategy(SizingMode.RISK_BASED, 10_000, allocated_funds=50_000.0)
    # 10000 / 1 = 10000 shares wanted; the allocation left (50000 - 30000) buys 200.
    assert size(rules, price=100.0, stop=99.0, in_use=30_000.0) == 200
    assert size(rules, price=100.0, stop=99.0, funds=5_000.0) == 50


def test_fixed_quantity_beyond_funds_is_refused_not_shrunk():
    denial = size(strategy(SizingMode.FIXED_QUANTITY, 100), price=500.0, funds=10_000.0)
    assert isinstance(denial, Denial) and denial.code == "INSUFFICIENT_FUNDS"
    assert "50000.00" in denial.message and "10000.00" in denial.message


@pytest.mark.parametrize(
    "rules, kwargs, code",
    [
        (strategy(SizingMode.FIXED_VALUE, 50), {"price": 100.0}, "ZERO_QUANTITY"),
        (strategy(SizingMode.FIXED_QUANTITY, 10), {"lot": 25}, "ZERO_QUANTITY"),
        (strategy(SizingMode.FIXED_VALUE, 100_000), {"funds": 0.0}, "ZERO_QUANTITY"),
        (strategy(SizingMode.PERCENT_ALLOCATION, 10), {}, "NO_ALLOCATION"),
        (strategy(SizingMode.RISK_BASED, 1000), {}, "NO_STOP"),
        (strategy(SizingMode.RISK_BASED, 1000), {"stop": 100.0}, "INVALID_STOP"),
        (strategy(SizingMode.RISK_BASED, 1000), {"stop": float("nan")}, "INVALID_STOP"),
        (strategy(SizingMode.FIXED_QUANTITY, 1), {"price": float("inf")}, "INVALID_PRICE"),
        (strategy(SizingMode.FIXED_QUANTITY, 1), {"price": -5.0}, "INVALID_PRICE"),
        (strategy(SizingMode.FIXED_QUANTITY, 1), {"lot": 0}, "INVALID_QUANTITY"),
        (strategy(SizingMode.FIXED_QUANTITY, float("nan")), {}, "INVALID_SIZING"),
        (strategy(SizingMode.FIXED_QUANTITY, 1), {"halted": True}, "HALTED"),
        (strategy(SizingMode.FIXED_QUANTITY, 1, max_open_positions=3), {"open_positions": 3}, "MAX_OPEN_POSITIONS"),
        (strategy(SizingMode.FIXED_QUANTITY, 1, max_trades_per_day=5), {"trades_today": 5}, "MAX_TRADES_PER_DAY"),
    ],
)
def test_refusals_carry_a_code_and_a_sentence(rules, kwargs, code):
    denial = size(rules, **kwargs)
    assert isinstance(denial, Denial)
    assert denial.code == code and len(denial.message) > 10


def test_limits_below_the_maximum_allow_a_trade():
    rules = strategy(SizingMode.FIXED_QUANTITY, 1, max_open_positions=3, max_trades_per_day=5)
    assert size(rules, open_positions=2, trades_today=4) == 1
    assert entry_denial(rules, 2, False, 4) is None


def test_funds_limit_without_allocation_is_the_available_cash():
    assert funds_limit(strategy(SizingMode.FIXED_QUANTITY, 1), 12_345.0) == 12_345.0
    assert funds_limit(strategy(SizingMode.FIXED_QUANTITY, 1, allocated_funds=10_000.0), 50_000.0, 12_000.0) == 0.0


def test_preview_shows_risk_and_reward():
    rules = strategy(SizingMode.RISK_BASED, 2000)
    shown = preview(rules, 2500.0, 2475.0, 2550.0, 1, 1_000_000.0)
    assert (shown.quantity, shown.notional, shown.risk_amount, shown.reward_amount, shown.risk_reward) == (
        80, 200_000.0, 2000.0, 4000.0, 2.0,
    )
    assert shown.denial is None


def test_preview_of_a_refused_trade_says_why():
    shown = preview(strategy(SizingMode.RISK_BASED, 2000), 2500.0, None, None, 1, 1_000_000.0)
    assert shown.quantity == 0 and shown.denial.code == "NO_STOP"
    no_target = preview(strategy(SizingMode.FIXED_QUANTITY, 10), 100.0, 95.0, None, 1, 1_000_000.0)
    assert (no_target.risk_amount, no_target.reward_amount, no_target.risk_reward) == (50.0, None, None)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(
    mode=st.sampled_from(list(SizingMode)),
    value=st.floats(0.5, 1e6),
    price=st.floats(0.05, 1e5),
    stop_offset=st.floats(0.05, 1e3),
    lot=st.sampled_from([1, 15, 25, 50, 75]),
    funds=st.floats(0, 1e7),
    allocated=st.floats(0, 1e7),
    in_use=st.floats(0, 1e7),
    max_positions=st.none() | st.integers(1, 10),
    open_positions=st.integers(0, 12),
)
def test_sizing_never_exceeds_funds_or_max_positions(
    mode, value, price, stop_offset, lot, funds, allocated, in_use, max_positions, open_positions
):
    if mode is SizingMode.FIXED_QUANTITY:
        value = float(math.floor(value))
    rules = strategy(mode, value, allocated_funds=allocated, max_open_positions=max_positions)
    result = size(rules, price=price, stop=price + stop_offset, lot=lot, funds=funds, open_positions=open_positions,
                  in_use=in_use)
    if isinstance(result, Denial):
        assert result.code.isupper() and result.message
        return
    assert result > 0 and result % lot == 0
    assert result * price <= funds + 1e-6
    if allocated > 0:
        assert result * price <= allocated - in_use + 1e-6
    if max_positions is not None:
        assert open_positions < max_positions


def test_a_margin_rate_caps_money_modes_and_checks_fixed_quantities_by_margin():
    rules = strategy(SizingMode.RISK_BASED, 100_000, allocated_funds=100_000.0)
    # 100000 risked at 1 a unit wants 100000 units; 100000 of funds at 20 % margin of 100 buys 5000.
    assert size_position(rules, 100.0, 99.0, 50, 1_000_000.0, 0, False, 0, margin_rate=0.2) == 5000
    assert size_position(rules, 100.0, 99.0, 50, 1_000_000.0, 0, False, 0) == 1000  # full notional
    fixed = strategy(SizingMode.FIXED_QUANTITY, 4000, allocated_funds=100_000.0)
    assert size_position(fixed, 100.0, None, 1, 1_000_000.0, 0, False, 0, margin_rate=0.25) == 4000
    refused = size_position(fixed, 100.0, None, 1, 1_000_000.0, 0, False, 0, margin_rate=0.3)
    assert isinstance(refused, Denial) and refused.code == "INSUFFICIENT_FUNDS" and "margin" in refused.message
    bad = size_position(fixed, 100.0, None, 1, 1_000_000.0, 0, False, 0, margin_rate=0.0)
    assert isinstance(bad, Denial) and bad.code == "INVALID_MARGIN"


def test_funds_denial_counts_margin_when_given():
    assert funds_denial(100, 50.0, 1_000.0, margin_rate=0.2) is None
    refused = funds_denial(100, 50.0, 999.0, margin_rate=0.2)
    assert refused is not None and refused.code == "INSUFFICIENT_FUNDS" and "1000.00 of margin" in refused.message
    assert funds_denial(100, 50.0, 4_999.0).message.endswith("needs 5000.00; 4999.00 available")


@pytest.mark.parametrize(
    ("exchange", "symbol", "side", "rate"),
    [
        ("NSE", "SBIN", Side.LONG, 1.0),
        ("NFO", "NIFTY30DEC26FUT", Side.LONG, 0.2),
        ("NFO", "NIFTY30DEC26FUT", Side.SHORT, 0.2),
        ("NFO", "NIFTY30DEC2626000CE", Side.LONG, 1.0),  # a bought option pays its premium in full
        ("NFO", "NIFTY30DEC2626000PE", Side.SHORT, 0.2),
        ("MCX", "CRUDEOIL19DEC26FUT", Side.SHORT, 0.2),
    ],
)
def test_the_estimated_margin_rate(exchange, symbol, side, rate):
    assert estimated_margin_rate(exchange, symbol, side, 20.0) == pytest.approx(rate)
