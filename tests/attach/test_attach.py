"""``tmtool serve`` and ``tmtool attach`` end to end: real processes, a real simulator, the real TUI.

The simulator runs in the test process (prices set by the test); the engine runs
in a ``tmtool serve`` subprocess against it; TUIs attach over the engine's Unix
socket, in the test process through Pilot or as ``tmtool attach`` subprocesses
on a pseudo-terminal.  Whatever happens to a client, the engine keeps exiting trades.
"""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import termios
import threading
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from tests.ui.helpers import cell, select_trade, until
from tests.util import wait_for
from tmtool.api.client import RemoteEngine
from tmtool.clock import SystemClock
from tmtool.domain.commands import Accepted, PauseTrade
from tmtool.screens.app import TmtoolApp
from tmtool.screens.modals.confirm import ConfirmModal
from tmtool.sim import Simulator

SIM_KEY = "attach-test-sim-key-123"
SIZE = (120, 36)

pytestmark = pytest.mark.slow


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENALGO_", "TMTOOL_"))}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        TMTOOL_RUNTIME_DIR=str(home / "run"),
        OPENALGO_API_KEY=SIM_KEY,
        PYTHONUNBUFFERED="1",
        TERM="xterm-256color",
    )
    return env


def _tmtool(*args: str) -> list[str]:
    return [sys.executable, "-m", "tmtool", *args]


class _Reader:
    """Collects what a process writes (a pipe or a pseudo-terminal) on a thread."""

    def __init__(self, read) -> None:
        self.text = ""
        self._read = read
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                chunk = self._read()
            except OSError:
                return
            if not chunk:
                return
            self.text += chunk.decode(errors="replace") if isinstance(chunk, bytes) else chunk

    def has(self, text: str) -> bool:
        return text in self.text


_CONTROLLING_TERMINAL = (
    "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); os.execv(sys.argv[1], sys.argv[1:])"
)


class _Desk:
    """A tmtool process (serve, run or attach); on a pseudo-terminal when it draws a TUI."""

    def __init__(self, args: list[str], home: Path, cwd: Path, terminal: bool) -> None:
        self.master: int | None = None
        if terminal:
            self.master, slave = pty.openpty()
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", SIZE[1], SIZE[0], 0, 0))
            # The pseudo-terminal becomes the process's controlling terminal, as a login's is, so closing
            # its other end hangs the process up the way a dropped SSH session does.
            args = [sys.executable, "-c", _CONTROLLING_TERMINAL, *args]
            self.proc = subprocess.Popen(
                args, stdin=slave, stdout=slave, stderr=slave, env=_env(home), cwd=cwd, start_new_session=True
            )
            os.close(slave)
            master = self.master
            self.output = _Reader(lambda: os.read(master, 65536))
        else:
            self.proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=_env(home), cwd=cwd
            )
            stdout = self.proc.stdout
            self.output = _Reader(stdout.readline)

    def hang_up(self) -> None:
        """Close the terminal's other end: the kernel sends SIGHUP, as when an SSH session drops."""
        assert self.master is not None
        os.close(self.master)
        self.master = None

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.master is not None:
            os.close(self.master)
            self.master = None
        return self.proc.returncode


