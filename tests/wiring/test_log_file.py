"""The log file stays private (0600) when it is created, reopened and rotated, whatever the umask."""

from __future__ import annotations

import logging
import os
import re
import stat
import threading
from pathlib import Path

import pytest

from tmtool.config import parse_config
from tmtool.logs import LOG_QUEUE_RECORDS, KeyValueFormatter, LogOutput, PrivateRotatingFileHandler, setup_logging


@pytest.fixture
def root_handlers():
    """setup_logging replaces the root logger's handlers: put pytest's back afterwards."""
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in saved:
        root.addHandler(handler)
    root.setLevel(level)


@pytest.fixture
def open_umask():
    previous = os.umask(0o022)  # the common default: new files 0644
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_log_files_stay_0600_across_rotation(tmp_path: Path, root_handlers, open_umask):
    log_file = tmp_path / "logs" / "tmtool.log"
    config = parse_config({"log": {"file": str(log_file), "max_bytes": 1024, "backups": 2}}, {}, None, tmp_path)
    setup_logging(config, headless=False, level="INFO")
    output = next(h for h in logging.getLogger().handlers if isinstance(h, LogOutput))
    handler = output.target
    assert isinstance(handler, PrivateRotatingFileHandler)
    log = logging.getLogger("tmtool.test")
    for line in range(60):  # about 5 KB through a 1 KB limit: rotates more than once by itself
        log.info("line %d %s", line, "x" * 60)
    assert output.wait_written(10.0)  # the file's own writer thread has them all
    handler.doRollover()  # and once more, forced
    handler.flush()

    rotated = [log_file.with_name(f"tmtool.log.{n}") for n in (1, 2)]
    assert all(path.exists() for path in rotated)
    for path in [log_file, *rotated]:
        assert _mode(path) == 0o600, path
    log.info("after the rotation")
    assert output.wait_written(10.0)
    handler.flush()
    assert "after the rotation" in log_file.read_text()


def test_an_existing_log_file_is_tightened_when_reopened(tmp_path: Path, open_umask):
    log_file = tmp_path / "tmtool.log"
    log_file.write_text("old\n")
    log_file.chmod(0o644)
    handler = PrivateRotatingFileHandler(log_file, maxBytes=1024, backupCount=1, encoding="utf-8")
    try:
        assert _mode(log_file) == 0o600
    finally:
        handler.close()


class _StuckOutput(logging.Handler):
    """An output that stops taking lines until released (a terminal nobody reads)."""

    def __init__(self) -> None:
        super().__init__()
        self.resume = threading.Event()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.resume.wait()
        self.lines.append(self.format(record))


def test_a_stuck_output_never_blocks_the_logging_thread_and_dropped_lines_are_counted():
    stuck = _StuckOutput()
    output = LogOutput(stuck, KeyValueFormatter())
    log = logging.getLogger("tmtool.test.stuck")
    log.propagate, log.level = False, logging.INFO
    log.addHandler(output)
    try:
        for line in range(LOG_QUEUE_RECORDS + 100):  # returns at once although nothing is written
            log.info("event=line n=%d", line)
        assert 99 <= output.dropped <= 100  # the writer holds one line in the stuck emit, the queue the rest
        stuck.resume.set()  # the terminal reads again
        assert output.wait_written(30.0)
        log.warning("event=after")  # the next line brings the count of those dropped
        assert output.wait_written(30.0)
    finally:
        log.removeHandler(output)
        output.close()
    assert stuck.lines[0].endswith("event=line n=0") and "level=INFO logger=tmtool.test.stuck" in stuck.lines[0]
    assert re.search(r"event=log_lines_dropped count=(99|100) ", stuck.lines[-2])
    assert stuck.lines[-1].endswith("event=after")
