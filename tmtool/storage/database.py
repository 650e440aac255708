"""Opening a tmtool database: pragmas, integrity check, schema version, migrations.

Durability settings (see ``connect``):

- ``journal_mode=WAL``: readers never block the writer and the writer never
  blocks readers; a commit is one append to the -wal file.
- ``synchronous=FULL`` by default: every commit fsyncs the -wal, so a committed
  change survives a power cut or kernel crash, not only a crash of tmtool (which
  ``NORMAL`` already survives in WAL mode).  The store commits in groups, so the
  fsync is paid once per batch rather than once per change.
- ``busy_timeout``: how long a write waits for another connection's lock
  before it counts as failed (the store then goes memory-only and retries).
- ``foreign_keys=ON`` so any declared relation is enforced.  The order ledger and
  the audit log deliberately declare none: a durable exit intent must never be
  refused because of the order in which rows reached the writer.
"""

from __future__ import annotations

import logging
from pathlib import Path

import peewee
from peewee import SchemaManager, SqliteDatabase

from tmtool.clock import Clock
from tmtool.storage.backup import create_backup
from tmtool.storage.errors import DatabaseCorrupt, NotTmtoolDatabase, StorageError
from tmtool.storage.files import (
    create_private_file,
    ensure_private_dir,
    make_database_files_private,
)
from tmtool.storage.identity import APPLICATION_ID, schema_version, verify_schema_version
from tmtool.storage.migrations import LATEST_VERSION, steps_from
from tmtool.storage.models import ALL_MODELS

log = logging.getLogger("tmtool.storage")

SYNCHRONOUS_MODES = ("FULL", "NORMAL", "EXTRA")
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024  # truncate the -wal back to this after a checkpoint


def connect(
    path: Path, *, synchronous: str = "FULL", busy_timeout: float = 5.0, read_only: bool = False
) -> SqliteDatabase:
    """A peewee database for ``path`` with tmtool's pragmas; connects lazily, one connection per thread.

    ``read_only`` connections (the read queries) set ``query_only`` and leave the
    journal mode to the writer.
    """
    if synchronous not in SYNCHRONOUS_MODES:
        raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}, got {synchronous!r}")
    if not busy_timeout > 0:
        raise ValueError(f"busy_timeout must be a positive number of seconds, got {busy_timeout!r}")
    pragmas: list[tuple[str, object]] = [("busy_timeout", int(busy_timeout * 1000))]
    if read_only:
        pragmas.append(("query_only", 1))
    else:
        pragmas += [
            ("journal_mode", "wal"),
            ("synchronous", synchronous),
            ("foreign_keys", 1),
            ("journal_size_limit", JOURNAL_SIZE_LIMIT),
        ]
    # mode=rw: a connection never creates the file, so a removed database is an error, not a new empty one
    uri = Path(path).absolute().as_uri() + "?mode=rw"
    return SqliteDatabase(uri, pragmas=pragmas, timeout=busy_timeout, thread_safe=True, uri=True)


def open_database(
    path: Path,
    *,
    clock: Clock,
    synchronous: str = "FULL",
    busy_timeout: float = 5.0,
    create: bool = True,
    backup_dir: Path | None = None,
) -> int:
    """Make ``path`` ready for use and return its schema version (always ``LATEST_VERSION``).

    Creates a new database (mode 0600) when missing and ``create``; otherwise
    runs ``PRAGMA quick_check``, verifies it is a tmtool database, refuses a
    newer schema, and upgrades an older one in place after taking a backup.
    Raises a ``StorageError`` subclass that names the file and what to do.
    """
    path = Path(path)
    if not path.exists():
        if not create:
            raise StorageError(path, f"no database at {path}")
        ensure_private_dir(path.parent)
        create_private_file(path)
    make_database_files_private(path)
    db = connect(path, synchronous=synchronous, busy_timeout=busy_timeout)
    try:
        _check_integrity(db, path)
        version = _prepare_schema(db, path, clock, backup_dir)
        journal_mode = db.execute_sql("PRAGMA journal_mode").fetchone()[0]
        if journal_mode.lower() != "wal":
            log.warning("database %s runs in journal mode %s: this file system does not support WAL", path, journal_mode)
    finally:
        db.close()
    make_database_files_private(path)
    return version


def create_schema(db: SqliteDatabase) -> None:
    """Create every table and index at ``LATEST_VERSION`` in one transaction."""
    with db.atomic("IMMEDIATE"):
        for model in ALL_MODELS:
            SchemaManager(model, db).create_all(safe=False)
        db.execute_sql(f"PRAGMA application_id = {APPLICATION_ID}")
        db.execute_sql(f"PRAGMA user_version = {LATEST_VERSION}")


def _check_integrity(db: SqliteDatabase, path: Path) -> None:
    try:
        db.connect(reuse_if_open=True)
        problems = [row[0] for row in db.execute_sql("PRAGMA quick_check").fetchall()]
    except peewee.OperationalError as exc:
        raise StorageError(path, f"cannot open database {path}: {exc}") from None
    except peewee.DatabaseError as exc:
        raise DatabaseCorrupt(path, str(exc)) from None
    if problems != ["ok"]:
        raise DatabaseCorrupt(path, "; ".join(problems[:3]))


def _prepare_schema(db: SqliteDatabase, path: Path, clock: Clock, backup_dir: Path | None) -> int:
    version, application_id = schema_version(db)
    if version == 0 and application_id == 0:
        tables = [row[0] for row in db.execute_sql(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall()]
        if tables:
            raise NotTmtoolDatabase(path, f"it has tables ({', '.join(sorted(tables)[:5])}) but no tmtool schema")
        create_schema(db)
        log.info("created database %s (schema version %d)", path, LATEST_VERSION)
        return LATEST_VERSION
    verify_schema_version(path, version, application_id)
    if version < LATEST_VERSION:
        _migrate(db, path, version, clock, backup_dir)
    return LATEST_VERSION


def _migrate(db: SqliteDatabase, path: Path, version: int, clock: Clock, backup_dir: Path | None) -> None:
    backup_path = create_backup(path, clock, backup_dir=backup_dir, label=f"pre-v{LATEST_VERSION}")
    log.warning(
        "upgrading database %s from schema version %d to %d; backup at %s", path, version, LATEST_VERSION, backup_path
    )
    for step in steps_from(version):
        with db.atomic("IMMEDIATE"):
            step.apply(db.connection())
            db.execute_sql(f"PRAGMA user_version = {step.to_version}")
        log.info("database %s: applied migration %d -> %d (%s)", path, step.from_version, step.to_version, step.description)
