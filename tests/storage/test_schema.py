"""Opening a database: fresh schema, v1 -> v2 migration, refusals with clear messages."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tmtool.domain.models import Distance, DistanceMode, OrderState, Side, Trade, TradeStatus, TrailingSettings
from tmtool.domain.rules import evaluate_tick
from tmtool.storage import DatabaseCorrupt, NotTmtoolDatabase, SchemaTooNew, SqliteStore
from tmtool.storage.backup import list_backups
from tmtool.storage.identity import APPLICATION_ID
from tmtool.storage.migrations import LATEST_VERSION, create_v1_schema
from tmtool.storage.models import record_to_row

from tests.storage.samples import T0, full_alert, full_event, full_trade


def schema_of(path: Path) -> dict:
    """Tables with their columns (name, type, not null, primary key) and indexes with their columns."""
    conn = sqlite3.connect(path)
    try:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        shape = {}
        for table in tables:
            columns = sorted((c[1], c[2], c[3], c[5]) for c in conn.execute(f'PRAGMA table_info("{table}")'))
            indexes = sorted(
                (index[1], index[2], tuple(c[2] for c in conn.execute(f'PRAGMA index_info("{index[1]}")')))
                for index in conn.execute(f'PRAGMA index_list("{table}")')
            )
            shape[table] = (columns, indexes)
        return shape
    finally:
        conn.close()


def make_v1_database(path: Path, stored_trade: Trade | None = None) -> None:
    """A database as the first release wrote it: one trade, three events of two trades, one alert."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    create_v1_schema(conn)
    trade = record_to_row(stored_trade if stored_trade is not None else full_trade(1))
    del trade["order_fills"]  # added in version 5: trades from before load with none
    conn.execute(f'INSERT INTO "trade" ({", ".join(trade)}) VALUES ({", ".join("?" * len(trade))})', list(trade.values()))
    for trade_id, ts in ((1, T0 + 1), (2, T0 + 2), (1, T0 + 3)):
        event = record_to_row(full_event(trade_id, ts=ts))
        conn.execute(
            f'INSERT INTO "trade_event" ({", ".join(event)}) VALUES ({", ".join("?" * len(event))})',
            list(event.values()),
        )
    alert = record_to_row(full_alert(1))
    conn.execute(f'INSERT INTO "alert" ({", ".join(alert)}) VALUES ({", ".join("?" * len(alert))})', list(alert.values()))
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 1")
    conn.close()


def user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()


def test_a_v1_database_is_upgraded_in_place_after_a_backup(make_store, db_path, tmp_path):
    make_v1_database(db_path)
    store = make_store(backup_on_open=False)

    assert user_version(db_path) == LATEST_VERSION
    fresh = tmp_path / "fresh.db"
    SqliteStore(fresh, backup_on_open=False, lock=False).open()
    assert schema_of(db_path) == schema_of(fresh)

    assert store.load().open_trades == (full_trade(1, order_fills=()),)
    assert store.trade_events(1) == [full_event(1, ts=T0 + 1), full_event(1, ts=T0 + 3)]
    assert store.alerts() == [full_alert(1)]
    store.record_event(full_event(1, ts=T0 + 4))  # numbering continues after the backfilled events
    store.record_event(full_event(2, ts=T0 + 5))
    assert store.flush()
    assert [event.ts for event in store.trade_events(1)] == [T0 + 1, T0 + 3, T0 + 4]
    assert [event.ts for event in store.trade_events(2)] == [T0 + 2, T0 + 5]

    backups = list_backups(db_path)
    assert [path.name.startswith(f"tmtool-pre-v{LATEST_VERSION}-") for path in backups] == [True]
    assert user_version(backups[0]) == 1


def test_a_percent_trailing_stop_stored_under_the_old_meaning_loads_unchanged(make_store, db_path):
    """1% trailing used to mean 1% of the entry: at a best of 2600.00 the stop was 2575.00.

    Under 1% of the best price it would be 2574.00.  No migration recomputes
    stored levels: the stop loads as stored, and the next ticks only tighten it.
    """
    stored = full_trade(
        1, side=Side.LONG, entry_price=2500.0, stop_loss=2450.0, target=None, partial_levels=(),
        trailing=TrailingSettings(Distance(1.0, DistanceMode.PERCENT)), trailing_stop=2575.0,
        breakeven_after=None, breakeven_done=False, high_watermark=2600.0, low_watermark=2500.0,
        last_price=2600.0, paused=False, degraded=False, status=TradeStatus.ACTIVE, order_fills=(),
    )
    make_v1_database(db_path, stored)
    store = make_store(backup_on_open=False)
    assert user_version(db_path) == LATEST_VERSION
    [loaded] = store.load().open_trades
    assert loaded == stored

    looser = evaluate_tick(loaded, 2600.5, T0 + 60)  # a new best: 1% of it is 2574.50
    assert looser is not None and looser.changes == ()
    tighter = evaluate_tick(loaded, 2605.0, T0 + 61)  # 1% of 2605 is 2578.95
    assert [(c.field, c.old, c.new) for c in tighter.changes] == [("trailing_stop", 2575.0, 2578.95)]


