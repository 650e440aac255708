"""Schema versions and the ordered forward migrations between them.

The schema version lives in ``PRAGMA user_version``.  A new database is created
straight at ``LATEST_VERSION`` from the peewee models; an older one is upgraded
step by step, each step in its own transaction together with its version bump,
so a crash mid-upgrade leaves the file at a whole version.

Each step's SQL is a frozen copy: it must keep describing that version even
after the models change again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import sqlite3
import uuid

DATABASE_ID_KEY = "database_id"  # the meta row that names the database (a UUID)

# Version 1: the first released schema.  Audit events were keyed only by an
# autoincrement id, and alerts had no index by time.
SCHEMA_V1 = (
    'CREATE TABLE "strategy" ("name" TEXT NOT NULL PRIMARY KEY, "settings" TEXT NOT NULL,'
    ' "saved_at" REAL NOT NULL)',
    'CREATE TABLE "trade" ("id" INTEGER NOT NULL PRIMARY KEY, "strategy" TEXT NOT NULL, "symbol" TEXT NOT NULL,'
    ' "exchange" TEXT NOT NULL, "product" TEXT NOT NULL, "side" TEXT NOT NULL, "quantity" INTEGER NOT NULL,'
    ' "entry_price" REAL NOT NULL, "status" TEXT NOT NULL, "entry_quantity" INTEGER NOT NULL,'
    ' "requested_quantity" INTEGER NOT NULL, "stop_loss" REAL, "target" REAL, "trailing" TEXT,'
    ' "trailing_stop" REAL, "breakeven_after" TEXT, "breakeven_done" INTEGER NOT NULL,'
    ' "partial_levels" TEXT NOT NULL, "high_watermark" REAL NOT NULL, "low_watermark" REAL NOT NULL,'
    ' "last_price" REAL NOT NULL, "tick_size" REAL NOT NULL, "lot_size" INTEGER NOT NULL,'
    ' "entry_order_id" TEXT, "entry_price_type" TEXT NOT NULL, "entry_limit_price" REAL,'
    ' "exit_order_ids" TEXT NOT NULL, "exit_reason" TEXT, "exit_trigger_price" REAL, "exit_price" REAL,'
    ' "exited_quantity" INTEGER NOT NULL, "realised_pnl" REAL NOT NULL, "paused" INTEGER NOT NULL,'
    ' "degraded" INTEGER NOT NULL, "created_at" REAL NOT NULL, "opened_at" REAL, "closed_at" REAL,'
    ' "updated_at" REAL NOT NULL, "note" TEXT NOT NULL)',
    'CREATE INDEX "trade_status" ON "trade" ("status")',
    'CREATE INDEX "trade_closed_at" ON "trade" ("closed_at")',
    'CREATE INDEX "trade_strategy_closed_at" ON "trade" ("strategy", "closed_at")',
    'CREATE TABLE "portfolio_state" ("strategy" TEXT NOT NULL, "trading_day" TEXT NOT NULL,'
    ' "realised_pnl" REAL NOT NULL, "peak_pnl" REAL NOT NULL, "trough_pnl" REAL NOT NULL,'
    ' "trailing_armed" INTEGER NOT NULL, "trailing_lock" REAL, "halted" INTEGER NOT NULL,'
    ' "halt_reason" TEXT NOT NULL, "trades_today" INTEGER NOT NULL, "updated_at" REAL NOT NULL,'
    ' PRIMARY KEY ("strategy", "trading_day"))',
    'CREATE TABLE "order_ledger" ("key" TEXT NOT NULL PRIMARY KEY, "trade_id" INTEGER NOT NULL,'
    ' "purpose" TEXT NOT NULL, "action" TEXT NOT NULL, "quantity" INTEGER NOT NULL, "state" TEXT NOT NULL,'
    ' "reason" TEXT, "price_type" TEXT NOT NULL, "price" REAL NOT NULL, "order_id" TEXT,'
    ' "filled_quantity" INTEGER NOT NULL, "average_price" REAL NOT NULL, "attempt" INTEGER NOT NULL,'
    ' "message" TEXT NOT NULL, "created_at" REAL NOT NULL, "updated_at" REAL NOT NULL)',
    'CREATE INDEX "order_ledger_state" ON "order_ledger" ("state")',
    'CREATE INDEX "order_ledger_trade_id" ON "order_ledger" ("trade_id")',
    'CREATE TABLE "trade_event" ("id" INTEGER NOT NULL PRIMARY KEY, "trade_id" INTEGER NOT NULL,'
    ' "ts" REAL NOT NULL, "kind" TEXT NOT NULL, "field" TEXT NOT NULL, "old" TEXT NOT NULL,'
    ' "new" TEXT NOT NULL, "reason" TEXT NOT NULL, "price" REAL, "strategy" TEXT NOT NULL)',
    'CREATE INDEX "trade_event_trade_id" ON "trade_event" ("trade_id")',
    'CREATE TABLE "alert" ("id" INTEGER NOT NULL PRIMARY KEY, "ts" REAL NOT NULL, "category" TEXT NOT NULL,'
    ' "priority" TEXT NOT NULL, "text" TEXT NOT NULL, "key" TEXT NOT NULL, "trade_id" INTEGER,'
    ' "strategy" TEXT, "count" INTEGER NOT NULL, "acknowledged" INTEGER NOT NULL, "last_ts" REAL NOT NULL)',
)


def _v1_to_v2(conn: sqlite3.Connection) -> None:
    """Give every audit event a per-trade sequence number (its natural key) and index alerts by time.

    Existing events are numbered 1, 2, ... within their trade in the order they
    were written (their id), so the history keeps its order.
    """
    conn.execute('ALTER TABLE "trade_event" ADD COLUMN "seq" INTEGER NOT NULL DEFAULT 0')
    conn.execute(
        'UPDATE "trade_event" SET "seq" = (SELECT numbered.n FROM'
        ' (SELECT "id", ROW_NUMBER() OVER (PARTITION BY "trade_id" ORDER BY "id") AS n FROM "trade_event")'
        ' AS numbered WHERE numbered."id" = "trade_event"."id")'
    )
    conn.execute('DROP INDEX "trade_event_trade_id"')
    conn.execute('CREATE UNIQUE INDEX "trade_event_trade_id_seq" ON "trade_event" ("trade_id", "seq")')
    conn.execute('CREATE INDEX "alert_ts" ON "alert" ("ts")')


def _v2_to_v3(conn: sqlite3.Connection) -> None:
    """Give the database an identity: a ``meta`` table holding a new random ``database_id``."""
    conn.execute('CREATE TABLE "meta" ("key" TEXT NOT NULL PRIMARY KEY, "value" TEXT NOT NULL)')
    conn.execute('INSERT INTO "meta" ("key", "value") VALUES (?, ?)', (DATABASE_ID_KEY, str(uuid.uuid4())))


def _v3_to_v4(conn: sqlite3.Connection) -> None:
    """Record with each order the net position its fills move from (``net_before``); rows
    written before it have none (their unknown outcome is never proven absent by the position)."""
    conn.execute('ALTER TABLE "order_ledger" ADD COLUMN "net_before" INTEGER')


def _v4_to_v5(conn: sqlite3.Connection) -> None:
    """Record with each trade what it has taken in of each of its orders' fills (``order_fills``),
    and with each order the fills of the others its ``net_before`` holds (``fills_before``); rows
    written before have none (a restart then counts fills from the ledger as before)."""
    conn.execute('ALTER TABLE "trade" ADD COLUMN "order_fills" TEXT NOT NULL DEFAULT \'[]\'')
    conn.execute('ALTER TABLE "order_ledger" ADD COLUMN "fills_before" TEXT DEFAULT \'null\'')  # JSON null: not recorded


def _v5_to_v6(conn: sqlite3.Connection) -> None:
    """Record with each order our own fills on its position just before it (``lag_fills``): the
    read its ``net_before`` came from may not show them yet.  Rows written before have none."""
    conn.execute('ALTER TABLE "order_ledger" ADD COLUMN "lag_fills" TEXT NOT NULL DEFAULT \'[]\'')


@dataclass(frozen=True, slots=True)
class Migration:
    from_version: int
    to_version: int
    description: str
    apply: Callable[[sqlite3.Connection], None]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, 2, "audit events keyed by (trade_id, seq); alerts indexed by time", _v1_to_v2),
    Migration(2, 3, "a meta table holding the database's identity", _v2_to_v3),
    Migration(3, 4, "the order ledger records the net position each order moves from", _v3_to_v4),
    Migration(4, 5, "trades record the fills they took in, orders the fills their position baseline holds", _v4_to_v5),
    Migration(5, 6, "orders record our own fills just before them, which their position read may not show", _v5_to_v6),
)

LATEST_VERSION = MIGRATIONS[-1].to_version


def create_v1_schema(conn: sqlite3.Connection) -> None:
    """Create the version-1 schema (for tests and for upgrading files made by the first release)."""
    for statement in SCHEMA_V1:
        conn.execute(statement)


def steps_from(version: int) -> list[Migration]:
    """The migrations that take a database at ``version`` to ``LATEST_VERSION``, in order."""
    steps = [step for step in MIGRATIONS if step.from_version >= version]
    expected = version
    for step in steps:
        if step.from_version != expected:
            raise RuntimeError(f"no migration from schema version {expected}")
        expected = step.to_version
    return steps
