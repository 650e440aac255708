"""The OpenAlgo REST client against the simulator over real loopback sockets."""

from __future__ import annotations

import logging
import socket
import threading

import pytest

from tmtool.openalgo.client import AnalyzerStatus, OpenAlgoClient, SmartOrderResult
from tmtool.domain.broker import (
    BrokerError,
    Fill,
    Funds,
    OrderAck,
    OrderInfo,
    Position,
    Quote,
    SymbolInfo,
)
from tmtool.sim import Simulator

from .conftest import API_KEY


def buy(client: OpenAlgoClient, symbol: str = "SBIN", quantity: int = 10, **extra) -> OrderAck:
    order = dict(strategy="s1", symbol=symbol, exchange="NSE", action="BUY", quantity=quantity, product="MIS")
    order.update(extra)
    return client.place_order(**order)


# ------------------------------------------------------------------ every endpoint


def test_ping_names_the_broker(client):
    assert client.ping() == "angel"  # the simulator reports its broker profile


def test_place_order_then_status_book_trades_positions(sim, client):
    sim.set_price("NSE", "SBIN", 800.0, publish=False)
    ack = buy(client)
    assert ack.order_id and ack.mode == "live" and not ack.awaiting_approval
    assert sim.orders()[-1]["orderid"] == ack.order_id

    info = client.order_status(ack.order_id, "s1")
    assert isinstance(info, OrderInfo)
    assert (info.order_id, info.symbol, info.action, info.quantity, info.status) == (ack.order_id, "SBIN", "BUY", 10, "complete")
    assert info.average_price == pytest.approx(800.0)
    assert info.price_type == "MARKET"

    assert [o.order_id for o in client.order_book()] == [ack.order_id]
    fills = client.trade_book()
    assert fills and isinstance(fills[0], Fill)
    assert (fills[0].order_id, fills[0].quantity, fills[0].average_price) == (ack.order_id, 10, pytest.approx(800.0))

    positions = client.position_book()
    assert Position in {type(p) for p in positions}
    sbin = next(p for p in positions if p.symbol == "SBIN")
    assert (sbin.exchange, sbin.product, sbin.quantity) == ("NSE", "MIS", 10)
    assert client.open_position(strategy="s1", symbol="SBIN", exchange="NSE", product="MIS") == 10


def test_limit_order_is_sent_with_price(sim, client):
    sim.set_price("NSE", "INFY", 1500.0, publish=False)
    ack = buy(client, "INFY", 1, price_type="LIMIT", price=1400.0)
    row = sim.orders()[-1]
    assert (row["orderid"], row["pricetype"], row["price"], row["status"]) == (ack.order_id, "LIMIT", 1400.0, "open")
    info = client.order_status(ack.order_id, "s1")
    assert (info.status, info.price_type, info.price) == ("open", "LIMIT", 1400.0)


def test_closed_positions_stay_in_the_book_with_quantity_zero(sim, client):
    buy(client, "SBIN", 5)
    client.place_order(strategy="s1", symbol="SBIN", exchange="NSE", action="SELL", quantity=5, product="MIS")
    rows = [p for p in client.position_book() if p.symbol == "SBIN"]
    assert [p.quantity for p in rows] == [0]
    assert [p for p in client.position_book(include_closed=False) if p.symbol == "SBIN"] == []


def test_open_position_is_zero_when_absent(client):
    assert client.open_position(strategy="s1", symbol="TCS", exchange="NSE", product="CNC") == 0


def test_quotes_and_multi_quotes(sim, client):
    sim.set_price("NSE", "RELIANCE", 2500.0, publish=False)
    sim.set_price("NSE", "SBIN", 801.5, publish=False)
    quote = client.quotes("RELIANCE", "NSE")
    assert isinstance(quote, Quote) and quote.ltp == 2500.0
    quotes = client.multi_quotes([("RELIANCE", "NSE"), ("SBIN", "NSE"), ("NOSUCH", "NSE")])
    assert {k: q.ltp for k, q in quotes.items()} == {("NSE", "RELIANCE"): 2500.0, ("NSE", "SBIN"): 801.5}
    assert client.multi_quotes([("NOSUCH", "NSE")]) == {}
    assert client.multi_quotes([]) == {}


def test_unknown_symbol_quote_is_a_validation_error(client):
    with pytest.raises(BrokerError) as caught:
        client.quotes("NOSUCH", "NSE")
    assert (caught.value.kind, caught.value.status_code) == ("validation", 400)
    assert "NOSUCH" in caught.value.message


