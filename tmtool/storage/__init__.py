"""Persistence of tmtool's state in SQLite (peewee, WAL): the store writer, migrations, backups.

Public entry points:

- ``SqliteStore``: the engine's ``Store`` (``tmtool.engine.ports.Store``).
- ``db_command``: ``tmtool db backup|restore|check``.
- the errors a user may see when opening a database (all ``StorageError``).
"""

from tmtool.storage.errors import (
    DatabaseCorrupt,
    DatabaseInUse,
    NotTmtoolDatabase,
    SchemaTooNew,
    StorageError,
)
from tmtool.storage.maintenance import db_command
from tmtool.storage.writer import SqliteStore

__all__ = [
    "DatabaseCorrupt",
    "DatabaseInUse",
    "NotTmtoolDatabase",
    "SchemaTooNew",
    "SqliteStore",
    "StorageError",
    "db_command",
]
