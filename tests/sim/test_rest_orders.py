"""Order endpoints: shapes, types, codes and error strings as openalgo-api.md §0–§3 describe them."""

from __future__ import annotations

import re

import pytest

from tests.sim.helpers import Rest
from tmtool.sim import Simulator

LIVE_TIMESTAMP = re.compile(r"^\d{2}-[A-Z][a-z]{2}-\d{4} \d{2}:\d{2}:\d{2}$")
SANDBOX_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


def test_market_order_fills_at_ltp_and_reports_like_a_live_broker(sim: Simulator, rest: Rest) -> None:
    sim.set_price("NSE", "RELIANCE", 2512.35)
    status, body = rest.order(quantity="10")  # numbers as strings, like the SDK sends them
    assert status == 200
    assert set(body) == {"status", "orderid"} and body["status"] == "success"
    assert re.fullmatch(r"\d{15}", body["orderid"])

    status, body = rest("orderstatus", strategy="test", orderid=body["orderid"])
    assert status == 200
    data = body["data"]
    assert set(data) == {"orderid", "symbol", "exchange", "action", "quantity", "price", "trigger_price",
                         "pricetype", "product", "order_status", "average_price", "timestamp"}
    assert data["order_status"] == "complete"
    assert data["quantity"] == "10"  # the ordered quantity, as a string
    assert data["average_price"] == 2512.35
    assert LIVE_TIMESTAMP.match(data["timestamp"])
    assert sim.positions() == {("RELIANCE", "NSE", "MIS"): 10}


def test_lower_case_action_is_accepted_and_normalised(sim: Simulator, rest: Rest) -> None:
    rest.order_id(action="sell", quantity=5)
    assert sim.orders()[-1]["action"] == "SELL"
    assert sim.positions() == {("RELIANCE", "NSE", "MIS"): -5}


@pytest.mark.parametrize("fields, message", [
    ({"stoploss": "5"}, "{'stoploss': ['Unknown field.']}"),
    ({"quantity": "1.5"}, "{'quantity': ['Fractional quantity (1.5) is not allowed for non-crypto exchanges.']}"),
    ({"quantity": "-3"}, "{'quantity': ['Quantity must be a positive number.']}"),
    ({"quantity": "ten"}, "{'quantity': ['Not a valid number.']}"),
    ({"quantity": "nan"}, "{'quantity': ['Special numeric values (nan or infinity) are not permitted.']}"),
    ({"exchange": "nse"}, "{'exchange': ['Must be one of: NSE, NFO, CDS, BSE, BFO, BCD, MCX, NCDEX, NCO, "
                          "NSE_INDEX, BSE_INDEX, MCX_INDEX, GLOBAL_INDEX, CRYPTO.']}"),
    ({"pricetype": "market"}, "{'pricetype': ['Must be one of: MARKET, LIMIT, SL, SL-M.']}"),
    ({"disclosed_quantity": "0.0"}, "{'disclosed_quantity': ['Not a valid integer.']}"),
    ({"price": "-1"}, "{'price': ['Price must be a non-negative number.']}"),
])
def test_schema_errors_are_400_with_the_error_dict_as_a_string(sim: Simulator, rest: Rest, fields, message) -> None:
    status, body = rest.order(**fields)
    assert (status, body) == (400, {"status": "error", "message": message})
    assert sim.orders() == []


def test_missing_required_fields_are_listed(sim: Simulator, rest: Rest) -> None:
    status, body = rest("placeorder", symbol="SBIN")
    assert status == 400
    assert body["message"] == str({
        "strategy": ["Missing data for required field."], "exchange": ["Missing data for required field."],
        "action": ["Missing data for required field."], "quantity": ["Missing data for required field."],
    })


def test_unknown_symbol_is_400_with_the_master_contract_text(sim: Simulator, rest: Rest) -> None:
    status, body = rest.order(symbol="NOSUCH")
    assert status == 400
    assert body["message"] == ("Symbol 'NOSUCH' not found for exchange 'NSE'. Please verify the symbol name "
                               "and ensure master contracts are downloaded.")
    assert sim.orders() == []


