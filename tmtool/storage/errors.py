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

    def __init__(self, path: Path, detail: str, hint: str = "") -> None:
        super().__init__(
            path,
            f"database {path} is damaged ({detail}); "
            + (hint or "restore a backup with `tmtool db restore` (the damaged file is kept aside)"),
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


class DatabaseMissing(StorageError):
    """A database tmtool used before is gone, empty or replaced by another one; refused at start.

    ``hint`` names the newest valid backup and the command that restores it.
    """

    def __init__(self, path: Path, what: str, hint: str) -> None:
        super().__init__(path, f"database {path} {what}; {hint}")
        self.what = what


class DatabaseFilesNotWritable(StorageError):
    """The database, its -wal/-shm or its folder cannot be written by this process."""

    def __init__(self, path: Path, blocked: list[Path]) -> None:
        names = ", ".join(str(item) for item in blocked)
        super().__init__(
            path,
            f"database {path} cannot be used: not writable by this user: {names}. SQLite maps the -shm file "
            f"into memory and would crash on a read-only one, so tmtool refuses to start; fix the permissions "
            f"(e.g. `chmod u+w` or `chown` them) and start again",
        )
        self.blocked = blocked


class BackupInvalid(StorageError):
    """A file given to ``db restore`` is not a usable tmtool backup; nothing was changed."""

    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(path, f"{path} is not a usable tmtool backup ({detail}); nothing was changed")
        self.detail = detail
