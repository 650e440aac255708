"""Backups (online, rotated), restore (locked out while running, verified first, old file kept), check."""

from __future__ import annotations

import os
import sqlite3
import stat

import pytest

from tmtool.storage import DatabaseInUse, SqliteStore, db_command
from tmtool.storage.backup import create_backup, list_backups, restore_database
from tmtool.storage.migrations import LATEST_VERSION

from tests.storage.samples import full_order, full_trade


def test_backups_on_start_are_rotated(db_path, clock):
    for _ in range(5):
        store = SqliteStore(db_path, clock=clock, backups_to_keep=3)
        store.open()
        store.close()
    backups = list_backups(db_path)
    assert len(backups) == 3
    for path in backups:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_an_online_backup_holds_what_was_committed_while_the_store_runs(make_store, db_path, clock, capsys):
    store = make_store()
    store.save_trade(full_trade(1))
    assert store.flush()
    assert db_command("backup", db_path, None, clock=clock) == 0
    written = list_backups(db_path)[-1]
    assert f"Backed up {db_path} to {written}" in capsys.readouterr().out
    conn = sqlite3.connect(written)
    try:
        assert conn.execute("SELECT id FROM trade").fetchall() == [(1,)]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one self-contained file
    finally:
        conn.close()


def test_backup_to_a_named_file_never_overwrites(make_store, db_path, tmp_path, clock, capsys):
    make_store()
    target = tmp_path / "manual.db"
    assert db_command("backup", db_path, target, clock=clock) == 0
    assert db_command("backup", db_path, target, clock=clock) == 1
    assert "exists already" in capsys.readouterr().err


def test_restore_is_refused_while_tmtool_runs_on_the_database(make_store, db_path, clock, capsys):
    make_store()
    backup = list_backups(db_path)[-1]
    with pytest.raises(DatabaseInUse):
        restore_database(db_path, backup, clock)
    assert db_command("restore", db_path, backup, clock=clock) == 1
    assert f"in use by another tmtool, process {os.getpid()}" in capsys.readouterr().err


def test_restore_brings_back_the_backup_and_keeps_the_replaced_file(db_path, clock, capsys):
    store = SqliteStore(db_path, clock=clock, backup_on_open=False)
    store.start()
    store.save_trade(full_trade(1, note="backed up"))
    assert store.flush()
    backup = create_backup(db_path, clock)
    store.save_trade(full_trade(1, note="after the backup"))
    store.save_trade(full_trade(2))
    assert store.flush()
    store.close()

    assert db_command("restore", db_path, None, clock=clock) == 0  # the newest backup
    out = capsys.readouterr().out
    assert f"Restored {db_path} from {backup}" in out
    kept = next(db_path.parent.glob("tmtool.db.replaced-*.db"))
    assert str(kept) in out

    store = SqliteStore(db_path, clock=clock, backup_on_open=False)
    store.open()
    try:
        assert [(t.id, t.note) for t in store.load().open_trades] == [(1, "backed up")]
    finally:
        store.close()
    kept_store = SqliteStore(kept, clock=clock, backup_on_open=False)
    kept_store.open()
    try:
        assert [(t.id, t.note) for t in kept_store.load().open_trades] == [(1, "after the backup"), (2, "scaled out once")]
    finally:
        kept_store.close()
    assert stat.S_IMODE(os.stat(db_path).st_mode) == 0o600


def test_a_damaged_backup_is_refused_and_changes_nothing(make_store, db_path, tmp_path, clock, capsys):
    store = make_store()
    store.save_trade(full_trade(1))
    assert store.flush()
    store.close()
    before = db_path.read_bytes()
    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(b"\x00garbage" * 1000)
    assert db_command("restore", db_path, damaged, clock=clock) == 1
    assert f"{damaged} is not a usable tmtool backup (file is not a database); nothing was changed" in (
        capsys.readouterr().err
    )
    assert db_path.read_bytes() == before
    assert not list(db_path.parent.glob("*.replaced-*"))


def test_check_reports_a_healthy_database(make_store, db_path, clock, capsys):
    store = make_store()
    store.save_trade(full_trade(7))
    assert store.flush()
    assert db_command("check", db_path, None, clock=clock) == 0  # while the store runs
    assert f"ok (schema version {LATEST_VERSION}; strategy 0, trade 1," in capsys.readouterr().out


