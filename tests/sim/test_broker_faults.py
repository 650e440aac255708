"""Broker-side faults over real sockets: lagging order and position books, ambiguous placement,
delayed MARKET fills and the zone of the books' naive timestamps.

Lag and delay tests run the simulator on a manual clock (``manual_sim``), so "not yet" and
"now" are decided by advancing the clock, never by how fast the machine is.
"""

from __future__ import annotations

import httpx
import pytest

from tests.sim.helpers import API_KEY, Rest
from tests.util import wait_for
from tmtool.clock import ManualClock
from tmtool.sim import Simulator


def _orderbook_ids(rest: Rest) -> list[str]:
    status, body = rest("orderbook")
    assert status == 200, body
    return [row["orderid"] for row in body["data"]["orders"]]


def _order_status(rest: Rest, orderid: str) -> tuple[int, dict]:
    return rest("orderstatus", strategy="test", orderid=orderid)


def _open_position(rest: Rest, symbol: str = "SBIN") -> int:
    status, body = rest("openposition", strategy="test", symbol=symbol, exchange="NSE", product="MIS")
    assert status == 200, body
    return int(body["quantity"])


def _positionbook(rest: Rest) -> dict[str, int]:
    status, body = rest("positionbook")
    assert status == 200, body
    return {row["symbol"]: row["quantity"] for row in body["data"]}


# ---- order-book lag ------------------------------------------------------------------------


def test_a_new_order_appears_in_the_order_book_only_after_the_lag(manual_sim: Simulator, manual_rest: Rest,
                                                                  clock: ManualClock) -> None:
    earlier = manual_rest.order_id(symbol="SBIN", quantity=1)
    manual_sim.faults.lag_order_book(0.8)
    orderid = manual_rest.order_id(symbol="SBIN", quantity=5)
    assert manual_sim.orders()[-1]["status"] == "complete"  # placed and filled at the broker
    assert _orderbook_ids(manual_rest) == [earlier]  # orders from before the lag stay visible
    assert _order_status(manual_rest, orderid) == (404, {"status": "error", "message": f"Order {orderid} not found"})
    assert len(manual_rest("tradebook")[1]["data"]) == 1
    assert manual_sim.positions() == {("SBIN", "NSE", "MIS"): 6}
    assert _open_position(manual_rest) == 6  # the position book is not lagged by this fault

    clock.advance(0.7)
    assert _orderbook_ids(manual_rest) == [earlier]
    clock.advance(0.1)
    assert _orderbook_ids(manual_rest) == [earlier, orderid]
    status, body = _order_status(manual_rest, orderid)
    assert (status, body["data"]["order_status"]) == (200, "complete")
    assert [row["orderid"] for row in manual_rest("tradebook")[1]["data"]] == [earlier, orderid]


def test_status_changes_reach_the_lagging_order_book_late(manual_sim: Simulator, manual_rest: Rest,
                                                          clock: ManualClock) -> None:
    manual_sim.set_price("NSE", "SBIN", 800.0)
    manual_sim.faults.lag_order_book(2)
    orderid = manual_rest.order_id(symbol="SBIN", quantity=3, pricetype="LIMIT", price=790.0)
    clock.advance(2)
    assert _order_status(manual_rest, orderid)[1]["data"]["order_status"] == "open"
    assert manual_rest("cancelorder", strategy="test", orderid=orderid)[0] == 200  # acts on the live order
    assert manual_sim.orders()[0]["status"] == "cancelled"
    clock.advance(1.9)
    assert _order_status(manual_rest, orderid)[1]["data"]["order_status"] == "open"
    rows = manual_rest("orderbook")[1]["data"]
    assert (rows["orders"][0]["order_status"], rows["statistics"]["total_open_orders"]) == ("open", 1)
    clock.advance(0.1)
    assert _order_status(manual_rest, orderid)[1]["data"]["order_status"] == "cancelled"


