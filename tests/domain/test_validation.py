"""Validation of every level, quantity and setting a user or the API can set."""

from __future__ import annotations

import dataclasses

import pytest

from tmtool.domain.commands import UNSET, CreateTrade, ModifyTrade
from tmtool.domain.models import (
    Amount,
    AmountMode,
    Distance,
    DistanceMode,
    ExitOrderSettings,
    PartialTarget,
    PortfolioRisk,
    PriceType,
    Product,
    Side,
    Sizing,
    SizingMode,
    Strategy,
    Trade,
    TradeRisk,
    TrailingSettings,
)
from tmtool.domain.validation import (
    invalid_enum,
    validate_create_trade,
    validate_exchange,
    validate_levels,
    validate_modify_trade,
    validate_partial_targets,
    validate_price,
    validate_quantity,
    validate_stop,
    validate_strategy,
    validate_symbol,
    validate_target,
    validate_trailing,
)

BAD_NUMBERS = [0, -1.5, float("nan"), float("inf"), float("-inf"), True, "2500", None]


def code(denial):
    return None if denial is None else denial.code


@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_prices_must_be_positive_finite_numbers(value):
    denial = validate_price(value, "limit price")
    assert code(denial) == "INVALID_PRICE" and "limit price" in denial.message


def test_good_prices_pass():
    assert validate_price(2500) is None and validate_price(0.05) is None


@pytest.mark.parametrize("value, lot, why", [(0, 1, "positive"), (-5, 1, "positive"), (2.5, 1, "whole"),
                                             (True, 1, "whole"), (30, 25, "multiple of the lot size 25")])
def test_quantities_must_be_positive_whole_lots(value, lot, why):
    denial = validate_quantity(value, lot)
    assert code(denial) == "INVALID_QUANTITY" and why in denial.message


def test_good_quantities_pass():
    assert validate_quantity(75, 25) is None and validate_quantity(1) is None


@pytest.mark.parametrize("symbol", ["", "reliance", "RELI ANCE", " SBIN", "NIFTY\n", 42, None])
def test_symbols_are_upper_case_without_spaces(symbol):
    assert code(validate_symbol(symbol)) == "INVALID_SYMBOL"


@pytest.mark.parametrize("symbol", ["RELIANCE", "M&M", "BAJAJ-AUTO", "NIFTY28MAR2420800CE", "VEDL25APR24292.5CE"])
def test_real_symbols_pass(symbol):
    assert validate_symbol(symbol) is None


def test_exchanges_must_be_known_and_tradable():
    assert validate_exchange("NFO") is None
    assert code(validate_exchange("nse")) == "UNKNOWN_EXCHANGE"
    index = validate_exchange("NSE_INDEX")
    assert code(index) == "UNKNOWN_EXCHANGE" and "index data only" in index.message
    assert validate_exchange("NSE_INDEX", tradable=False) is None


def test_enums_accept_members_and_exact_names():
    assert invalid_enum(Side.LONG, Side, "side") is None and invalid_enum("SHORT", Side, "side") is None
    denial = invalid_enum("long", Side, "side")
    assert code(denial) == "INVALID_SIDE" and "LONG, SHORT" in denial.message


def test_the_stop_message_names_the_value_the_reference_and_the_side():
    denial = validate_stop(Side.LONG, 2510.0, 2500.0)
    assert denial.code == "INVALID_STOP"
    assert denial.message == "stop 2510.00 must be below the entry 2500.00 for a LONG"


@pytest.mark.parametrize(
    "side, stop, current, ok",
    [
        (Side.LONG, 2490.0, 2495.0, True),
        (Side.LONG, 2500.0, 2510.0, False),  # at the entry
        (Side.LONG, 2490.0, 2490.0, False),  # at the current price
        (Side.LONG, 2490.0, 2480.0, False),  # already crossed
        (Side.SHORT, 2510.0, 2505.0, True),
        (Side.SHORT, 2500.0, 2490.0, False),
        (Side.SHORT, 2510.0, 2515.0, False),
    ],
)
def test_stops_lie_on_the_loss_side_of_entry_and_current_price(side, stop, current, ok):
    assert (validate_stop(side, stop, 2500.0, current) is None) is ok


@pytest.mark.parametrize(
    "side, target, current, ok",
    [
        (Side.LONG, 2550.0, 2520.0, True),
        (Side.LONG, 2500.0, 2490.0, False),
        (Side.LONG, 2520.0, 2530.0, False),
        (Side.SHORT, 2450.0, 2480.0, True),
        (Side.SHORT, 2480.0, 2470.0, False),
    ],
)
def test_targets_lie_beyond_entry_and_current_price(side, target, current, ok):
    denial = validate_target(side, target, 2500.0, current)
    assert (denial is None) is ok
    if not ok:
        assert denial.code == "INVALID_TARGET" and side.value in denial.message


