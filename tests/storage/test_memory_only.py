"""Memory-only mode with real failures: a lock held by another connection, a removed file."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3

from tmtool.domain.models import OrderState
from tmtool.storage.backup import backup_database
from tmtool.storage.files import side_files

from tests.storage.samples import T0, full_event, full_order, full_trade
from tests.util import wait_for


def fast_retry_store(make_store):
    return make_store(write_timeout=0.05, retry_backoff_max=0.05, commit_interval=0.0)


def settled(store) -> bool:
    status = store.status()
    return status.state == "OK" and status.pending == 0


def test_a_lock_held_elsewhere_goes_memory_only_then_replays_in_order(make_store, db_path, caplog):
    store = fast_retry_store(make_store)
    store.save_trade(full_trade(1, trailing_stop=100.0))
    assert store.flush()

    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with caplog.at_level(logging.WARNING, logger="tmtool.storage"):
            for step in range(1, 31):
                store.save_trade(full_trade(1, trailing_stop=100.0 + step))
                store.record_event(full_event(1, ts=T0 + step))
            wait_for(lambda: store.status().state == "MEMORY_ONLY", timeout=10, what="memory-only mode")
            assert store.save_order(full_order("x-1-1", OrderState.INTENT), durable=True, timeout=0.2) is False
            status = store.status()
            assert status.pending == 61
            assert "database is locked" in status.last_error
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    wait_for(lambda: settled(store), timeout=10, what="the replay")

    failure_lines = [r for r in caplog.records if "write failed" in r.getMessage()]
    assert len(failure_lines) == 1  # reported once, however many retries
    loaded = store.load()
    assert loaded.open_trades[0].trailing_stop == 130.0
    assert loaded.open_orders == (full_order("x-1-1", OrderState.INTENT),)
    assert [event.ts for event in store.trade_events(1)] == [T0 + step for step in range(1, 31)]
    assert store.status().last_error == ""


def test_a_replayed_batch_after_an_unknown_commit_outcome_applies_once(make_store):
    """The writer cannot tell whether a COMMIT that raised reached the disk; replaying must be harmless."""
    store = make_store()
    store.save_trade(full_trade(1))
    for step in range(5):
        store.record_event(full_event(1, ts=T0 + step))
    store.save_order(full_order())
    with store._cond:
        batch = list(store._queue)
    assert store.flush()
    store._commit(store._prepare(batch))  # the same batch committed a second time, as a replay would
    assert len(store.trade_events(1)) == 5
    assert store.load().open_trades == (full_trade(1),)
    assert store.load().open_orders == (full_order(),)


def test_a_removed_database_file_goes_memory_only_until_it_is_back(make_store, db_path, tmp_path):
    store = fast_retry_store(make_store)
    store.save_trade(full_trade(1, note="before"))
    assert store.flush()
    saved_copy = backup_database(db_path, tmp_path / "copy.db")
    for path in [db_path, *side_files(db_path)]:
        if path.exists():
            os.unlink(path)

    store.save_trade(full_trade(1, note="while gone"))
    store.save_trade(full_trade(2, note="while gone"))
    wait_for(lambda: store.status().state == "MEMORY_ONLY", timeout=10, what="memory-only mode")
    assert "was removed" in store.status().last_error
    assert not db_path.exists()  # a missing database is never silently recreated empty

    shutil.copyfile(saved_copy, db_path)
    wait_for(lambda: settled(store), timeout=10, what="the replay")
    assert [(trade.id, trade.note) for trade in store.load().open_trades] == [(1, "while gone"), (2, "while gone")]