def test_funds_and_symbol_info(client):
    funds = client.funds()
    assert isinstance(funds, Funds) and funds.available_cash > 0
    info = client.symbol_info("YESBANK", "NSE")
    assert isinstance(info, SymbolInfo)
    assert (info.symbol, info.exchange, info.tick_size, info.lot_size) == ("YESBANK", "NSE", 0.01, 1)


def test_analyzer_status_follows_the_server(sim, client):
    assert client.analyzer_status() == AnalyzerStatus(analyze_mode=False, mode="live", total_logs=client.analyzer_status().total_logs)
    sim.analyzer_mode = True
    status = client.analyzer_status()
    assert (status.analyze_mode, status.mode) == (True, "analyze")


# ------------------------------------------------------------------ modes


def test_analyze_mode_orders_are_marked(sim, client):
    sim.analyzer_mode = True
    ack = buy(client)
    assert ack.mode == "analyze" and ack.order_id
    info = client.order_status(ack.order_id, "s1")  # sandbox rows say price_type, not pricetype
    assert (info.order_id, info.price_type, info.status) == (ack.order_id, "MARKET", "complete")
    assert info.filled_quantity == 10


def test_semi_auto_orders_are_queued_without_an_order_id(sim, client):
    sim.semi_auto = True
    ack = buy(client)
    assert ack.order_id is None and ack.awaiting_approval and ack.pending_order_id
    assert sim.orders() == []


# ------------------------------------------------------------------ modify and cancel


def _modify(client: OpenAlgoClient, order_id: str, **changes) -> OrderAck:
    """modifyorder with every field: a LIMIT BUY 2 INFY at 1400 unless ``changes`` say otherwise."""
    order = dict(order_id=order_id, strategy="s1", symbol="INFY", exchange="NSE", action="BUY", product="MIS",
                 price_type="LIMIT", price=1400.0, quantity=2)
    order.update(changes)
    return client.modify_order(**order)


def test_modify_sends_the_whole_order_and_can_make_it_marketable(sim, client):
    sim.set_price("NSE", "INFY", 1500.0, publish=False)
    ack = buy(client, "INFY", 2, price_type="LIMIT", price=1400.0)
    modified = _modify(client, ack.order_id, price=1450.0, quantity=3)
    assert (modified.order_id, modified.mode) == (ack.order_id, "live")
    row = sim.orders()[-1]
    assert (row["price"], row["quantity"], row["status"]) == (1450.0, 3, "open")

    _modify(client, ack.order_id, price_type="MARKET", price=0.0, quantity=3)
    info = client.order_status(ack.order_id, "s1")
    assert (info.status, info.price_type, info.average_price) == ("complete", "MARKET", pytest.approx(1500.0))
    assert sim.positions()[("INFY", "NSE", "MIS")] == 3


def test_cancel_then_status_confirms_it(sim, client):
    sim.set_price("NSE", "INFY", 1500.0, publish=False)
    ack = buy(client, "INFY", 1, price_type="LIMIT", price=1400.0)
    assert client.cancel_order(ack.order_id, "s1").order_id == ack.order_id
    assert client.order_status(ack.order_id, "s1").status == "cancelled"
    with pytest.raises(BrokerError) as caught:  # a final order cannot be cancelled again
        client.cancel_order(ack.order_id, "s1")
    assert (caught.value.kind, caught.value.status_code) == ("validation", 400)
    assert "cancelled" in caught.value.message


def test_modify_and_cancel_of_unknown_or_final_orders(sim, client):
    with pytest.raises(BrokerError) as caught:
        client.cancel_order("999999999", "s1")
    assert caught.value.kind == "not_found"
    filled = buy(client, "INFY", 1)
    with pytest.raises(BrokerError) as caught:
        _modify(client, filled.order_id, quantity=1)
    assert caught.value.kind == "validation" and "complete" in caught.value.message