def test_levels_check_both_and_refuse_bad_numbers():
    assert validate_levels(Side.LONG, 2500.0, 2500.0, 2490.0, 2520.0) is None
    assert code(validate_levels(Side.LONG, 2500.0, None, float("nan"), None)) == "INVALID_STOP"
    assert code(validate_levels(Side.SHORT, 2500.0, None, None, -1.0)) == "INVALID_TARGET"


@pytest.mark.parametrize(
    "settings, why",
    [
        (TrailingSettings(Distance(0)), "greater than 0"),
        (TrailingSettings(Distance(float("nan"))), "finite"),
        (TrailingSettings(Distance(5), activation=Distance(-1)), "zero or more"),
        (TrailingSettings(Distance(5), step_trigger=Distance(10)), "both step_trigger and step_move"),
        (TrailingSettings(Distance(5), step_trigger=Distance(10), step_move=Distance(12)), "must not exceed"),
        (TrailingSettings(Distance(100, DistanceMode.PERCENT)), "less than 100%"),
    ],
)
def test_trailing_settings_must_be_sane(settings, why):
    denial = validate_trailing(settings)
    assert code(denial) == "INVALID_TRAILING" and why in denial.message


def test_sane_trailing_passes():
    assert validate_trailing(TrailingSettings(Distance(5), Distance(0), Distance(10), Distance(5))) is None


@pytest.mark.parametrize(
    "partials, why",
    [
        ((PartialTarget(Distance(10), 0.0),), "between 0 and 1"),
        ((PartialTarget(Distance(10), 1.0),), "between 0 and 1"),
        ((PartialTarget(Distance(10), 0.6), PartialTarget(Distance(20), 0.4)), "add up to 1"),
        ((PartialTarget(Distance(-1), 0.5),), "greater than 0"),
    ],
)
def test_partials_must_be_fractions_below_one_in_total(partials, why):
    denial = validate_partial_targets(partials)
    assert code(denial) == "INVALID_PARTIALS" and why in denial.message


def test_a_full_strategy_validates():
    strategy = Strategy(
        name="momentum",
        allocated_funds=100_000.0,
        trade_risk=TradeRisk(Distance(1, DistanceMode.PERCENT), Distance(20), TrailingSettings(Distance(5)),
                             Distance(10), (PartialTarget(Distance(10), 0.5),)),
        portfolio=PortfolioRisk(Amount(5000), Amount(5, AmountMode.PERCENT), Amount(4000), Amount(1500),
                                Amount(3, AmountMode.PERCENT)),
        sizing=Sizing(SizingMode.PERCENT_ALLOCATION, 10),
        max_open_positions=5,
    )
    assert validate_strategy(strategy) is None


@pytest.mark.parametrize(
    "change, code_, why",
    [
        ({"name": ""}, "INVALID_STRATEGY", "non-empty"),
        ({"allocated_funds": -1.0}, "INVALID_STRATEGY", "allocated_funds"),
        ({"exchange": "NSE_INDEX"}, "UNKNOWN_EXCHANGE", "index"),
        ({"max_open_positions": 0}, "INVALID_STRATEGY", "max_open_positions"),
        ({"portfolio": PortfolioRisk(stop_loss=Amount(2, AmountMode.PERCENT))}, "INVALID_AMOUNT", "allocated funds"),
        ({"portfolio": PortfolioRisk(trailing_activation=Amount(100))}, "INVALID_PORTFOLIO", "both"),
        ({"sizing": Sizing(SizingMode.PERCENT_ALLOCATION, 10)}, "INVALID_SIZING", "allocated funds"),
        ({"sizing": Sizing(SizingMode.FIXED_QUANTITY, 2.5)}, "INVALID_SIZING", "whole number"),
        ({"exit_order": ExitOrderSettings(max_reprices=-1)}, "INVALID_EXIT_ORDER", "max_reprices"),
        ({"trade_risk": TradeRisk(stop_loss=Distance(0))}, "INVALID_DISTANCE", "stop_loss"),
    ],
)
def test_bad_strategies_say_which_setting_and_why(change, code_, why):
    denial = validate_strategy(dataclasses.replace(Strategy(name="s"), **change))
    assert code(denial) == code_ and why in denial.message


def test_create_trade_checks_instrument_quantity_and_levels():
    good = CreateTrade("manual", "RELIANCE", "NSE", Side.LONG, quantity=10, stop_loss=2490.0, target=2520.0)
    assert validate_create_trade(good, current_price=2500.0) is None
    assert code(validate_create_trade(dataclasses.replace(good, symbol="reliance"))) == "INVALID_SYMBOL"
    assert code(validate_create_trade(dataclasses.replace(good, exchange="XXX"))) == "UNKNOWN_EXCHANGE"
    assert code(validate_create_trade(dataclasses.replace(good, quantity=-10))) == "INVALID_QUANTITY"
    assert code(validate_create_trade(good, current_price=2500.0, lot_size=25)) == "INVALID_QUANTITY"
    assert code(validate_create_trade(good, current_price=2485.0)) == "INVALID_STOP"
    assert code(validate_create_trade(dataclasses.replace(good, product="XYZ"))) == "INVALID_PRODUCT"


