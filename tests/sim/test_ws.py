"""The WebSocket proxy: authentication, subscriptions, market data frames, order updates (§5)."""

from __future__ import annotations

import pytest
from websockets.exceptions import ConnectionClosed

from tests.sim.helpers import API_KEY, Rest, recv_json, send_json, subscribe, ws_client
from tests.util import wait_for
from tmtool.sim import Simulator


def test_authentication_success_reply(sim: Simulator) -> None:
    with ws_client(sim, authenticate=False) as ws:
        send_json(ws, {"type": "auth", "apikey": API_KEY})  # the alternative spellings
        assert recv_json(ws) == {
            "type": "auth", "status": "success", "message": "Authentication successful", "broker": "angel",
            "user_id": "simuser", "supported_features": {"ltp": True, "quote": True, "depth": True},
        }


@pytest.mark.parametrize("message, expected_code, expected_text", [
    ({"action": "authenticate", "api_key": "wrong"}, "AUTHENTICATION_ERROR", "Invalid API key"),
    ({"action": "authenticate"}, "AUTHENTICATION_ERROR", "API key is required"),
])
def test_authentication_failures_are_error_frames_without_type(sim: Simulator, message, expected_code,
                                                               expected_text) -> None:
    with ws_client(sim, authenticate=False) as ws:
        send_json(ws, message)
        assert recv_json(ws) == {"status": "error", "code": expected_code, "message": expected_text}
        send_json(ws, {"action": "ping", "timestamp": 1})  # the socket stays open
        assert recv_json(ws)["type"] == "pong"


def test_expired_session_fails_auth_with_broker_error(sim: Simulator) -> None:
    sim.session_expired = True
    with ws_client(sim, authenticate=False) as ws:
        send_json(ws, {"action": "authenticate", "api_key": API_KEY})
        reply = recv_json(ws)
        assert (reply["code"], "type" in reply) == ("BROKER_ERROR", False)


def test_unauthenticated_connection_is_closed_with_4401() -> None:
    with Simulator(api_key=API_KEY, tick_interval=None, ws_auth_grace_seconds=0.3) as sim:
        with ws_client(sim, authenticate=False) as ws:
            send_json(ws, {"action": "subscribe", "symbol": "SBIN", "exchange": "NSE"})
            assert recv_json(ws)["code"] == "NOT_AUTHENTICATED"
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4401, "auth timeout")


def test_authenticating_in_time_keeps_the_connection() -> None:
    with Simulator(api_key=API_KEY, tick_interval=None, ws_auth_grace_seconds=0.3) as sim:
        with ws_client(sim) as authenticated:
            subscribe(authenticated, ("NSE", "SBIN"))
            with ws_client(sim, authenticate=False) as late:  # its deadline passes after the first one's
                with pytest.raises(ConnectionClosed):
                    late.recv(timeout=10)
            sim.set_price("NSE", "SBIN", 801.0)
            assert recv_json(authenticated)["data"]["ltp"] == 801.0


def test_subscribe_ack_with_partial_failure_and_request_id(sim: Simulator) -> None:
    with ws_client(sim) as ws:
        send_json(ws, {"action": "subscribe", "mode": "ltp", "depth": 5, "request_id": "sub-1",
                       "symbols": [{"symbol": "RELIANCE", "exchange": "NSE"}, {"symbol": "BAD", "exchange": "NSE"}]})
        assert recv_json(ws) == {
            "type": "subscribe", "status": "partial", "message": "Subscription processing complete",
            "broker": "angel", "request_id": "sub-1",
            "subscriptions": [
                {"symbol": "RELIANCE", "exchange": "NSE", "status": "success", "mode": "LTP", "depth": 5,
                 "broker": "angel"},
                {"symbol": "BAD", "exchange": "NSE", "status": "error",
                 "message": "Token not found for BAD on NSE", "broker": "angel"},
            ],
        }
        assert sim.subscriptions() == {("NSE", "RELIANCE", 1)}


def test_single_symbol_form_defaults_to_quote_mode(sim: Simulator) -> None:
    with ws_client(sim) as ws:
        send_json(ws, {"action": "subscribe", "symbol": "SBIN", "exchange": "NSE"})
        ack = recv_json(ws)
        assert ack["status"] == "success" and ack["subscriptions"][0]["mode"] == "Quote"
        assert sim.subscriptions() == {("NSE", "SBIN", 2)}


