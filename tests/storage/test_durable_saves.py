"""Durable order saves (exit intents): the queued prefix, a busy writer, a lock held elsewhere, a failing
database, two savers at once."""

from __future__ import annotations

import sqlite3
import threading

from tmtool.domain.models import OrderState, TradeStatus

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


def test_a_durable_save_commits_everything_queued_before_it_without_waiting_for_the_interval(make_store):
    commit_log = CommitLog()
    store = make_store(commit_interval=60.0, on_commit=commit_log)  # the writer would sit on these for a minute
    store.save_trade(full_trade(1))
    assert store.flush()

    store.save_trade(full_trade(1, trailing_stop=900.0))
    store.save_trade(full_trade(1, status=TradeStatus.EXITING))  # the last version of the row wins
    store.record_event(full_event(1, ts=T0 + 1))
    store.record_event(full_event(1, ts=T0 + 2))
    assert store.save_order(full_order("x-1-1", OrderState.INTENT), durable=True, timeout=10.0) is True

    assert commit_log.counts()[-1] == 6
    assert store.status().pending == 0
    loaded = store.load()
    assert [(trade.id, trade.status, trade.trailing_stop) for trade in loaded.open_trades] == [
        (1, TradeStatus.EXITING, full_trade().trailing_stop)
    ]
    assert loaded.open_orders == (full_order("x-1-1", OrderState.INTENT),)
    assert [event.ts for event in store.trade_events(1)] == [T0 + 1, T0 + 2]


def test_a_durable_save_while_the_writer_is_mid_batch_waits_for_it_then_commits_the_rest(make_store):
    writer_holds_batch = threading.Event()
    release_writer = threading.Event()
    commit_log = CommitLog()

    def on_commit(committed: int) -> None:
        commit_log(committed)
        if threading.current_thread().name == WRITER_THREAD and not release_writer.is_set():
            writer_holds_batch.set()  # the writer is still inside its commit
            release_writer.wait(10)

    store = make_store(commit_interval=0.0, on_commit=on_commit)
    store.save_trade(full_trade(1, note="in the writer's batch"))
    assert writer_holds_batch.wait(10)
    store.save_trade(full_trade(1, status=TradeStatus.EXITING, note="after the writer's batch"))
    saver, outcome = in_thread(
        lambda: store.save_order(full_order("x-1-1", OrderState.INTENT), durable=True, timeout=10.0)
    )
    wait_for(lambda: store.status().pending == 2, what="the order queued while the writer is busy")
    release_writer.set()
    saver.join(10)

    assert outcome["value"] is True
    assert commit_log.counts() == [1, 3]  # the writer's batch first, then the rest in one transaction
    loaded = store.load()
    assert [(trade.status, trade.note) for trade in loaded.open_trades] == [
        (TradeStatus.EXITING, "after the writer's batch")
    ]
    assert loaded.open_orders == (full_order("x-1-1", OrderState.INTENT),)


def test_a_lock_held_elsewhere_delays_a_durable_save_until_the_writer_gets_through(make_store, db_path):
    commit_log = CommitLog()
    store = make_store(commit_interval=60.0, write_timeout=30.0, on_commit=commit_log)  # the writer waits unless asked
    store.save_trade(full_trade(1))
    assert store.flush()

    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another connection holds the write lock
    try:
        store.save_trade(full_trade(1, status=TradeStatus.EXITING))
        saver, outcome = in_thread(
            lambda: store.save_order(full_order("x-1-1", OrderState.INTENT), durable=True, timeout=30.0)
        )
        # the saver waits for the writer, which waits for the lock (write_timeout) rather than failing
        wait_for(lambda: store._durable_waiters == 1, what="the saver waiting for the writer")
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    saver.join(30)

    assert outcome["value"] is True
    assert commit_log.commits[-1] == (WRITER_THREAD, 3)
    assert store.status().state == "OK"
    loaded = store.load()
    assert loaded.open_trades[0].status is TradeStatus.EXITING
    assert loaded.open_orders == (full_order("x-1-1", OrderState.INTENT),)


