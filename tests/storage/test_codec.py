"""The JSON codec and the record <-> row conversion round-trip every engine dataclass exactly."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, fields, replace
from datetime import date, time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tmtool.domain.models import (
    Alert,
    Distance,
    ExitReason,
    OrderRecord,
    PartialLevel,
    PortfolioState,
    Side,
    Strategy,
    Trade,
    TradeEvent,
    TrailingSettings,
)
from tmtool.storage import codec, models
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


# ---------------------------------------------------------------- the writer's generated row encoders

number = st.one_of(finite, st.integers(-10**6, 10**6))


def _checked_values(record) -> list:
    """The reference: every column through the full checks (what the generated code must agree
    with), each value with its type (a str enum member equals its value, but is not what is bound)."""
    json_fields = models._JSON_FIELDS.get(type(record), frozenset())
    return _typed(
        codec.to_json(getattr(record, name)) if name in json_fields else models._encode_column(name, getattr(record, name), record)
        for name in models.record_columns(type(record))
    )


def _typed(values) -> list:
    return [(type(value), value) for value in values]


@given(
    stop=st.none() | number,
    high=number,
    quantity=st.integers(0, 10**6),
    side=st.sampled_from(list(Side)),
    reason=st.none() | st.sampled_from(list(ExitReason)),
    note=st.text(max_size=10),
    paused=st.booleans(),
)
def test_the_generated_row_encoder_agrees_with_the_full_checks(stop, high, quantity, side, reason, note, paused):
    trade = full_trade(stop_loss=stop, high_watermark=high, quantity=quantity, side=side, exit_reason=reason, note=note, paused=paused)
    assert _typed(models.record_values(trade)) == _checked_values(trade)
    assert row_to_record(Trade, record_to_row(trade)) == trade


@pytest.mark.parametrize("record", [full_trade(), full_portfolio(), full_order(), full_event(), full_alert()], ids=lambda r: type(r).__name__)
def test_every_record_type_encodes_as_the_full_checks_do(record):
    assert _typed(models.record_values(record)) == _checked_values(record)


def test_values_of_a_subtype_take_the_full_checks():
    """A str-valued enum member in a str column is stored by its value; an int in a float column as
    itself; neither is taken for its declared type by the fast path."""
    event = full_event(kind="TRAIL")
    enum_as_text = replace(event, kind=Side.LONG)
    row = record_to_row(enum_as_text)
    assert row["kind"] == "LONG" and type(row["kind"]) is str
    assert record_to_row(full_trade(stop_loss=820))["stop_loss"] == 820


def test_settings_shared_by_trade_copies_are_encoded_once(monkeypatch):
    calls = []
    real = codec.to_json
    monkeypatch.setattr(codec, "to_json", lambda value, where="value": calls.append(value) or real(value, where))
    trailing = TrailingSettings(Distance(2.5))
    first = models.record_to_row(full_trade(1, trailing=trailing))
    calls.clear()
    second = models.record_to_row(full_trade(2, trailing=trailing))
    assert trailing not in calls  # the same object: its text is reused
    assert second["trailing"] == first["trailing"]
    other = models.record_to_row(full_trade(3, trailing=TrailingSettings(Distance(4.0))))
    assert json.loads(other["trailing"])["distance"]["value"] == 4.0  # another object gets its own text


@dataclass
class _Loose:
    value: float


@dataclass(frozen=True)
class _Holder:
    items: tuple[_Loose, ...]


def test_only_values_that_cannot_change_are_shared():
    assert models._deeply_frozen(tuple[PartialLevel, ...])
    assert models._deeply_frozen(TrailingSettings | None)
    assert not models._deeply_frozen(_Loose)
    assert not models._deeply_frozen(_Holder)
    assert not models._deeply_frozen(list[float])


def test_equal_settings_texts_load_as_one_object():
    row = record_to_row(full_trade(1))
    first = row_to_record(Trade, row)
    second = row_to_record(Trade, dict(row, id=2))
    assert first.trailing is second.trailing and first.partial_levels is second.partial_levels
    assert first.trailing == full_trade(1).trailing


def test_the_fast_event_builder_makes_ordinary_frozen_events():
    from tmtool.domain.models import trade_event

    built = trade_event(7, 1.5, "TRAIL", "trailing_stop", "99.5", "100.0", "", 101.0, "momentum")
    assert built == TradeEvent(7, 1.5, "TRAIL", "trailing_stop", "99.5", "100.0", "", 101.0, "momentum")
    assert trade_event(7, 1.5, "CREATED") == TradeEvent(7, 1.5, "CREATED")  # the defaults are the dataclass's
    with pytest.raises(AttributeError):
        built.kind = "STATUS"  # frozen like any other
    assert row_to_record(TradeEvent, record_to_row(built)) == built


def test_long_json_texts_are_not_kept():
    """An order's fills_before can name hundreds of orders: such texts are made afresh, never kept by the thousand."""
    many = tuple((f"order-{index}", index) for index in range(200))
    order = replace(full_order(), fills_before=many)
    row = models.record_to_row(order)
    assert json.loads(row["fills_before"])[199] == ["order-199", 199]
    texts = models._row_encoder(OrderRecord).__globals__
    kept = [holder for name, holder in texts.items() if name.startswith("json") and holder.name == "fills_before"][0]
    assert id(many) not in kept.texts
    short = (("order-1", 1),)
    models.record_to_row(replace(full_order(), fills_before=short))
    assert id(short) in kept.texts