@pytest.mark.parametrize("message, code", [
    ({"action": "subscribe", "symbols": [{"symbol": "SBIN", "exchange": "NSE"}], "mode": 7}, "INVALID_MODE"),
    ({"action": "subscribe", "mode": 1}, "INVALID_PARAMETERS"),
    ({"action": "teleport"}, "INVALID_ACTION"),
])
def test_bad_requests_get_error_frames_and_keep_the_socket(sim: Simulator, message, code) -> None:
    with ws_client(sim) as ws:
        send_json(ws, message)
        assert recv_json(ws)["code"] == code
        assert subscribe(ws, ("NSE", "SBIN"))["status"] == "success"


def test_malformed_json_is_an_error_frame(sim: Simulator) -> None:
    with ws_client(sim) as ws:
        ws.send("{not json")
        assert recv_json(ws) == {"status": "error", "code": "INVALID_JSON", "message": "Invalid JSON message"}
        send_json(ws, {"action": "ping", "timestamp": 42})
        pong = recv_json(ws)
        assert (pong["type"], pong["status"], pong["client_timestamp"]) == ("pong", "success", 42)
        assert isinstance(pong["server_timestamp"], int)


def test_ltp_frame_shape(sim: Simulator) -> None:
    with ws_client(sim) as ws:
        subscribe(ws, ("NSE", "RELIANCE"), mode=1)
        sim.set_price("NSE", "RELIANCE", 2503.45)
        frame = recv_json(ws)
        assert {k: frame[k] for k in ("type", "symbol", "exchange", "mode", "broker")} == {
            "type": "market_data", "symbol": "RELIANCE", "exchange": "NSE", "mode": 1, "broker": "angel"}
        data = frame["data"]
        assert data["ltp"] == 2503.45
        assert isinstance(data["ltt"], int) and isinstance(data["timestamp"], int)
        assert data["timestamp"] > 1_600_000_000_000  # epoch milliseconds


def test_quote_and_depth_frames_carry_their_fields(sim: Simulator) -> None:
    with ws_client(sim) as ws:
        subscribe(ws, ("NFO", "NIFTY30DEC26FUT"), mode=2)
        subscribe(ws, ("NSE", "SBIN"), mode="Depth")
        sim.set_price("NFO", "NIFTY30DEC26FUT", 26150.0)
        quote = recv_json(ws)["data"]
        assert {"open", "high", "low", "close", "volume", "average_price", "last_trade_quantity",
                "total_buy_quantity", "total_sell_quantity", "oi"} <= set(quote)
        sim.set_price("NSE", "SBIN", 801.0)
        frame = recv_json(ws)
        assert frame["mode"] == 3
        assert len(frame["data"]["depth"]["buy"]) == len(frame["data"]["depth"]["sell"]) == 5


def test_a_symbol_in_two_modes_arrives_twice(sim: Simulator) -> None:
    with ws_client(sim) as ws:
        subscribe(ws, ("NSE", "INFY"), mode=1)
        subscribe(ws, ("NSE", "INFY"), mode=2)
        sim.set_price("NSE", "INFY", 1510.0)
        frames = [recv_json(ws), recv_json(ws)]
        assert sorted(frame["mode"] for frame in frames) == [1, 2]
        assert {frame["data"]["ltp"] for frame in frames} == {1510.0}


def test_every_tick_reaches_every_client_in_order(sim: Simulator) -> None:
    prices = [800.0 + i * 0.05 for i in range(200)]
    with ws_client(sim) as first, ws_client(sim) as second:
        subscribe(first, ("NSE", "SBIN"))
        subscribe(second, ("NSE", "SBIN"))
        sim.burst("NSE", "SBIN", prices)
        for ws in (first, second):
            received = [recv_json(ws)["data"]["ltp"] for _ in prices]
            assert received == [round(p, 2) for p in prices]