class _Engine:
    """The engine's socket, spoken to with plain HTTP (no key)."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self.http = httpx.Client(transport=httpx.HTTPTransport(uds=str(socket_path)), base_url="http://tmtool", timeout=15)

    def call(self, verb: str, **body) -> object:
        response = self.http.post(f"/api/v1/{verb}", json=body)
        assert response.status_code == 200, response.text
        return response.json()["data"]

    def trade(self, trade_id: int) -> dict | None:
        found = [t for t in self.call("activetrades") if t["id"] == trade_id]
        if found:
            return found[0]
        closed = [t for t in self.call("tradehistory") if t["id"] == trade_id]
        return closed[0] if closed else None

    def open_trade(self, sim: Simulator, symbol: str, price: float, stop: float) -> int:
        sim.set_price("NSE", symbol, price)
        trade_id = self.call(
            "createtrade", strategy="manual", symbol=symbol, exchange="NSE", action="BUY", quantity=10, stop_loss=stop
        )["trade_id"]
        wait_for(lambda: (self.trade(trade_id) or {}).get("status") == "ACTIVE", timeout=20, what=f"trade {trade_id} active")
        return trade_id

    def wait_closed(self, trade_id: int, reason: str) -> dict:
        def closed() -> dict | None:
            trade = self.trade(trade_id)
            return trade if trade is not None and trade["status"] == "CLOSED" else None

        trade = wait_for(closed, timeout=20, what=f"trade {trade_id} closed")
        assert trade["exit_reason"] == reason
        return trade


@pytest.fixture
def sim() -> Iterator[Simulator]:
    simulator = Simulator(api_key=SIM_KEY, seed=5, tick_interval=None)
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def home() -> Iterator[Path]:
    # A short path: a Unix socket's path must fit in 107 bytes.
    with tempfile.TemporaryDirectory(prefix="tmt", dir="/tmp") as folder:
        path = Path(folder)
        (path / "run").mkdir(mode=0o700)
        yield path


def _config(sim: Simulator, home: Path) -> Path:
    config = home / "tmtool.toml"
    config.write_text(
        f'[openalgo]\nhost = "{sim.rest_url}"\nws_url = "{sim.ws_url}"\n'
        f'[database]\npath = "{home / "desk.db"}"\n'
        f'[log]\nfile = "{home / "tmtool.log"}"\n'
    )
    return config


def _socket_of(home: Path) -> Path:
    return wait_for(lambda: next((home / "run").glob("engine-*.sock"), None), timeout=40, what="the engine's socket")


@pytest.fixture
def served(sim: Simulator, home: Path) -> Iterator[tuple[_Desk, _Engine]]:
    desk = _Desk(_tmtool("--config", str(_config(sim, home)), "serve"), home, home, terminal=False)
    try:
        socket_path = _socket_of(home)
        engine = _Engine(socket_path)
        wait_for(lambda: engine.call("health")["engine"] == "RUNNING", timeout=40, what="the engine running")
        yield desk, engine
    finally:
        code = desk.stop()
    assert code == 0, desk.output.text[-3000:]


def test_the_socket_is_the_owners_alone_and_needs_no_key(served, home):
    _desk, engine = served
    mode = os.stat(engine.socket_path).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600
    assert isinstance(engine.call("activetrades"), list)  # no apikey in the body
    assert "control API on http" not in _desk.output.text  # no TCP listener unless configured


async def test_an_attached_tui_shows_live_prices_and_exits_a_trade(served, sim):
    _desk, engine = served
    trade_id = engine.open_trade(sim, "SBIN", 800.0, stop=780.0)
    remote = RemoteEngine(engine.socket_path)
    remote.connect()
    try:
        app = TmtoolApp(remote, config_path=None, clock=SystemClock(), simulated=False, bell=False, lifecycle=None,
                        engine_in_process=False)
        async with app.run_test(size=SIZE) as pilot:
            await select_trade(pilot, trade_id)
            sim.set_price("NSE", "SBIN", 812.35)
            await until(pilot, lambda: cell(pilot, trade_id, "ltp").endswith("812.35"), timeout=15, what="the new price")
            await pilot.press("x")
            await until(pilot, lambda: isinstance(app.screen, ConfirmModal), what="the exit dialog")
            await pilot.press("y")
            engine.wait_closed(trade_id, "MANUAL")
            await pilot.press("q")
    finally:
        remote.close()
    assert engine.call("health")["engine"] == "RUNNING"  # quitting the attached TUI left the engine alone


def test_two_clients_see_the_same_state(served, sim):
    _desk, engine = served
    trade_id = engine.open_trade(sim, "INFY", 1500.0, stop=1480.0)
    first, second = RemoteEngine(engine.socket_path), RemoteEngine(engine.socket_path)
    first.connect()
    second.connect()
    try:
        sim.set_price("NSE", "INFY", 1512.4)

        def price(client: RemoteEngine) -> float | None:
            view = client.snapshot().trade(trade_id)
            return view.ltp if view is not None else None

        wait_for(lambda: price(first) == 1512.4 and price(second) == 1512.4, timeout=15, what="both clients see the price")
        assert isinstance(first.submit(PauseTrade(trade_id)).result(15), Accepted)
        wait_for(
            lambda: first.snapshot().trade(trade_id).paused and second.snapshot().trade(trade_id).paused,
            timeout=15,
            what="both clients see the pause",
        )
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGHUP], ids=["SIGKILL", "SIGHUP"])
def test_losing_the_attached_client_leaves_the_engine_exiting_trades(served, sim, home, how):
    _desk, engine = served
    trade_id = engine.open_trade(sim, "TCS", 3500.0, stop=3480.0)
    client = _Desk(_tmtool("attach", "--socket", str(engine.socket_path)), home, home, terminal=True)
    try:
        wait_for(lambda: client.output.has("TCS"), timeout=40, what="the attached dashboard showing the trade")
        client.proc.send_signal(how)
        client.proc.wait(timeout=20)
        sim.set_price("NSE", "TCS", 3475.0)
        engine.wait_closed(trade_id, "STOP_LOSS")
        assert engine.call("health")["engine"] == "RUNNING"
    finally:
        client.stop()


def test_a_dropped_terminal_of_the_in_process_desk_keeps_monitoring(sim, home):
    config = _config(sim, home)
    desk = _Desk(_tmtool("--config", str(config), "run"), home, home, terminal=True)
    try:
        engine = _Engine(_socket_of(home))
        wait_for(lambda: engine.call("health")["engine"] == "RUNNING", timeout=40, what="the engine running")
        trade_id = engine.open_trade(sim, "RELIANCE", 2500.0, stop=2480.0)
        wait_for(lambda: desk.output.has("RELIANCE"), timeout=20, what="the dashboard showing the trade")
        desk.hang_up()
        log = home / "tmtool.log"
        wait_for(lambda: "event=hangup" in log.read_text(), timeout=20, what="the hang-up logged")
        assert desk.proc.poll() is None
        sim.set_price("NSE", "RELIANCE", 2475.0)
        engine.wait_closed(trade_id, "STOP_LOSS")
        assert "attach with: tmtool attach" in log.read_text()
    finally:
        code = desk.stop()
    assert code == 0, desk.output.text[-3000:]


def test_starting_the_desk_while_an_engine_runs_on_its_database_offers_to_attach(served, sim, home):
    _desk, engine = served
    trade_id = engine.open_trade(sim, "HDFCBANK", 1650.0, stop=1630.0)
    second = _Desk(_tmtool("--config", str(home / "tmtool.toml"), "run"), home, home, terminal=True)
    try:
        wait_for(lambda: second.output.has("Attach to it? [Y/n]"), timeout=40, what="the offer to attach")
        assert second.master is not None
        os.write(second.master, b"y\r")
        wait_for(lambda: second.output.has("HDFCBANK"), timeout=40, what="the attached dashboard showing the trade")
        second.proc.send_signal(signal.SIGHUP)  # the attached desk goes away...
        second.proc.wait(timeout=20)
        sim.set_price("NSE", "HDFCBANK", 1625.0)
        engine.wait_closed(trade_id, "STOP_LOSS")  # ...and the engine it attached to keeps exiting trades
    finally:
        second.stop()
