"""What makes a SQLite file a tmtool database, and which one it is.

The ``application_id`` pragma marks the file as tmtool's; ``user_version`` holds
its schema version, which must not be newer than ``LATEST_VERSION``.  Each database
also holds a random ``database_id`` (table ``meta``), mirrored in ``<db>.identity``
beside it, so a missing, emptied or swapped file is told apart from a new one.  Used when
opening a database, when the writer reconnects, and before a backup is restored.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import peewee

from peewee import SqliteDatabase

from tmtool.storage.errors import NotTmtoolDatabase, SchemaTooNew, StorageError
from tmtool.storage.files import replace_privately
from tmtool.storage.migrations import DATABASE_ID_KEY, LATEST_VERSION

APPLICATION_ID = 0x746D7431  # "tmt1": marks a SQLite file as a tmtool database


def schema_version(db: SqliteDatabase) -> tuple[int, int]:
    """(user_version, application_id) of an open database."""
    version = db.execute_sql("PRAGMA user_version").fetchone()[0]
    application_id = db.execute_sql("PRAGMA application_id").fetchone()[0]
    return version, application_id


def verify_schema_version(path: Path, version: int, application_id: int) -> None:
    """Refuse a file that is not a tmtool database or whose schema is newer than this tmtool's."""
    if application_id != APPLICATION_ID:
        raise NotTmtoolDatabase(path, f"application id {application_id:#x}, schema version {version}")
    if version > LATEST_VERSION:
        raise SchemaTooNew(path, version, LATEST_VERSION)
    if version < 1:
        raise NotTmtoolDatabase(path, f"schema version {version}")


def identity_path_for(db_path: Path) -> Path:
    """``<db>.identity``: the ``database_id`` of the database last used at ``db_path``."""
    db_path = Path(db_path)
    return db_path.with_name(db_path.name + ".identity")


def read_identity_file(db_path: Path) -> str | None:
    try:
        text = identity_path_for(db_path).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise StorageError(db_path, f"cannot read {identity_path_for(db_path)}: {exc}") from None
    return text or None


def write_identity_file(db_path: Path, database_id: str) -> None:
    """Replace the identity file atomically (a temporary file, fsync, rename), mode 0600."""
    replace_privately(identity_path_for(db_path), f"{database_id}\n".encode("ascii"))


def remove_identity_file(db_path: Path) -> None:
    identity_path_for(db_path).unlink(missing_ok=True)


def database_id_of(db: SqliteDatabase | sqlite3.Connection) -> str | None:
    """The ``database_id`` of an open database; None when it has no meta table or no such row."""
    sql = 'SELECT "value" FROM "meta" WHERE "key" = ?'
    try:
        if isinstance(db, sqlite3.Connection):
            row = db.execute(sql, (DATABASE_ID_KEY,)).fetchone()
        else:
            row = db.execute_sql(sql, (DATABASE_ID_KEY,)).fetchone()
    except (sqlite3.OperationalError, peewee.OperationalError) as exc:
        if "no such table" in str(exc):
            return None
        raise
    return row[0] if row else None
