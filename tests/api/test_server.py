"""The HTTP server itself: rate limit, engine timeout, logging without secrets, clean shutdown."""

from __future__ import annotations

import logging
import socket
import threading
from concurrent.futures import Future

import httpx
import pytest

from tests.api.conftest import API_KEY, call, ok
from tmtool.api import ApiServer
from tmtool.clock import ManualClock
from tmtool.domain.commands import Command, Result
from tmtool.domain.models import Alert, Instrument, Trade, TradeEvent, TradeStatus
from tmtool.engine.ports import EngineHandle
from tmtool.engine.snapshot import EngineSnapshot


def test_rate_limit_answers_429_until_the_window_moves(stack):
    clock = ManualClock()
    server = ApiServer(stack.engine, port=0, api_key=API_KEY, requests_per_minute=3, clock=clock)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=10.0) as client:
            for _ in range(3):
                ok(call(client, "activetrades"))
            limited = call(client, "activetrades")
            assert limited.status_code == 429
            assert limited.headers["Retry-After"] == "60"
            assert limited.json() == {"status": "error", "message": "rate limit exceeded, slow down", "retry_after": 60}
            clock.advance(30)
            assert call(client, "activetrades").headers["Retry-After"] == "30"
            clock.advance(30)
            ok(call(client, "activetrades"))
    finally:
        server.stop()


def test_wrong_keys_do_not_use_up_the_real_clients_rate_limit(stack):
    """The key is checked before the rate limit: a flood of wrong keys from the same address is limited on
    its own, and the client with the key can still exit everything."""
    clock = ManualClock()
    server = ApiServer(stack.engine, port=0, api_key=API_KEY, requests_per_minute=120, clock=clock)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=10.0) as client:
            answers = [
                client.post("/api/v1/exitall", json={"apikey": "wrong-key-0123456789", "strategy": "bulk"}).status_code
                for _ in range(125)
            ]
            assert answers[:120] == [403] * 120
            assert set(answers[120:]) == {429}  # the guessing itself is limited
            ok(call(client, "exitall", strategy="bulk"))
    finally:
        server.stop()


class _SilentEngine:
    """The real engine's reads, but commands are never answered (an engine stuck on something)."""

    def __init__(self, engine: EngineHandle) -> None:
        self._engine = engine
        self.commands: list[Command] = []

    def submit(self, command: Command) -> Future[Result]:
        self.commands.append(command)
        return Future()

    def adopt_positions(self) -> Future[Result]:
        return Future()

    def snapshot(self) -> EngineSnapshot:
        return self._engine.snapshot()

    def closed_trades(self, start: float | None = None, end: float | None = None, strategy: str | None = None) -> list[Trade]:
        return self._engine.closed_trades(start, end, strategy)

    def trade_events(self, trade_id: int) -> list[TradeEvent]:
        return self._engine.trade_events(trade_id)

    def alert_history(
        self, since: float | None = None, category: str | None = None, priority: str | None = None, limit: int = 500
    ) -> list[Alert]:
        return self._engine.alert_history(since=since, category=category, priority=priority, limit=limit)

    def instrument(self, exchange: str, symbol: str) -> Instrument:
        return self._engine.instrument(exchange, symbol)


def test_an_engine_that_does_not_answer_gives_504(stack):
    silent = _SilentEngine(stack.engine)
    server = ApiServer(silent, port=0, api_key=API_KEY, command_timeout=0.2)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=10.0) as client:
            response = call(client, "exitall", strategy="api")
            assert response.status_code == 504
            assert "did not answer within 0.2 s" in response.json()["message"]
            assert "check activetrades" in response.json()["message"]
            assert len(silent.commands) == 1
            ok(call(client, "activetrades"))  # reads do not need the inbox
    finally:
        server.stop()


