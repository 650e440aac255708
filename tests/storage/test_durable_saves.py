"""Durable order saves (exit intents) through the intent journal: not waiting for the writer's backlog, a busy
writer, a lock held elsewhere, a failing database, a failing journal, two savers at once."""

from __future__ import annotations

import sqlite3
import threading

from tmtool.domain.models import OrderState, TradeStatus

from tmtool.storage.intents import intents_path_for, read_journal

from tests.storage.samples import T0, full_event, full_order, full_trade
from tests.util import wait_for

WRITER_THREAD = "tmtool-store-writer"


class CommitLog:
    """``on_commit`` that records which thread committed and the running count it reported."""

    def __init__(self) -> None:
        self.commits: list[tuple[str, int]] = []
        self._lock = threading.Lock()

    def __call__(self, committed: int) -> None:
        with self._lock:
            self.commits.append((threading.current_thread().name, committed))

    def counts(self) -> list[int]:
        with self._lock:
            return [count for _, count in self.commits]


def in_thread(target) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def run() -> None:
        outcome["value"] = target()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def committed_orders(db_path) -> set[str]:
    """Order keys the main database file holds (read directly, without the store's journal)."""
    conn = sqlite3.connect(db_path.absolute().as_uri() + "?mode=ro", uri=True)
    try:
        return {row[0] for row in conn.execute('SELECT "key" FROM "order_ledger"')}
    finally:
        conn.close()


def journal_keys(db_path) -> list[str]:
    return [intent.order.key for intent in read_journal(intents_path_for(db_path)).intents]


def test_a_durable_save_is_journaled_at_once_without_committing_the_writers_backlog(make_store, db_path):
    commit_log = CommitLog()
    store = make_store(commit_interval=60.0, on_commit=commit_log)  # the writer would sit on these for a minute
    store.save_trade(full_trade(1))
    assert store.flush()

    store.save_trade(full_trade(7, status=TradeStatus.EXITING))
    store.record_event(full_event(1, ts=T0 + 1))
    assert store.save_order(full_order("x-7-1", OrderState.INTENT), durable=True, timeout=10.0) is True

    assert commit_log.counts() == [1]  # the backlog was not committed for it
    assert store.status().pending == 3
    assert committed_orders(db_path) == set()
    journal = read_journal(intents_path_for(db_path))
    assert [(intent.order, intent.trade) for intent in journal.intents] == [
        (full_order("x-7-1", OrderState.INTENT), full_trade(7, status=TradeStatus.EXITING))
    ]

    assert store.flush()
    assert committed_orders(db_path) == {"x-7-1"}
    assert journal_keys(db_path) == []  # pruned once the database holds it
    assert store.load().open_orders == (full_order("x-7-1", OrderState.INTENT),)


def test_a_durable_save_does_not_wait_for_a_writer_stuck_mid_batch(make_store, db_path):
    writer_holds_batch = threading.Event()
    release_writer = threading.Event()

    def on_commit(committed: int) -> None:
        if threading.current_thread().name == WRITER_THREAD and not release_writer.is_set():
            writer_holds_batch.set()  # the writer is still inside its commit
            release_writer.wait(10)

    store = make_store(commit_interval=0.0, on_commit=on_commit)
    try:
        store.save_trade(full_trade(1, note="in the writer's batch"))
        assert writer_holds_batch.wait(10)
        assert store.save_order(full_order("x-1-1", OrderState.INTENT), durable=True, timeout=10.0) is True
        assert journal_keys(db_path) == ["x-1-1"]
    finally:
        release_writer.set()
    assert store.flush()
    assert store.load().open_orders == (full_order("x-1-1", OrderState.INTENT),)