def test_switching_the_order_book_lag_off_shows_the_present(manual_sim: Simulator, manual_rest: Rest) -> None:
    manual_sim.faults.lag_order_book(5)
    orderid = manual_rest.order_id(symbol="SBIN", quantity=1)
    assert _orderbook_ids(manual_rest) == []
    manual_sim.faults.lag_order_book(0)
    assert _orderbook_ids(manual_rest) == [orderid]
    assert _order_status(manual_rest, orderid)[0] == 200
    manual_sim.faults.lag_order_book(5)  # on again: what is there now stays visible
    assert _orderbook_ids(manual_rest) == [orderid]
    second = manual_rest.order_id(symbol="SBIN", quantity=1)
    assert _orderbook_ids(manual_rest) == [orderid]
    manual_sim.faults.clear()
    assert _orderbook_ids(manual_rest) == [orderid, second]


# ---- position lag --------------------------------------------------------------------------


def test_positions_lag_separately_from_the_order_book(manual_sim: Simulator, manual_rest: Rest,
                                                      clock: ManualClock) -> None:
    manual_rest.order_id(symbol="SBIN", quantity=5)
    manual_sim.faults.lag_positions(1.5)
    manual_rest.order_id(symbol="SBIN", action="SELL", quantity=5)
    manual_rest.order_id(symbol="INFY", quantity=2)
    assert manual_sim.positions() == {("INFY", "NSE", "MIS"): 2}
    assert _open_position(manual_rest) == 5  # still long as far as the API shows
    assert _positionbook(manual_rest) == {"SBIN": 5}  # INFY not there yet
    assert len(_orderbook_ids(manual_rest)) == 3  # the order book is live
    clock.advance(1.5)
    assert _open_position(manual_rest) == 0
    assert _positionbook(manual_rest) == {"SBIN": 0, "INFY": 2}  # closed rows stay in the book


def test_smart_orders_act_on_the_lagging_position(manual_sim: Simulator, manual_rest: Rest) -> None:
    """The double exit of a lagging broker: the position is already flat, the book still says 5."""
    manual_rest.order_id(symbol="SBIN", quantity=5)
    manual_sim.faults.lag_positions(3)
    manual_rest.order_id(symbol="SBIN", action="SELL", quantity=5)
    status, body = manual_rest("placesmartorder", strategy="test", symbol="SBIN", exchange="NSE", action="SELL",
                               quantity=5, position_size=0, product="MIS", pricetype="MARKET")
    assert status == 200 and body["orderid"]
    assert manual_sim.positions() == {("SBIN", "NSE", "MIS"): -5}  # reversed
    manual_sim.faults.lag_positions(0)
    assert _open_position(manual_rest) == -5


@pytest.mark.parametrize("call", [
    lambda f: f.lag_order_book(-1),
    lambda f: f.lag_order_book(301),
    lambda f: f.lag_positions(float("inf")),
    lambda f: f.delay_fills(float("nan")),
    lambda f: f.server_time_zone("Mars/Olympus"),
    lambda f: f.server_time_zone(""),
    lambda f: f.rest_fail(500, process=True, count=0),
    lambda f: f.rest_drop(count=0),
])
def test_bad_arguments_to_the_new_faults_are_refused(sim: Simulator, call) -> None:
    with pytest.raises(ValueError):
        call(sim.faults)


# ---- ambiguous placement -------------------------------------------------------------------

ORDER = {"apikey": API_KEY, "strategy": "t", "symbol": "SBIN", "exchange": "NSE", "action": "BUY", "quantity": 3}


def test_a_500_after_placing_leaves_the_order_at_the_broker(sim: Simulator, rest: Rest) -> None:
    sim.faults.rest_fail(500, endpoints="placeorder", process=True)
    status, body = rest.order(symbol="SBIN", quantity=3)
    assert (status, body) == (500, {"status": "error", "message": "Simulated HTTP 500 from the broker"})
    assert [o["status"] for o in sim.orders()] == ["complete"]
    assert sim.positions() == {("SBIN", "NSE", "MIS"): 3}
    assert rest.order(symbol="SBIN", quantity=3)[0] == 200  # one use
    assert sim.positions() == {("SBIN", "NSE", "MIS"): 6}


