"""Database faults as a user meets them, through the ``tmtool`` command in real subprocesses: a file
removed while running, an empty, damaged or unwritable database at start, a second instance, a
database that cannot be written at shutdown, and the ``db`` commands that repair them."""

from __future__ import annotations

import os
import re
import shlex
import signal
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

from tests.util import wait_for
from tests.wiring.test_cli import _env, _Reader, _tmtool


def _run(tmp_path: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run(
        _tmtool(*args), capture_output=True, text=True, timeout=timeout, env=_env(tmp_path), cwd=tmp_path
    )


def _used_database(tmp_path: Path) -> Path:
    """A database a short demo run used (so it has an identity and a start-up backup)."""
    db = tmp_path / "data" / "tmtool.db"
    db.parent.mkdir()
    done = _run(tmp_path, "demo", "--no-ui", "--duration", "1", "--no-demo-trades", "--db", str(db))
    assert done.returncode == 0, done.stderr[-3000:]
    return db


def _demo(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, _Reader, _Reader]:
    proc = subprocess.Popen(
        _tmtool("demo", "--no-ui", *args),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(tmp_path), cwd=tmp_path,
    )
    return proc, _Reader(proc.stderr), _Reader(proc.stdout)


def _trade_ids(db: Path) -> set[int]:
    with closing(sqlite3.connect(db)) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM trade")}


def _stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=60)


def _restore_command(message: str) -> list[str]:
    match = re.search(r"`(tmtool db restore [^`]+)`", message)
    assert match, message
    return shlex.split(match.group(1))[1:]


def test_a_database_removed_while_running_is_written_back_and_nothing_is_lost(tmp_path: Path):
    db = tmp_path / "data" / "tmtool.db"
    db.parent.mkdir()
    proc, stderr, stdout = _demo(tmp_path, "--db", str(db))
    try:
        wait_for(lambda: stderr.has("active (stop"), timeout=60, what="a demo trade to become active")
        # the writer commits a moment after the engine logs: wait for the row, not for the log line
        before = wait_for(lambda: _trade_ids(db), timeout=20, what="the active trade committed to the database")
        os.unlink(db)  # `rm tmtool.db` under the running tmtool
        wait_for(lambda: db.exists(), timeout=20, what="the database written back")
        wait_for(lambda: stderr.has("database not writing"), timeout=20, what="the engine's alert")
        assert before <= _trade_ids(db)
        assert _stop(proc) == 0, stderr.join()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    log = stderr.join()
    assert re.search(r"level=CRITICAL logger=tmtool\S* event=alert .*text=\"database not writing \(.*was removed", log), log[-3000:]
    assert "could not be written" not in log
    assert before <= _trade_ids(db)
    again = _run(tmp_path, "demo", "--no-ui", "--duration", "1", "--no-demo-trades", "--db", str(db))
    assert again.returncode == 0, again.stderr[-3000:]  # the same database: no refusal at the restart


def test_a_missing_database_is_refused_until_restored_or_new_database_is_asked_for(tmp_path: Path):
    db = _used_database(tmp_path)
    os.unlink(db)
    refused = _run(tmp_path, "demo", "--no-ui", "--duration", "1", "--no-demo-trades", "--db", str(db))
    assert refused.returncode == 2
    assert f"database {db} is missing but tmtool used a database there before" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not db.exists()

    fresh = _run(tmp_path, "demo", "--no-ui", "--duration", "1", "--no-demo-trades", "--new-database", "--db", str(db))
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert db.exists()


def test_an_empty_file_is_refused_with_the_exact_restore_command_which_works(tmp_path: Path):
    db = _used_database(tmp_path)
    db.write_bytes(b"")
    refused = _run(tmp_path, "demo", "--no-ui", "--duration", "1", "--no-demo-trades", "--db", str(db))
    assert refused.returncode == 2
    assert "is empty (0 bytes)" in refused.stderr and "Traceback" not in refused.stderr
    restored = _run(tmp_path, *_restore_command(refused.stderr))
    assert restored.returncode == 0, restored.stderr
    assert "None" not in restored.stdout + restored.stderr
    started = _run(tmp_path, "demo", "--no-ui", "--duration", "1", "--no-demo-trades", "--db", str(db))
    assert started.returncode == 0, started.stderr[-3000:]


