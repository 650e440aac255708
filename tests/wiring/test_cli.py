"""The ``tmtool`` command end to end, as a user runs it: real subprocesses, a real
database file, the real simulator over loopback."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.util import wait_for
from tmtool.openalgo.client import OpenAlgoClient
from tmtool.sim import Simulator

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENALGO_", "TMTOOL_"))}
    env.update(
        HOME=str(tmp_path / "home"),  # user config/data dirs land in the test's folder
        XDG_CONFIG_HOME=str(tmp_path / "home" / ".config"),
        XDG_DATA_HOME=str(tmp_path / "home" / ".local" / "share"),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def _tmtool(*args: str) -> list[str]:
    return [sys.executable, "-m", "tmtool", *args]


class _Reader:
    """Collects a pipe's lines on a thread so the test can wait for one."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line)

    def has(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def join(self) -> str:
        """Everything read, once the stream has ended (the process exited)."""
        self._thread.join(timeout=10)
        return "".join(self.lines)


def test_headless_demo_runs_trades_and_stops_cleanly(tmp_path: Path):
    db = tmp_path / "demo.db"
    code = (
        "import sys\n"
        "from tmtool.cli import main\n"
        f"rc = main(['demo', '--no-ui', '--duration', '20', '--db', {str(db)!r}])\n"
        "print('TEXTUAL_LOADED' if 'textual' in sys.modules else 'TEXTUAL_ABSENT')\n"
        "sys.exit(rc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=90, env=_env(tmp_path), cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "TEXTUAL_ABSENT" in out.stdout
    assert "tmtool stopped — nothing is monitored now (at shutdown: " in out.stdout  # the one-line summary
    assert "simulated, no real orders" in out.stderr
    with sqlite3.connect(db) as conn:
        trades = conn.execute("select count(*) from trade").fetchone()[0]
        events = conn.execute("select count(*) from trade_event").fetchone()[0]
    assert trades >= 6, "the demo trades were entered and persisted"
    assert events > trades, "every change is in the audit log"
    assert os.stat(db).st_mode & 0o077 == 0, "the database is readable by its owner only"


def test_sigterm_flushes_and_exits_zero(tmp_path: Path):
    db = tmp_path / "demo.db"
    proc = subprocess.Popen(
        _tmtool("demo", "--no-ui", "--db", str(db)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(tmp_path),
        cwd=tmp_path,
    )
    stderr, stdout_reader = _Reader(proc.stderr), _Reader(proc.stdout)
    try:
        wait_for(lambda: stderr.has("active (stop"), timeout=40, what="a demo trade to become active")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        stdout = stdout_reader.join()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr.join()[-3000:]
    assert "tmtool stopped — nothing is monitored now" in stdout
    assert "signal=SIGTERM" in stderr.join()
    with sqlite3.connect(db) as conn:
        active = conn.execute("select count(*) from trade where status in ('ACTIVE','EXITING','PENDING_ENTRY')").fetchone()[0]
        total = conn.execute("select count(*) from trade").fetchone()[0]
    assert total >= 1 and active >= 0


def test_bad_config_names_the_key_and_changes_nothing(tmp_path: Path):
    config = tmp_path / "tmtool.toml"
    config.write_text('[feed]\nconfirm_ticks = "many"\n[nonsense]\nx = 1\n')
    out = subprocess.run(
        _tmtool("--config", str(config), "run", "--no-ui"), capture_output=True, text=True, timeout=60,
        env=_env(tmp_path), cwd=tmp_path,
    )
    assert out.returncode == 2
    assert "config key" in out.stderr
    assert not list(tmp_path.glob("**/*.db")), "nothing was created"


def test_run_without_openalgo_key_says_how_to_fix(tmp_path: Path):
    out = subprocess.run(
        _tmtool("run", "--no-ui", "--db", str(tmp_path / "x.db")), capture_output=True, text=True, timeout=60,
        env=_env(tmp_path), cwd=tmp_path,
    )
    assert out.returncode == 2
    assert "OPENALGO_API_KEY" in out.stderr and "tmtool demo" in out.stderr


@pytest.fixture
def simulator():
    sim = Simulator(api_key="cli-test-key-123", seed=3, tick_interval=None)
    sim.start()
    yield sim
    sim.stop()


def _config_for(sim: Simulator, tmp_path: Path) -> Path:
    path = tmp_path / "tmtool.toml"
    path.write_text(
        f'[openalgo]\nhost = "{sim.rest_url}"\nws_url = "{sim.ws_url}"\n'
        f'[log]\nfile = "{tmp_path / "tmtool.log"}"\n'
    )
    return path


def test_run_against_openalgo_and_second_instance_is_refused(tmp_path: Path, simulator: Simulator):
    config = _config_for(simulator, tmp_path)
    db = tmp_path / "live.db"
    env = _env(tmp_path, OPENALGO_API_KEY="cli-test-key-123")
    with OpenAlgoClient(simulator.rest_url, "cli-test-key-123") as outside:  # a position opened outside tmtool
        outside.place_order(strategy="x", symbol="SBIN", exchange="NSE", action="SELL", quantity=10, product="MIS")
    wait_for(lambda: simulator.positions().get(("SBIN", "NSE", "MIS")) == -10, what="the outside position")
    first = subprocess.Popen(
        _tmtool("--config", str(config), "run", "--no-ui", "--adopt-positions", "--db", str(db)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
    )
    stderr, _stdout = _Reader(first.stderr), _Reader(first.stdout)
    try:
        wait_for(lambda: stderr.has("tmtool started"), timeout=40, what="the first instance to start")
        wait_for(lambda: stderr.has("adopted 1 position(s)"), timeout=20, what="the outside position adopted")
        second = subprocess.run(
            _tmtool("--config", str(config), "run", "--no-ui", "--db", str(db)),
            capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path,
        )
        assert second.returncode == 2
        assert str(first.pid) in second.stderr, second.stderr
        assert "that engine can be attached to: tmtool attach --socket" in second.stderr
        first.send_signal(signal.SIGINT)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, stderr.join()[-3000:]
    with sqlite3.connect(db) as conn:
        adopted = conn.execute("select strategy, side, quantity, status from trade").fetchall()
    assert adopted == [("manual", "SHORT", 10, "ACTIVE")], "the adopted trade survives the restart-safe shutdown"
    log = (tmp_path / "tmtool.log").read_text()
    assert "cli-test-key-123" not in log and "cli-test-key-123" not in stderr.join(), "the API key never reaches a log"
    assert os.stat(tmp_path / "tmtool.log").st_mode & 0o077 == 0


def test_db_check_and_backup(tmp_path: Path):
    db = tmp_path / "demo.db"
    subprocess.run(
        _tmtool("demo", "--no-ui", "--duration", "3", "--no-demo-trades", "--db", str(db)),
        capture_output=True, text=True, timeout=60, env=_env(tmp_path), cwd=tmp_path, check=True,
    )
    check = subprocess.run(_tmtool("db", "check", "--db", str(db)), capture_output=True, text=True, timeout=60,
                           env=_env(tmp_path), cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    backup = tmp_path / "copy.db"
    done = subprocess.run(_tmtool("db", "backup", str(backup), "--db", str(db)), capture_output=True, text=True,
                          timeout=60, env=_env(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    with sqlite3.connect(backup) as conn:
        assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"


def test_config_warnings_are_shown_at_start(tmp_path: Path, capsys):
    from tmtool.cli import main

    config = tmp_path / "tmtool.toml"
    config.write_text('[openalgo]\napi_key = "k-visible-123"\n')
    config.chmod(0o644)
    main(["db", "check", "--config", str(config), "--db", str(tmp_path / "none.db")])
    stderr = capsys.readouterr().err
    assert "tmtool: warning:" in stderr and "chmod 600" in stderr
    assert "k-visible-123" not in stderr


def test_run_with_openalgo_unreachable_says_it_is_not_connected(tmp_path: Path):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "tmtool.toml"
    config.write_text(
        f'[openalgo]\nhost = "http://127.0.0.1:{port}"\nws_url = "ws://127.0.0.1:{port}"\n'
        f'api_key = "k"\ntimeout_seconds = 1.0\n[database]\npath = "{tmp_path / "t.db"}"\n'
    )
    out = subprocess.run(
        _tmtool("--config", str(config), "run", "--no-ui", "--duration", "1"),
        capture_output=True, text=True, timeout=90, env=_env(tmp_path), cwd=tmp_path,
    )
    assert f"NOT connected to OpenAlgo at http://127.0.0.1:{port}" in out.stderr, out.stderr[-3000:]
    assert "monitoring against" not in out.stderr
    assert "tmtool stopped — nothing is monitored now" in out.stdout
