"""Real processes: SIGKILL in a burst of changes, the single-instance lock, a real disk-full failure."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tmtool.clock import ManualClock
from tmtool.storage import DatabaseInUse, SqliteStore
from tmtool.storage.backup import integrity_problems

from tests.storage.child import EVENT_EVERY, ORDER_EVERY, TRADES_IN_BURST

REPO = Path(__file__).resolve().parents[2]


def spawn(scenario: str, db_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.storage.child", scenario, str(db_path)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def kill(child: subprocess.Popen) -> None:
    if child.poll() is None:
        child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    for stream in (child.stdin, child.stdout):
        if stream:
            stream.close()


def _kill_after_acknowledgements(scenario: str, db_path: Path, count: int) -> int:
    """Run a child scenario, SIGKILL it once it has acknowledged ``count`` changes; returns the last acknowledged."""
    child = spawn(scenario, db_path)
    acknowledged = 0
    try:
        assert child.stdout.readline().strip() == "ready"
        for line in child.stdout:
            acknowledged = int(line.split()[1])
            if acknowledged >= count:
                break
    finally:
        kill(child)
    assert acknowledged >= count
    return acknowledged


def test_sigkill_in_a_burst_leaves_a_clean_prefix_holding_every_acknowledged_change(db_path):
    acknowledged = _kill_after_acknowledgements("crash-burst", db_path, 400)

    assert integrity_problems(db_path) == []
    store = SqliteStore(db_path, clock=ManualClock(), backup_on_open=False)
    store.open()  # the dead child's lock is gone
    try:
        events = [int(event.ts) for event in store.trade_events(1000)]
        notes = {trade.id: int(trade.note) for trade in store.load().open_trades}
    finally:
        store.close()
    prefix = max([*events, *notes.values()])
    assert prefix >= acknowledged
    assert events == [index for index in range(1, prefix + 1) if index % EVENT_EVERY == 0]
    expected_notes: dict[int, int] = {}
    for index in range(1, prefix + 1):
        if index % EVENT_EVERY:
            expected_notes[index % TRADES_IN_BURST + 1] = index
    assert notes == expected_notes


def test_sigkill_among_durable_exit_intents_leaves_a_clean_prefix_and_every_acknowledged_intent(db_path):
    """The main database keeps a clean prefix of the changes; every intent acknowledged as durable is known
    after the restart (from the database or, when its commit was lost, from the intent journal, together
    with the newest version of its trade queued before it)."""
    acknowledged = _kill_after_acknowledgements("crash-durable", db_path, 400)

    assert integrity_problems(db_path) == []
    store = SqliteStore(db_path, clock=ManualClock(), backup_on_open=False)
    store.open()  # folds the journal's intents the database lacks into it
    try:
        events = [int(event.ts) for event in store.trade_events(1000)]
        loaded = store.load()
    finally:
        store.close()
    notes = {trade.id: int(trade.note) for trade in loaded.open_trades}
    orders = sorted(int(order.key.split("-")[1]) for order in loaded.open_orders)
    journaled_trade = 7  # the trade id of every intent (full_order): its version may come from the journal
    prefix = max([*events, *(note for trade_id, note in notes.items() if trade_id != journaled_trade)])
    changes = range(1, prefix + 1)
    assert events == [index for index in changes if index % ORDER_EVERY and index % EVENT_EVERY == 0]
    expected_notes: dict[int, int] = {}
    for index in changes:
        if index % ORDER_EVERY and index % EVENT_EVERY:
            expected_notes[index % TRADES_IN_BURST + 1] = index
    assert {k: v for k, v in notes.items() if k != journaled_trade} == {
        k: v for k, v in expected_notes.items() if k != journaled_trade
    }
    # every intent up to the last one known, acknowledged ones included, none missing in between
    assert orders[-1] >= acknowledged
    assert orders == list(range(ORDER_EVERY, orders[-1] + 1, ORDER_EVERY))
    # trade 7 is at least the version queued before the last intent, and no newer than the database's prefix allows
    def version_of_7(index: int) -> bool:
        return bool(index % ORDER_EVERY and index % EVENT_EVERY and index % TRADES_IN_BURST + 1 == journaled_trade)

    next_other = next(i for i in range(prefix + 1, prefix + 100) if i % ORDER_EVERY and not version_of_7(i))
    newest_allowed = max(next_other, orders[-1])
    assert notes[journaled_trade] >= max(i for i in range(1, orders[-1]) if version_of_7(i))
    assert notes[journaled_trade] == max(i for i in range(1, newest_allowed) if version_of_7(i)) or (
        notes[journaled_trade] < newest_allowed and version_of_7(notes[journaled_trade])
    )


def test_a_second_process_is_refused_naming_the_first_and_admitted_after_it_dies(db_path):
    child = spawn("hold-lock", db_path)
    try:
        line = child.stdout.readline().split()
        assert line == ["locked", str(child.pid)]
        second = SqliteStore(db_path, clock=ManualClock(), backup_on_open=False)
        with pytest.raises(DatabaseInUse, match=f"in use by another tmtool, process {child.pid}") as refused:
            second.open()
        assert refused.value.pid == child.pid
    finally:
        kill(child)
    second.open()
    second.close()


def test_a_second_store_in_the_same_process_is_refused(make_store, db_path):
    make_store()
    with pytest.raises(DatabaseInUse, match=f"process {os.getpid()}"):
        SqliteStore(db_path, clock=ManualClock()).open()


def test_disk_full_goes_memory_only_and_replays_everything_once_space_returns(db_path):
    child = spawn("disk-full", db_path)
    try:
        failing = json.loads(child.stdout.readline())
        recovered = json.loads(child.stdout.readline())
        assert child.wait(timeout=30) == 0
    finally:
        kill(child)
    assert failing["state"] == "MEMORY_ONLY"
    assert failing["pending"] > 0
    assert "full" in failing["error"] or "I/O" in failing["error"]
    saved = failing["saved"]
    assert recovered["state"] == "OK"
    expected_notes = {trade_id: None for trade_id in range(1, 51)}
    for index in range(1, saved + 1):
        expected_notes[index % 50 + 1] = str(index)
    expected_notes = {str(k): v for k, v in expected_notes.items() if v is not None}
    if "1" not in expected_notes:
        expected_notes["1"] = "scaled"  # trade 1's first version, written before the limit
    assert recovered["notes"] == expected_notes
    assert recovered["events"] == saved  # each event exactly once
