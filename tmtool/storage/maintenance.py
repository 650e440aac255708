"""``tmtool db backup|restore|check``: the functions behind the CLI's database commands.

``db_command(action, db_path, target)`` prints a message for humans and returns
the process exit code: 0 done / healthy, 1 refused or problems found, 2 bad usage.

- ``backup [target]``: an online backup (safe while tmtool runs).  Without a
  target it goes to ``<db dir>/backups`` and old backups are rotated; a target
  directory receives a time-stamped file; a target file name is used as given
  (never overwritten).  Intents in the intent journal that the database does
  not hold yet are named: the backup does not have them.
- ``restore [backup]``: replace the database with a backup (the newest valid one
  when none is named).  Refused while tmtool runs on the database; the backup is
  verified first; the replaced database is kept aside.
- ``check``: full integrity check, schema version, row counts, and rows of the
  order ledger or audit log that name a trade the database does not hold; the
  intent journal (damaged, of another database, or holding intents the
  database does not have yet).  Safe while tmtool runs.
"""

from __future__ import annotations

import sqlite3
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tmtool.clock import Clock, SystemClock
from tmtool.storage.backup import (
    DEFAULT_BACKUPS_TO_KEEP,
    backup_database,
    create_backup,
    default_backup_dir,
    integrity_problems,
    list_backups,
    newest_valid_backup,
    read_only_uri,
    restore_database,
)
from tmtool.storage.errors import StorageError
from tmtool.storage.identity import APPLICATION_ID, database_id_of
from tmtool.storage.intents import intents_path_for, read_journal
from tmtool.storage.migrations import LATEST_VERSION

ACTIONS = ("backup", "restore", "check")
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

_COUNTED_TABLES = ("strategy", "trade", "portfolio_state", "order_ledger", "trade_event", "alert")


@dataclass(slots=True)
class CheckReport:
    path: Path
    problems: list[str] = field(default_factory=list)
    schema_version: int | None = None
    row_counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # worth knowing, not a problem

    @property
    def healthy(self) -> bool:
        return not self.problems


def check_database(db_path: Path) -> CheckReport:
    """Inspect ``db_path`` without changing it (readable while tmtool runs)."""
    db_path = Path(db_path)
    report = CheckReport(db_path)
    if not db_path.is_file():
        report.problems.append(f"no database at {db_path}")
        return report
    problems = integrity_problems(db_path)
    if problems:
        report.problems.extend(f"integrity: {problem}" for problem in problems[:20])
        return report
    conn = sqlite3.connect(read_only_uri(db_path), uri=True)
    try:
        report.schema_version = conn.execute("PRAGMA user_version").fetchone()[0]
        application_id = conn.execute("PRAGMA application_id").fetchone()[0]
        if application_id != APPLICATION_ID:
            report.problems.append(f"not a tmtool database (application id {application_id:#x})")
            return report
        if report.schema_version > LATEST_VERSION:
            report.problems.append(
                f"schema version {report.schema_version} is newer than this tmtool's ({LATEST_VERSION})"
            )
            return report
        for table in _COUNTED_TABLES:
            report.row_counts[table] = conn.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]
        for table in ("order_ledger", "trade_event"):
            orphans = conn.execute(
                f'SELECT COUNT(*) FROM "{table}" WHERE trade_id NOT IN (SELECT id FROM "trade")'
            ).fetchone()[0]
            if orphans:
                report.problems.append(f"{orphans} row(s) of {table} name a trade that is not in the database")
        violations = conn.execute("PRAGMA foreign_key_check").fetchall()
        if violations:
            report.problems.append(f"{len(violations)} foreign key violation(s)")
        _check_journal(db_path, conn, report)
    except sqlite3.Error as exc:
        report.problems.append(f"cannot read: {exc}")
    finally:
        conn.close()
    return report


