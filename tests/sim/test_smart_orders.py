"""placesmartorder follows the table in openalgo-api.md §2, for both broker profiles and the sandbox."""

from __future__ import annotations

import pytest

from tests.sim.helpers import Rest
from tmtool.sim import Simulator

MATCHED = {"status": "success", "message": "Positions Already Matched. No Action needed."}
NO_POSITION_ERROR = {"status": "error", "message": "No OpenPosition Found. Not placing Exit order."}


def _smart(rest: Rest, position_size, quantity, action="BUY", **fields) -> tuple[int, dict]:
    return rest("placesmartorder", strategy="t", symbol="SBIN", exchange="NSE", product="MIS",
                action=action, quantity=quantity, position_size=position_size, **fields)


def _hold(sim: Simulator, rest: Rest, quantity: int) -> None:
    if quantity:
        rest.order_id(symbol="SBIN", action="BUY" if quantity > 0 else "SELL", quantity=abs(quantity))
    assert sim.positions().get(("SBIN", "NSE", "MIS"), 0) == quantity


@pytest.mark.parametrize("profile", ["angel", "zerodha"])
@pytest.mark.parametrize("current, target, quantity, action, expected_net, new_order", [
    (0, 0, 5, "SELL", -5, ("SELL", 5)),  # flat/flat with q > 0: a fresh trade in the request's direction
    (10, 0, 1, "BUY", 0, ("SELL", 10)),  # close long (action ignored)
    (-10, 0, 0, "SELL", 0, ("BUY", 10)),  # cover short
    (0, 100, 0, "SELL", 100, ("BUY", 100)),  # open to target from flat: direction from the sign
    (0, -20, 7, "BUY", -20, ("SELL", 20)),
    (10, 25, 1, "SELL", 25, ("BUY", 15)),  # add
    (10, -5, 1, "BUY", -5, ("SELL", 15)),  # reverse through zero
])
def test_rows_that_place_an_order(sim: Simulator, rest: Rest, profile, current, target, quantity, action,
                                  expected_net, new_order) -> None:
    sim.broker_profile = profile
    _hold(sim, rest, current)
    status, body = _smart(rest, position_size=str(target), quantity=str(quantity), action=action)
    assert status == 200 and set(body) == {"status", "orderid"}
    order = sim.orders()[-1]
    assert order["orderid"] == body["orderid"]
    assert (order["action"], order["quantity"]) == new_order
    assert sim.positions().get(("SBIN", "NSE", "MIS"), 0) == expected_net


@pytest.mark.parametrize("profile, current, quantity, expected", [
    ("angel", 0, 0, (500, NO_POSITION_ERROR)),
    ("angel", 10, 0, (500, NO_POSITION_ERROR)),
    ("angel", 10, 5, (200, MATCHED)),
    ("zerodha", 0, 0, (200, MATCHED)),
    ("zerodha", 10, 0, (200, MATCHED)),
    ("zerodha", -10, 5, (200, MATCHED)),
])
def test_nothing_to_do_replies_depend_on_the_broker(sim: Simulator, rest: Rest, profile, current, quantity,
                                                    expected) -> None:
    sim.broker_profile = profile
    _hold(sim, rest, current)
    orders_before = len(sim.orders())
    assert _smart(rest, position_size=current, quantity=quantity) == expected
    assert len(sim.orders()) == orders_before


@pytest.mark.parametrize("quantity, message", [
    (5, "Positions Already Matched. No Action needed."),
    (0, "No OpenPosition Found. Not placing Exit order."),
])
def test_sandbox_nothing_to_do_is_200_with_mode(sim: Simulator, rest: Rest, quantity, message) -> None:
    sim.analyzer_mode = True
    _hold(sim, rest, 10)
    assert _smart(rest, position_size=10, quantity=quantity) == (
        200, {"status": "success", "message": message, "mode": "analyze"})


def test_sandbox_flat_and_flat_with_zero_quantity_is_200(sim: Simulator, rest: Rest) -> None:
    sim.analyzer_mode = True
    assert _smart(rest, position_size=0, quantity=0) == (
        200, {"status": "success", "message": "No OpenPosition Found. Not placing Exit order.", "mode": "analyze"})
    assert sim.orders() == []


def test_sandbox_smart_orders_always_go_out_as_market(sim: Simulator, rest: Rest) -> None:
    sim.analyzer_mode = True
    sim.set_price("NSE", "SBIN", 800.0)
    status, body = _smart(rest, position_size=10, quantity=0, pricetype="LIMIT", price="700")
    assert status == 200 and body["mode"] == "analyze"
    assert sim.orders()[-1]["pricetype"] == "MARKET"
    assert sim.positions() == {("SBIN", "NSE", "MIS"): 10}


def test_live_smart_orders_keep_the_request_price_type(sim: Simulator, rest: Rest) -> None:
    sim.set_price("NSE", "SBIN", 800.0)
    _smart(rest, position_size=10, quantity=0, pricetype="LIMIT", price="700")
    order = sim.orders()[-1]
    assert (order["pricetype"], order["status"]) == ("LIMIT", "open")
    # the position book shows fills only, so re-sending the same target while unfilled sends a second order
    _smart(rest, position_size=10, quantity=0, pricetype="LIMIT", price="700")
    assert len(sim.orders()) == 2


def test_smart_order_accepts_zero_quantity_but_not_negative_or_fractional(sim: Simulator, rest: Rest) -> None:
    status, body = _smart(rest, position_size=5, quantity=-1)
    assert status == 400 and body["message"] == "{'quantity': ['Quantity must be a non-negative number.']}"
    status, body = _smart(rest, position_size=2.5, quantity=0)
    assert status == 400 and "position_size" in body["message"]
    status, body = _smart(rest, position_size=5, quantity=0, target="1")
    assert status == 400 and body["message"] == "{'target': ['Unknown field.']}"
    assert sim.orders() == []


def test_smart_order_targets_must_respect_the_lot_size(sim: Simulator, rest: Rest) -> None:
    status, body = rest("placesmartorder", strategy="t", symbol="BANKNIFTY30DEC2659000CE", exchange="NFO",
                        action="BUY", quantity=0, position_size=40, product="NRML")
    assert status == 400 and "lot size 35" in body["message"]
    status, _ = rest("placesmartorder", strategy="t", symbol="BANKNIFTY30DEC2659000CE", exchange="NFO",
                     action="BUY", quantity=0, position_size=70, product="NRML")
    assert status == 200
    assert sim.positions() == {("BANKNIFTY30DEC2659000CE", "NFO", "NRML"): 70}
    # the SDK's default quantity=1 is ignored when closing, so it is not held against the lot size
    status, _ = rest("placesmartorder", strategy="t", symbol="BANKNIFTY30DEC2659000CE", exchange="NFO",
                     action="SELL", quantity=1, position_size=0, product="NRML")
    assert status == 200 and sim.positions() == {}
