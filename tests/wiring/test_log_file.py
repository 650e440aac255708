"""The log file stays private (0600) when it is created, reopened and rotated, whatever the umask."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from tmtool.config import parse_config
from tmtool.runtime import PrivateRotatingFileHandler, setup_logging


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
    handler = next(h for h in logging.getLogger().handlers if isinstance(h, PrivateRotatingFileHandler))
    log = logging.getLogger("tmtool.test")
    for line in range(60):  # about 5 KB through a 1 KB limit: rotates more than once by itself
        log.info("line %d %s", line, "x" * 60)
    handler.doRollover()  # and once more, forced
    handler.flush()

    rotated = [log_file.with_name(f"tmtool.log.{n}") for n in (1, 2)]
    assert all(path.exists() for path in rotated)
    for path in [log_file, *rotated]:
        assert _mode(path) == 0o600, path
    log.info("after the rotation")
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
