"""``tmtool doctor`` over real subprocesses: against the simulator every check passes; against a
stopped server it fails with the fix; a broken database and a missing backup are named."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.wiring.test_cli import _env
from tmtool.sim import Simulator

KEY = "doctor-test-key-123"


@pytest.fixture
def simulator():
    sim = Simulator(api_key=KEY, seed=3, tick_interval=0.05)
    sim.start()
    yield sim
    sim.stop()


def _config(tmp_path: Path, host: str, ws_url: str, *, extra: str = "") -> Path:
    path = tmp_path / "tmtool.toml"
    path.write_text(
        f'[openalgo]\nhost = "{host}"\nws_url = "{ws_url}"\napi_key = "{KEY}"\ntimeout_seconds = 2.0\n'
        f'[database]\npath = "{tmp_path / "data" / "tmtool.db"}"\nbackup_dir = "{tmp_path / "data" / "backups"}"\n'
        f'[log]\nfile = "{tmp_path / "tmtool.log"}"\n{extra}'
    )
    path.chmod(0o600)  # it holds an API key: doctor fails a file others can read
    return path


def _tmtool(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tmtool", *args], capture_output=True, text=True, timeout=120, env=_env(tmp_path), cwd=tmp_path
    )


def _lines(out: str) -> dict[str, str]:
    """check name -> its whole line."""
    found = {}
    for line in out.splitlines():
        if line.startswith(("PASS  ", "FAIL  ")):
            found[line[6:].split(":")[0]] = line
    return found


def test_everything_passes_against_the_simulator(tmp_path, simulator):
    config = _config(tmp_path, simulator.rest_url, simulator.ws_url, extra=f'[alerts.command]\ncommand = ["{sys.executable}"]\n')
    db = tmp_path / "data" / "tmtool.db"
    made = _tmtool(tmp_path, "--config", str(config), "demo", "--no-ui", "--duration", "1", "--no-demo-trades", "--db", str(db))
    assert made.returncode == 0, made.stderr[-2000:]
    backup = _tmtool(tmp_path, "db", "backup", "--config", str(config))
    assert backup.returncode == 0, backup.stderr[-2000:]

    result = _tmtool(tmp_path, "doctor", "--config", str(config))
    lines = _lines(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in (
        "config", "openalgo ping", "openalgo funds", "openalgo quote", "openalgo websocket",
        "database integrity", "database identity", "database backups", "disk space", "alerts command",
    ):
        assert lines[name].startswith("PASS"), lines.get(name)
    assert "a tick for NSE:SBIN" in lines["openalgo websocket"]
    assert result.stdout.strip().endswith("10 passed, 0 failed")


def test_a_stopped_server_fails_with_the_fix(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = _config(tmp_path, f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}")
    result = _tmtool(tmp_path, "doctor", "--config", str(config))
    lines = _lines(result.stdout)
    assert result.returncode == 1
    assert lines["openalgo ping"].startswith(f"FAIL  openalgo ping: http://127.0.0.1:{port}")
    assert "fix: start OpenAlgo, or set [openalgo] host" in lines["openalgo ping"]
    assert "not tried" in lines["openalgo websocket"]
    assert lines["database"].startswith("PASS") and "not created yet" in lines["database"]


def test_a_junk_database_and_a_missing_backup_are_named(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = _config(tmp_path, f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}")
    db = tmp_path / "data" / "tmtool.db"
    db.parent.mkdir()
    db.write_bytes(b"not a database at all" * 100)
    result = _tmtool(tmp_path, "doctor", "--config", str(config))
    lines = _lines(result.stdout)
    assert lines["database integrity"].startswith("FAIL") and "tmtool db restore" in lines["database integrity"]
    assert lines["database backups"].startswith("FAIL") and "run `tmtool db backup`" in lines["database backups"]


def test_an_unreadable_config_says_which_key(tmp_path):
    config = tmp_path / "tmtool.toml"
    config.write_text('[feed]\nconfirm_ticks = "many"\n')
    result = _tmtool(tmp_path, "doctor", "--config", str(config))
    assert result.returncode == 2
    assert result.stdout.startswith("FAIL  config:") and "fix:" in result.stdout