def test_list_unsubscribe_uses_each_items_mode_and_ignores_the_top_level_one(sim: Simulator) -> None:
    with ws_client(sim) as ws:
        subscribe(ws, ("NSE", "TCS"), mode=1)
        send_json(ws, {"action": "unsubscribe", "mode": 1, "symbols": [{"symbol": "TCS", "exchange": "NSE"}]})
        ack = recv_json(ws)
        assert (ack["type"], ack["status"]) == ("unsubscribe", "success")
        assert ack["successful"] == [{"symbol": "TCS", "exchange": "NSE", "status": "success", "broker": "angel"}]
        assert sim.subscriptions() == {("NSE", "TCS", 1)}  # the LTP subscription silently stays
        send_json(ws, {"action": "unsubscribe", "symbols": [{"symbol": "TCS", "exchange": "NSE", "mode": 1}]})
        recv_json(ws)
        assert sim.subscriptions() == set()


def test_single_unsubscribe_uses_the_top_level_mode(sim: Simulator) -> None:
    with ws_client(sim) as ws:
        subscribe(ws, ("NSE", "TCS"), ("NSE", "SBIN"), mode=1)
        send_json(ws, {"action": "unsubscribe", "symbol": "TCS", "exchange": "NSE", "mode": 1})
        recv_json(ws)
        sim.set_price("NSE", "TCS", 3510.0)  # not delivered any more
        sim.set_price("NSE", "SBIN", 805.0)
        assert recv_json(ws)["symbol"] == "SBIN"


def test_unsubscribe_all(sim: Simulator) -> None:
    with ws_client(sim) as ws:
        subscribe(ws, ("NSE", "TCS"), ("NSE", "SBIN"), mode=1)
        send_json(ws, {"action": "unsubscribe_all"})
        assert recv_json(ws)["status"] == "success"
        assert sim.subscriptions() == set()


def test_subscriptions_disappear_when_the_client_leaves(sim: Simulator) -> None:
    ws = ws_client(sim)
    subscribe(ws, ("NSE", "TCS"))
    assert sim.ws_clients() == 1
    ws.close()
    wait_for(lambda: sim.ws_clients() == 0 and sim.subscriptions() == set(), what="client cleanup")


def test_order_updates_follow_every_state_change(sim: Simulator, rest: Rest) -> None:
    sim.set_price("NSE", "SBIN", 800.0)
    with ws_client(sim) as ws:
        send_json(ws, {"action": "subscribe_orders"})
        assert recv_json(ws) == {"type": "subscribe_orders", "status": "success",
                                 "message": "Subscribed to order updates"}
        orderid = rest.order_id(symbol="SBIN", quantity=3, pricetype="LIMIT", price=795)
        opened = recv_json(ws)
        assert opened["type"] == "order_update" and opened["orderid"] == orderid
        assert (opened["order_status"], opened["filled_quantity"], opened["pending_quantity"]) == ("open", 0, 3)
        assert opened["mode"] == "live" and opened["rejection_reason"] == ""
        sim.set_price("NSE", "SBIN", 794.0)
        filled = recv_json(ws)
        assert (filled["order_status"], filled["filled_quantity"], filled["average_price"]) == ("complete", 3, 794.0)


def test_rejections_arrive_with_their_reason(sim: Simulator, rest: Rest) -> None:
    with ws_client(sim) as ws:
        send_json(ws, {"action": "subscribe_orders"})
        recv_json(ws)
        sim.faults.reject_orders(reason="RMS: margin exceeds")
        rest.order_id()
        update = recv_json(ws)
        assert (update["order_status"], update["rejection_reason"]) == ("rejected", "RMS: margin exceeds")


def test_order_updates_can_be_switched_off(sim: Simulator) -> None:
    sim.order_updates_enabled = False
    with ws_client(sim) as ws:
        send_json(ws, {"action": "subscribe_orders"})
        assert recv_json(ws) == {"status": "error", "code": "INVALID_ACTION",
                                 "message": "Invalid action: subscribe_orders"}


def test_inject_raw_frame_reaches_every_client(sim: Simulator) -> None:
    with ws_client(sim) as ws, ws_client(sim, authenticate=False) as anonymous:
        sim.inject_raw_frame("{garbage")
        assert ws.recv(timeout=5) == "{garbage"
        assert anonymous.recv(timeout=5) == "{garbage"
