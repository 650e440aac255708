"""The official ``openalgo`` SDK (1.0.47, unchanged) works against the simulator."""

from __future__ import annotations

import json
from typing import Iterator

import pytest
from openalgo import api

from tests.sim.helpers import API_KEY
from tests.util import wait_for
from tmtool.sim import Simulator


@pytest.fixture
def client(sim: Simulator) -> Iterator[api]:
    sdk = api(api_key=API_KEY, host=sim.rest_url, ws_url=sim.ws_url)
    try:
        yield sdk
    finally:
        if sdk.ws is not None:
            sdk.disconnect()


def test_sdk_order_round_trip(sim: Simulator, client: api) -> None:
    sim.set_price("NSE", "SBIN", 800.0)
    placed = client.placeorder(strategy="sdk", symbol="SBIN", action="BUY", exchange="NSE", price_type="MARKET",
                               product="MIS", quantity=5)
    assert placed["status"] == "success"
    status = client.orderstatus(order_id=placed["orderid"], strategy="sdk")
    assert status["data"]["order_status"] == "complete" and status["data"]["average_price"] == 800.0
    assert client.openposition(strategy="sdk", symbol="SBIN", exchange="NSE", product="MIS")["quantity"] == 5

    book = client.positionbook()
    assert book["status"] == "success" and book["data"][0]["quantity"] == 5
    assert client.orderbook()["data"]["statistics"]["total_completed_orders"] == 1
    assert client.tradebook()["data"][0]["orderid"] == placed["orderid"]
    assert float(client.funds()["data"]["availablecash"]) < 10_000_000

    exit_order = client.placesmartorder(strategy="sdk", symbol="SBIN", action="SELL", exchange="NSE",
                                        price_type="MARKET", product="MIS", quantity=0, position_size=0)
    assert exit_order["status"] == "success" and "orderid" in exit_order
    assert client.openposition(strategy="sdk", symbol="SBIN", exchange="NSE", product="MIS")["quantity"] == 0


def test_sdk_sees_the_smart_order_no_op_as_an_http_error(sim: Simulator, client: api) -> None:
    reply = client.placesmartorder(strategy="sdk", symbol="SBIN", action="SELL", exchange="NSE", quantity=0,
                                   position_size=0)
    assert (reply["status"], reply["code"], reply["error_type"]) == ("error", 500, "http_error")
    assert json.loads(reply["message"].removeprefix("HTTP 500: "))["message"] == \
        "No OpenPosition Found. Not placing Exit order."


def test_sdk_quotes(sim: Simulator, client: api) -> None:
    sim.set_price("NSE", "RELIANCE", 2511.0)
    assert client.quotes(symbol="RELIANCE", exchange="NSE")["data"]["ltp"] == 2511.0
    multi = client.multiquotes(symbols=[{"symbol": "RELIANCE", "exchange": "NSE"}])
    assert multi["results"][0]["data"]["ltp"] == 2511.0


def test_sdk_feed_connect_and_subscribe_ltp(sim: Simulator, client: api) -> None:
    received: list[dict] = []
    assert client.connect() is True
    assert client.subscribe_ltp([{"exchange": "NSE", "symbol": "RELIANCE"}, {"exchange": "NSE", "symbol": "SBIN"}],
                                on_data_received=received.append) is True
    wait_for(lambda: {("NSE", "RELIANCE", 1), ("NSE", "SBIN", 1)} <= sim.subscriptions(), what="subscriptions")
    sim.set_price("NSE", "RELIANCE", 2533.3)
    sim.set_price("NSE", "SBIN", 811.1)
    wait_for(lambda: len(received) >= 2, what="two LTP callbacks")
    assert [(m["symbol"], m["data"]["ltp"]) for m in received[:2]] == [("RELIANCE", 2533.3), ("SBIN", 811.1)]
    assert {"ltp", "timestamp", "ltt"} <= set(received[0]["data"])
    assert client.get_ltp()["ltp"]["NSE"]["SBIN"]["ltp"] == 811.1
    client.unsubscribe_ltp([{"exchange": "NSE", "symbol": "SBIN"}])
    wait_for(lambda: sim.subscriptions() == {("NSE", "RELIANCE", 1)}, what="unsubscribed")