def test_semi_auto_refuses_modify_and_cancel_without_looking_like_an_expired_session(sim, client):
    sim.set_price("NSE", "INFY", 1500.0, publish=False)
    ack = buy(client, "INFY", 1, price_type="LIMIT", price=1400.0)
    sim.semi_auto = True
    for call in (lambda: _modify(client, ack.order_id, price=1450.0, quantity=1), lambda: client.cancel_order(ack.order_id, "s1")):
        with pytest.raises(BrokerError) as caught:
            call()
        assert (caught.value.kind, caught.value.status_code) == ("semi_auto", 403)
        assert "Semi-Auto" in caught.value.message and not caught.value.ambiguous
    assert sim.orders()[-1]["status"] == "open" and sim.orders()[-1]["price"] == 1400.0
    sim.semi_auto = False
    sim.session_expired = True
    with pytest.raises(BrokerError) as caught:
        client.cancel_order(ack.order_id, "s1")
    assert caught.value.kind == "auth"


def test_modify_and_cancel_are_never_retried(sim, client):
    sim.set_price("NSE", "INFY", 1500.0, publish=False)
    ack = buy(client, "INFY", 1, price_type="LIMIT", price=1400.0)
    sim.faults.rest_fail(500, count=1, endpoints=["modifyorder", "cancelorder"])
    with pytest.raises(BrokerError) as caught:
        _modify(client, ack.order_id, price=1450.0, quantity=1)
    assert caught.value.kind == "server" and caught.value.ambiguous
    assert sim.orders()[-1]["price"] == 1400.0  # the one attempt used the fault up; nothing was retried
    sim.faults.rest_fail(429, count=1, endpoints="cancelorder")
    with pytest.raises(BrokerError) as caught:
        client.cancel_order(ack.order_id, "s1")
    assert caught.value.kind == "rate_limited"
    assert sim.orders()[-1]["status"] == "open"
    assert client.cancel_order(ack.order_id, "s1").order_id == ack.order_id


def test_bad_modify_input_is_refused_before_sending(sim, client):
    sim.set_price("NSE", "INFY", 1500.0, publish=False)
    ack = buy(client, "INFY", 1, price_type="LIMIT", price=1400.0)
    for bad in (dict(quantity=0), dict(price=float("inf")), dict(price=-1.0), dict(disclosed_quantity=-1),
                dict(price_type="STOP")):
        with pytest.raises(BrokerError) as caught:
            _modify(client, ack.order_id, **bad)
        assert caught.value.kind == "validation" and caught.value.status_code is None
    with pytest.raises(BrokerError) as caught:
        _modify(client, "")
        assert caught.value.kind == "validation" and caught.value.status_code is None
    with pytest.raises(BrokerError):
        client.cancel_order("", "s1")
    assert sim.orders()[-1]["price"] == 1400.0


def test_order_rows_carry_the_strategy_tag_only_where_the_server_reports_it(sim, client):
    live = buy(client, "SBIN", 1)
    assert {o.order_id: o.strategy for o in client.order_book()} == {live.order_id: ""}
    sim.analyzer_mode = True
    sandbox = client.place_order(strategy="other", symbol="SBIN", exchange="NSE", action="SELL", quantity=1, product="MIS")
    tags = {o.order_id: o.strategy for o in client.order_book()}
    assert tags[sandbox.order_id] == "other"
    assert client.order_status(sandbox.order_id, "other").strategy == "other"


# ------------------------------------------------------------------ smart orders


@pytest.mark.parametrize("profile, unconfirmed", [("angel", True), ("zerodha", False)])
def test_smart_order_no_op_in_both_broker_profiles(profile, unconfirmed):
    sim = Simulator(api_key=API_KEY, seed=7, rest_port=0, ws_port=0, tick_interval=None, broker_profile=profile)
    sim.start()
    try:
        with OpenAlgoClient(sim.rest_url, API_KEY, timeout=2.0) as client:
            result = client.place_smart_order(strategy="s1", symbol="SBIN", exchange="NSE", action="SELL",
                                              quantity=0, position_size=0, product="MIS")
            assert result == SmartOrderResult(None, no_action=True, message=result.message, unconfirmed=unconfirmed)
            assert result.message
            assert sim.orders() == []
    finally:
        sim.stop()


def test_smart_order_moves_the_net_position(sim, client):
    buy(client, "SBIN", 10)
    result = client.place_smart_order(strategy="s1", symbol="SBIN", exchange="NSE", action="SELL",
                                      quantity=0, position_size=4, product="MIS")
    assert result.order_id and not result.no_action
    assert sim.positions()[("SBIN", "NSE", "MIS")] == 4
    again = client.place_smart_order(strategy="s1", symbol="SBIN", exchange="NSE", action="SELL",
                                     quantity=6, position_size=4, product="MIS")
    assert again.no_action and again.order_id is None and not again.unconfirmed


