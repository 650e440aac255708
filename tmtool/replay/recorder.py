"""The tick recorder: every tick the engine evaluates, kept per trading day for replay.

The engine calls ``record(tick)`` on its own thread for every accepted tick and
``refuse(tick)`` for every refused one.  ``record`` is not a method: it is the
queue's own bound ``list.append``, so an accepted tick costs the engine one C
call (about 20 ns, against about 60 ns for a Python method that appends) — O(1),
never blocking, never raising, and nothing built per tick.  A writer thread takes everything queued every
``batch_seconds`` (a slice read and a slice delete of the prefix it read, each
a single C call, so it never races the engine's appends), pulls the columns out
with C-level iteration, and appends batches of at most ``batch_rows`` to the
day's open segment.

Files, in ``folder/YYYY-MM-DD/`` (the Asia/Kolkata trading day of each tick):

* ``<session>.arrows`` — the open segment, an Arrow IPC stream: each batch is a
  self-contained message, so a killed process leaves a file readable up to its
  last complete batch;
* ``<session>.parquet`` — a closed segment, zstd-compressed Parquet, written
  when the session stops, the day rolls, or (for a crashed session's stream)
  when the next recorder starts.  Traders' tools (pandas, polars, DuckDB) read
  these directly.

Columns: ``ts`` (epoch seconds, float64), ``exchange``, ``symbol``
(dictionary-encoded strings), ``price`` (float64), ``accepted`` (bool).

A failure to write (a full disk, a vanished folder) raises one alert through
``on_failure`` and stops recording for the session; the engine never notices.
Only the last ``retention_days`` days are kept: older day folders are removed
when the recorder starts.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from array import array
from collections import deque
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from tmtool.domain.calendar import IST, trading_day
from tmtool.domain.models import Tick

log = logging.getLogger(__name__)

SCHEMA = pa.schema(
    [
        ("ts", pa.float64()),
        ("exchange", pa.dictionary(pa.int32(), pa.string())),
        ("symbol", pa.dictionary(pa.int32(), pa.string())),
        ("price", pa.float64()),
        ("accepted", pa.bool_()),
    ]
)
STREAM_SUFFIX = ".arrows"
PARQUET_SUFFIX = ".parquet"


def day_folder(folder: Path, day: date) -> Path:
    return Path(folder) / day.isoformat()


def day_end(ts: float) -> float:
    """Epoch seconds at which the Asia/Kolkata trading day of ``ts`` ends."""
    day = trading_day(ts)
    midnight = datetime(day.year, day.month, day.day, tzinfo=IST) + timedelta(days=1)
    return midnight.timestamp()


class Refused:
    """A refused tick in the recorder's queue (accepted ticks go in as themselves: no wrapper on the hot path)."""

    __slots__ = ("tick",)

    def __init__(self, tick: Tick) -> None:
        self.tick = tick


# Arrays are built from numpy buffers with ``Array.from_buffers``, never with ``pa.array``: that
# one imports pandas whenever it is installed (to check whether it was handed a pandas object),
# which costs the recorder's first batch ~0.3 s of interpreter time and the process ~40 MB.


def _numeric(values: np.ndarray, arrow_type: pa.DataType) -> pa.Array:
    values = np.ascontiguousarray(values)
    return pa.Array.from_buffers(arrow_type, len(values), [None, pa.py_buffer(values)])


def _floats(values: list) -> pa.Array:
    # array('d', list) unboxes a list of floats in about two thirds of np.array's time
    return _numeric(np.frombuffer(array("d", values), np.float64), pa.float64())


def _flags(values: np.ndarray) -> pa.Array:
    """A boolean column from a numpy bool array (Arrow packs booleans in bits, least significant first)."""
    return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(np.packbits(values, bitorder="little"))])


def _strings(values: list[str]) -> pa.Array:
    encoded = [value.encode() for value in values]
    offsets = np.zeros(len(encoded) + 1, np.int32)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    return pa.Array.from_buffers(pa.string(), len(encoded), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))])


