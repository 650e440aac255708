"""Backups with SQLite's online backup API, their rotation, and restoring one.

A backup is a consistent copy taken while tmtool keeps writing (the backup API
reads a snapshot, WAL content included), written to a temporary name, checked,
fsynced and renamed into place, mode 0600, in journal mode DELETE so each backup
is one self-contained file.  Regular backups are named
``<stem>-<UTC time>.db`` in ``<db dir>/backups`` and rotated; backups taken
before a schema upgrade carry a label (``<stem>-pre-v2-<UTC time>.db``) and are
never rotated away.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from tmtool.clock import Clock
from tmtool.storage.identity import (
    database_id_of,
    read_identity_file,
    remove_identity_file,
    verify_schema_version,
    write_identity_file,
)
from tmtool.storage.intents import intents_path_for, read_journal
from tmtool.storage.intents import set_aside as set_journal_aside
from tmtool.storage.lock import InstanceLock
from tmtool.storage.errors import BackupInvalid, DatabaseCorrupt, StorageError
from tmtool.storage.files import (
    create_private_file,
    ensure_private_dir,
    fsync_dir,
    fsync_file,
    make_private,
    side_files,
    unused_stamped_name,
)

log = logging.getLogger("tmtool.storage")

DEFAULT_BACKUPS_TO_KEEP = 7
BACKUP_SUFFIX = ".db"
IDENTITY_SINCE_VERSION = 3  # schema version that added the meta table with the database_id


def default_backup_dir(db_path: Path) -> Path:
    return Path(db_path).parent / "backups"


def backup_database(source: Path, destination: Path) -> Path:
    """Copy the database ``source`` to the new file ``destination`` with the online backup API.

    Refuses to overwrite an existing file.  The copy is integrity-checked before
    it takes its final name.
    """
    source, destination = Path(source), Path(destination)
    if not source.exists():
        raise StorageError(source, f"no database at {source}")
    if destination.exists():
        raise StorageError(destination, f"backup target {destination} exists already; choose a new name")
    ensure_private_dir(destination.parent)
    temporary = destination.with_name(destination.name + ".partial")
    _remove_with_side_files(temporary)
    create_private_file(temporary)
    try:
        _copy_with_backup_api(source, temporary)
        problems = backup_problems(temporary, expected_id=read_identity_file(source))
        if problems:
            raise DatabaseCorrupt(source, "the backup copy failed its check: " + "; ".join(problems[:3]))
        fsync_file(temporary)
        os.replace(temporary, destination)
        fsync_dir(destination.parent)
    finally:
        _remove_with_side_files(temporary)
    make_private(destination)
    return destination


def create_backup(
    db_path: Path,
    clock: Clock,
    *,
    backup_dir: Path | None = None,
    keep: int | None = None,
    label: str = "",
) -> Path:
    """Back up ``db_path`` into ``backup_dir`` under a time-stamped name; rotate when ``keep`` is given.

    Only unlabelled backups are rotated: at most ``keep`` of them remain.
    """
    db_path = Path(db_path)
    directory = backup_dir or default_backup_dir(db_path)
    ensure_private_dir(directory)
    stamp = datetime.fromtimestamp(clock.time(), timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    prefix = f"{db_path.stem}-{label}-" if label else f"{db_path.stem}-"
    destination = directory / f"{prefix}{stamp}{BACKUP_SUFFIX}"
    counter = 1
    while destination.exists():
        destination = directory / f"{prefix}{stamp}.{counter}{BACKUP_SUFFIX}"
        counter += 1
    backup_database(db_path, destination)
    if keep is not None:
        rotate_backups(db_path, directory, keep)
    return destination


def list_backups(db_path: Path, backup_dir: Path | None = None, *, include_labelled: bool = True) -> list[Path]:
    """Backups of ``db_path`` in ``backup_dir``, oldest first (by modification time, then name)."""
    db_path = Path(db_path)
    directory = backup_dir or default_backup_dir(db_path)
    if not directory.is_dir():
        return []
    found = []
    for candidate in directory.glob(f"{db_path.stem}-*{BACKUP_SUFFIX}"):
        stamp_part = candidate.name[len(db_path.stem) + 1 :]
        labelled = not stamp_part[:1].isdigit()
        if labelled and not include_labelled:
            continue
        found.append(candidate)
    return sorted(found, key=lambda path: (path.stat().st_mtime_ns, path.name))


def rotate_backups(db_path: Path, backup_dir: Path, keep: int) -> list[Path]:
    """Delete the oldest unlabelled backups so at most ``keep`` remain; return the deleted paths.

    The last valid backup is never deleted: when none of the ``keep`` newest
    passes ``backup_problems``, the newest valid older one stays as well.
    """
    if keep < 1:
        raise ValueError(f"backups_to_keep must be at least 1, got {keep}")
    regular = list_backups(db_path, backup_dir, include_labelled=False)
    doomed = regular[: max(0, len(regular) - keep)]
    if doomed:
        kept = regular[len(doomed):]
        if not any(not backup_problems(path) for path in reversed(kept)):
            spared = next((path for path in reversed(doomed) if not backup_problems(path)), None)
            if spared is not None:
                log.warning("keeping backup %s: none of the %d newest backups of %s is valid", spared, keep, db_path)
                doomed.remove(spared)
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


def backup_problems(path: Path, *, expected_id: str | None = None, quick: bool = True) -> list[str]:
    """Why ``path`` is not a usable tmtool backup (empty when it is).

    It must pass SQLite's quick_check, carry tmtool's application id and a schema
    this tmtool reads, and, when it names its identity and ``expected_id`` is
    given, be that database.
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            return ["the file is empty (0 bytes)"]
    except OSError as exc:
        return [f"cannot read: {exc}"]
    problems = integrity_problems(path, quick=quick)
    if problems:
        return problems
    try:
        conn = sqlite3.connect(read_only_uri(path), uri=True)
    except sqlite3.Error as exc:
        return [f"cannot open: {exc}"]
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        application_id = conn.execute("PRAGMA application_id").fetchone()[0]
        try:
            verify_schema_version(path, version, application_id)
        except StorageError as exc:
            return [str(exc)]
        database_id = database_id_of(conn)
    except sqlite3.Error as exc:
        return [f"cannot read: {exc}"]
    finally:
        conn.close()
    if version >= IDENTITY_SINCE_VERSION and database_id is None:
        return ["it holds no database_id"]
    if expected_id is not None and database_id is not None and database_id != expected_id:
        return [f"it is database {database_id}, not {expected_id}, the database tmtool uses at this path"]
    return []


