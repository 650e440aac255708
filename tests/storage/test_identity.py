"""The database's identity at start: a missing, empty, different or damaged database where one was used
is refused with the newest valid backup and the restore command; --new-database starts afresh; unwritable
SQLite files are refused before SQLite maps them; a second store touches none of the first one's files."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from tmtool.storage import DatabaseCorrupt, DatabaseInUse, SqliteStore
from tmtool.storage.backup import list_backups
from tmtool.storage.identity import identity_path_for, read_identity_file
from tmtool.storage.errors import DatabaseFilesNotWritable, DatabaseMissing
from tmtool.storage.files import side_files

from tests.storage.samples import full_trade


def _used_database(db_path: Path, clock, trades: int = 1) -> str:
    """A database tmtool used: ``trades`` trades saved, one start-up backup, closed; returns its identity."""
    store = SqliteStore(db_path, clock=clock)
    store.start()
    for trade_id in range(1, trades + 1):
        store.save_trade(full_trade(trade_id))
    assert store.flush()
    assert store.close() == 0
    return read_identity_file(db_path)


def _database_id(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT value FROM meta WHERE key = 'database_id'").fetchone()[0]
    finally:
        conn.close()


def test_a_new_database_gets_an_identity_mirrored_beside_it(db_path, clock):
    database_id = _used_database(db_path, clock)
    assert database_id and len(database_id) == 36
    assert _database_id(db_path) == database_id
    assert _database_id(list_backups(db_path)[-1]) == database_id  # the backup carries it too
    assert stat.S_IMODE(os.stat(identity_path_for(db_path)).st_mode) == 0o600


def test_a_missing_database_that_was_used_is_refused_naming_the_backup_and_the_command(db_path, clock):
    _used_database(db_path, clock)
    backup = list_backups(db_path)[-1]
    for path in [db_path, *side_files(db_path)]:
        path.unlink(missing_ok=True)
    with pytest.raises(DatabaseMissing) as refused:
        SqliteStore(db_path, clock=clock).open()
    message = str(refused.value)
    assert f"database {db_path} is missing but tmtool used a database there before" in message
    assert f"`tmtool db restore --db {db_path} {backup}`" in message
    assert "--new-database" in message
    assert not db_path.exists()  # nothing created in its place


def test_an_empty_database_file_that_was_used_is_refused_and_no_backup_is_made_of_it(db_path, clock):
    _used_database(db_path, clock)
    backups = list_backups(db_path)
    for path in side_files(db_path):
        path.unlink(missing_ok=True)
    db_path.write_bytes(b"")
    with pytest.raises(DatabaseMissing, match=r"is empty \(0 bytes\) but tmtool used a database there before"):
        SqliteStore(db_path, clock=clock).open()
    assert db_path.stat().st_size == 0
    assert list_backups(db_path) == backups


def test_a_different_database_is_refused_unless_new_database_accepts_it(db_path, tmp_path, clock):
    first_id = _used_database(db_path, clock)
    other = tmp_path / "elsewhere" / "tmtool.db"
    other_id = _used_database(other, clock)
    for path in [db_path, *side_files(db_path)]:
        path.unlink(missing_ok=True)
    db_path.write_bytes(other.read_bytes())
    with pytest.raises(DatabaseMissing, match=rf"holds a different database \(id {other_id}\) .* \(id {first_id}\)"):
        SqliteStore(db_path, clock=clock).open()
    assert read_identity_file(db_path) == first_id

    store = SqliteStore(db_path, clock=clock, new_database=True)
    store.open()
    store.close()
    assert read_identity_file(db_path) == other_id


def test_new_database_starts_afresh_where_the_file_is_missing(db_path, clock):
    first_id = _used_database(db_path, clock, trades=2)
    for path in [db_path, *side_files(db_path)]:
        path.unlink(missing_ok=True)
    store = SqliteStore(db_path, clock=clock, new_database=True)
    store.open()
    try:
        assert store.load().open_trades == ()
    finally:
        store.close()
    assert read_identity_file(db_path) not in (None, first_id)


def test_an_empty_file_where_no_database_was_used_becomes_a_new_database(db_path, clock):
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(b"")
    store = SqliteStore(db_path, clock=clock)
    store.open()
    store.close()
    assert _database_id(db_path) == read_identity_file(db_path)


def test_a_zeroed_page_is_refused_with_the_restore_hint(db_path, clock):
    _used_database(db_path, clock, trades=300)
    backup = list_backups(db_path)[-1]
    with open(db_path, "r+b") as handle:  # zero a page in the middle of the trade table
        handle.seek(6 * 4096)
        handle.write(b"\x00" * 4096)
    with pytest.raises(DatabaseCorrupt) as refused:
        SqliteStore(db_path, clock=clock).open()
    assert f"database {db_path} is damaged" in str(refused.value)
    assert f"`tmtool db restore --db {db_path} {backup}`" in str(refused.value)


def test_a_garbage_header_is_refused_with_the_restore_hint(db_path, clock):
    _used_database(db_path, clock)
    with open(db_path, "r+b") as handle:
        handle.write(b"this is no longer SQLite")
    with pytest.raises(DatabaseCorrupt, match=r"is damaged \(file is not a database\); the newest valid backup is"):
        SqliteStore(db_path, clock=clock).open()


def _with_side_files(db_path: Path) -> sqlite3.Connection:
    """Open a connection that keeps the -wal and -shm in place (closing the last one removes them)."""
    conn = sqlite3.connect(db_path)
    conn.execute("SELECT COUNT(*) FROM trade").fetchone()
    assert all(path.exists() for path in side_files(db_path)[:2])
    return conn


@pytest.mark.parametrize("suffix", ["-shm", "-wal"])
def test_a_read_only_side_file_is_refused_at_start_before_sqlite_maps_it(db_path, clock, suffix):
    _used_database(db_path, clock)
    holder = _with_side_files(db_path)
    try:
        read_only = db_path.with_name(db_path.name + suffix)
        os.chmod(read_only, 0o400)
        with pytest.raises(DatabaseFilesNotWritable) as refused:
            SqliteStore(db_path, clock=clock).open()
        assert f"not writable by this user: {read_only}" in str(refused.value)
        assert stat.S_IMODE(os.stat(read_only).st_mode) == 0o400  # left as it was
        os.chmod(read_only, 0o600)
        store = SqliteStore(db_path, clock=clock)  # and the lock was released
        store.open()
        store.close()
    finally:
        holder.close()


def test_a_second_store_starting_fresh_touches_nothing_of_the_first(db_path, clock):
    first = SqliteStore(db_path, clock=clock)
    first.start()
    first.save_trade(full_trade(1))
    assert first.flush()
    files = {path: path.stat().st_ino for path in [db_path, *side_files(db_path)] if path.exists()}
    try:
        with pytest.raises(DatabaseInUse):
            SqliteStore(db_path, clock=clock, start_fresh=True).open()
        assert {path: path.stat().st_ino for path in files if path.exists()} == files
        first.save_trade(full_trade(2))
        assert first.flush()
        assert first.status().state == "OK"
        assert [trade.id for trade in first.load().open_trades] == [1, 2]
    finally:
        first.close()


def test_start_fresh_replaces_the_database_once_the_lock_is_held(db_path, clock):
    _used_database(db_path, clock, trades=2)
    store = SqliteStore(db_path, clock=clock, start_fresh=True)
    store.open()
    try:
        assert store.load().open_trades == ()
    finally:
        store.close()