def test_check_reports_damage_and_orphans(make_store, db_path, tmp_path, clock, capsys):
    store = make_store()
    store.save_order(full_order())  # names trade 7, which was never saved
    assert store.flush()
    store.close()
    assert db_command("check", db_path, None, clock=clock) == 1
    assert "1 row(s) of order_ledger name a trade that is not in the database" in capsys.readouterr().err

    broken = tmp_path / "broken.db"
    broken.write_bytes(b"\x00garbage" * 1000)
    assert db_command("check", broken, None, clock=clock) == 1
    assert "tmtool db restore" in capsys.readouterr().err


def test_unknown_action_is_a_usage_error(db_path, capsys):
    assert db_command("vacuum", db_path, None) == 2
    assert "use one of: backup, restore, check" in capsys.readouterr().err


def _junk_backup(db_path, name: str, content: bytes = b"") -> None:
    """A backup file that fails its check (empty by default), newer than every other backup."""
    directory = db_path.parent / "backups"
    newest = max((path.stat().st_mtime_ns for path in directory.iterdir()), default=0)
    junk = directory / name
    junk.write_bytes(content)
    os.utime(junk, ns=(newest + 10**9, newest + 10**9))
    junk.chmod(0o600)


def test_rotation_never_drops_the_last_valid_backup(db_path, clock):
    store = SqliteStore(db_path, clock=clock, backups_to_keep=2)
    store.open()
    store.close()
    valid = list_backups(db_path)
    assert len(valid) == 1
    _junk_backup(db_path, "tmtool-20990101T000000Z.db")
    _junk_backup(db_path, "tmtool-20990101T000001Z.db", b"\x00garbage" * 100)
    from tmtool.storage.backup import rotate_backups

    deleted = rotate_backups(db_path, db_path.parent / "backups", keep=2)
    assert deleted == []  # the two newest are junk: the valid one stays
    assert valid[0] in list_backups(db_path)


def test_restore_without_a_file_picks_the_newest_valid_backup(db_path, clock, capsys):
    store = SqliteStore(db_path, clock=clock, backup_on_open=False)
    store.start()
    store.save_trade(full_trade(1, note="in the valid backup"))
    assert store.flush()
    valid = create_backup(db_path, clock)
    store.save_trade(full_trade(1, note="after it"))
    assert store.flush()
    store.close()
    _junk_backup(db_path, "tmtool-20990101T000000Z.db")

    assert db_command("restore", db_path, None, clock=clock) == 0
    out = capsys.readouterr().out
    assert "Skipped 1 newer backup(s) that fail their check" in out
    assert f"Restored {db_path} from {valid}" in out
    store = SqliteStore(db_path, clock=clock, backup_on_open=False)
    store.open()
    try:
        assert [trade.note for trade in store.load().open_trades] == ["in the valid backup"]
    finally:
        store.close()


def test_restore_to_a_new_path_never_speaks_of_a_replaced_file(make_store, db_path, tmp_path, clock, capsys, caplog):
    make_store()
    backup = list_backups(db_path)[-1]
    fresh = tmp_path / "elsewhere" / "restored.db"
    with caplog.at_level("INFO", logger="tmtool.storage"):
        assert db_command("restore", fresh, backup, clock=clock) == 0
    out = capsys.readouterr().out
    assert out.strip() == f"Restored {fresh} from {backup}."
    assert "None" not in caplog.text
    assert "there was no database to replace" in caplog.text


def test_an_empty_backup_file_is_refused_and_moves_nothing(make_store, db_path, tmp_path, clock, capsys):
    make_store().close()
    before = sorted(db_path.parent.iterdir())
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    assert db_command("restore", db_path, empty, clock=clock) == 1
    assert f"{empty} is not a usable tmtool backup (the file is empty (0 bytes)); nothing was changed" in (
        capsys.readouterr().err
    )
    assert sorted(db_path.parent.iterdir()) == before


def test_no_backup_is_made_of_a_damaged_database(make_store, db_path, tmp_path, clock, capsys):
    store = make_store()
    for trade_id in range(1, 300):
        store.save_trade(full_trade(trade_id))
    assert store.flush()
    store.close()
    with open(db_path, "r+b") as handle:
        handle.seek(6 * 4096)
        handle.write(b"\x00" * 4096)
    before = list_backups(db_path)
    assert db_command("backup", db_path, None, clock=clock) == 1
    assert "the backup copy failed its check" in capsys.readouterr().err
    assert list_backups(db_path) == before
    assert not list((db_path.parent / "backups").glob("*.partial"))