def test_a_lock_held_elsewhere_does_not_delay_a_durable_save(make_store, db_path):
    store = make_store(commit_interval=0.0, write_timeout=30.0)  # the writer waits for the lock, not failing
    store.save_trade(full_trade(1))
    assert store.flush()

    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another connection holds the write lock
    try:
        store.save_trade(full_trade(1, status=TradeStatus.EXITING))
        assert store.save_order(full_order("x-1-1", OrderState.INTENT), durable=True, timeout=30.0) is True
        assert journal_keys(db_path) == ["x-1-1"]
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    assert store.flush(timeout=30.0)
    loaded = store.load()
    assert loaded.open_trades[0].status is TradeStatus.EXITING
    assert loaded.open_orders == (full_order("x-1-1", OrderState.INTENT),)


def test_a_durable_save_on_a_failing_database_is_journaled_and_replayed_once(make_store, db_path):
    store = make_store(write_timeout=0.05, retry_backoff_max=0.05, commit_interval=0.0)
    store.save_trade(full_trade(1))
    assert store.flush()
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another connection holds the write lock: every commit fails
    try:
        store.save_trade(full_trade(1, status=TradeStatus.EXITING))
        assert store.save_order(full_order("x-1-1", OrderState.INTENT), durable=True, timeout=0.2) is True
        wait_for(lambda: store.status().state == "MEMORY_ONLY", what="memory-only mode")
        assert store.save_order(full_order("x-1-2", OrderState.INTENT), durable=True, timeout=0.05) is True
        assert store.status().pending == 3
        assert journal_keys(db_path) == ["x-1-1", "x-1-2"]
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    wait_for(lambda: store.status().state == "OK" and store.status().pending == 0, what="the replay")
    loaded = store.load()
    assert loaded.open_trades[0].status is TradeStatus.EXITING
    assert loaded.open_orders == (
        full_order("x-1-1", OrderState.INTENT),
        full_order("x-1-2", OrderState.INTENT),
    )
    assert journal_keys(db_path) == []


def test_a_journal_that_cannot_be_written_falls_back_to_waiting_for_the_database(make_store, db_path, monkeypatch):
    commit_log = CommitLog()
    store = make_store(commit_interval=60.0, on_commit=commit_log)
    store.save_trade(full_trade(1))
    assert store.flush()

    def disk_full(line: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store._journal, "append", disk_full)
    store.save_trade(full_trade(1, status=TradeStatus.EXITING))
    assert store.save_order(full_order("x-1-1", OrderState.INTENT), durable=True, timeout=10.0) is True

    assert commit_log.counts() == [1, 3]  # committed at once with everything queued before it, as without a journal
    assert committed_orders(db_path) == {"x-1-1"}
    assert store.load().open_trades[0].status is TradeStatus.EXITING


def test_two_durable_savers_each_find_their_orders_durable_and_everything_on_disk_after_a_flush(make_store, db_path):
    store = make_store(commit_interval=0.001)
    rounds = 40

    def saver(trade_id: int) -> list[str]:
        problems = []
        for step in range(rounds):
            store.save_trade(full_trade(trade_id, note=str(step)))
            store.record_event(full_event(trade_id, ts=T0 + step))
            if not store.save_order(full_order(f"x-{trade_id}-{step}", OrderState.INTENT), durable=True, timeout=10.0):
                problems.append(f"order {trade_id}/{step} not durable")
        return problems

    threads = [in_thread(lambda trade_id=trade_id: saver(trade_id)) for trade_id in (1, 2)]
    for thread, _ in threads:
        thread.join(60)

    assert [outcome["value"] for _, outcome in threads] == [[], []]
    assert store.flush()
    loaded = store.load()
    assert {trade.id: trade.note for trade in loaded.open_trades} == {1: str(rounds - 1), 2: str(rounds - 1)}
    assert {order.key for order in loaded.open_orders} == {
        f"x-{trade_id}-{step}" for trade_id in (1, 2) for step in range(rounds)
    }
    for trade_id in (1, 2):
        assert [event.ts for event in store.trade_events(trade_id)] == [T0 + step for step in range(rounds)]
    assert journal_keys(db_path) == []