def test_every_damage_at_start_gives_the_restore_hint_never_a_traceback(tmp_path: Path):
    db = _used_database(tmp_path)
    pristine = db.read_bytes()
    damages = {
        "zeroed page": lambda data: data[:2 * 4096] + b"\x00" * 4096 + data[3 * 4096 :],
        "garbage header": lambda data: b"this is not SQLite at all" + data[25:],
    }
    for name, damage in damages.items():
        db.write_bytes(damage(pristine))
        refused = _run(tmp_path, "demo", "--no-ui", "--duration", "1", "--no-demo-trades", "--db", str(db))
        assert refused.returncode == 2, (name, refused.stderr[-3000:])
        assert f"database {db} is damaged" in refused.stderr, (name, refused.stderr[-3000:])
        assert "the newest valid backup is" in refused.stderr and "tmtool db restore --db" in refused.stderr, name
        assert "Traceback" not in refused.stderr, name


def test_a_read_only_shm_or_wal_refuses_start_without_a_crash(tmp_path: Path):
    db = _used_database(tmp_path)
    with closing(sqlite3.connect(db)) as holder:  # keeps the -wal and -shm in place
        holder.execute("SELECT COUNT(*) FROM trade").fetchone()
        for suffix in ("-shm", "-wal"):
            side = db.with_name(db.name + suffix)
            os.chmod(side, 0o400)
            refused = _run(tmp_path, "demo", "--no-ui", "--duration", "1", "--no-demo-trades", "--db", str(db))
            assert refused.returncode == 2, refused.stderr[-3000:]  # an exit, not a signal (SIGBUS is -7)
            assert f"not writable by this user: {side}" in refused.stderr
            assert "Traceback" not in refused.stderr
            os.chmod(side, 0o600)


def test_a_second_demo_touches_nothing_of_the_first(tmp_path: Path):
    first, stderr, _stdout = _demo(tmp_path)
    try:
        wait_for(lambda: stderr.has("active (stop"), timeout=60, what="a demo trade to become active")
        line = next(line for line in stderr.lines if line.startswith("tmtool: database "))
        db = Path(line.removeprefix("tmtool: database ").strip())
        files = {path: path.stat().st_ino for path in (db, db.with_name(db.name + "-wal")) if path.exists()}
        assert db in files
        second = _run(tmp_path, "demo", "--no-ui", "--duration", "1")
        assert second.returncode == 2
        assert f"in use by another tmtool, process {first.pid}" in second.stderr
        assert {path: path.stat().st_ino for path in files} == files
        assert _stop(first) == 0, stderr.join()[-3000:]
    finally:
        if first.poll() is None:
            first.kill()
    assert "database not writing" not in stderr.join()
    assert _trade_ids(db)


def test_changes_that_cannot_be_written_at_shutdown_are_counted_and_exit_non_zero(tmp_path: Path):
    db = tmp_path / "data" / "tmtool.db"
    db.parent.mkdir()
    proc, stderr, _stdout = _demo(tmp_path, "--db", str(db))
    blocker = None
    try:
        wait_for(lambda: stderr.has("active (stop"), timeout=60, what="a demo trade to become active")
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock from now on
        wait_for(lambda: stderr.has("database not writing"), timeout=30, what="memory-only mode")
        returncode = _stop(proc)
    finally:
        if blocker is not None:
            blocker.execute("ROLLBACK")
            blocker.close()
        if proc.poll() is None:
            proc.kill()
    log = stderr.join()
    assert returncode == 1, log[-3000:]
    match = re.search(r"tmtool: (\d+) change\(s\) could not be written to the database", log)
    assert match and int(match.group(1)) > 0, log[-3000:]


def test_db_options_may_follow_the_action(tmp_path: Path):
    db = _used_database(tmp_path)
    copy = tmp_path / "copy.db"
    done = _run(tmp_path, "db", "backup", "--db", str(db), str(copy))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Backed up {db} to {copy}" in done.stdout
    restored = _run(tmp_path, "db", "restore", "--db", str(tmp_path / "new" / "tmtool.db"), str(copy))
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "None" not in restored.stdout + restored.stderr
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"\x00garbage" * 100)
    before = sorted(db.parent.iterdir())
    refused = _run(tmp_path, "db", "restore", str(junk), "--db", str(db))
    assert refused.returncode == 1
    assert f"{junk} is not a usable tmtool backup" in refused.stderr and "nothing was changed" in refused.stderr
    assert sorted(db.parent.iterdir()) == before
