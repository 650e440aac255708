"""The seeded market, the Python API's input checks, and start/stop behaviour."""

from __future__ import annotations

import socket

import pytest

from tests.sim.helpers import API_KEY, recv_json, subscribe, ws_client
from tests.util import wait_for
from tmtool.clock import ManualClock
from tmtool.sim import SimSymbol, Simulator, builtin_symbols
from tmtool.sim.market import Market, round_to_tick


def test_builtin_symbols_cover_the_promised_set() -> None:
    listed = {(s.exchange, s.symbol): s for s in builtin_symbols()}
    for symbol in ("RELIANCE", "SBIN", "INFY", "TCS", "HDFCBANK", "YESBANK"):
        assert ("NSE", symbol) in listed
    assert listed[("NSE", "YESBANK")].tick_size == 0.01
    assert listed[("NFO", "NIFTY30DEC26FUT")].lot_size == 75
    assert listed[("NFO", "BANKNIFTY30DEC2659000CE")].freeze_qty == 900
    assert not listed[("NSE_INDEX", "NIFTY")].tradable


def test_the_random_walk_is_seeded_and_tick_aligned() -> None:
    def walk(seed: int) -> list[float]:
        market = Market(builtin_symbols(), seed=seed, volatility=0.01, clock=ManualClock())
        return [quote.ltp for _ in range(50) for quote in market.step()]

    first = walk(7)
    assert first == walk(7)
    assert first != walk(8)
    ticks = {(s.exchange, s.symbol): s.tick_size for s in builtin_symbols()}
    market = Market(builtin_symbols(), seed=3, volatility=0.01, clock=ManualClock())
    for _ in range(50):
        for quote in market.step():
            tick = ticks[quote.instrument.key]
            assert quote.ltp > 0 and abs(quote.ltp / tick - round(quote.ltp / tick)) < 1e-6
            assert quote.low <= quote.ltp <= quote.high


def test_round_to_tick_never_reaches_zero() -> None:
    assert round_to_tick(0.001, 0.05) == 0.05
    assert round_to_tick(2500.07, 0.05) == 2500.05
    assert round_to_tick(20.004, 0.01) == 20.0


def test_automatic_ticks_reach_subscribers() -> None:
    with Simulator(api_key=API_KEY, tick_interval=0.01, volatility=0.001) as sim:
        with ws_client(sim) as ws:
            subscribe(ws, ("NSE", "SBIN"))
            first, second = recv_json(ws), recv_json(ws)
            assert first["symbol"] == second["symbol"] == "SBIN"
            assert second["data"]["timestamp"] >= first["data"]["timestamp"]


def test_frames_carry_the_injected_clock() -> None:
    clock = ManualClock(1_767_240_000.0)
    with Simulator(api_key=API_KEY, tick_interval=None, clock=clock) as sim:
        with ws_client(sim) as ws:
            subscribe(ws, ("NSE", "SBIN"))
            clock.advance(1.5)
            sim.set_price("NSE", "SBIN", 801.0)
            assert recv_json(ws)["data"]["timestamp"] == 1_767_240_001_500


@pytest.mark.parametrize("price", [float("nan"), float("inf"), -1.0, 0.0, "800", True])
def test_bad_prices_are_refused_and_change_nothing(sim: Simulator, price) -> None:
    before = sim.price("NSE", "SBIN")
    with pytest.raises(ValueError):
        sim.set_price("NSE", "SBIN", price)
    with pytest.raises(ValueError):
        sim.burst("NSE", "SBIN", [801.0, price])
    assert sim.price("NSE", "SBIN") == before


def test_unknown_instruments_are_refused(sim: Simulator) -> None:
    with pytest.raises(KeyError, match="NOPE"):
        sim.set_price("NSE", "NOPE", 10.0)


@pytest.mark.parametrize("kwargs, fragment", [
    ({"api_key": ""}, "api_key"),
    ({"broker_profile": "upstox"}, "broker_profile"),
    ({"tick_interval": -1.0}, "tick_interval"),
    ({"volatility": float("nan")}, "volatility"),
    ({"rest_port": 70000}, "rest_port"),
    ({"symbols": []}, "symbols"),
])
def test_bad_configuration_is_refused(kwargs, fragment) -> None:
    with pytest.raises(ValueError, match=fragment):
        Simulator(**{"api_key": API_KEY, "tick_interval": None, **kwargs})


def test_bad_symbols_are_refused() -> None:
    with pytest.raises(ValueError, match="lot_size"):
        SimSymbol("X", "NFO", 10.0, lot_size=0)
    with pytest.raises(ValueError, match="exchange"):
        SimSymbol("X", "NASDAQ", 10.0)


def test_custom_symbols_replace_the_builtin_set() -> None:
    with Simulator(api_key=API_KEY, tick_interval=None, symbols=[SimSymbol("ACME", "NSE", 123.45)]) as sim:
        assert sim.price("NSE", "ACME") == 123.45
        with pytest.raises(KeyError):
            sim.price("NSE", "SBIN")


def test_the_key_never_shows_in_the_repr() -> None:
    sim = Simulator(api_key="super-secret-key", tick_interval=None)
    try:
        assert "super-secret-key" not in repr(sim) and "super-secret-key" not in str(vars(sim))
    finally:
        sim.stop()


def test_stop_frees_both_ports_and_is_idempotent() -> None:
    sim = Simulator(api_key=API_KEY, tick_interval=0.01).start()
    rest_port, ws_port = int(sim.rest_url.rsplit(":", 1)[1]), int(sim.ws_url.rsplit(":", 1)[1])
    ws = ws_client(sim)
    sim.stop()
    sim.stop()
    ws.close()
    for port in (rest_port, ws_port):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))


def test_two_simulators_run_side_by_side() -> None:
    with Simulator(api_key=API_KEY, tick_interval=None) as first, \
            Simulator(api_key=API_KEY, tick_interval=None) as second:
        assert first.rest_url != second.rest_url and first.ws_url != second.ws_url
        with ws_client(first) as ws_first, ws_client(second) as ws_second:
            subscribe(ws_first, ("NSE", "SBIN"))
            subscribe(ws_second, ("NSE", "SBIN"))
            first.set_price("NSE", "SBIN", 790.0)
            second.set_price("NSE", "SBIN", 810.0)
            assert recv_json(ws_first)["data"]["ltp"] == 790.0
            assert recv_json(ws_second)["data"]["ltp"] == 810.0
        wait_for(lambda: first.ws_clients() == second.ws_clients() == 0, what="clients closed")