def newest_valid_backup(db_path: Path, backup_dir: Path | None = None) -> Path | None:
    """The newest backup of ``db_path`` that passes ``backup_problems`` (labelled ones included)."""
    for candidate in reversed(list_backups(db_path, backup_dir)):
        problems = backup_problems(candidate)
        if not problems:
            return candidate
        log.warning("backup %s is not usable: %s", candidate, "; ".join(problems[:3]))
    return None


def read_only_uri(path: Path) -> str:
    return Path(path).absolute().as_uri() + "?mode=ro"


def integrity_problems(path: Path, *, quick: bool = False) -> list[str]:
    """Problems SQLite finds in the file (empty when healthy), via integrity_check or quick_check."""
    try:
        conn = sqlite3.connect(read_only_uri(path), uri=True)
    except sqlite3.Error as exc:
        return [f"cannot open: {exc}"]
    try:
        pragma = "quick_check" if quick else "integrity_check"
        rows = [row[0] for row in conn.execute(f"PRAGMA {pragma}").fetchall()]
    except sqlite3.Error as exc:
        return [str(exc)]
    finally:
        conn.close()
    return [] if rows == ["ok"] else rows


@dataclass(frozen=True, slots=True)
class RestoreResult:
    restored_from: Path
    replaced_kept_at: Path | None  # where the database that was replaced now lies (None: there was none)