class KeyCodes:
    """Dictionary codes for the exchange and symbol columns, kept for the recorder's life.

    Each instrument (exchange, symbol) gets one code the first time it is seen; a batch looks up
    one code per tick (two dict hits on strings the engine hashed already, routing the tick to its
    book) and takes both columns' indices from it with numpy, so no other Python work is done per
    row.  The dictionaries only grow, and their Arrow value arrays are rebuilt only when they do."""

    def __init__(self) -> None:
        self.exchanges: dict[str, int] = {}
        self.symbols: dict[str, int] = {}
        self._instruments: dict[str, dict[str, int]] = {}  # exchange -> symbol -> instrument code
        self._exchange_of = np.empty(0, np.int32)  # instrument code -> exchange code
        self._symbol_of = np.empty(0, np.int32)  # instrument code -> symbol code
        self._exchange_values = _strings([])
        self._symbol_values = _strings([])

    def encode(self, ticks: list) -> tuple[pa.DictionaryArray, pa.DictionaryArray]:
        """The exchange and symbol columns of ``ticks``."""
        instruments = self._instruments
        try:
            codes = [instruments[tick.exchange][tick.symbol] for tick in ticks]
        except KeyError:
            for tick in ticks:
                self._learn(tick.exchange, tick.symbol)
            codes = [instruments[tick.exchange][tick.symbol] for tick in ticks]
        index = np.frombuffer(array("i", codes), np.int32)
        return (
            pa.DictionaryArray.from_arrays(_numeric(self._exchange_of[index], pa.int32()), self._exchange_values),
            pa.DictionaryArray.from_arrays(_numeric(self._symbol_of[index], pa.int32()), self._symbol_values),
        )

    def _learn(self, exchange: str, symbol: str) -> None:
        symbols = self._instruments.setdefault(exchange, {})
        if symbol in symbols:
            return
        symbols[symbol] = len(self._exchange_of)
        if exchange not in self.exchanges:
            self.exchanges[exchange] = len(self.exchanges)
            self._exchange_values = _strings(list(self.exchanges))
        if symbol not in self.symbols:
            self.symbols[symbol] = len(self.symbols)
            self._symbol_values = _strings(list(self.symbols))
        self._exchange_of = np.append(self._exchange_of, np.int32(self.exchanges[exchange]))
        self._symbol_of = np.append(self._symbol_of, np.int32(self.symbols[symbol]))


def to_batch(rows: list, codes: KeyCodes | None = None, refusals: bool = True) -> pa.RecordBatch:
    """One Arrow batch from queued rows: ``Tick`` (accepted) or ``Refused``.  ``refusals=False``
    when the caller knows there is no ``Refused`` among them (skips a pass over the rows).  Each
    column is one list comprehension turned into a numpy buffer whole (cheaper per row than
    ``np.fromiter`` over an ``attrgetter`` map)."""
    count = len(rows)
    ticks, accepted = rows, None
    if refusals:
        flags = [row.__class__ is not Refused for row in rows]
        if not all(flags):
            ticks = [row if ok else row.tick for row, ok in zip(rows, flags)]
            accepted = _flags(np.array(flags, np.bool_))
    exchange, symbol = (codes or KeyCodes()).encode(ticks)
    return pa.RecordBatch.from_arrays(
        [
            _floats([tick.ts for tick in ticks]),
            exchange,
            symbol,
            _floats([tick.price for tick in ticks]),
            accepted if accepted is not None else _flags(np.ones(count, np.bool_)),
        ],
        schema=SCHEMA,
    )


def read_stream(path: Path) -> pa.Table:
    """Every complete batch of an Arrow stream segment (a crashed writer's last partial batch is dropped)."""
    batches: list[pa.RecordBatch] = []
    try:
        with pa.OSFile(str(path), "rb") as source:
            reader = ipc.open_stream(source)
            while True:
                try:
                    batches.append(reader.read_next_batch())
                except StopIteration:
                    break
    except (pa.ArrowInvalid, OSError, EOFError) as exc:
        log.info("event=tick_stream_truncated path=%s batches=%d error=%s", path, len(batches), exc)
    return pa.Table.from_batches(batches, schema=SCHEMA)