def test_the_key_never_reaches_the_log_or_the_repr(stack, caplog):
    server = ApiServer(stack.engine, port=0, api_key=API_KEY)
    with caplog.at_level(logging.DEBUG, logger="tmtool.api"):
        server.start()
        try:
            with httpx.Client(base_url=server.url, timeout=10.0) as client:
                call(client, "activetrades")
                client.post("/api/v1/activetrades?apikey=" + API_KEY, json={"apikey": API_KEY})
                client.post("/api/v1/activetrades", json={"apikey": API_KEY + "-wrong"})
                call(client, "nosuchverb")
        finally:
            server.stop()
    assert any("activetrades" in r.getMessage() for r in caplog.records)
    assert all(API_KEY not in r.getMessage() for r in caplog.records)
    assert API_KEY not in repr(server)


def test_a_short_key_is_refused_without_echoing_it(stack):
    with pytest.raises(ValueError) as refused:
        ApiServer(stack.engine, port=0, api_key="abc12")
    assert "abc12" not in str(refused.value)


def test_stop_closes_open_connections_and_the_listener(stack):
    server = ApiServer(stack.engine, port=0, api_key=API_KEY)
    server.start()
    port = server.port
    idle = socket.create_connection(("127.0.0.1", port))  # a client that connects and says nothing
    with httpx.Client(base_url=server.url, timeout=10.0) as client:
        ok(client.get("/api/v1/health"))  # a kept-alive connection
        server.stop()
        assert idle.recv(1) == b""  # closed by the server, not left to its timeout
        with pytest.raises(httpx.TransportError):
            client.get("/api/v1/health")
    idle.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2.0)
    assert stack.engine.running


def test_a_slow_client_is_dropped_after_the_request_timeout(stack):
    server = ApiServer(stack.engine, port=0, api_key=API_KEY, request_timeout=0.3)
    server.start()
    try:
        half = socket.create_connection(("127.0.0.1", server.port))
        half.sendall(b"POST /api/v1/activetrades HTTP/1.1\r\nHost: tmtool\r\nContent-Length: 50\r\n\r\n{")
        half.settimeout(10.0)
        answer = b""
        while chunk := half.recv(4096):  # the server answers 408 and closes; it does not wait for the rest
            answer += chunk
        half.close()
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert b"the body did not arrive within 0.3 s" in answer
        with httpx.Client(base_url=server.url, timeout=10.0) as client:
            ok(client.get("/api/v1/health"))
    finally:
        server.stop()


def test_a_client_that_never_finishes_its_request_head_is_dropped(stack):
    server = ApiServer(stack.engine, port=0, api_key=API_KEY, request_timeout=0.3)
    server.start()
    try:
        idle = socket.create_connection(("127.0.0.1", server.port))
        trickle = socket.create_connection(("127.0.0.1", server.port))
        trickle.sendall(b"POST /api/v1/activetrades HTTP/1.1\r\nHost: tmtool\r\n")  # and then nothing
        for connection in (idle, trickle):
            connection.settimeout(10.0)
            assert connection.recv(1) == b""  # closed by the server, not held until the client gives up
            connection.close()
    finally:
        server.stop()


def test_the_engine_keeps_trading_while_the_api_serves(stack, api):
    with httpx.Client(base_url=api.url, timeout=10.0) as client:
        stack.sim.set_price("NSE", "SBIN", 800.0)
        data = ok(call(client, "createtrade", strategy="api", symbol="SBIN", exchange="NSE", action="BUY", quantity=1, stop_loss=795))
        stack.wait_status(data["trade_id"], TradeStatus.ACTIVE)
        stack.tick("SBIN", 794.0)
        closed = stack.wait_status(data["trade_id"], TradeStatus.CLOSED)
        assert closed.exit_reason.value == "STOP_LOSS"


def test_an_address_beyond_loopback_needs_allow_remote_and_is_named_in_a_warning(stack, capsys, caplog):
    with pytest.raises(ValueError) as refused:
        ApiServer(stack.engine, host="0.0.0.0", port=0, api_key=API_KEY)
    assert "0.0.0.0" in str(refused.value) and "allow_remote = true" in str(refused.value)
    server = ApiServer(stack.engine, host="0.0.0.0", port=0, api_key=API_KEY, allow_remote=True)
    with caplog.at_level(logging.WARNING, logger="tmtool.api"):
        server.start()
    try:
        warning = f"0.0.0.0:{server.port}, beyond loopback"
        assert warning in capsys.readouterr().err
        assert any(warning in r.getMessage() for r in caplog.records)
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=10.0) as client:
            ok(client.get("/api/v1/health"))
    finally:
        server.stop()