def test_smart_order_other_server_errors_stay_ambiguous_errors(sim, client):
    sim.faults.rest_fail(500, count=1, endpoints="placesmartorder")
    with pytest.raises(BrokerError) as caught:
        client.place_smart_order(strategy="s1", symbol="SBIN", exchange="NSE", action="SELL",
                                 quantity=0, position_size=0, product="MIS")
    assert caught.value.kind == "server" and caught.value.ambiguous


def test_smart_order_requires_whole_position_size(client):
    with pytest.raises(BrokerError, match="position_size"):
        client.place_smart_order(strategy="s1", symbol="SBIN", exchange="NSE", action="SELL",
                                 quantity=0, position_size=1.5, product="MIS")


# ------------------------------------------------------------------ errors


def test_unknown_field_is_refused_by_the_server(sim, client):
    with pytest.raises(BrokerError) as caught:
        client._call("ping", {"stoploss": 5}, order=False)
    assert (caught.value.kind, caught.value.status_code) == ("validation", 400)
    assert "stoploss" in caught.value.message


def test_bad_order_input_is_refused_before_sending(sim, client):
    for bad in (dict(quantity=0), dict(quantity=-3), dict(quantity=2.5), dict(action="HOLD"),
                dict(price_type="LIMIT", price=float("nan")), dict(price_type="LIMIT", price=0.0), dict(product="XYZ")):
        with pytest.raises(BrokerError) as caught:
            buy(client, **bad)
        assert caught.value.kind == "validation" and caught.value.status_code is None
    assert sim.orders() == []


def test_session_expired_tells_the_user_to_log_in_again(sim, client):
    sim.session_expired = True
    with pytest.raises(BrokerError) as caught:
        client.funds()
    error = caught.value
    assert (error.kind, error.status_code) == ("auth", 403)
    assert "log in to OpenAlgo" in str(error).replace("Log in", "log in")
    with pytest.raises(BrokerError, match="broker session"):
        buy(client)


def test_order_not_found(client):
    with pytest.raises(BrokerError) as caught:
        client.order_status("999999999", "s1")
    assert (caught.value.kind, caught.value.status_code) == ("not_found", 404)


def test_reads_retry_after_429_and_5xx(sim, client):
    sim.faults.rest_fail(429, count=1, endpoints="funds")
    sim.faults.rest_fail(500, count=1, endpoints="funds")
    assert client.funds().available_cash > 0


def test_read_gives_up_after_its_retries(sim, client):
    sim.faults.rest_fail(429, count=3, endpoints="funds")
    with pytest.raises(BrokerError) as caught:
        client.funds()
    assert (caught.value.kind, caught.value.status_code) == ("rate_limited", 429)
    assert caught.value.retry_after and caught.value.retry_after > 0
    assert not caught.value.ambiguous


def test_orders_are_never_retried(sim, client):
    sim.faults.rest_fail(429, count=1, endpoints="placeorder")
    with pytest.raises(BrokerError) as caught:
        buy(client)
    assert caught.value.kind == "rate_limited" and not caught.value.ambiguous
    sim.faults.rest_fail(500, count=1, endpoints="placeorder")
    with pytest.raises(BrokerError) as caught:
        buy(client)
    assert caught.value.kind == "server" and caught.value.ambiguous
    assert sim.orders() == []
    assert buy(client).order_id  # the faults were used up by exactly one attempt each


def test_order_timeout_is_ambiguous_and_the_order_exists(sim):
    with OpenAlgoClient(sim.rest_url, API_KEY, timeout=0.3) as client:
        sim.faults.rest_timeout(count=1, endpoints="placeorder", process=True)
        with pytest.raises(BrokerError) as caught:
            buy(client)
        assert caught.value.kind == "timeout" and caught.value.ambiguous
        assert len(sim.orders()) == 1  # the reply was lost, not the order


def test_read_timeout_is_retried(sim):
    with OpenAlgoClient(sim.rest_url, API_KEY, timeout=0.3, retry_backoff=0.01) as client:
        sim.faults.rest_timeout(count=1, endpoints="funds")
        assert client.funds().available_cash > 0


def test_refused_connection_means_the_order_was_not_sent(sim):
    url = sim.rest_url
    sim.stop()
    with OpenAlgoClient(url, API_KEY, timeout=0.5, read_retries=0) as client:
        with pytest.raises(BrokerError) as caught:
            buy(client)
    assert caught.value.kind == "connection" and not caught.value.ambiguous


