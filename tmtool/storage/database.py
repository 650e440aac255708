"""Opening a tmtool database: pragmas, integrity check, schema version, migrations, identity, instance lock.

Identity: each database holds a random ``database_id`` (table ``meta``), mirrored
in ``<db>.identity`` beside it; its backups carry it too.  At start, a missing,
empty or different database where the identity file, the intent journal
``<db>.intents`` or a backup shows one was used is refused with the newest valid
backup and the restore command.

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
import os
import shlex
import sqlite3
import stat
import uuid
from pathlib import Path

import peewee
from peewee import SchemaManager, SqliteDatabase

from tmtool.clock import Clock
from tmtool.storage.backup import create_backup, default_backup_dir, list_backups, newest_valid_backup
from tmtool.storage.errors import (
    DatabaseCorrupt,
    DatabaseFilesNotWritable,
    DatabaseInUse,
    DatabaseMissing,
    NotTmtoolDatabase,
    SchemaTooNew,
    StorageError,
)
from tmtool.storage.files import (
    PRIVATE_FILE_MODE,
    create_private_file,
    ensure_private_dir,
    fsync_dir,
    make_database_files_private,
    side_files,
)
from tmtool.storage.identity import (
    APPLICATION_ID,
    database_id_of,
    identity_path_for,
    read_identity_file,
    remove_identity_file,
    schema_version,
    verify_schema_version,
    write_identity_file,
)
from tmtool.storage.intents import intents_path_for
from tmtool.storage.lock import InstanceLock, lock_path_for
from tmtool.storage.migrations import DATABASE_ID_KEY, LATEST_VERSION, steps_from
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
    new_database: bool = False,
) -> str:
    """Make ``path`` ready for use and return its identity (the ``database_id`` UUID).

    Creates a new database (mode 0600) when missing and ``create``; otherwise
    runs ``PRAGMA quick_check``, verifies it is a tmtool database, refuses a
    newer schema, and upgrades an older one in place after taking a backup.

    Where a database was used before (its identity file ``<db>.identity`` or a
    backup of it exists), a missing or empty file, or a file holding another
    database, is refused with ``DatabaseMissing`` naming the newest valid backup
    and the command restoring it, unless ``new_database``: then a missing or
    empty file becomes a new database and a different one is accepted as is.
    The identity file is (re)written to name the database in use.
    Raises a ``StorageError`` subclass that names the file and what to do.
    """
    path = Path(path)
    expected_id = read_identity_file(path)
    if not path.exists() or _is_empty(path):
        problem = "is missing" if not path.exists() else "is empty (0 bytes)"
        journal = intents_path_for(path)
        if not new_database and (expected_id is not None or journal.exists() or _has_backups(path, backup_dir)):
            evidence = f" (its intent journal {journal} is still there)" if journal.exists() else ""
            raise DatabaseMissing(
                path, f"{problem} but tmtool used a database there before{evidence}", restore_hint(path, backup_dir)
            )
        if not path.exists():
            if not create:
                raise StorageError(path, f"no database at {path}")
            ensure_private_dir(path.parent)
            create_private_file(path)
    blocked = unwritable_files(path)
    if blocked:
        raise DatabaseFilesNotWritable(path, blocked)
    make_database_files_private(path)
    db = connect(path, synchronous=synchronous, busy_timeout=busy_timeout)
    try:
        _check_integrity(db, path, backup_dir)
        try:
            _prepare_schema(db, path, clock, backup_dir)
            database_id = database_id_of(db)
            journal_mode = db.execute_sql("PRAGMA journal_mode").fetchone()[0]
        except peewee.OperationalError as exc:
            raise StorageError(path, f"cannot use database {path}: {exc}") from None
        except (peewee.DatabaseError, sqlite3.DatabaseError) as exc:
            raise DatabaseCorrupt(path, str(exc), restore_hint(path, backup_dir)) from None
        if journal_mode.lower() != "wal":
            log.warning("database %s runs in journal mode %s: this file system does not support WAL", path, journal_mode)
    finally:
        db.close()
    if database_id is None:
        raise DatabaseCorrupt(path, "its meta table holds no database_id", restore_hint(path, backup_dir))
    if expected_id is not None and database_id != expected_id:
        if not new_database:
            raise DatabaseMissing(
                path,
                f"holds a different database (id {database_id}) from the one tmtool used there (id {expected_id})",
                restore_hint(path, backup_dir) + "; --new-database accepts the database now there",
            )
        log.warning("database %s: accepting database %s in place of %s (--new-database)", path, database_id, expected_id)
    if database_id != expected_id:
        write_identity_file(path, database_id)
    make_database_files_private(path)
    return database_id


def _is_empty(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except FileNotFoundError:
        return False


def _has_backups(path: Path, backup_dir: Path | None) -> bool:

    return bool(list_backups(path, backup_dir))


def restore_hint(path: Path, backup_dir: Path | None) -> str:
    """What to do about a lost or damaged database: the newest valid backup and the exact command."""

    backup = newest_valid_backup(path, backup_dir)
    if backup is None:
        directory = backup_dir or default_backup_dir(path)
        return (
            f"no valid backup found in {directory}; restore one from elsewhere with "
            f"`tmtool db restore --db {shlex.quote(str(path))} BACKUP_FILE`, or start with an empty "
            f"database with --new-database"
        )
    return (
        f"the newest valid backup is {backup}; restore it with "
        f"`tmtool db restore --db {shlex.quote(str(path))} {shlex.quote(str(backup))}` "
        f"(or start with an empty database with --new-database)"
    )


def unwritable_files(path: Path) -> list[Path]:
    """The database's folder, file and existing -wal/-shm/-journal this process cannot write.

    Checked before SQLite opens the database: SQLite maps the -shm file, and a
    read-only one ends the process with SIGBUS instead of an error.
    """
    blocked = []
    for candidate in (path.parent, path, *side_files(path)):
        try:
            mode = os.stat(candidate).st_mode
        except FileNotFoundError:
            continue
        # The owner's write bit counts even for root, who could write anyway: a file marked
        # read-only is treated the same whoever runs tmtool.
        if not os.access(candidate, os.W_OK | os.R_OK) or not mode & stat.S_IWUSR:
            blocked.append(candidate)
    return blocked


def create_schema(db: SqliteDatabase) -> None:
    """Create every table and index at ``LATEST_VERSION``, and a new identity, in one transaction."""
    with db.atomic("IMMEDIATE"):
        for model in ALL_MODELS:
            SchemaManager(model, db).create_all(safe=False)
        db.execute_sql('INSERT INTO "meta" ("key", "value") VALUES (?, ?)', (DATABASE_ID_KEY, str(uuid.uuid4())))
        db.execute_sql(f"PRAGMA application_id = {APPLICATION_ID}")
        db.execute_sql(f"PRAGMA user_version = {LATEST_VERSION}")


def _check_integrity(db: SqliteDatabase, path: Path, backup_dir: Path | None = None) -> None:
    try:
        db.connect(reuse_if_open=True)
        problems = [row[0] for row in db.execute_sql("PRAGMA quick_check").fetchall()]
    except peewee.OperationalError as exc:
        raise StorageError(path, f"cannot open database {path}: {exc}") from None
    except (peewee.DatabaseError, sqlite3.DatabaseError) as exc:
        raise DatabaseCorrupt(path, str(exc), restore_hint(path, backup_dir)) from None
    if problems != ["ok"]:
        raise DatabaseCorrupt(path, "; ".join(problems[:3]), restore_hint(path, backup_dir))


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


# --------------------------------------------------------------------------- instance lock
