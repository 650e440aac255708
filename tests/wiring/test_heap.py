"""The process tmtool runs settles its heap once the engine is up.

Everything alive when monitoring starts (modules, the loaded trades, the UI's
widgets) lives as long as the process.  Left to Python's cyclic collector,
each full collection walks all of it again while holding the interpreter lock:
measured with the TUI in the engine's process and a heap of 2 million objects,
full collections took 180–370 ms, an exit waiting behind one that long.  After
``gc.freeze()`` those objects are never walked again (30–56 ms).
"""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from tmtool.config import parse_config
from tmtool.runtime import build_runtime


def _runtime(tmp_path: Path):
    """The demo stack, every file it writes in the test's folder."""
    config = parse_config({"database": {"path": str(tmp_path / "heap.db"), "backup_dir": str(tmp_path / "backups")}},
                          {}, None, tmp_path)
    return build_runtime(config, db_path=tmp_path / "heap.db", demo=True)


@pytest.fixture
def unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the test run keeps its usual collector


def test_a_runtime_started_as_tmtool_runs_it_freezes_what_is_alive(tmp_path: Path, unfrozen):
    runtime = _runtime(tmp_path)
    runtime.settle_heap_after_start = True  # what `tmtool run` / `demo` / `serve` set
    assert gc.get_freeze_count() == 0
    try:
        runtime.start()
        assert gc.get_freeze_count() > 0
    finally:
        runtime.stop()


def test_a_runtime_started_by_a_library_caller_leaves_the_collector_alone(tmp_path: Path, unfrozen):
    runtime = _runtime(tmp_path)
    try:
        runtime.start()
        assert gc.get_freeze_count() == 0
    finally:
        runtime.stop()
