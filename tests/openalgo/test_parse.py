"""The feed's frame parser on crafted frames (the simulator only sends well-formed ones)."""

from __future__ import annotations

import json

import pytest

from tmtool.openalgo.feed import (
    ControlFrame,
    MalformedFrame,
    PriceFrame,
    loads_with_json,
    parse_frame,
)
from tmtool.domain.broker import OrderUpdate


def market(ltp, **extra) -> str:
    frame = {"type": "market_data", "symbol": "RELIANCE", "exchange": "NSE", "mode": 1, "broker": "sim",
             "data": {"symbol": "RELIANCE", "exchange": "NSE", "mode": "ltp", "ltp": ltp, "timestamp": 1732697445123}}
    frame.update(extra)
    return json.dumps(frame)


@pytest.mark.parametrize("loads", [None, loads_with_json], ids=["orjson", "json"])
def test_market_data_is_routed_on_top_level_fields(loads):
    raw = market(1424.05)
    frame = parse_frame(raw) if loads is None else parse_frame(raw, loads)
    assert frame == PriceFrame("NSE", "RELIANCE", 1424.05, 1732697445123, 1)


def test_bytes_and_numeric_string_ltp_are_accepted():
    assert parse_frame(market("20.15").encode()).price == 20.15


@pytest.mark.parametrize(
    "raw, reason",
    [
        ("not json at all", "not JSON"),
        (b"\xff\xfe{", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"symbol": "X"}', "no 'type'"),
        (market(float("nan")), "not JSON"),  # a bare NaN literal is not JSON
        (market("NaN"), "finite price"),
        (market("Infinity"), "finite price"),
        (market(-5), "finite price"),
        (market(0), "finite price"),
        (market("abc"), "not a number"),
        (market(None), "not a number"),
        (market(True), "not a number"),
        (market([1]), "not a number"),
        (market(1.0, symbol=None), "top-level exchange and symbol"),
        (market(1.0, exchange=""), "top-level exchange and symbol"),
        (market(1.0, data="x"), "without a data object"),
        ('{"type": "order_update", "symbol": "SBIN"}', "without an orderid"),
        ('{"type": "order_update", "orderid": "1", "quantity": "many"}', "order_update 1"),
        ('{"type": "order_update", "orderid": "1", "average_price": "NaN"}', "order_update 1"),
    ],
)
def test_malformed_frames_raise_with_a_reason(raw, reason):
    with pytest.raises(MalformedFrame, match=reason):
        parse_frame(raw)


def test_error_frames_have_no_type_and_are_recognised_by_status():
    frame = parse_frame('{"status": "error", "code": "AUTHENTICATION_ERROR", "message": "Invalid API key"}')
    assert frame == ControlFrame("error", "error", "Invalid API key", "AUTHENTICATION_ERROR", frame.body)


def test_acknowledgements_are_control_frames():
    frame = parse_frame('{"type": "auth", "status": "success", "message": "Authentication successful"}')
    assert (frame.kind, frame.status) == ("auth", "success")


def test_order_update_numbers_may_be_strings():
    raw = json.dumps({"type": "order_update", "mode": "live", "orderid": 260715000344871, "symbol": "NHPC",
                      "exchange": "NSE", "action": "buy", "quantity": "10", "order_status": "Complete",
                      "filled_quantity": 10, "pending_quantity": "0", "average_price": "50.05", "product": "CNC"})
    assert parse_frame(raw) == OrderUpdate(
        order_id="260715000344871", symbol="NHPC", exchange="NSE", action="BUY", quantity=10, status="complete",
        filled_quantity=10, pending_quantity=0, average_price=50.05, product="CNC", mode="live",
    )