def test_index_symbols_are_data_only(sim: Simulator, rest: Rest) -> None:
    status, body = rest.order(symbol="NIFTY", exchange="NSE_INDEX", quantity=75)
    assert status == 400 and "cannot be traded" in body["message"]


def test_fno_quantity_must_be_a_multiple_of_the_lot_size(sim: Simulator, rest: Rest) -> None:
    status, body = rest.order(symbol="NIFTY30DEC26FUT", exchange="NFO", quantity=50, product="NRML")
    assert status == 400 and "lot size 75" in body["message"]
    rest.order_id(symbol="NIFTY30DEC26FUT", exchange="NFO", quantity=150, product="NRML")
    assert sim.positions() == {("NIFTY30DEC26FUT", "NFO", "NRML"): 150}


def test_orders_above_the_freeze_quantity_are_accepted_then_rejected(sim: Simulator, rest: Rest) -> None:
    orderid = rest.order_id(symbol="NIFTY30DEC26FUT", exchange="NFO", quantity=1875)
    _, body = rest("orderstatus", strategy="test", orderid=orderid)
    assert body["data"]["order_status"] == "rejected"
    assert sim.orders()[0]["rejection_reason"].startswith("Quantity 1875 exceeds the freeze limit of 1800")
    assert sim.positions() == {}


@pytest.mark.parametrize("apikey", ["wrong-key", ""])
def test_wrong_key_is_403(sim: Simulator, rest: Rest, apikey: str) -> None:
    status, body = rest.order(apikey=apikey) if apikey else rest("orderbook", apikey="nope")
    assert (status, body) == (403, {"status": "error", "message": "Invalid openalgo apikey"})
    assert sim.orders() == []


def test_expired_session_makes_every_call_403(sim: Simulator, rest: Rest) -> None:
    sim.session_expired = True
    for endpoint, fields in [("ping", {}), ("funds", {}), ("quotes", {"symbol": "SBIN", "exchange": "NSE"})]:
        assert rest(endpoint, **fields) == (403, {"status": "error", "message": "Invalid openalgo apikey"})
    assert rest.order()[0] == 403
    sim.session_expired = False
    assert rest("ping")[0] == 200


def test_limit_order_rests_until_the_price_crosses(sim: Simulator, rest: Rest) -> None:
    sim.set_price("NSE", "SBIN", 800.0)
    orderid = rest.order_id(symbol="SBIN", quantity=4, pricetype="LIMIT", price="795")
    assert rest("orderstatus", strategy="test", orderid=orderid)[1]["data"]["order_status"] == "open"
    sim.set_price("NSE", "SBIN", 796.0)
    assert sim.orders()[0]["status"] == "open"
    sim.set_price("NSE", "SBIN", 794.5)
    order = sim.orders()[0]
    assert (order["status"], order["filled_quantity"], order["average_price"]) == ("complete", 4, 794.5)


def test_stop_market_order_waits_for_its_trigger(sim: Simulator, rest: Rest) -> None:
    sim.set_price("NSE", "INFY", 1500.0)
    orderid = rest.order_id(symbol="INFY", action="SELL", quantity=2, pricetype="SL-M", trigger_price=1490)
    assert rest("orderstatus", strategy="test", orderid=orderid)[1]["data"]["order_status"] == "trigger pending"
    sim.set_price("NSE", "INFY", 1489.0)
    assert sim.orders()[0]["status"] == "complete"
    assert sim.positions() == {("INFY", "NSE", "MIS"): -2}


def test_limit_without_a_price_is_refused(sim: Simulator, rest: Rest) -> None:
    status, body = rest.order(pricetype="LIMIT")
    assert status == 400 and "Price is required" in body["message"]


