"""WebSocket silence over real sockets: one symbol stops ticking while the others go on, and a
whole-socket stall that does, or does not, still answer protocol pings."""

from __future__ import annotations

import httpx
import pytest

from tests.sim.helpers import API_KEY, Rest, recv_json, send_json, subscribe, ws_client
from tests.util import wait_for
from tmtool.clock import ManualClock
from tmtool.sim import Simulator

#: How long a test listens for something that must not come (a pong from a deaf server).
SILENCE_PROBE_SECONDS = 0.5


def test_a_silenced_symbol_stops_ticking_while_the_others_go_on(sim: Simulator, rest: Rest) -> None:
    with ws_client(sim) as ws:
        subscribe(ws, ("NSE", "SBIN"), ("NSE", "INFY"))
        sim.faults.silence_symbol("NSE", "SBIN")
        sim.set_price("NSE", "SBIN", 780.0)
        sim.set_price("NSE", "INFY", 1500.0)
        frame = recv_json(ws)
        assert (frame["symbol"], frame["data"]["ltp"]) == ("INFY", 1500.0)  # the SBIN tick never came
        send_json(ws, {"action": "ping", "timestamp": 1})
        assert recv_json(ws)["type"] == "pong"  # the socket is alive and answering
        assert rest("quotes", symbol="SBIN", exchange="NSE")[1]["data"]["ltp"] == 780.0  # REST stays live
        assert sim.ws_clients() == 1
        sim.faults.resume_symbol("NSE", "SBIN")
        sim.set_price("NSE", "SBIN", 781.0)
        frame = recv_json(ws)
        assert (frame["symbol"], frame["data"]["ltp"]) == ("SBIN", 781.0)


def test_a_symbol_silence_ends_after_its_seconds_and_on_clear(clock: ManualClock, manual_sim: Simulator) -> None:
    with ws_client(manual_sim) as ws:
        subscribe(ws, ("NSE", "SBIN"))
        manual_sim.faults.silence_symbol("NSE", "SBIN", seconds=3)
        manual_sim.set_price("NSE", "SBIN", 790.0)
        clock.advance(3)
        manual_sim.set_price("NSE", "SBIN", 791.0)
        assert recv_json(ws)["data"]["ltp"] == 791.0
        manual_sim.faults.silence_symbol("NSE", "SBIN")
        manual_sim.set_price("NSE", "SBIN", 792.0)
        manual_sim.faults.clear()
        manual_sim.set_price("NSE", "SBIN", 793.0)
        assert recv_json(ws)["data"]["ltp"] == 793.0


def test_silencing_an_unknown_symbol_is_refused(sim: Simulator) -> None:
    with pytest.raises(KeyError, match="unknown instrument"):
        sim.faults.silence_symbol("NSE", "NOSUCH")
    with pytest.raises(ValueError):
        sim.faults.silence_symbol("NSE", "SBIN", seconds=-1)


def test_a_stall_that_answers_pings_sends_no_text_but_pongs_protocol_pings(sim: Simulator) -> None:
    with ws_client(sim) as ws:
        subscribe(ws, ("NSE", "SBIN"))
        sim.faults.stall_ws(None)
        sim.set_price("NSE", "SBIN", 801.0)
        handled = sim.ws_messages_handled()
        send_json(ws, {"action": "ping", "timestamp": 1})  # an app-level ping is text: no answer
        assert ws.ping().wait(timeout=5)  # the WebSocket layer still answers
        # The protocol layer answers the ping frame before the server's handler takes the text
        # frame sent ahead of it: the stall may only end once the handler has had it.
        wait_for(lambda: sim.ws_messages_handled() > handled, what="the app-level ping handled during the stall")
        sim.faults.clear()
        sim.set_price("NSE", "SBIN", 802.0)
        assert recv_json(ws)["data"]["ltp"] == 802.0  # neither the tick nor the pong of the stall came
        assert sim.ws_clients() == 1


def test_a_deaf_stall_leaves_protocol_pings_unanswered_until_cleared(sim: Simulator) -> None:
    with ws_client(sim) as other, ws_client(sim) as ws:
        subscribe(ws, ("NSE", "SBIN"))
        sim.faults.stall_ws(None, answer_pings=False)
        pong = ws.ping()
        assert not pong.wait(timeout=SILENCE_PROBE_SECONDS)
        assert not other.ping().wait(timeout=SILENCE_PROBE_SECONDS)  # every connection
        sim.set_price("NSE", "SBIN", 801.0)
        assert sim.ws_clients() == 2  # connected all along
        sim.faults.clear()
        assert pong.wait(timeout=5)  # the queued ping is answered once the server reads again
        sim.set_price("NSE", "SBIN", 802.0)
        assert recv_json(ws)["data"]["ltp"] == 802.0


def test_a_deaf_stall_ends_by_itself_after_its_seconds(sim: Simulator) -> None:
    with ws_client(sim) as ws:
        subscribe(ws, ("NSE", "SBIN"))
        sim.faults.stall_ws(0.3, answer_pings=False)
        assert ws.ping().wait(timeout=10)
        wait_for(lambda: not sim.faults.ws_stalled(), what="the stall to end")
        sim.set_price("NSE", "SBIN", 803.0)
        assert recv_json(ws)["data"]["ltp"] == 803.0


def test_a_connection_made_during_a_deaf_stall_is_deaf_too(sim: Simulator) -> None:
    sim.faults.stall_ws(None, answer_pings=False)
    with ws_client(sim, authenticate=False) as ws:
        send_json(ws, {"action": "authenticate", "api_key": API_KEY})
        pong = ws.ping()
        assert not pong.wait(timeout=SILENCE_PROBE_SECONDS)
        sim.faults.clear()
        assert pong.wait(timeout=5)
        assert recv_json(ws)["type"] == "auth"  # the auth sent during the stall is read afterwards


def test_the_silence_faults_are_switched_through_the_admin_endpoint(sim: Simulator) -> None:
    admin = httpx.Client(base_url=sim.rest_url + "/sim/v1/")

    def fault(name: str, **args) -> int:
        return admin.post("fault", json={"apikey": API_KEY, "fault": name, "args": args}).status_code

    try:
        with ws_client(sim) as ws:
            subscribe(ws, ("NSE", "SBIN"), ("NSE", "INFY"))
            assert fault("silence_symbol", exchange="NSE", symbol="SBIN") == 200
            assert fault("silence_symbol", exchange="NSE", symbol="NOSUCH") == 400
            sim.set_price("NSE", "SBIN", 790.0)
            sim.set_price("NSE", "INFY", 1490.0)
            assert recv_json(ws)["symbol"] == "INFY"
            assert fault("resume_symbol", exchange="NSE", symbol="SBIN") == 200
            assert fault("stall_ws", seconds=None, answer_pings=False) == 200
            pong = ws.ping()
            assert not pong.wait(timeout=SILENCE_PROBE_SECONDS)
            assert fault("clear") == 200
            assert pong.wait(timeout=5)
            sim.set_price("NSE", "SBIN", 791.0)
            assert recv_json(ws)["data"]["ltp"] == 791.0
    finally:
        admin.close()
