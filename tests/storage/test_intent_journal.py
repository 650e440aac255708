"""The intent journal beside the database: what the next start does with intents the database lacks, and how
it is covered by the storage's identity, lock, backup and fault handling."""

from __future__ import annotations

import os
import sqlite3
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from tmtool.domain.models import OrderState, TradeStatus
from tmtool.storage import SqliteStore
from tmtool.storage.errors import DatabaseMissing
from tmtool.storage.identity import read_identity_file, remove_identity_file
from tmtool.storage.intents import (
    IntentJournal,
    IntentJournalDamaged,
    IntentJournalMismatch,
    encode_intent,
    intents_path_for,
    read_journal,
)
from tmtool.storage.maintenance import db_command

from tests.storage.samples import full_order, full_trade
from tests.util import wait_for


def _used_database(db_path: Path, clock) -> str:
    store = SqliteStore(db_path, clock=clock, backup_on_open=False)
    store.start()
    store.save_trade(full_trade(7))
    assert store.flush()
    assert store.close() == 0
    return read_identity_file(db_path)


def _journal_left_by_a_crash(db_path: Path, database_id: str, *intents) -> None:
    """The journal as a killed tmtool leaves it: these intents (order, trade[, sibling orders]) appended,
    never pruned."""
    journal = IntentJournal(db_path, database_id)
    journal.open_empty()
    for order, trade, *siblings in intents:
        journal.append(encode_intent(order, trade, *siblings))
    journal.close()


def _open(db_path: Path, clock, **options) -> SqliteStore:
    store = SqliteStore(db_path, clock=clock, backup_on_open=False, **options)
    store.open()
    return store