def test_a_durable_save_on_a_failing_database_reports_false_and_is_replayed_once(make_store, db_path):
    store = make_store(write_timeout=0.05, retry_backoff_max=0.05, commit_interval=0.0)
    store.save_trade(full_trade(1))
    assert store.flush()
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another connection holds the write lock: every commit fails
    try:
        store.save_trade(full_trade(1, status=TradeStatus.EXITING))
        assert store.save_order(full_order("x-1-1", OrderState.INTENT), durable=True, timeout=0.2) is False
        wait_for(lambda: store.status().state == "MEMORY_ONLY", what="memory-only mode")
        assert store.save_order(full_order("x-1-2", OrderState.INTENT), durable=True, timeout=0.05) is False
        assert store.status().pending == 3
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


def test_two_durable_savers_each_find_everything_they_queued_before_their_order_on_disk(make_store):
    commit_log = CommitLog()
    store = make_store(commit_interval=0.001, on_commit=commit_log)
    rounds = 40

    def saver(trade_id: int) -> list[str]:
        problems = []
        for step in range(rounds):
            store.save_trade(full_trade(trade_id, note=str(step)))
            store.record_event(full_event(trade_id, ts=T0 + step))
            if not store.save_order(full_order(f"x-{trade_id}-{step}", OrderState.INTENT), durable=True, timeout=10.0):
                problems.append(f"order {trade_id}/{step} not durable")
            on_disk = [event.ts for event in store.trade_events(trade_id)]
            if on_disk != [T0 + earlier for earlier in range(step + 1)]:
                problems.append(f"trade {trade_id} step {step}: events on disk {on_disk}")
        return problems

    threads = [in_thread(lambda trade_id=trade_id: saver(trade_id)) for trade_id in (1, 2)]
    for thread, _ in threads:
        thread.join(60)

    assert [outcome["value"] for _, outcome in threads] == [[], []]
    counts = commit_log.counts()
    assert counts == sorted(set(counts)) and counts[-1] == 2 * rounds * 3
    loaded = store.load()
    assert {trade.id: trade.note for trade in loaded.open_trades} == {1: str(rounds - 1), 2: str(rounds - 1)}
    assert {order.key for order in loaded.open_orders} == {
        f"x-{trade_id}-{step}" for trade_id in (1, 2) for step in range(rounds)
    }


def test_a_batch_hands_its_changes_over_when_it_ends_in_order(make_store):
    """One tick's ratchets over many trades: held on the engine thread, then handed over together."""
    store = make_store(commit_interval=60.0)
    with store.batch():
        for trade_id in (1, 2, 3):
            store.save_trade(full_trade(trade_id, trailing_stop=900.0 + trade_id))
            store.record_event(full_event(trade_id, ts=T0 + trade_id))
        with store.batch():  # a nested block joins the outer one
            store.save_trade(full_trade(1, trailing_stop=950.0))
        assert store.status().pending == 0  # nothing reached the writer yet
    assert store.status().pending == 7
    assert store.flush(timeout=10.0)
    loaded = store.load()
    assert [(t.id, t.trailing_stop) for t in loaded.open_trades] == [(1, 950.0), (2, 902.0), (3, 903.0)]
    assert [e.ts for e in store.trade_events(2)] == [T0 + 2]


def test_an_order_row_in_a_batch_takes_the_held_changes_along_and_can_be_durable(make_store):
    store = make_store(commit_interval=60.0)
    with store.batch():
        store.save_trade(full_trade(1, trailing_stop=901.0))
        assert store.save_order(full_order("x-1-1", OrderState.INTENT), durable=True, timeout=10.0) is True
        store.save_trade(full_trade(2))
        assert store.status().pending == 0  # the held ratchet went with the order row and is committed
    loaded = store.load()
    assert [(t.id, t.trailing_stop) for t in loaded.open_trades][:1] == [(1, 901.0)]
    assert [o.key for o in loaded.open_orders] == ["x-1-1"]
    assert store.status().pending == 1


def test_another_threads_changes_are_not_held_by_a_batch(make_store):
    store = make_store(commit_interval=60.0)
    with store.batch():
        thread, outcome = in_thread(lambda: store.save_order(full_order("x-2-1", OrderState.INTENT), durable=True,
                                                             timeout=10.0))
        thread.join()
        assert outcome["value"] is True
        store.save_trade(full_trade(1))
        assert [o.key for o in store.load().open_orders] == ["x-2-1"]
    assert store.flush(timeout=10.0)
    assert [t.id for t in store.load().open_trades] == [1]
