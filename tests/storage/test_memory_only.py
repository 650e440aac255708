"""Memory-only mode with real failures: a lock held by another connection, a removed or replaced file."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import stat
import threading

import pytest

from tmtool.domain.models import OrderState
from tmtool.storage import SqliteStore
from tmtool.storage.backup import backup_database
from tmtool.storage.identity import identity_path_for
from tmtool.storage.files import side_files
from tmtool.storage.maintenance import check_database

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
            # the intent does not wait for the failing database: the journal has it
            assert store.save_order(full_order("x-1-1", OrderState.INTENT), durable=True, timeout=0.2) is True
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


def _statuses_until_written_back(store, statuses: list) -> bool:
    status = store.status()
    statuses.append(status)
    return store.recreations == 1 and status.state == "OK" and status.pending == 0


@pytest.mark.parametrize("removed", ["the file", "the file, its -wal and -shm"])
def test_a_removed_database_file_is_written_back_with_everything(make_store, db_path, removed):
    store = fast_retry_store(make_store)
    store.save_trade(full_trade(1, note="before"))
    store.save_trade(full_trade(3, note="before"))
    for step in range(3):
        store.record_event(full_event(1, ts=T0 + step))
    store.save_order(full_order("x-1-1", OrderState.INTENT))
    assert store.flush()
    identity = identity_path_for(db_path).read_text()
    for path in [db_path, *side_files(db_path)] if "wal" in removed else [db_path]:
        if path.exists():
            os.unlink(path)

    store.save_trade(full_trade(1, note="while gone"))
    store.save_trade(full_trade(2, note="while gone"))
    store.record_event(full_event(1, ts=T0 + 10))
    statuses: list = []
    wait_for(lambda: _statuses_until_written_back(store, statuses), timeout=10, what="the file written back")

    reported = [status.last_error for status in statuses if status.state == "MEMORY_ONLY"]
    assert any("was removed while tmtool ran; recreated it" in error for error in reported), reported
    assert [(trade.id, trade.note) for trade in store.load().open_trades] == [
        (1, "while gone"),
        (2, "while gone"),
        (3, "before"),
    ]
    assert [event.ts for event in store.trade_events(1)] == [T0, T0 + 1, T0 + 2, T0 + 10]
    assert store.load().open_orders == (full_order("x-1-1", OrderState.INTENT),)
    assert identity_path_for(db_path).read_text() == identity
    assert stat.S_IMODE(os.stat(db_path).st_mode) == 0o600
    store.close()
    report = check_database(db_path)
    assert report.schema_version is not None and report.row_counts["trade"] == 3
    assert not [problem for problem in report.problems if "integrity" in problem]


def test_a_removed_database_file_is_written_back_while_nothing_is_saved(make_store, db_path):
    store = make_store(watch_interval=0.02)
    store.save_trade(full_trade(1, note="before"))
    assert store.flush()
    os.unlink(db_path)
    statuses: list = []
    wait_for(lambda: _statuses_until_written_back(store, statuses), timeout=10, what="the file written back")
    reported = [status.last_error for status in statuses if status.state == "MEMORY_ONLY"]
    assert any("was removed while tmtool ran; recreated it" in error for error in reported), reported
    assert [(trade.id, trade.note) for trade in store.load().open_trades] == [(1, "before")]


def test_a_file_replaced_by_another_database_is_never_written_into(make_store, db_path, tmp_path, clock):
    store = fast_retry_store(make_store)
    store.save_trade(full_trade(1, note="before"))
    assert store.flush()
    saved_copy = backup_database(db_path, tmp_path / "copy.db")
    other = tmp_path / "other" / "tmtool.db"
    SqliteStore(other, clock=clock, backup_on_open=False, lock=False).open()
    for path in [db_path, *side_files(db_path)]:
        path.unlink(missing_ok=True)
    shutil.copyfile(other, db_path)

    store.save_trade(full_trade(2, note="while replaced"))
    wait_for(lambda: "now holds another database" in store.status().last_error, timeout=10, what="the refusal")
    assert store.status().state == "MEMORY_ONLY"
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("SELECT COUNT(*) FROM trade").fetchone()[0] == 0
    finally:
        conn.close()

    os.unlink(db_path)
    shutil.copyfile(saved_copy, db_path)  # the right database is back: the queue is written into it
    wait_for(lambda: settled(store), timeout=10, what="the replay")
    assert [(trade.id, trade.note) for trade in store.load().open_trades] == [(1, "before"), (2, "while replaced")]


def test_close_reports_how_many_changes_it_could_not_write_after_retrying(make_store, db_path, caplog):
    store = fast_retry_store(make_store)
    store.save_trade(full_trade(1))
    assert store.flush()
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        store.save_trade(full_trade(1, note="never written"))
        store.save_trade(full_trade(2))
        wait_for(lambda: store.status().state == "MEMORY_ONLY", what="memory-only mode")
        with caplog.at_level(logging.ERROR, logger="tmtool.storage"):
            assert store.close(timeout=0.3) == 2
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert "closed with 2 change(s) not written after retrying for 0.3 s" in caplog.text
    assert store.close() == 2  # asked again, the same answer


def test_close_keeps_retrying_within_its_bound_and_reports_zero_once_written(make_store, db_path):
    store = fast_retry_store(make_store)
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    store.save_trade(full_trade(1))
    wait_for(lambda: store.status().state == "MEMORY_ONLY", what="memory-only mode")
    closing = {}
    closer = threading.Thread(target=lambda: closing.setdefault("unwritten", store.close(timeout=30)))
    closer.start()
    wait_for(lambda: store._closing, what="close to begin")
    blocker.execute("COMMIT")  # the disk works again while close retries
    blocker.close()
    closer.join(timeout=30)
    assert closing == {"unwritten": 0}
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("SELECT id FROM trade").fetchall() == [(1,)]
    finally:
        conn.close()


def test_the_connection_kept_for_a_removal_never_pins_the_wal(make_store, db_path):
    store = make_store()
    for trade_id in range(1, 200):
        store.save_trade(full_trade(trade_id, note="n" * 200))
    assert store.flush()
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        busy, log_frames, checkpointed = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    finally:
        conn.close()
    assert busy == 0 and log_frames > 0
    assert checkpointed == log_frames  # no reader holds an old snapshot: the whole -wal can be copied back


def test_a_removed_folder_is_made_again_with_the_database(make_store, db_path):
    store = fast_retry_store(make_store)
    store.save_trade(full_trade(1, note="before"))
    assert store.flush()
    shutil.rmtree(db_path.parent)
    store.save_trade(full_trade(2, note="after"))
    statuses: list = []
    wait_for(lambda: _statuses_until_written_back(store, statuses), timeout=10, what="the file written back")
    assert [(trade.id, trade.note) for trade in store.load().open_trades] == [(1, "before"), (2, "after")]