def _check_journal(db_path: Path, conn: sqlite3.Connection, report: CheckReport) -> None:
    """The intent journal: readable, of this database; intents it holds that the database does not yet."""
    path = intents_path_for(db_path)
    if not path.exists():
        return
    try:
        contents = read_journal(path)
    except StorageError as exc:
        report.problems.append(str(exc))
        return
    database_id = database_id_of(conn)
    if contents.database_id is not None and contents.database_id != database_id:
        report.problems.append(f"intent journal {path} belongs to database {contents.database_id}, not {database_id}")
        return
    pending = [
        intent.order.key
        for intent in contents.intents
        if conn.execute('SELECT 1 FROM "order_ledger" WHERE "key" = ?', (intent.order.key,)).fetchone() is None
    ]
    if pending:
        report.notes.append(
            f"intent journal {path} holds {len(pending)} order intent(s) the database does not yet "
            f"({', '.join(pending[:5])}); tmtool writes them into it at the next start"
        )


def db_command(action: str, db_path: Path, target: Path | None, clock: Clock | None = None) -> int:
    """Run ``tmtool db <action>``; print the outcome; return the exit code."""
    clock = clock or SystemClock()
    db_path = Path(db_path)
    if action not in ACTIONS:
        _error(f"unknown db action {action!r}; use one of: {', '.join(ACTIONS)}")
        return EXIT_USAGE
    try:
        if action == "backup":
            return _backup(db_path, target, clock)
        if action == "restore":
            return _restore(db_path, target, clock)
        return _check(db_path)
    except (StorageError, sqlite3.Error, OSError) as exc:
        _error(f"db {action} failed: {exc}")
        return EXIT_FAILED


def _backup(db_path: Path, target: Path | None, clock: Clock) -> int:
    if not db_path.is_file():
        _error(f"no database at {db_path}")
        return EXIT_FAILED
    if target is None:
        written = create_backup(db_path, clock, keep=DEFAULT_BACKUPS_TO_KEEP)
    elif Path(target).is_dir():
        written = create_backup(db_path, clock, backup_dir=Path(target))
    else:
        written = backup_database(db_path, Path(target))
    print(f"Backed up {db_path} to {written} ({written.stat().st_size} bytes, integrity ok).")
    report = CheckReport(db_path)
    conn = sqlite3.connect(read_only_uri(db_path), uri=True)
    try:
        _check_journal(db_path, conn, report)
    finally:
        conn.close()
    for message in (*report.notes, *report.problems):
        print(f"Note: not in this backup: {message}.")
    return EXIT_OK


def _restore(db_path: Path, target: Path | None, clock: Clock) -> int:
    if target is None:
        candidates = list_backups(db_path)
        if not candidates:
            _error(f"no backups of {db_path} in {default_backup_dir(db_path)}; name the backup file to restore")
            return EXIT_FAILED
        target = newest_valid_backup(db_path)
        if target is None:
            _error(
                f"none of the {len(candidates)} backups of {db_path} in {default_backup_dir(db_path)} is valid; "
                f"name the backup file to restore"
            )
            return EXIT_FAILED
        skipped = candidates[candidates.index(target) + 1 :]
        if skipped:
            print(f"Skipped {len(skipped)} newer backup(s) that fail their check: {', '.join(map(str, skipped))}.")
    result = restore_database(db_path, Path(target), clock)
    kept = f"; the replaced database is kept at {result.replaced_kept_at}" if result.replaced_kept_at else ""
    print(f"Restored {db_path} from {result.restored_from}{kept}.")
    return EXIT_OK


def _check(db_path: Path) -> int:
    report = check_database(db_path)
    for note in report.notes:
        print(f"{db_path}: note: {note}")
    if report.healthy:
        counts = ", ".join(f"{table} {count}" for table, count in report.row_counts.items())
        print(f"{db_path}: ok (schema version {report.schema_version}; {counts}).")
        return EXIT_OK
    _error(f"{db_path}: {len(report.problems)} problem(s):")
    for problem in report.problems:
        _error(f"  - {problem}")
    if any(problem.startswith("integrity") for problem in report.problems):
        _error("restore a backup with `tmtool db restore`.")
    return EXIT_FAILED


def _error(message: str) -> None:
    print(message, file=sys.stderr)
