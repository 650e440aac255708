"""One tmtool per database: the instance lock on ``<db>.lock``.

Taken by the store for as long as it has the database open, and by a restore
while it replaces the file, so a restore never swaps a database under a running tmtool.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from tmtool.storage.errors import DatabaseInUse
from tmtool.storage.files import PRIVATE_FILE_MODE, ensure_private_dir


def lock_path_for(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".lock")


class InstanceLock:
    """One tmtool per database: an exclusive ``flock`` on ``<db>.lock``, which holds the owner's pid.

    The kernel drops the lock when the holder exits or dies, so a stale lock
    file never blocks a restart.  Locks are per open file, so a second
    ``InstanceLock`` in the same process is refused as well.
    """

    def __init__(self, db_path: Path) -> None:
        self.db_path = Path(db_path)
        self.path = lock_path_for(self.db_path)
        self._descriptor: int | None = None

    @property
    def held(self) -> bool:
        return self._descriptor is not None

    def acquire(self) -> None:
        if self._descriptor is not None:
            return
        ensure_private_dir(self.path.parent)
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(descriptor)
            os.close(descriptor)
            raise DatabaseInUse(self.db_path, pid) from None
        except BaseException:
            os.close(descriptor)
            raise
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        self._descriptor = descriptor

    def release(self) -> None:
        if self._descriptor is None:
            return
        descriptor, self._descriptor = self._descriptor, None
        os.ftruncate(descriptor, 0)
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        os.close(descriptor)

    def __enter__(self) -> "InstanceLock":
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _read_pid(descriptor: int) -> int | None:
    text = os.pread(descriptor, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None