def test_prices_off_the_tick_size_are_refused(sim: Simulator, rest: Rest) -> None:
    status, body = rest.order(symbol="SBIN", pricetype="LIMIT", price="800.03")
    assert (status, body["message"]) == (400, "Price 800.03 is not a multiple of the tick size 0.05 for SBIN.")
    status, body = rest.order(symbol="SBIN", pricetype="SL-M", trigger_price="790.01")
    assert status == 400 and "Trigger price 790.01" in body["message"]
    assert rest.order(symbol="YESBANK", pricetype="LIMIT", price="20.01")[0] == 200
    assert len(sim.orders()) == 1


def test_modify_then_cancel_an_open_order(sim: Simulator, rest: Rest) -> None:
    sim.set_price("NSE", "TCS", 3500.0)
    orderid = rest.order_id(symbol="TCS", quantity=1, pricetype="LIMIT", price=3400)
    full_order = dict(strategy="test", symbol="TCS", exchange="NSE", orderid=orderid, action="BUY", product="MIS",
                      pricetype="LIMIT", price="3450", quantity="2", disclosed_quantity="0", trigger_price="0")
    assert rest("modifyorder", **full_order) == (200, {"status": "success", "orderid": orderid})
    assert (sim.orders()[0]["price"], sim.orders()[0]["quantity"]) == (3450.0, 2)

    partial = {k: v for k, v in full_order.items() if k != "trigger_price"}
    status, body = rest("modifyorder", **partial)
    assert status == 400 and body["message"] == "{'trigger_price': ['Missing data for required field.']}"

    assert rest("cancelorder", strategy="test", orderid=orderid) == (200, {"status": "success", "orderid": orderid})
    assert sim.orders()[0]["status"] == "cancelled"
    status, body = rest("cancelorder", strategy="test", orderid=orderid)
    assert status == 400 and "cancelled" in body["message"]


def test_unknown_order_id_is_404(sim: Simulator, rest: Rest) -> None:
    for endpoint in ("orderstatus", "cancelorder"):
        assert rest(endpoint, strategy="test", orderid="999") == (404, {"status": "error", "message": "Order 999 not found"})


def test_orderstatus_requires_strategy(sim: Simulator, rest: Rest) -> None:
    orderid = rest.order_id()
    status, body = rest("orderstatus", orderid=orderid)
    assert status == 400 and body["message"] == "{'strategy': ['Missing data for required field.']}"


def test_cancelallorder_cancels_every_open_order_of_the_account(sim: Simulator, rest: Rest) -> None:
    sim.set_price("NSE", "SBIN", 800.0)
    first = rest.order_id(symbol="SBIN", quantity=1, pricetype="LIMIT", price=700, strategy="a")
    second = rest.order_id(symbol="SBIN", quantity=1, pricetype="LIMIT", price=701, strategy="b")
    rest.order_id(symbol="SBIN", quantity=1)  # fills: not cancellable
    status, body = rest("cancelallorder", strategy="a")
    assert status == 200
    assert body == {"status": "success", "message": "Canceled 2 orders. Failed to cancel 0 orders.",
                    "canceled_orders": [first, second], "failed_cancellations": []}


def test_closeposition_squares_off_the_whole_account(sim: Simulator, rest: Rest) -> None:
    rest.order_id(symbol="SBIN", quantity=5, strategy="a")
    rest.order_id(symbol="INFY", action="SELL", quantity=3, strategy="b")
    assert rest("closeposition", strategy="a") == (200, {"status": "success", "message": "All Open Positions Squared Off"})
    assert sim.positions() == {}
    status, body = rest("closeposition", strategy="a", symbol="SBIN")
    assert status == 400 and body["message"] == "{'symbol': ['Unknown field.']}"


