"""The JSON codec and the record <-> row conversion round-trip every engine dataclass exactly."""

from __future__ import annotations

import json
import math
import re
from dataclasses import fields, replace
from datetime import date, time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tmtool.domain.models import (
    Alert,
    Distance,
    OrderRecord,
    PortfolioState,
    Strategy,
    Trade,
    TradeEvent,
)
from tmtool.storage import codec
from tmtool.storage.models import RECORD_TABLES, record_to_row, row_to_record, row_to_strategy, strategy_to_row

from tests.storage.samples import full_alert, full_event, full_order, full_portfolio, full_strategy, full_trade


def test_strategy_round_trips_with_every_setting():
    strategy = full_strategy()
    text = codec.to_json(strategy)
    assert codec.from_json(Strategy, text) == strategy
    assert row_to_strategy(strategy_to_row(strategy, 1.0)) == strategy


def test_enums_are_stored_by_value_and_times_as_hours_and_minutes():
    data = json.loads(codec.to_json(full_strategy()))
    assert data["square_off_time"] == "15:10"
    assert data["product"] == "NRML"
    assert data["trade_risk"]["stop_loss"] == {"mode": "PERCENT", "value": 1.5}
    assert data["portfolio"]["target"] == {"mode": "PERCENT", "value": 2.5}


def test_a_time_with_seconds_keeps_them():
    strategy = Strategy("s", square_off_time=time(15, 10, 30))
    assert json.loads(codec.to_json(strategy))["square_off_time"] == "15:10:30"
    assert codec.from_json(Strategy, codec.to_json(strategy)) == strategy


def test_defaults_fill_keys_missing_from_older_settings():
    assert codec.decode(Strategy, {"name": "old"}) == Strategy("old")


def test_unknown_keys_are_refused_not_dropped():
    with pytest.raises(codec.CodecError, match="unknown keys for Strategy: surprise"):
        codec.decode(Strategy, {"name": "x", "surprise": 1})


def test_a_wrong_type_names_the_field():
    with pytest.raises(codec.CodecError, match=r"value.trade_risk.stop_loss.value is 'ten'; expected float"):
        codec.decode(Strategy, {"name": "x", "trade_risk": {"stop_loss": {"value": "ten"}}})
    with pytest.raises(codec.CodecError, match="expected one of POINTS, PERCENT"):
        codec.decode(Distance, {"value": 1.0, "mode": "TICKS"})


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused(bad):
    with pytest.raises(codec.CodecError, match="only finite numbers"):
        codec.to_json(replace(full_strategy(), allocated_funds=bad))
    with pytest.raises(codec.CodecError, match="Trade id=7: stop_loss"):
        record_to_row(full_trade(stop_loss=bad))


@pytest.mark.parametrize(
    "record",
    [full_trade(), full_portfolio(), full_order(), full_event(), full_alert()],
    ids=lambda record: type(record).__name__,
)
def test_every_record_round_trips_through_its_row(record):
    assert row_to_record(type(record), record_to_row(record)) == record


@pytest.mark.parametrize("record_type", [Trade, PortfolioState, OrderRecord, TradeEvent, Alert])
def test_every_record_field_has_a_column(record_type):
    columns = set(RECORD_TABLES[record_type]._meta.columns)
    assert {f.name for f in fields(record_type)} <= columns


def test_strategy_table_keeps_all_settings_in_one_json_column():
    assert set(json.loads(codec.to_json(full_strategy()))) == {f.name for f in fields(Strategy)}


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@given(
    stop=st.none() | finite,
    trailing_stop=st.none() | finite,
    high=finite,
    low=finite,
    pnl=finite,
    ids=st.lists(st.text(max_size=12), max_size=4).map(tuple),
    note=st.text(max_size=40),
)
def test_trade_numbers_and_texts_round_trip_exactly(stop, trailing_stop, high, low, pnl, ids, note):
    trade = full_trade(
        stop_loss=stop, trailing_stop=trailing_stop, high_watermark=high, low_watermark=low,
        realised_pnl=pnl, exit_order_ids=ids, note=note,
    )
    assert row_to_record(Trade, record_to_row(trade)) == trade


def test_portfolio_day_is_stored_as_iso_date():
    row = record_to_row(full_portfolio(day=date(2026, 3, 31)))
    assert row["trading_day"] == "2026-03-31"


@pytest.mark.parametrize(
    ("field_name", "value", "expected"),
    [("strategy", None, "strategy is None, a NoneType; expected str"),
     ("quantity", True, "quantity is True, a bool; expected int"),
     ("side", "LONG", "side is 'LONG', a str; expected Side"),
     ("stop_loss", "95", "stop_loss is '95', a str; expected float | None")],
)
def test_a_field_of_the_wrong_type_is_refused_naming_it(field_name, value, expected):
    with pytest.raises(codec.CodecError, match=re.escape(f"Trade id=7: {expected}")):
        record_to_row(full_trade(**{field_name: value}))
