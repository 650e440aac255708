"""The tick recorder: every tick the engine evaluates, kept per trading day for replay.

The engine calls ``record(tick)`` on its own thread for every accepted tick and
``refuse(tick)`` for every refused one.  ``record`` is not a method: it is the
queue's own bound ``list.append``, so an accepted tick costs the engine one C
call (about 20 ns, against about 60 ns for a Python method that appends) — O(1),
never blocking, never raising, and nothing built per tick.  A writer thread takes everything queued every
``batch_seconds`` (a slice read and a slice delete of the prefix it read, each
a single C call, so it never races the engine's appends), packs the columns
into plain bytes with C-level iteration (``array``), and sends batches of at
most ``batch_rows`` over a pipe to the recording process
(``tmtool.replay.segments``), which writes the day's files.

This module imports neither numpy nor pyarrow: they live in the recording
process, so the trading process is about 40 MB smaller, starts about 0.15 s
sooner, and never runs Arrow under its interpreter lock.  The recording process
outlives a killed tmtool just long enough to close and compact its segment
(the end of its input is its signal to finish).

A failure to write (a full disk, a vanished folder, a recording process that
died) raises one alert through ``on_failure`` and stops recording for the
session; the engine never notices.  Only the last ``retention_days`` days are
kept: older day folders are removed when the recorder starts.
"""

from __future__ import annotations

import logging
import os
import shutil
import struct
import subprocess
import sys
import threading
from array import array
from collections import deque
from datetime import date, timedelta
from pathlib import Path
from typing import IO, Callable

from tmtool.domain.models import Tick

log = logging.getLogger(__name__)

STREAM_SUFFIX = ".arrows"
PARQUET_SUFFIX = ".parquet"
# The pipe's frames (``tmtool.replay.segments`` describes them): a kind byte and payload length, counts, codes.
FRAME_HEADER = struct.Struct("<cI")
FRAME_COUNT = struct.Struct("<I")
FRAME_CODE = struct.Struct("<i")
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # where the recording process imports tmtool from


def day_folder(folder: Path, day: date) -> Path:
    return Path(folder) / day.isoformat()


class Refused:
    """A refused tick in the recorder's queue (accepted ticks go in as themselves: no wrapper on the hot path)."""

    __slots__ = ("tick",)

    def __init__(self, tick: Tick) -> None:
        self.tick = tick


def prune(folder: Path, today: date, retention_days: int) -> list[str]:
    """Keep the last ``retention_days`` trading days' folders (today included); returns the days removed."""
    removed = []
    oldest = today - timedelta(days=max(1, retention_days) - 1)
    for child in sorted(Path(folder).iterdir()) if Path(folder).is_dir() else ():
        try:
            day = date.fromisoformat(child.name)
        except ValueError:
            continue
        if child.is_dir() and day < oldest:
            shutil.rmtree(child, ignore_errors=True)
            removed.append(child.name)
    return removed


def folder_size(folder: Path) -> tuple[int, int]:
    """(bytes, days) the recordings in ``folder`` hold."""
    total, days = 0, 0
    for child in Path(folder).iterdir() if Path(folder).is_dir() else ():
        if child.is_dir() and _is_day(child.name):
            days += 1
            total += sum(f.stat().st_size for f in child.iterdir() if f.is_file())
    return total, days


def _is_day(name: str) -> bool:
    try:
        date.fromisoformat(name)
    except ValueError:
        return False
    return True