def test_create_trade_limit_entries_need_a_price_and_are_the_reference():
    limit = CreateTrade("manual", "SBIN", "NSE", Side.SHORT, price_type=PriceType.LIMIT, limit_price=800.0,
                        stop_loss=790.0)
    assert code(validate_create_trade(dataclasses.replace(limit, limit_price=None))) == "INVALID_PRICE"
    denial = validate_create_trade(limit)
    assert code(denial) == "INVALID_STOP" and "above the entry 800.00 for a SHORT" in denial.message
    market_with_price = CreateTrade("manual", "SBIN", "NSE", Side.LONG, limit_price=800.0)
    assert code(validate_create_trade(market_with_price)) == "INVALID_PRICE"


def test_create_trade_adopting_a_position_checks_the_entry_price():
    adopt = CreateTrade("manual", "SBIN", "NSE", Side.LONG, product=Product.CNC, quantity=5, entry_price=float("nan"))
    assert code(validate_create_trade(adopt)) == "INVALID_PRICE"


def _trade(side=Side.LONG, last=2540.0) -> Trade:
    return Trade(id=7, strategy="manual", symbol="RELIANCE", exchange="NSE", product=Product.MIS, side=side,
                 quantity=10, entry_price=2500.0, last_price=last)


def test_modify_may_lock_profit_but_never_put_the_stop_through_the_price():
    assert validate_modify_trade(ModifyTrade(7, stop_loss=2520.0), _trade()) is None
    assert code(validate_modify_trade(ModifyTrade(7, stop_loss=2545.0), _trade())) == "INVALID_STOP"
    assert validate_modify_trade(ModifyTrade(7, stop_loss=2480.0), _trade(Side.SHORT, 2460.0)) is None
    assert code(validate_modify_trade(ModifyTrade(7, stop_loss=2455.0), _trade(Side.SHORT, 2460.0))) == "INVALID_STOP"
    # Without a current price the entry is the reference.
    assert code(validate_modify_trade(ModifyTrade(7, stop_loss=2520.0), _trade(last=0.0))) == "INVALID_STOP"


def test_modify_checks_targets_trailing_and_partials_and_allows_clearing():
    trade = _trade()
    assert validate_modify_trade(ModifyTrade(7, stop_loss=None, target=None, trailing=None), trade) is None
    assert code(validate_modify_trade(ModifyTrade(7, target=2530.0), trade)) == "INVALID_TARGET"
    assert code(validate_modify_trade(ModifyTrade(7, trailing=TrailingSettings(Distance(0))), trade)) == "INVALID_TRAILING"
    bad_partials = (PartialTarget(Distance(5), 0.7), PartialTarget(Distance(9), 0.3))
    assert code(validate_modify_trade(ModifyTrade(7, partial_targets=bad_partials), trade)) == "INVALID_PARTIALS"
    assert validate_modify_trade(ModifyTrade(7), trade) is None


@pytest.mark.parametrize(
    "breakeven, code_",
    [
        (Distance(15), None),
        (Distance(1.0, DistanceMode.PERCENT), None),
        (None, None),  # off for this trade
        (Distance(0), "INVALID_DISTANCE"),
        (Distance(-5), "INVALID_DISTANCE"),
        (Distance(float("nan")), "INVALID_DISTANCE"),
        (Distance(100, DistanceMode.PERCENT), "INVALID_DISTANCE"),
        (15.0, "INVALID_DISTANCE"),  # a bare number is not a distance
    ],
)
def test_breakeven_per_trade_is_a_positive_distance_or_off(breakeven, code_):
    create = CreateTrade("manual", "RELIANCE", "NSE", Side.LONG, quantity=10, breakeven_after=breakeven)
    assert code(validate_create_trade(create, current_price=2500.0)) == code_
    modify = ModifyTrade(7, breakeven_after=breakeven)
    assert code(validate_modify_trade(modify, _trade())) == code_
    # Checked before partial targets, which end the modify checks when given.
    both = ModifyTrade(7, breakeven_after=breakeven, partial_targets=(PartialTarget(Distance(5), 0.5),))
    assert code(validate_modify_trade(both, _trade())) == code_


def test_breakeven_left_unset_takes_the_default_and_is_valid():
    assert CreateTrade("manual", "RELIANCE", "NSE", Side.LONG).breakeven_after is UNSET
    assert ModifyTrade(7).breakeven_after is UNSET
    assert validate_create_trade(CreateTrade("manual", "RELIANCE", "NSE", Side.LONG, quantity=1)) is None
