"""The process tmtool runs settles its heap once the engine is up.

Everything alive when monitoring starts (modules, the loaded trades, the UI's
widgets) lives as long as the process.  Left to Python's cyclic collector,
each full collection walks all of it again while holding the interpreter lock:
measured with the TUI in the engine's process and a heap of 2 million objects,
full collections took 180–370 ms, an exit waiting behind one that long.  After
``gc.freeze()`` those objects are never walked again (30–56 ms), and what each
full collection leaves alive is frozen too, so the next walks only what is new.
"""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest

from tmtool.config import parse_config
from tmtool import runtime as runtime_module
from tmtool.runtime import build_runtime, settle_heap, unsettle_heap


def _runtime(tmp_path: Path):
    """The demo stack, every file it writes in the test's folder."""
    config = parse_config({"database": {"path": str(tmp_path / "heap.db"), "backup_dir": str(tmp_path / "backups")}},
                          {}, None, tmp_path)
    return build_runtime(config, db_path=tmp_path / "heap.db", demo=True)


@pytest.fixture
def unfrozen():
    unsettle_heap()
    yield
    unsettle_heap()  # the rest of the test run keeps its usual collector


def test_a_runtime_started_as_tmtool_runs_it_freezes_what_is_alive(tmp_path: Path, unfrozen):
    runtime = _runtime(tmp_path)
    runtime.settle_heap_after_start = True  # what `tmtool run` / `demo` / `serve` set
    assert gc.get_freeze_count() == 0
    try:
        runtime.start()
        assert gc.get_freeze_count() > 0
        assert runtime_module._FROZEN_SURVIVORS.after_collection in gc.callbacks
    finally:
        runtime.stop()


def test_what_a_full_collection_leaves_alive_is_frozen_once_settled(unfrozen):
    settle_heap()
    frozen = gc.get_freeze_count()
    kept = [[index] for index in range(1000)]  # made after settling, alive through the next full collection
    gc.collect()
    assert gc.get_freeze_count() >= frozen + len(kept)
    unsettle_heap()
    assert gc.get_freeze_count() == 0
    assert runtime_module._FROZEN_SURVIVORS.after_collection not in gc.callbacks


class _Node:
    def __init__(self) -> None:
        self.other = self  # a reference cycle: only the cyclic collector frees it


def test_cycles_that_die_frozen_are_freed_once_the_frozen_set_has_grown_enough(unfrozen):
    settle_heap()
    survivors = runtime_module._FROZEN_SURVIVORS
    node = _Node()
    alive = weakref.ref(node)
    gc.collect()  # the node survives this one: frozen with the rest
    del node
    gc.collect()
    assert alive() is not None  # a frozen cycle is not looked at
    thaws = survivors.thaws
    survivors.limit = 0  # as if the frozen set had grown past its limit since settling
    gc.collect()  # freezes, sees the limit passed, thaws
    assert survivors.thaws == thaws + 1 and gc.get_freeze_count() == 0
    gc.collect()  # walks everything once: the dead cycle is freed, the survivors frozen again
    assert alive() is None
    assert gc.get_freeze_count() > 0 and survivors.limit == runtime_module._thaw_limit(gc.get_freeze_count())


def test_a_runtime_started_by_a_library_caller_leaves_the_collector_alone(tmp_path: Path, unfrozen):
    runtime = _runtime(tmp_path)
    try:
        runtime.start()
        assert gc.get_freeze_count() == 0
        assert runtime_module._FROZEN_SURVIVORS.after_collection not in gc.callbacks
    finally:
        runtime.stop()