def spawn_recording_process(folder: Path, session: str, **popen_options) -> subprocess.Popen:
    """``python -m tmtool.replay.segments FOLDER SESSION``, in a session of its own (a terminal's
    signals reach tmtool, which stops recording in order), talking over pipes; ``popen_options``
    are added to ``subprocess.Popen``'s (tests set limits with ``preexec_fn``)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH", "")) if p)
    return subprocess.Popen(
        [sys.executable, "-m", "tmtool.replay.segments", str(folder), session],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env=env, start_new_session=True, close_fds=True, **popen_options,
    )


class ParquetTickRecorder:
    """Implements ``engine.ports.TickRecorder``; ``start``/``stop`` run its writer thread and its
    recording process (``spawn`` starts that process: tests give it limits, such as a small file size)."""

    def __init__(
        self,
        folder: Path,
        *,
        session: str,
        retention_days: int = 30,
        batch_seconds: float = 1.0,
        batch_rows: int = 50_000,
        max_backlog: int = 5_000_000,
        on_failure: Callable[[str], None] | None = None,
        spawn: Callable[[Path, str], subprocess.Popen] = spawn_recording_process,
    ) -> None:
        self.folder = Path(folder)
        self.session = session
        self.retention_days = retention_days
        self.batch_seconds = batch_seconds
        self.batch_rows = batch_rows
        self.max_backlog = max_backlog
        self._on_failure = on_failure
        self._spawn = spawn
        self._rows: list[Tick | Refused] = []  # the engine only appends; the writer removes what it sent
        # The engine's per-tick call is the queue's own append (rebound in ``_fail`` to a queue that keeps nothing).
        self.record: Callable[[Tick], None] = self._rows.append
        self._refusals = 0  # refused ticks recorded, counted by the engine before it appends each
        self._refusals_seen = 0
        self._check_next_batch = False
        self._codes: dict[str, dict[str, int]] = {}  # exchange -> symbol -> the instrument's code
        self._code_count = 0
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._sending = threading.RLock()  # one sender at a time: the writer thread, or a flush
        self._child: subprocess.Popen | None = None
        self._pipe: IO[bytes] | None = None
        self._answers: threading.Thread | None = None
        self._answered = threading.Condition()
        self._syncs_sent = 0
        self._syncs_answered = 0
        self._closed = False  # the recording process said it closed its files
        self.rows_sent = 0
        self.batches_sent = 0
        self.rows_written = 0  # as the recording process last said
        self.writer_cpu = 0.0  # the recording process's CPU seconds, as it last said
        self.failed: str = ""

    # ---------------------------------------------------------------- engine thread

    # ``record(tick)``, for an accepted tick, is the bound ``self._rows.append`` set in ``__init__``.

    def refuse(self, tick: Tick) -> None:
        """Queue a tick the engine refused (rare: the filter's job is to let real prices through)."""
        self._refusals += 1  # first: a Refused in the rows is always counted by then (see _drain)
        self._rows.append(Refused(tick))

    # ---------------------------------------------------------------- life

    def start(self, today: date) -> None:
        """Prune old days, start the recording process (it compacts a crashed session's leftovers) and the writer thread."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            prune(self.folder, today, self.retention_days)
        except OSError as exc:
            self._fail(f"tick recording is off: cannot prepare {self.folder}: {exc}")
            return
        if not self.open():
            return
        self._thread = threading.Thread(target=self._run, name="tick-recorder", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Send what is queued, close the recording process's input (it compacts the open segment to
        Parquet) and wait up to ``timeout`` for it to finish; past that it finishes on its own."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        else:
            self._drain()
            self._close_input()
        self._wait_closed(timeout)

    def flush(self, timeout: float = 60.0) -> bool:
        """Send what is queued now, on the caller's thread, and wait until the recording process has
        written it; False when recording has failed (or the process did not answer in ``timeout``)."""
        self._drain()
        with self._sending:
            if self.failed or self._pipe is None:
                return not self.failed
            self._syncs_sent += 1
            number = self._syncs_sent
            if not self._send(b"S", FRAME_COUNT.pack(number)):
                return False
        with self._answered:
            self._answered.wait_for(lambda: self._syncs_answered >= number or self._answers is None, timeout)
            return self._syncs_answered >= number and not self.failed

    @property
    def backlog(self) -> int:
        return len(self._rows)

    @property
    def process_id(self) -> int | None:
        return self._child.pid if self._child is not None else None

    # ---------------------------------------------------------------- writer thread

    def _run(self) -> None:
        while not self._stopping and not self.failed:
            self._wake.wait(self.batch_seconds)
            self._wake.clear()
            self._drain()
        self._drain()
        self._close_input()

    def _drain(self) -> None:
        with self._sending:
            rows = self._rows
            if not rows or self.failed:
                return
            if len(rows) > self.max_backlog:
                self._fail(f"tick recording stopped: {len(rows)} ticks waiting, the disk is not keeping up")
                return
            if not self.open():
                return
            # Everything queued now.  The engine only appends past ``taken``, so the batches below read a
            # stable prefix, and the slice delete (one C call) removes exactly it, leaving what came meanwhile.
            taken = len(rows)
            # A refusal counted since the last drain may sit in this prefix, or (counted just before its
            # append, which came after ``taken`` was read) in the next: both are then checked row by row.
            refusals = self._refusals
            check = refusals != self._refusals_seen or self._check_next_batch
            self._check_next_batch = refusals != self._refusals_seen
            self._refusals_seen = refusals
            step = self.batch_rows
            try:
                for start in range(0, taken, step):
                    if not self._send_batch(rows[start:min(taken, start + step)], check):
                        return
                self._pipe.flush()
            except Exception as exc:  # any failure stops recording, never trading
                self._lost(exc)
            finally:
                del rows[:taken]

    def _send_batch(self, rows: list, refusals: bool) -> bool:
        """One ``B`` frame (see ``tmtool.replay.segments``): each column is one list comprehension
        unboxed by ``array`` in C.  ``refusals=False`` when the caller knows there is none among them."""
        ticks, flags = rows, None
        if refusals:
            marks = [row.__class__ is not Refused for row in rows]
            if not all(marks):
                ticks = [row if ok else row.tick for row, ok in zip(rows, marks)]
                flags = bytes(marks)
        codes = self._codes
        try:
            instruments = array("i", [codes[tick.exchange][tick.symbol] for tick in ticks])
        except KeyError:
            for tick in ticks:
                if tick.symbol not in codes.get(tick.exchange, ()) and not self._learn(tick.exchange, tick.symbol):
                    return False
            instruments = array("i", [codes[tick.exchange][tick.symbol] for tick in ticks])
        count = len(ticks)
        payload = b"".join((
            FRAME_COUNT.pack(count),
            array("d", [tick.ts for tick in ticks]),
            array("d", [tick.price for tick in ticks]),
            instruments,
            flags if flags is not None else b"\x01" * count,
        ))
        if not self._send(b"B", payload):
            return False
        self.rows_sent += count
        self.batches_sent += 1
        return True

    def _learn(self, exchange: str, symbol: str) -> bool:
        code = self._code_count
        if not self._send(b"K", FRAME_CODE.pack(code) + f"{exchange}\0{symbol}".encode()):
            return False
        self._codes.setdefault(exchange, {})[symbol] = code
        self._code_count += 1
        return True

    def _send(self, kind: bytes, payload: bytes) -> bool:
        try:
            self._pipe.write(FRAME_HEADER.pack(kind, len(payload)))
            self._pipe.write(payload)
            if kind == b"S":
                self._pipe.flush()
        except Exception as exc:  # a pipe the recording process no longer reads
            self._lost(exc)
            return False
        return True

    # ---------------------------------------------------------------- the recording process

    def open(self) -> bool:
        """Start the recording process if it is not running (``start`` does; without the writer
        thread, ``flush`` and ``stop`` then send on the caller's thread); False once recording failed."""
        with self._sending:
            if self._child is not None or self.failed:
                return not self.failed
            try:
                self._child = self._spawn(self.folder, self.session)
            except OSError as exc:
                self._fail(f"tick recording is off: cannot start the recording process: {exc}")
                return False
            self._pipe = self._child.stdin
            self._answers = threading.Thread(target=self._read_answers, args=(self._child,),
                                             name="tick-recorder-answers", daemon=True)
            self._answers.start()
            return True

    def _read_answers(self, child: subprocess.Popen) -> None:
        for raw in iter(child.stdout.readline, b""):
            word, _, rest = raw.decode(errors="replace").rstrip("\n").partition(" ")
            if word == "ok":
                number, rows, cpu = rest.split()
                with self._answered:
                    self._syncs_answered = int(number)
                    self.rows_written, self.writer_cpu = int(rows), float(cpu)
                    self._answered.notify_all()
            elif word == "closed":
                rows, cpu = rest.split()
                self.rows_written, self.writer_cpu, self._closed = int(rows), float(cpu), True
            elif word == "log":
                level, _, text = rest.partition(" ")
                log.log(logging.WARNING if level == "WARNING" else logging.INFO, "%s", text)
            elif word == "failed":
                self._fail(f"tick recording stopped: {rest}")
        status = child.wait()
        if not self._closed and not self.failed:
            self._fail(f"tick recording stopped: the recording process ended (exit status {status})")
        with self._answered:
            self._answers = None
            self._answered.notify_all()

    def _lost(self, exc: BaseException) -> None:
        """A write to the recording process failed: its own reason, if it gave one, says more."""
        answers = self._answers
        if answers is not None and answers is not threading.current_thread():
            answers.join(5.0)
        self._fail(f"tick recording stopped: {type(exc).__name__}: {exc}")

    def _close_input(self) -> None:
        with self._sending:
            pipe, self._pipe = self._pipe, None
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass

    def _wait_closed(self, timeout: float) -> None:
        answers, child = self._answers, self._child
        if answers is not None:
            answers.join(timeout)
        if child is not None and child.poll() is None:
            log.info("event=tick_recording_still_closing pid=%d (it compacts the session's ticks and ends on its own)", child.pid)

    def _fail(self, message: str) -> None:
        if self.failed:
            return
        self.failed = message
        self._rows = deque(maxlen=0)  # type: ignore[assignment]  # the engine keeps appending, to nothing
        self.record = self._rows.append
        log.error("event=tick_recording_failed error=%s", message)
        if self._on_failure is not None:
            try:
                self._on_failure(message)
            except Exception:
                log.exception("event=tick_recording_alert_failed")
