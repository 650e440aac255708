"""What makes a SQLite file a tmtool database this tmtool can open.

The ``application_id`` pragma marks the file as tmtool's; ``user_version`` holds
its schema version, which must not be newer than ``LATEST_VERSION``.  Used when
opening a database, when the writer reconnects, and before a backup is restored.
"""

from __future__ import annotations

from pathlib import Path

from peewee import SqliteDatabase

from tmtool.storage.errors import NotTmtoolDatabase, SchemaTooNew
from tmtool.storage.migrations import LATEST_VERSION

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