def test_a_dropped_connection_after_placing_leaves_the_order_at_the_broker(sim: Simulator, rest: Rest) -> None:
    sim.faults.rest_drop(endpoints=["placeorder"])
    with pytest.raises(httpx.RemoteProtocolError):
        rest.http.post("placeorder", json=ORDER)
    assert [o["status"] for o in sim.orders()] == ["complete"]
    assert sim.positions() == {("SBIN", "NSE", "MIS"): 3}
    assert rest("funds")[0] == 200  # only placeorder, only once
    assert rest.order(symbol="SBIN", quantity=3)[0] == 200


def test_a_dropped_connection_without_processing_places_nothing(sim: Simulator, rest: Rest) -> None:
    sim.faults.rest_drop(count=2, process=False)
    for _ in range(2):
        with pytest.raises(httpx.RemoteProtocolError):
            rest.http.post("placeorder", json=ORDER)
    assert sim.orders() == []
    assert rest.order()[0] == 200


def test_a_500_after_placing_with_a_lagging_book(manual_sim: Simulator, manual_rest: Rest,
                                                 clock: ManualClock) -> None:
    """Issue 13's first failure: the reply is an error, and the order book does not show the order yet."""
    manual_sim.faults.lag_order_book(0.8)
    manual_sim.faults.rest_fail(500, endpoints="placeorder", process=True)
    assert manual_rest.order(symbol="SBIN", quantity=3)[0] == 500
    assert _orderbook_ids(manual_rest) == []
    assert manual_sim.positions() == {("SBIN", "NSE", "MIS"): 3}
    clock.advance(0.8)
    [row] = manual_rest("orderbook")[1]["data"]["orders"]
    assert (row["symbol"], row["action"], row["quantity"], row["order_status"]) == ("SBIN", "BUY", "3", "complete")


# ---- delayed MARKET fills ------------------------------------------------------------------


def test_delayed_market_fills_stay_open_until_the_delay_is_over(manual_sim: Simulator, manual_rest: Rest,
                                                                clock: ManualClock) -> None:
    manual_sim.set_price("NSE", "SBIN", 800.0)
    manual_sim.faults.delay_fills(5)
    orderid = manual_rest.order_id(symbol="SBIN", quantity=4)
    assert _order_status(manual_rest, orderid)[1]["data"]["order_status"] == "open"
    clock.advance(4.9)
    manual_sim.set_price("NSE", "SBIN", 801.0)
    assert manual_sim.positions() == {}
    assert _order_status(manual_rest, orderid)[1]["data"]["order_status"] == "open"
    clock.advance(0.1)
    manual_sim.set_price("NSE", "SBIN", 802.0)
    status, body = _order_status(manual_rest, orderid)
    assert (body["data"]["order_status"], body["data"]["average_price"]) == ("complete", 802.0)
    assert manual_sim.positions() == {("SBIN", "NSE", "MIS"): 4}
    manual_sim.faults.delay_fills(0)
    orderid = manual_rest.order_id(symbol="SBIN", quantity=1)
    assert _order_status(manual_rest, orderid)[1]["data"]["order_status"] == "complete"


def test_delayed_fills_happen_without_a_tick(sim: Simulator, rest: Rest) -> None:
    sim.set_price("NSE", "SBIN", 800.0)
    sim.faults.delay_fills(0.2)
    orderid = rest.order_id(symbol="SBIN", quantity=2)
    wait_for(lambda: sim.orders()[0]["status"] == "complete", what="the delayed fill")
    [fill] = sim.trades()
    assert (fill["orderid"], fill["price"]) == (orderid, 800.0)
    assert fill["ts"] - sim.orders()[0]["ts"] >= 0.2


def test_delayed_fills_do_not_touch_limit_orders(manual_sim: Simulator, manual_rest: Rest) -> None:
    manual_sim.set_price("NSE", "SBIN", 800.0)
    manual_sim.faults.delay_fills(5)
    manual_rest.order_id(symbol="SBIN", quantity=1, pricetype="LIMIT", price=801.0)
    assert manual_sim.orders()[0]["status"] == "complete"