def compact(stream_path: Path) -> Path:
    """Rewrite a closed stream segment as Parquet (durably) and remove the stream; returns the Parquet path."""
    table = read_stream(stream_path)
    target = stream_path.with_suffix(PARQUET_SUFFIX)
    partial = target.with_suffix(PARQUET_SUFFIX + ".partial")
    if table.num_rows:
        pq.write_table(table, str(partial), compression="zstd", row_group_size=1 << 20)
        with open(partial, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(partial, target)
    stream_path.unlink()
    return target


def compact_leftovers(folder: Path) -> int:
    """Compact every stream segment left by a session that did not stop cleanly; returns how many."""
    done = 0
    for stream in sorted(Path(folder).glob(f"*/*{STREAM_SUFFIX}")):
        try:
            compact(stream)
            done += 1
        except (OSError, pa.ArrowException) as exc:
            log.warning("event=tick_compact_failed path=%s error=%s", stream, exc)
    return done


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


class SegmentWriter:
    """Appends batches to one day's stream segment; ``close`` compacts it to Parquet."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._sink = pa.OSFile(str(path), "wb")
        self._writer = ipc.new_stream(self._sink, SCHEMA)

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)
        self._sink.flush()

    def close(self) -> Path:
        self._writer.close()
        self._sink.close()
        return compact(self.path)

    def abandon(self) -> None:
        """Close without compacting (after a failure: the next start compacts what is readable)."""
        for closer in (self._writer.close, self._sink.close):
            try:
                closer()
            except (OSError, pa.ArrowException):
                pass


class ParquetTickRecorder:
    """Implements ``engine.ports.TickRecorder``; ``start``/``stop`` run its writer thread."""

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
        segment_factory: Callable[[Path], SegmentWriter] = SegmentWriter,
    ) -> None:
        self.folder = Path(folder)
        self.session = session
        self.retention_days = retention_days
        self.batch_seconds = batch_seconds
        self.batch_rows = batch_rows
        self.max_backlog = max_backlog
        self._on_failure = on_failure
        self._segment_factory = segment_factory
        self._rows: list[Tick | Refused] = []  # the engine only appends; the writer removes what it wrote
        # The engine's per-tick call is the queue's own append (rebound in ``_fail`` to a queue that keeps nothing).
        self.record: Callable[[Tick], None] = self._rows.append
        self._refusals = 0  # refused ticks recorded, counted by the engine before it appends each
        self._refusals_seen = 0
        self._check_next_batch = False
        self._codes = KeyCodes()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._segment: SegmentWriter | None = None
        self._segment_day_end = 0.0
        self.rows_written = 0
        self.batches_written = 0
        self.failed: str = ""

    # ---------------------------------------------------------------- engine thread

    # ``record(tick)``, for an accepted tick, is the bound ``self._rows.append`` set in ``__init__``.

    def refuse(self, tick: Tick) -> None:
        """Queue a tick the engine refused (rare: the filter's job is to let real prices through)."""
        self._refusals += 1  # first: a Refused in the rows is always counted by then (see _drain)
        self._rows.append(Refused(tick))

    # ---------------------------------------------------------------- life

    def start(self, today: date) -> None:
        """Prune old days, compact a crashed session's leftovers, start the writer thread."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            prune(self.folder, today, self.retention_days)
            compact_leftovers(self.folder)
        except OSError as exc:
            self._fail(f"tick recording is off: cannot prepare {self.folder}: {exc}")
            return
        self._thread = threading.Thread(target=self._run, name="tick-recorder", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued, compact the open segment to Parquet, stop the thread (if it ran)."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        else:
            self._drain()
            self._close_segment()

    def flush(self) -> None:
        """Write what is queued now, on the caller's thread (when the writer thread is not running)."""
        self._drain()

    @property
    def backlog(self) -> int:
        return len(self._rows)

    # ---------------------------------------------------------------- writer thread

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.batch_seconds)
            self._wake.clear()
            self._drain()
        self._drain()
        self._close_segment()

    def _drain(self) -> None:
        rows = self._rows
        if not rows or self.failed:
            return
        if len(rows) > self.max_backlog:
            self._fail(f"tick recording stopped: {len(rows)} ticks waiting, the disk is not keeping up")
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
                stop = min(taken, start + step)
                self._write(to_batch(rows[start:stop], self._codes, refusals=check))
        except Exception as exc:  # any failure stops recording, never trading
            self._fail(f"tick recording stopped: {type(exc).__name__}: {exc}")
            return
        finally:
            del rows[:taken]

    def _write(self, batch: pa.RecordBatch) -> None:
        column = batch.column(0)  # read through its buffer: Array.to_numpy imports pandas too
        ts = np.frombuffer(column.buffers()[1], np.float64, len(column), column.offset * 8)
        count = len(ts)
        start = 0
        while start < count:
            first_ts = float(ts[start])
            if self._segment is None or first_ts >= self._segment_day_end or first_ts < self._segment_day_end - 86400:
                self._close_segment()
                self._segment_day_end = day_end(first_ts)
                path = day_folder(self.folder, trading_day(first_ts)) / f"{self.session}{STREAM_SUFFIX}"
                self._segment = self._segment_factory(path)
            limit = self._segment_day_end
            if ts[-1] < limit:  # the common case: the rest of the batch belongs to this day
                end = count
            else:  # the first tick stays here even when the clock stepped back a day
                later = np.flatnonzero(ts[start + 1:] >= limit)
                end = start + 1 + int(later[0]) if len(later) else count
            self._segment.write(batch if start == 0 and end == count else batch.slice(start, end - start))
            self.rows_written += end - start
            self.batches_written += 1
            start = end

    def _close_segment(self) -> None:
        segment, self._segment = self._segment, None
        if segment is None:
            return
        try:
            segment.close()
        except Exception as exc:
            segment.abandon()
            self._fail(f"tick recording could not close {segment.path.name}: {type(exc).__name__}: {exc}")

    def _fail(self, message: str) -> None:
        if self.failed:
            return
        self.failed = message
        self._rows = deque(maxlen=0)  # type: ignore[assignment]  # the engine keeps appending, to nothing
        self.record = self._rows.append
        segment, self._segment = self._segment, None
        if segment is not None:
            segment.abandon()
        log.error("event=tick_recording_failed error=%s", message)
        if self._on_failure is not None:
            try:
                self._on_failure(message)
            except Exception:
                log.exception("event=tick_recording_alert_failed")