def test_openposition_returns_the_net_quantity_or_integer_zero(sim: Simulator, rest: Rest) -> None:
    rest.order_id(symbol="SBIN", action="SELL", quantity=10)
    fields = dict(strategy="x", symbol="SBIN", exchange="NSE", product="MIS")
    assert rest("openposition", **fields) == (200, {"status": "success", "quantity": -10})
    assert rest("openposition", **{**fields, "product": "CNC"}) == (200, {"status": "success", "quantity": 0})


def test_positionbook_nets_fills_and_keeps_closed_rows(sim: Simulator, rest: Rest) -> None:
    sim.set_price("NSE", "SBIN", 800.0)
    rest.order_id(symbol="SBIN", quantity=10)
    sim.set_price("NSE", "SBIN", 810.0)
    rest.order_id(symbol="SBIN", quantity=10)
    status, body = rest("positionbook")
    row = body["data"][0]
    assert (row["quantity"], row["average_price"], row["ltp"], row["pnl"]) == (20, 805.0, 810.0, 100.0)
    rest.order_id(symbol="SBIN", action="SELL", quantity=20)
    row = rest("positionbook")[1]["data"][0]
    assert set(row) == {"symbol", "exchange", "product", "quantity", "average_price", "ltp", "pnl"}
    assert (row["quantity"], row["average_price"], row["pnl"]) == (0, 0.0, 100.0)


def test_a_fill_through_zero_reverses_the_position(sim: Simulator, rest: Rest) -> None:
    sim.set_price("NSE", "SBIN", 800.0)
    rest.order_id(symbol="SBIN", quantity=5)
    sim.set_price("NSE", "SBIN", 790.0)
    rest.order_id(symbol="SBIN", action="SELL", quantity=8)
    row = rest("positionbook")[1]["data"][0]
    assert (row["quantity"], row["average_price"], row["pnl"]) == (-3, 790.0, -50.0)


def test_zerodha_profile_sends_average_price_as_a_string(rest: Rest, sim: Simulator) -> None:
    sim.broker_profile = "zerodha"
    rest.order_id(symbol="SBIN", quantity=1)
    row = rest("positionbook")[1]["data"][0]
    assert row["average_price"] == f"{sim.price('NSE', 'SBIN'):.2f}"


def test_orderbook_and_tradebook_rows(sim: Simulator, rest: Rest) -> None:
    sim.set_price("NSE", "YESBANK", 20.0)
    filled = rest.order_id(symbol="YESBANK", quantity=100)
    rest.order_id(symbol="YESBANK", quantity=1, pricetype="LIMIT", price=16.5)
    status, body = rest("orderbook")
    assert status == 200
    orders, statistics = body["data"]["orders"], body["data"]["statistics"]
    assert [o["order_status"] for o in orders] == ["complete", "open"]
    assert set(orders[1]) == {"orderid", "symbol", "exchange", "action", "quantity", "price", "trigger_price",
                              "pricetype", "product", "order_status", "timestamp"}
    assert statistics == {"total_buy_orders": 2, "total_sell_orders": 0, "total_completed_orders": 1,
                          "total_open_orders": 1, "total_rejected_orders": 0}
    status, body = rest("tradebook")
    assert body["data"] == [{
        "orderid": filled, "symbol": "YESBANK", "exchange": "NSE", "product": "MIS", "action": "BUY",
        "quantity": 100, "average_price": 20.0, "trade_value": 2000.0, "timestamp": body["data"][0]["timestamp"],
    }]


