"""Headless over SSH, the terminal (or a pager, or a full pipe) stops reading tmtool's stderr.  Writing
a log line must never stall trading: the engine goes on, the log file goes on, and tmtool still stops
cleanly once the terminal reads again."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import threading
from pathlib import Path

from tests.util import wait_for
from tests.wiring.test_cli import _env, _tmtool

PIPE_BYTES = 4096  # the smallest pipe Linux gives: a few dozen log lines fill it
F_SETPIPE_SZ = 1031


def test_a_terminal_that_stops_reading_never_stalls_the_engine(tmp_path: Path):
    log_file = tmp_path / "tmtool.log"
    config = tmp_path / "tmtool.toml"
    config.write_text(f'[log]\nfile = "{log_file}"\n')
    config.chmod(0o600)
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, F_SETPIPE_SZ, PIPE_BYTES)
    proc = subprocess.Popen(
        _tmtool("demo", "--no-ui", "--log-level", "DEBUG", "--db", str(tmp_path / "tmtool.db"), "--duration", "120"),
        stdout=subprocess.DEVNULL, stderr=write_end, env=_env(tmp_path), cwd=tmp_path,
    )
    os.close(write_end)
    drained: list[bytes] = []
    try:
        def file_text() -> str:
            return log_file.read_text(errors="replace") if log_file.exists() else ""

        # stderr is not read: it fills within the first few lines; the engine must still exit trades
        done = wait_for(lambda: (text := file_text()).count(" closed: ") >= 2 and len(text) > 4 * PIPE_BYTES and text,
                        timeout=90, what="trades exiting while nobody reads stderr")
        assert "level=DEBUG" in done
    finally:
        reader = threading.Thread(target=lambda: drained.extend(iter(lambda: os.read(read_end, 65536), b"")), daemon=True)
        reader.start()  # the terminal reads again
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        reader.join(timeout=10)
        os.close(read_end)
    assert code == 0, b"".join(drained)[-3000:].decode(errors="replace")
    assert b"Traceback" not in b"".join(drained)