def test_a_database_from_a_newer_tmtool_is_refused(db_path, clock):
    SqliteStore(db_path, clock=clock, backup_on_open=False, lock=False).open()
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaTooNew, match=rf"schema version {LATEST_VERSION + 1}, made by a newer tmtool"):
        SqliteStore(db_path, clock=clock).open()
    assert user_version(db_path) == LATEST_VERSION + 1  # left as it was


def test_another_applications_database_is_refused(db_path, clock):
    db_path.parent.mkdir(parents=True)
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.close()
    with pytest.raises(NotTmtoolDatabase, match=r"is not a tmtool database \(it has tables \(notes\)"):
        SqliteStore(db_path, clock=clock).open()


def test_a_corrupt_file_is_refused_naming_it_and_the_restore_command(db_path, clock):
    SqliteStore(db_path, clock=clock, backup_on_open=False, lock=False).open()
    with open(db_path, "r+b") as handle:  # overwrite the header and the first pages
        handle.write(b"\x5a" * 8192)
    with pytest.raises(DatabaseCorrupt, match=rf"database {db_path} is damaged .*`tmtool db restore --db {db_path} BACKUP_FILE`"):
        SqliteStore(db_path, clock=clock).open()


def test_a_damaged_page_fails_the_quick_check(make_store, db_path, clock):
    store = make_store(backup_on_open=False)
    for trade_id in range(1, 400):
        store.save_trade(full_trade(trade_id, note="n" * 200))
    store.close()
    with open(db_path, "r+b") as handle:  # scribble over a page in the middle of the trade table
        handle.seek(8 * 4096)
        handle.write(b"\xff" * 4096)
    with pytest.raises(DatabaseCorrupt, match="is damaged"):
        SqliteStore(db_path, clock=clock).open()


def test_a_failed_open_releases_the_lock(db_path, clock):
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(b"not a database at all, just text" * 200)
    with pytest.raises(DatabaseCorrupt):
        SqliteStore(db_path, clock=clock).open()
    with pytest.raises(DatabaseCorrupt):  # refused for the same reason, not for a leftover lock
        SqliteStore(db_path, clock=clock).open()


def test_a_v3_order_ledger_is_upgraded_and_its_rows_load_with_no_recorded_position(make_store, db_path, tmp_path):
    """Version 4 records with each order the net position it moves from; rows written by
    version 3 load with ``net_before`` None (never proven absent by the position alone)."""
    from dataclasses import replace

    from tmtool.storage.migrations import MIGRATIONS

    from tests.storage.samples import full_order

    make_v1_database(db_path)
    conn = sqlite3.connect(db_path, isolation_level=None)
    for step in MIGRATIONS:
        if step.to_version <= 3:
            step.apply(conn)
    order = record_to_row(full_order(state=OrderState.UNKNOWN))
    del order["net_before"]  # the version-3 ledger has no such column
    del order["fills_before"]  # nor this one (version 5)
    del order["lag_fills"]  # nor this one (version 6)
    conn.execute(f'INSERT INTO "order_ledger" ({", ".join(order)}) VALUES ({", ".join("?" * len(order))})', list(order.values()))
    conn.execute("PRAGMA user_version = 3")
    conn.close()

    store = make_store(backup_on_open=False)
    assert user_version(db_path) == LATEST_VERSION == 6
    fresh = tmp_path / "fresh.db"
    SqliteStore(fresh, backup_on_open=False, lock=False).open()
    assert schema_of(db_path) == schema_of(fresh)
    assert store.load().open_orders == (replace(full_order(state=OrderState.UNKNOWN), net_before=None, fills_before=None, lag_fills=()),)

    recorded = replace(full_order("x-7-2", state=OrderState.INTENT), net_before=25)
    store.save_order(recorded)
    assert store.flush()
    assert recorded in store.load().open_orders