def test_the_unix_socket_is_private_and_needs_no_key_while_tcp_still_does(stack, tmp_path_factory):
    import os
    import stat
    import tempfile

    folder = tempfile.mkdtemp(prefix="tmt", dir="/tmp")
    path = os.path.join(folder, "engine.sock")
    server = ApiServer(stack.engine, port=0, api_key=API_KEY, unix_path=path)
    server.start()
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        with httpx.Client(transport=httpx.HTTPTransport(uds=path), base_url="http://tmtool", timeout=10.0) as local:
            assert isinstance(ok(local.post("/api/v1/activetrades", json={})), list)
        with httpx.Client(base_url=server.url, timeout=10.0) as remote:
            assert remote.post("/api/v1/activetrades", json={}).status_code == 403
    finally:
        server.stop()
    assert not os.path.exists(path)
    os.rmdir(folder)


def _building_blocked(monkeypatch):
    """Hold the application's build until the returned event is set (``start(wait=False)`` runs it on the server thread)."""
    from tmtool.api import app as app_module  # imported by the server thread when it builds

    release = threading.Event()
    real_build = app_module.build_app

    def slow_build(*args, **kwargs):
        release.wait(30)
        return real_build(*args, **kwargs)

    monkeypatch.setattr(app_module, "build_app", slow_build)
    return release


def test_a_server_started_without_waiting_is_bound_at_once_and_answers_once_built(stack, monkeypatch):
    release = _building_blocked(monkeypatch)
    server = ApiServer(stack.engine, port=0, api_key=API_KEY)
    server.start(wait=False)  # returns while the application is still being built
    try:
        with httpx.Client(base_url=server.url, timeout=15.0) as client:
            answer: Future = Future()
            asking = threading.Thread(target=lambda: answer.set_result(client.get("/api/v1/health")))
            asking.start()  # connects now: the listener is bound, the request waits in its backlog
            assert not answer.done()
            release.set()
            asking.join(30)
            ok(answer.result(timeout=0))
    finally:
        release.set()
        server.stop()


def test_a_server_stopped_while_building_never_serves(stack, monkeypatch):
    release = _building_blocked(monkeypatch)
    server = ApiServer(stack.engine, port=0, api_key=API_KEY)
    server.start(wait=False)
    port, thread = server.port, server._thread
    stopping = threading.Thread(target=server.stop, kwargs={"timeout": 30})
    stopping.start()
    release.set()
    stopping.join(30)
    assert not thread.is_alive()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2.0)


def test_a_server_that_fails_after_binding_reports_it(stack, monkeypatch):
    from tmtool.api import app as app_module

    def broken_build(*args, **kwargs):
        raise RuntimeError("the routes could not be built")

    monkeypatch.setattr(app_module, "build_app", broken_build)
    reports: list[str] = []
    reported = threading.Event()
    server = ApiServer(stack.engine, port=0, api_key=API_KEY)
    server.start(wait=False, on_failure=lambda message: (reports.append(message), reported.set()))
    try:
        assert reported.wait(30)
        assert reports == ["the control API did not start: RuntimeError: the routes could not be built"]
    finally:
        server.stop()
    with pytest.raises(RuntimeError, match="the routes could not be built"):
        ApiServer(stack.engine, port=0, api_key=API_KEY).start()  # waiting: raised to the caller, as before


def test_an_address_in_use_is_refused_by_start_even_without_waiting(stack):
    taken = socket.create_server(("127.0.0.1", 0))
    try:
        server = ApiServer(stack.engine, port=taken.getsockname()[1], api_key=API_KEY)
        with pytest.raises(OSError):
            server.start(wait=False)
    finally:
        taken.close()
