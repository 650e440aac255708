"""Fault injection: REST failures/delays/timeouts, order faults, WebSocket drops/stalls/refusals."""

from __future__ import annotations

import threading

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.sim.helpers import API_KEY, Rest, recv_json, subscribe, ws_client
from tests.util import wait_for
from tmtool.sim import Simulator


def test_rest_fail_answers_with_the_status_then_recovers(sim: Simulator, rest: Rest) -> None:
    sim.faults.rest_fail(500, count=2, endpoints=["placeorder"])
    assert rest("funds")[0] == 200  # other endpoints unaffected
    assert [rest.order()[0] for _ in range(3)] == [500, 500, 200]
    assert len(sim.orders()) == 1  # failed calls placed nothing


def test_rest_fail_429_uses_the_rate_limit_body(rest: Rest, sim: Simulator) -> None:
    sim.faults.rest_fail(429)
    assert rest("ping") == (429, {"status": "error", "retry_after": 60,
                                  "message": "Rate limit exceeded. Please slow down your requests."})


def test_rest_delay_holds_the_reply_but_answers(sim: Simulator, rest: Rest) -> None:
    sim.faults.rest_delay(0.2, endpoints="funds", count=1)
    with pytest.raises(httpx.ReadTimeout):
        rest.http.post("funds", json={"apikey": API_KEY}, timeout=0.05)
    assert rest("funds")[0] == 200


def test_rest_timeout_with_processing_places_the_order_but_never_answers(sim: Simulator, rest: Rest) -> None:
    sim.faults.rest_timeout(count=1, endpoints=["placeorder"], process=True)
    with pytest.raises(httpx.ReadTimeout):
        rest.http.post("placeorder", json={"apikey": API_KEY, "strategy": "t", "symbol": "SBIN", "exchange": "NSE",
                                           "action": "BUY", "quantity": 1}, timeout=0.3)
    assert [o["status"] for o in sim.orders()] == ["complete"]  # the order went through anyway
    assert sim.positions() == {("SBIN", "NSE", "MIS"): 1}


def test_rest_timeout_without_processing_places_nothing(sim: Simulator, rest: Rest) -> None:
    sim.faults.rest_timeout(process=False)
    with pytest.raises(httpx.ReadTimeout):
        rest.http.post("placeorder", json={"apikey": API_KEY, "strategy": "t", "symbol": "SBIN", "exchange": "NSE",
                                           "action": "BUY", "quantity": 1}, timeout=0.3)
    assert sim.orders() == []
    assert rest.order()[0] == 200  # only one use


def test_stop_releases_a_held_request_quickly() -> None:
    sim = Simulator(api_key=API_KEY, tick_interval=None).start()
    sim.faults.rest_timeout(process=False)
    outcome: list[object] = []

    def call() -> None:
        try:
            outcome.append(httpx.post(sim.rest_url + "/api/v1/ping", json={"apikey": API_KEY}, timeout=30))
        except httpx.HTTPError as error:
            outcome.append(error)

    caller = threading.Thread(target=call)
    caller.start()
    wait_for(lambda: sim._rest._connections, what="request held")
    sim.stop()
    caller.join(timeout=10)
    assert not caller.is_alive() and isinstance(outcome[0], httpx.HTTPError)


def test_reject_orders_gives_an_id_then_rejects(sim: Simulator, rest: Rest) -> None:
    sim.faults.reject_orders(count=1, reason="RMS: margin exceeds")
    orderid = rest.order_id(symbol="SBIN", quantity=1)
    assert rest("orderstatus", strategy="test", orderid=orderid)[1]["data"]["order_status"] == "rejected"
    assert sim.orders()[0]["rejection_reason"] == "RMS: margin exceeds"
    rest.order_id(symbol="SBIN", quantity=1)
    assert sim.orders()[1]["status"] == "complete"


def test_partial_fill_leaves_the_rest_open(sim: Simulator, rest: Rest) -> None:
    sim.set_price("NSE", "SBIN", 800.0)
    sim.faults.partial_fill(0.4)
    orderid = rest.order_id(symbol="SBIN", quantity=10)
    order = sim.orders()[0]
    assert (order["status"], order["filled_quantity"], order["pending_quantity"]) == ("open", 4, 6)
    assert sim.positions() == {("SBIN", "NSE", "MIS"): 4}
    live = rest("orderstatus", strategy="test", orderid=orderid)[1]["data"]
    assert (live["order_status"], live["average_price"]) == ("open", 0.0)  # live: no average until complete
    assert len(rest("tradebook")[1]["data"]) == 1
    sim.fill_order(orderid)
    assert sim.positions() == {("SBIN", "NSE", "MIS"): 10}
    assert len(rest("tradebook")[1]["data"]) == 2  # one row per fill


def test_partial_fill_respects_the_lot_size(sim: Simulator, rest: Rest) -> None:
    sim.faults.partial_fill(0.5)
    rest.order_id(symbol="NIFTY30DEC26FUT", exchange="NFO", quantity=225)
    assert sim.orders()[0]["filled_quantity"] == 75