def restore_database(db_path: Path, backup: Path, clock: Clock) -> RestoreResult:
    """Replace ``db_path`` with a copy of ``backup``.

    Refused while another process holds the database's instance lock.  The
    backup is verified first (integrity and schema version); the database it
    replaces is kept aside as ``<db>.replaced-<UTC time>.db`` (a consistent copy
    when it still opens, else the raw files, -wal and -shm included).  The intent
    journal stays when it belongs to the restored database (its intents are
    applied at the next start) and is moved aside otherwise.
    """
    db_path, backup = Path(db_path), Path(backup)
    if not backup.is_file():
        raise StorageError(backup, f"no backup file at {backup}")
    with InstanceLock(db_path):
        problems = backup_problems(backup, quick=False)
        if problems:
            raise BackupInvalid(backup, "; ".join(problems[:3]))
        database_id = _database_id_in(backup)
        kept = _set_aside(db_path, clock) if db_path.exists() else None
        ensure_private_dir(db_path.parent)
        incoming = db_path.with_name(db_path.name + ".restoring")
        _remove_with_side_files(incoming)
        create_private_file(incoming)
        try:
            _copy_with_backup_api(backup, incoming)
            fsync_file(incoming)
            for side in side_files(db_path):
                side.unlink(missing_ok=True)
            os.replace(incoming, db_path)
            fsync_dir(db_path.parent)
        finally:
            _remove_with_side_files(incoming)
        make_private(db_path)
        if database_id is not None:
            write_identity_file(db_path, database_id)
        else:  # a backup from before identities: the next start gives the database one
            remove_identity_file(db_path)
        _keep_journal_of(db_path, database_id, clock)
    if kept is not None:
        log.info("restored database %s from %s; the replaced file is kept at %s", db_path, backup, kept)
    else:
        log.info("restored database %s from %s (there was no database to replace)", db_path, backup)
    return RestoreResult(restored_from=backup, replaced_kept_at=kept)


def _keep_journal_of(db_path: Path, database_id: str | None, clock: Clock) -> None:
    """After a restore: a journal of the restored database stays (the next start writes its intents, which may
    name orders that reached the broker, into the restored database); any other journal is moved aside."""
    path = intents_path_for(db_path)
    if not path.exists():
        return
    try:
        journal_id = read_journal(path).database_id
    except StorageError as exc:
        set_journal_aside(db_path, clock, f"it could not be read ({exc})")
        return
    if journal_id is not None and journal_id == database_id:
        log.warning("restored database %s: its intent journal %s is kept; the next start applies it", db_path, path)
        return
    set_journal_aside(db_path, clock, f"it belongs to database {journal_id}, not the restored {database_id}")


def _database_id_in(path: Path) -> str | None:
    conn = sqlite3.connect(read_only_uri(path), uri=True)
    try:
        return database_id_of(conn)
    finally:
        conn.close()


def _set_aside(db_path: Path, clock: Clock) -> Path:
    kept = unused_stamped_name(db_path, "replaced", clock.time(), BACKUP_SUFFIX)
    try:
        backup_database(db_path, kept)
    except (sqlite3.Error, StorageError) as exc:
        log.warning("database %s does not copy cleanly (%s); moving its files aside as they are", db_path, exc)
        _remove_with_side_files(kept)
        os.replace(db_path, kept)
        for side, kept_side in zip(side_files(db_path), side_files(kept)):
            if side.exists():
                os.replace(side, kept_side)
        fsync_dir(db_path.parent)
    return kept


def _copy_with_backup_api(source: Path, destination: Path) -> None:
    source_conn = sqlite3.connect(source)
    try:
        destination_conn = sqlite3.connect(destination)
        try:
            source_conn.backup(destination_conn)
            destination_conn.execute("PRAGMA journal_mode=DELETE")
        finally:
            destination_conn.close()
    finally:
        source_conn.close()


def _remove_with_side_files(path: Path) -> None:
    path.unlink(missing_ok=True)
    for side in side_files(path):
        side.unlink(missing_ok=True)