def test_rejected_order_has_an_id_and_a_reason(sim, client):
    sim.faults.reject_orders(count=1, reason="RMS: margin exceeds")
    ack = buy(client)
    info = client.order_status(ack.order_id, "s1")
    assert info.status == "rejected"


# ------------------------------------------------------------------ the key never leaks


def test_the_api_key_never_leaks(sim, client, caplog):
    caplog.set_level(logging.DEBUG)
    messages = [repr(client), str(client)]
    faults = [
        lambda: sim.faults.rest_fail(500, count=3),
        lambda: sim.faults.rest_fail(429, count=3),
        lambda: sim.faults.rest_fail(404, count=1),
        lambda: setattr(sim, "session_expired", True),
    ]
    for inject in faults:
        inject()
        for call in (client.funds, lambda: buy(client), lambda: client.quotes("NOSUCH", "NSE")):
            try:
                call()
            except BrokerError as error:
                messages += [str(error), repr(error), error.message]
        sim.faults.clear()
        sim.session_expired = False
    with OpenAlgoClient("http://127.0.0.1:9", API_KEY, timeout=0.2, read_retries=0) as dead:
        with pytest.raises(BrokerError) as caught:
            dead.funds()
        messages += [str(caught.value), repr(dead)]
    assert len(messages) > 10
    assert not [m for m in messages if API_KEY in m]
    assert API_KEY not in caplog.text


# ------------------------------------------------------------------ replies the simulator cannot produce


class _RawServer:
    """A loopback socket server answering every request with fixed bytes (or closing without a word)."""

    def __init__(self, reply: bytes) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._reply = reply
        self.requests = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            with connection:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += connection.recv(65536)
                head, _, body = request.partition(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
                while len(body) < length:
                    body += connection.recv(65536)
                self.requests += 1
                if self._reply:
                    connection.sendall(self._reply)

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def raw_server():
    servers: list[_RawServer] = []

    def make(reply: bytes) -> _RawServer:
        servers.append(_RawServer(reply))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def http_reply(body: bytes, status: str = "200 OK") -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Type: text/html\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body


def test_an_unreadable_order_reply_is_ambiguous(raw_server):
    server = raw_server(http_reply(b"<html>proxy error page</html>"))
    with OpenAlgoClient(server.url, API_KEY, timeout=2.0) as client:
        with pytest.raises(BrokerError) as caught:
            buy(client)
        assert caught.value.kind == "protocol" and caught.value.ambiguous
        with pytest.raises(BrokerError) as caught:
            client.funds()
        assert caught.value.kind == "protocol" and not caught.value.ambiguous
    assert server.requests == 2  # one each: a garbled reply is not retried


def test_a_connection_dropped_after_sending_an_order_is_ambiguous(raw_server):
    server = raw_server(b"")  # reads the whole request, then hangs up without answering
    with OpenAlgoClient(server.url, API_KEY, timeout=2.0, read_retries=0) as client:
        with pytest.raises(BrokerError) as caught:
            buy(client)
    assert caught.value.kind == "connection_after_send" and caught.value.ambiguous
    assert server.requests == 1


def test_a_success_without_an_order_id_is_ambiguous(raw_server):
    server = raw_server(http_reply(b'{"status": "success"}'))
    with OpenAlgoClient(server.url, API_KEY, timeout=2.0) as client:
        with pytest.raises(BrokerError) as caught:
            buy(client)
    assert caught.value.kind == "protocol" and caught.value.ambiguous and "without an order id" in str(caught.value)


def test_margin_required_reads_the_calculator_and_says_when_there_is_none(sim, client):
    sim.set_price("NFO", "NIFTY30DEC26FUT", 26000.0)
    required = client.margin_required(
        symbol="NIFTY30DEC26FUT", exchange="NFO", action="BUY", quantity=75, product="NRML", price_type="MARKET", price=0.0
    )
    assert required == pytest.approx(0.2 * 75 * 26000.0)
    sim.margin_calculator = False
    try:
        with pytest.raises(BrokerError) as raised:
            client.margin_required(symbol="NIFTY30DEC26FUT", exchange="NFO", action="BUY", quantity=75, product="NRML")
        assert raised.value.kind == "unsupported"
    finally:
        sim.margin_calculator = True