def test_the_journal_is_private_and_names_its_database(make_store, db_path):
    make_store()
    path = intents_path_for(db_path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    contents = read_journal(path)
    assert contents.database_id == read_identity_file(db_path) and contents.intents == ()


def test_an_intent_the_database_lacks_is_written_into_it_at_the_next_start_with_its_trade(db_path, clock):
    database_id = _used_database(db_path, clock)
    exiting = full_trade(7, status=TradeStatus.EXITING, note="journaled version")
    _journal_left_by_a_crash(db_path, database_id, (full_order("x-7-9", OrderState.INTENT), exiting))

    store = _open(db_path, clock)
    try:
        loaded = store.load()
    finally:
        store.close()
    assert loaded.open_orders == (full_order("x-7-9", OrderState.INTENT),)
    assert [(trade.id, trade.status, trade.note) for trade in loaded.open_trades] == [
        (7, TradeStatus.EXITING, "journaled version")
    ]
    assert read_journal(intents_path_for(db_path)).intents == ()  # applied, then started afresh


def test_an_intent_carries_its_trade_and_the_trades_other_orders_as_queued_before_it(make_store, db_path):
    store = make_store(commit_interval=3600.0)
    store.save_trade(full_trade(7))
    assert store.flush()  # the writer now waits an hour unless asked
    store.save_order(full_order("x-7-1", OrderState.SENT))
    store.save_order(full_order("x-7-1", OrderState.PARTIAL))  # the newest version is the one journaled
    store.save_order(replace(full_order("x-9-1", OrderState.SENT), trade_id=9))  # another trade's: not carried
    store.save_trade(full_trade(7, status=TradeStatus.EXITING))
    assert store.save_order(full_order("x-7-2", OrderState.INTENT), durable=True) is True

    [intent] = read_journal(intents_path_for(db_path)).intents
    assert intent.order == full_order("x-7-2", OrderState.INTENT)
    assert intent.trade == full_trade(7, status=TradeStatus.EXITING)
    assert intent.sibling_orders == (full_order("x-7-1", OrderState.PARTIAL),)


def test_the_next_start_writes_an_intents_sibling_orders_and_a_later_intents_copy_wins(db_path, clock):
    database_id = _used_database(db_path, clock)
    first = full_order("x-7-1", OrderState.INTENT)
    second = full_order("x-7-2", OrderState.INTENT)
    _journal_left_by_a_crash(
        db_path,
        database_id,
        (first, full_trade(7, status=TradeStatus.EXITING)),
        (second, full_trade(7, status=TradeStatus.EXITING, note="later"), [full_order("x-7-1", OrderState.PARTIAL)]),
    )
    store = _open(db_path, clock)
    try:
        loaded = store.load()
    finally:
        store.close()
    assert {order.key: order.state for order in loaded.open_orders} == {"x-7-1": OrderState.PARTIAL, "x-7-2": OrderState.INTENT}
    assert [trade.note for trade in loaded.open_trades] == ["later"]


def test_an_intent_the_database_committed_is_dropped_and_the_database_wins(db_path, clock):
    store = SqliteStore(db_path, clock=clock, backup_on_open=False)
    store.start()
    store.save_trade(full_trade(7, status=TradeStatus.CLOSED, note="database version"))
    store.save_order(full_order("x-7-9", OrderState.COMPLETE))  # a later version of the journaled row
    assert store.flush()
    database_id = read_identity_file(db_path)
    assert store.close() == 0
    _journal_left_by_a_crash(
        db_path, database_id, (full_order("x-7-9", OrderState.INTENT), full_trade(7, status=TradeStatus.EXITING))
    )

    store = _open(db_path, clock)
    try:
        loaded = store.load()
        closed = store.closed_trades()
    finally:
        store.close()
    assert loaded.open_orders == () and loaded.open_trades == ()
    assert [(trade.id, trade.note) for trade in closed] == [(7, "database version")]


def test_a_torn_last_line_is_ignored_but_damage_before_it_is_refused(db_path, clock):
    database_id = _used_database(db_path, clock)
    _journal_left_by_a_crash(db_path, database_id, (full_order("x-7-1", OrderState.INTENT), None))
    path = intents_path_for(db_path)
    whole = path.read_bytes()
    torn = encode_intent(full_order("x-7-2", OrderState.INTENT), None)[:40]
    path.write_bytes(whole + torn)  # a write the crash cut short: its append never returned
    assert [intent.order.key for intent in read_journal(path).intents] == ["x-7-1"]

    lines = whole.split(b"\n")
    lines[1] = lines[1][:20] + b"X" + lines[1][21:]  # a flipped byte in an acknowledged intent
    path.write_bytes(b"\n".join(lines) + encode_intent(full_order("x-7-2", OrderState.INTENT), None))
    with pytest.raises(IntentJournalDamaged) as refused:
        _open(db_path, clock)
    message = str(refused.value)
    assert f"intent journal {path} is damaged (line 2" in message
    assert "may name orders that reached the broker" in message
    assert SqliteStore(db_path, clock=clock, backup_on_open=False)._lock is not None
    with pytest.raises(IntentJournalDamaged):  # refused again: the lock was released, nothing was changed
        _open(db_path, clock)


def test_a_journal_left_where_the_database_was_deleted_is_evidence_of_lost_state(db_path, clock):
    database_id = _used_database(db_path, clock)
    _journal_left_by_a_crash(db_path, database_id, (full_order("x-7-1", OrderState.INTENT), None))
    db_path.unlink()
    remove_identity_file(db_path)  # even without the identity file and with no backup

    with pytest.raises(DatabaseMissing) as refused:
        _open(db_path, clock)
    assert f"(its intent journal {intents_path_for(db_path)} is still there)" in str(refused.value)
    assert not db_path.exists()


def test_a_journal_of_another_database_is_refused_unless_new_database_sets_it_aside(db_path, clock):
    _used_database(db_path, clock)
    _journal_left_by_a_crash(db_path, "00000000-0000-0000-0000-000000000000", (full_order("x-7-1", OrderState.INTENT), None))
    with pytest.raises(IntentJournalMismatch) as refused:
        _open(db_path, clock)
    assert "belongs to database 00000000-0000-0000-0000-000000000000" in str(refused.value)

    store = _open(db_path, clock, new_database=True)
    try:
        assert store.load().open_orders == ()
    finally:
        store.close()
    kept = list(db_path.parent.glob(f"{db_path.name}.intents.orphaned-*"))
    assert len(kept) == 1 and [i.order.key for i in read_journal(kept[0]).intents] == ["x-7-1"]


def test_start_fresh_removes_the_journal_with_the_database(db_path, clock):
    database_id = _used_database(db_path, clock)
    _journal_left_by_a_crash(db_path, database_id, (full_order("x-7-1", OrderState.INTENT), None))
    store = _open(db_path, clock, start_fresh=True)
    try:
        assert store.load().open_orders == ()
    finally:
        store.close()


def test_a_journal_removed_while_running_is_written_back_with_the_intents_not_yet_committed(make_store, db_path):
    store = make_store(write_timeout=0.05, retry_backoff_max=0.05, commit_interval=0.0, watch_interval=0.01)
    store.save_trade(full_trade(7))
    assert store.flush()
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # the database takes nothing: the journal alone holds the intents
    try:
        assert store.save_order(full_order("x-7-1", OrderState.INTENT), durable=True) is True
        path = intents_path_for(db_path)
        path.unlink()
        wait_for(lambda: path.exists() and len(read_journal(path).intents) == 1, what="the journal written back")
        assert store.save_order(full_order("x-7-2", OrderState.INTENT), durable=True) is True
        assert [intent.order.key for intent in read_journal(path).intents] == ["x-7-1", "x-7-2"]
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    wait_for(lambda: store.status().pending == 0, what="the replay")
    assert read_journal(path).intents == ()
    assert [order.key for order in store.load().open_orders] == ["x-7-1", "x-7-2"]


def test_restore_keeps_the_journal_of_the_restored_database_and_sets_another_aside(db_path, clock, capsys):
    database_id = _used_database(db_path, clock)
    assert db_command("backup", db_path, None, clock=clock) == 0
    _journal_left_by_a_crash(db_path, database_id, (full_order("x-7-1", OrderState.INTENT), None))

    assert db_command("restore", db_path, None, clock=clock) == 0
    assert [i.order.key for i in read_journal(intents_path_for(db_path)).intents] == ["x-7-1"]
    store = _open(db_path, clock)
    try:
        assert [order.key for order in store.load().open_orders] == ["x-7-1"]
    finally:
        store.close()

    _journal_left_by_a_crash(db_path, "00000000-0000-0000-0000-000000000000", (full_order("x-7-2", OrderState.INTENT), None))
    assert db_command("restore", db_path, None, clock=clock) == 0
    assert not intents_path_for(db_path).exists()
    assert len(list(db_path.parent.glob(f"{db_path.name}.intents.orphaned-*"))) == 1


def test_check_reports_intents_the_database_does_not_hold_yet_and_a_damaged_journal(db_path, clock, capsys):
    database_id = _used_database(db_path, clock)
    _journal_left_by_a_crash(db_path, database_id, (full_order("x-7-1", OrderState.INTENT), None))
    assert db_command("check", db_path, None) == 0
    out = capsys.readouterr().out
    assert "holds 1 order intent(s) the database does not yet (x-7-1)" in out

    path = intents_path_for(db_path)
    path.write_bytes(b"not a journal\n")
    assert db_command("check", db_path, None) == 1
    assert f"intent journal {path} is damaged" in capsys.readouterr().err


def test_a_durable_save_with_an_unstorable_record_is_not_reported_durable(make_store, db_path):
    store = make_store(commit_interval=0.0)
    bad = replace(full_order("x-7-1", OrderState.INTENT), price=float("nan"))
    assert store.save_order(bad, durable=True, timeout=5.0) is False
    assert read_journal(intents_path_for(db_path)).intents == ()
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute('SELECT COUNT(*) FROM "order_ledger"').fetchone()[0] == 0
    finally:
        conn.close()


def test_a_failed_append_is_cut_off_so_the_next_intent_does_not_follow_half_a_line(db_path, clock, monkeypatch):
    database_id = _used_database(db_path, clock)
    journal = IntentJournal(db_path, database_id)
    journal.open_empty()
    real_write = os.write

    def half_write(descriptor: int, data: bytes) -> int:  # the disk filled up mid-line
        return real_write(descriptor, data[: len(data) // 2])

    monkeypatch.setattr(os, "write", half_write)
    with pytest.raises(OSError):
        journal.append(encode_intent(full_order("x-7-1", OrderState.INTENT), None))
    monkeypatch.setattr(os, "write", real_write)
    journal.append(encode_intent(full_order("x-7-2", OrderState.INTENT), None))
    journal.close()
    assert [intent.order.key for intent in read_journal(intents_path_for(db_path)).intents] == ["x-7-2"]


def test_backup_names_journaled_intents_it_does_not_hold(db_path, clock, capsys):
    database_id = _used_database(db_path, clock)
    _journal_left_by_a_crash(db_path, database_id, (full_order("x-7-1", OrderState.INTENT), None))
    assert db_command("backup", db_path, None, clock=clock) == 0
    out = capsys.readouterr().out
    assert "Note: not in this backup: intent journal" in out and "(x-7-1)" in out