def test_sandbox_orderbook_rows_carry_fills_and_the_strategy_tag(sim: Simulator, rest: Rest) -> None:
    sim.set_price("NSE", "YESBANK", 20.0)
    live = rest.order_id(symbol="YESBANK", quantity=5, strategy="alpha")
    sim.analyzer_mode = True
    sandbox = rest.order_id(symbol="YESBANK", quantity=7, strategy="beta")
    resting = rest.order_id(symbol="YESBANK", quantity=1, pricetype="LIMIT", price=16.5, strategy="gamma")
    status, body = rest("orderbook")
    assert status == 200 and body["mode"] == "analyze"
    rows = {row["orderid"]: row for row in body["data"]["orders"]}
    assert {k: rows[k]["strategy"] for k in (live, sandbox, resting)} == {live: "alpha", sandbox: "beta", resting: "gamma"}
    assert (rows[sandbox]["filled_quantity"], rows[sandbox]["pending_quantity"], rows[sandbox]["average_price"]) == (7, 0, 20.0)
    assert (rows[resting]["filled_quantity"], rows[resting]["pending_quantity"]) == (0, 1)
    assert rows[resting]["rejection_reason"] == ""
    assert SANDBOX_TIMESTAMP.match(rows[resting]["timestamp"])
    sim.analyzer_mode = False
    live_rows = rest("orderbook")[1]["data"]["orders"]
    assert not any("strategy" in row or "filled_quantity" in row for row in live_rows)


def test_semi_auto_queues_orders_and_blocks_changes(sim: Simulator, rest: Rest) -> None:
    sim.semi_auto = True
    status, body = rest.order(quantity=3)
    assert (status, body) == (200, {"status": "success", "message": "Order queued for approval in Action Center",
                                    "mode": "semi_auto", "pending_order_id": 1})
    assert sim.orders() == []
    assert sim.pending_approvals()[0]["request"]["quantity"] == 3
    status, body = rest("placesmartorder", strategy="t", symbol="SBIN", exchange="NSE", action="BUY",
                        quantity=0, position_size=5)
    assert status == 200 and body["pending_order_id"] == 2 and "orderid" not in body
    for endpoint, fields in [("cancelorder", {"orderid": "1"}), ("closeposition", {}), ("cancelallorder", {}),
                             ("modifyorder", dict(symbol="SBIN", exchange="NSE", orderid="1", action="BUY",
                                                  product="MIS", pricetype="LIMIT", price=1, quantity=1,
                                                  disclosed_quantity=0, trigger_price=0))]:
        status, body = rest(endpoint, strategy="t", **fields)
        assert status == 403 and "not allowed in Semi-Auto mode" in body["message"], endpoint
    status, body = rest("analyzer/toggle", mode=True)
    assert status == 403 and sim.analyzer_mode is False


def test_analyzer_mode_tags_replies_and_uses_sandbox_shapes(sim: Simulator, rest: Rest) -> None:
    assert rest("analyzer/toggle", mode="true") == (200, {"status": "success", "data": {
        "mode": "analyze", "analyze_mode": True, "total_logs": 0, "message": "Analyzer mode switched to analyze"}})
    status, body = rest.order(quantity=2)
    assert status == 200 and body["mode"] == "analyze" and re.fullmatch(r"\d{14}", body["orderid"])
    data = rest("orderstatus", strategy="test", orderid=body["orderid"])[1]
    assert data["mode"] == "analyze"
    assert data["data"]["price_type"] == "MARKET" and "pricetype" not in data["data"]
    assert data["data"]["quantity"] == 2 and data["data"]["filled_quantity"] == 2
    assert SANDBOX_TIMESTAMP.match(data["data"]["timestamp"])
    funds = rest("funds")[1]
    assert funds["mode"] == "analyze" and isinstance(funds["data"]["availablecash"], float)
    assert rest("closeposition", strategy="x")[1] == {"status": "success", "message": "Closed 1 positions",
                                                      "closed_positions": 1, "failed_closures": 0, "mode": "analyze"}
    assert rest("closeposition", strategy="x")[1]["message"] == "No open positions to close"
    assert "mode" not in rest("quotes", symbol="SBIN", exchange="NSE")[1]
    assert rest("orderstatus", strategy="t", orderid="1")[1] == {"status": "error", "message": "Order 1 not found",
                                                                 "mode": "analyze"}
    assert rest("analyzer")[1]["data"]["analyze_mode"] is True
    status, body = rest("analyzer/toggle", mode="sometimes")
    assert status == 400 and body["message"] == "{'mode': ['Not a valid boolean.']}"
