"""Private files: the database, its -wal/-shm, the lock and the backups are mode 0600.

The process umask is left alone (other threads create files too); files are
created with an explicit mode and tightened with chmod where SQLite made them.
"""

from __future__ import annotations

import os
import stat
from datetime import datetime, timezone
from pathlib import Path

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
SIDE_FILE_SUFFIXES = ("-wal", "-shm", "-journal")


def ensure_private_dir(directory: Path) -> None:
    """Create ``directory`` (and parents) with mode 0700 when missing; leave an existing one alone."""
    directory.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)


def create_private_file(path: Path) -> None:
    """Create an empty file with mode 0600 unless it exists already."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return
    os.close(descriptor)


def make_private(path: Path) -> None:
    """chmod ``path`` to 0600 when it exists and is more open than that."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return
    if mode != PRIVATE_FILE_MODE:
        os.chmod(path, PRIVATE_FILE_MODE)


def side_files(db_path: Path) -> list[Path]:
    """SQLite's companion files of a database (-wal, -shm, -journal), whether or not they exist."""
    return [db_path.with_name(db_path.name + suffix) for suffix in SIDE_FILE_SUFFIXES]


def make_database_files_private(db_path: Path) -> None:
    make_private(db_path)
    for path in side_files(db_path):
        make_private(path)


def fsync_file(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink inside ``directory`` durable."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def replace_privately(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably, mode 0600: written to ``<name>.partial``
    (any leftover of an interrupted write is discarded first), fsynced, renamed into place, and the
    rename made durable."""
    temporary = path.with_name(path.name + ".partial")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    try:
        os.write(descriptor, data)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(temporary, path)
    fsync_dir(path.parent)


def unused_stamped_name(path: Path, label: str, now: float, suffix: str = "") -> Path:
    """``<path>.<label>-<UTC time><suffix>`` beside ``path``, counted on (``.1``, ``.2``, ...)
    when that name is taken: where a file is moved aside without overwriting an earlier one."""
    stamp = datetime.fromtimestamp(now, timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    kept = path.with_name(f"{path.name}.{label}-{stamp}{suffix}")
    counter = 1
    while kept.exists():
        kept = path.with_name(f"{path.name}.{label}-{stamp}.{counter}{suffix}")
        counter += 1
    return kept
