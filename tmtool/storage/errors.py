"""Errors of the storage layer.  Each message names the file and says what to do."""

from __future__ import annotations

from pathlib import Path


class StorageError(RuntimeError):
    """The database cannot be used as asked."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = Path(path)


class DatabaseCorrupt(StorageError):
    """The file fails SQLite's integrity check or is not a database at all."""

    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(
            path,
            f"database {path} is damaged ({detail}); restore a backup with "
            f"`tmtool db restore` (the damaged file is kept aside)",
        )
        self.detail = detail


class NotTmtoolDatabase(StorageError):
    """The file is a SQLite database, but not one tmtool made."""

    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(path, f"{path} is not a tmtool database ({detail}); refusing to use it")


class SchemaTooNew(StorageError):
    """The file was written by a newer tmtool whose schema this version does not know."""

    def __init__(self, path: Path, found: int, supported: int) -> None:
        super().__init__(
            path,
            f"database {path} has schema version {found}, made by a newer tmtool; this tmtool "
            f"understands up to version {supported}. Upgrade tmtool, or restore an older backup "
            f"with `tmtool db restore`",
        )
        self.found = found
        self.supported = supported


class DatabaseInUse(StorageError):
    """Another process holds the database's instance lock."""

    def __init__(self, path: Path, pid: int | None) -> None:
        holder = f"process {pid}" if pid is not None else "another process (pid unknown)"
        super().__init__(path, f"database {path} is in use by another tmtool, {holder}; stop it first")
        self.pid = pid
