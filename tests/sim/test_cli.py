"""``tmtool sim``: runs until SIGTERM, prints where it listens but never the key; the fault helper."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import httpx

from tests.sim.helpers import API_KEY, Rest
from tmtool.sim import Simulator
from tmtool.sim.cli import sim_main

SECRET = "cli-secret-key-123"


def test_sim_runs_until_sigterm_and_never_prints_the_key() -> None:
    env = {**os.environ, "TMTOOL_SIM_API_KEY": SECRET}
    command = [sys.executable, "-c", "import sys; from tmtool.sim.cli import sim_main; sys.exit(sim_main())",
               "--port", "0", "--ws-port", "0", "--tick-interval", "0.05", "--broker-profile", "zerodha"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [process.stdout.readline() for _ in range(3)]
        rest_url = re.search(r"(http://127\.0\.0\.1:\d+)/api/v1/", lines[1]).group(1)
        assert re.search(r"ws://127\.0\.0\.1:\d+", lines[2])
        reply = httpx.post(f"{rest_url}/api/v1/ping", json={"apikey": SECRET}, timeout=10)
        assert reply.json()["data"]["broker"] == "zerodha"
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert SECRET not in "".join(lines) + stdout + stderr


def test_sim_refuses_to_start_without_a_key(monkeypatch, capsys) -> None:
    monkeypatch.delenv("TMTOOL_SIM_API_KEY", raising=False)
    assert sim_main(["--port", "0", "--ws-port", "0"]) == 2
    assert "no API key" in capsys.readouterr().err


def test_fault_helper_injects_through_the_admin_endpoint(sim: Simulator, rest: Rest, monkeypatch, capsys) -> None:
    monkeypatch.setenv("TMTOOL_SIM_API_KEY", API_KEY)
    assert sim_main(["fault", "rest_fail", "status=502", 'endpoints=["funds"]', "--url", sim.rest_url]) == 0
    assert rest("funds")[0] == 502
    assert sim_main(["fault", "clear", "--url", sim.rest_url]) == 0
    assert rest("funds")[0] == 200
    assert sim_main(["fault", "stall_ws", "bogus=1", "--url", sim.rest_url]) == 1
    assert API_KEY not in capsys.readouterr().out


def test_fault_helper_switches_the_new_faults(sim: Simulator, rest: Rest, monkeypatch) -> None:
    monkeypatch.setenv("TMTOOL_SIM_API_KEY", API_KEY)
    assert sim_main(["fault", "lag_order_book", "seconds=300", "--url", sim.rest_url]) == 0
    assert sim_main(["fault", "rest_fail", "status=500", "endpoints=placeorder", "process=true",
                     "--url", sim.rest_url]) == 0
    assert rest.order(symbol="SBIN", quantity=1)[0] == 500
    assert sim.positions() == {("SBIN", "NSE", "MIS"): 1}
    assert rest("orderbook")[1]["data"]["orders"] == []
    assert sim_main(["fault", "server_time_zone", "zone=UTC", "--url", sim.rest_url]) == 0
    assert sim_main(["fault", "silence_symbol", "exchange=NSE", "symbol=SBIN", "--url", sim.rest_url]) == 0
    assert sim.faults.symbol_silent("NSE", "SBIN")
    assert sim_main(["fault", "clear", "--url", sim.rest_url]) == 0
    assert len(rest("orderbook")[1]["data"]["orders"]) == 1
    assert not sim.faults.symbol_silent("NSE", "SBIN")