def test_hold_fills_parks_market_orders_until_released(sim: Simulator, rest: Rest) -> None:
    sim.set_price("NSE", "SBIN", 800.0)
    sim.faults.hold_fills(True)
    orderid = rest.order_id(symbol="SBIN", quantity=2)
    assert rest("orderstatus", strategy="test", orderid=orderid)[1]["data"]["order_status"] == "open"
    sim.set_price("NSE", "SBIN", 805.0)
    assert sim.positions() == {}
    sim.faults.hold_fills(False)
    order = sim.orders()[0]
    assert (order["status"], order["average_price"]) == ("complete", 805.0)


def test_held_orders_can_be_cancelled(sim: Simulator, rest: Rest) -> None:
    sim.faults.hold_fills(True)
    orderid = rest.order_id(symbol="SBIN", quantity=2)
    assert rest("cancelorder", strategy="t", orderid=orderid)[0] == 200
    sim.faults.clear()
    assert sim.orders()[0]["status"] == "cancelled" and sim.positions() == {}


def test_gap_price_jumps_through_resting_orders(sim: Simulator, rest: Rest) -> None:
    sim.set_price("NSE", "SBIN", 800.0)
    rest.order_id(symbol="SBIN", action="SELL", quantity=1, pricetype="SL-M", trigger_price=790)
    sim.faults.gap_price("NSE", "SBIN", 760.0)
    assert sim.price("NSE", "SBIN") == 760.0
    assert sim.orders()[0]["average_price"] == 760.0  # a stop fills at the gapped price


def test_close_position_externally_flattens_behind_the_clients_back(sim: Simulator, rest: Rest) -> None:
    rest.order_id(symbol="SBIN", quantity=7)
    sim.faults.close_position_externally("SBIN", "NSE", "MIS")
    assert sim.positions() == {}
    assert sim.orders()[-1]["strategy"] == "EXTERNAL"
    with pytest.raises(ValueError, match="no open position"):
        sim.faults.close_position_externally("SBIN", "NSE", "MIS")


@pytest.mark.parametrize("call", [
    lambda f: f.rest_fail(200),
    lambda f: f.rest_delay(-1),
    lambda f: f.rest_fail(500, count=0),
    lambda f: f.partial_fill(1.5),
    lambda f: f.reject_orders(reason=""),
    lambda f: f.stall_ws(float("nan")),
    lambda f: f.gap_price("NSE", "SBIN", float("inf")),
])
def test_bad_fault_arguments_are_refused(sim: Simulator, call) -> None:
    before = sim.price("NSE", "SBIN")
    with pytest.raises(ValueError):
        call(sim.faults)
    assert sim.price("NSE", "SBIN") == before


def test_drop_ws_closes_every_connection_abnormally(sim: Simulator) -> None:
    with ws_client(sim) as first, ws_client(sim) as second:
        sim.faults.drop_ws()
        for ws in (first, second):
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=5)
            assert closed.value.rcvd is None  # no close frame: code 1006
    wait_for(lambda: sim.ws_clients() == 0, what="clients gone")
    with ws_client(sim) as again:  # new connections are still welcome
        assert subscribe(again, ("NSE", "SBIN"))["status"] == "success"


def test_stall_ws_keeps_the_socket_but_sends_nothing(sim: Simulator) -> None:
    with ws_client(sim) as ws:
        subscribe(ws, ("NSE", "SBIN"))
        sim.faults.stall_ws(None)
        sim.set_price("NSE", "SBIN", 801.0)
        sim.faults.clear()
        sim.set_price("NSE", "SBIN", 802.0)
        assert recv_json(ws)["data"]["ltp"] == 802.0  # the tick during the stall never came
        assert sim.ws_clients() == 1


def test_refuse_ws_rejects_new_handshakes(sim: Simulator) -> None:
    sim.faults.refuse_ws(60)
    with pytest.raises(InvalidStatus) as refused:
        ws_client(sim, authenticate=False)
    assert refused.value.response.status_code == 503
    sim.faults.clear()
    with ws_client(sim):
        pass


def test_faults_can_be_injected_through_the_admin_endpoint(sim: Simulator, rest: Rest) -> None:
    admin = httpx.Client(base_url=sim.rest_url + "/sim/v1/")
    try:
        reply = admin.post("fault", json={"apikey": API_KEY, "fault": "rest_fail",
                                          "args": {"status": 503, "endpoints": ["funds"]}})
        assert reply.status_code == 200
        assert rest("funds")[0] == 503
        assert admin.post("fault", json={"apikey": "wrong", "fault": "clear"}).status_code == 403
        assert admin.post("fault", json={"apikey": API_KEY, "fault": "explode"}).status_code == 400
        assert admin.post("fault", json={"apikey": API_KEY, "fault": "rest_fail",
                                         "args": {"status": "x"}}).status_code == 400
        assert admin.post("state", json={"apikey": API_KEY, "semi_auto": True}).status_code == 200
        assert sim.semi_auto is True
        assert admin.post("price", json={"apikey": API_KEY, "exchange": "NSE", "symbol": "SBIN",
                                         "price": 777}).status_code == 200
        assert sim.price("NSE", "SBIN") == 777.0
    finally:
        admin.close()