def test_switching_delayed_fills_off_fills_the_waiting_orders(manual_sim: Simulator, manual_rest: Rest) -> None:
    manual_sim.set_price("NSE", "SBIN", 800.0)
    manual_sim.faults.delay_fills(60)
    manual_rest.order_id(symbol="SBIN", quantity=2)
    manual_sim.faults.hold_fills(True)
    manual_sim.faults.delay_fills(0)
    assert manual_sim.orders()[0]["status"] == "open"  # hold_fills still holds it
    manual_sim.faults.hold_fills(False)
    assert manual_sim.orders()[0]["status"] == "complete"
    manual_sim.faults.delay_fills(60)
    manual_rest.order_id(symbol="SBIN", quantity=2)
    manual_sim.faults.clear()
    assert [o["status"] for o in manual_sim.orders()] == ["complete", "complete"]


# ---- the zone of the books' timestamps -----------------------------------------------------


def _stamps(rest: Rest, orderid: str) -> tuple[str, str, str]:
    order_row = rest("orderbook")[1]["data"]["orders"][-1]
    trade_row = rest("tradebook")[1]["data"][-1]
    status_row = _order_status(rest, orderid)[1]["data"]
    return order_row["timestamp"], trade_row["timestamp"], status_row["timestamp"]


def test_book_timestamps_are_ist_unless_the_zone_is_faulted(manual_sim: Simulator, manual_rest: Rest) -> None:
    orderid = manual_rest.order_id(symbol="SBIN", quantity=1)  # at 04:00 UTC
    assert _stamps(manual_rest, orderid) == ("01-Jan-2026 09:30:00",) * 3
    manual_sim.faults.server_time_zone("UTC")
    assert _stamps(manual_rest, orderid) == ("01-Jan-2026 04:00:00",) * 3
    manual_sim.analyzer_mode = True
    sandbox = manual_rest.order_id(symbol="SBIN", quantity=1)
    assert _stamps(manual_rest, sandbox) == ("2026-01-01 04:00:00",) * 3
    manual_sim.faults.clear()
    assert _stamps(manual_rest, sandbox) == ("2026-01-01 09:30:00",) * 3


# ---- from outside the process --------------------------------------------------------------


def test_the_new_faults_are_switched_through_the_admin_endpoint(manual_sim: Simulator, manual_rest: Rest,
                                                               clock: ManualClock) -> None:
    admin = httpx.Client(base_url=manual_sim.rest_url + "/sim/v1/")

    def fault(name: str, **args) -> int:
        return admin.post("fault", json={"apikey": API_KEY, "fault": name, "args": args}).status_code

    try:
        assert fault("lag_order_book", seconds=1) == 200
        assert fault("lag_positions", seconds=1) == 200
        assert fault("server_time_zone", zone="UTC") == 200
        assert fault("rest_fail", status=500, endpoints=["placeorder"], process=True) == 200
        assert manual_rest.order(symbol="SBIN", quantity=1)[0] == 500
        assert (_orderbook_ids(manual_rest), _open_position(manual_rest)) == ([], 0)
        clock.advance(1)
        assert _open_position(manual_rest) == 1
        assert manual_rest("orderbook")[1]["data"]["orders"][0]["timestamp"] == "01-Jan-2026 04:00:00"
        assert fault("delay_fills", seconds=10) == 200
        manual_rest.order_id(symbol="SBIN", quantity=1)
        assert manual_sim.orders()[-1]["status"] == "open"
        assert fault("rest_drop", endpoints="funds") == 200
        with pytest.raises(httpx.RemoteProtocolError):
            manual_rest("funds")
        assert fault("server_time_zone", zone="Nowhere/Else") == 400
        assert fault("lag_order_book", seconds=-1) == 400
        assert fault("clear") == 200
        assert manual_sim.orders()[-1]["status"] == "complete"
        assert len(_orderbook_ids(manual_rest)) == 2
    finally:
        admin.close()
