"""The recording's files, and the process that writes them.

``tmtool.replay.recorder`` keeps the engine's side of recording free of numpy
and pyarrow: its writer thread packs each batch of queued ticks into plain
column bytes and hands them, over a pipe, to a process of its own running
``python -m tmtool.replay.segments FOLDER SESSION``.  That process holds
pyarrow (about 40 MB and 0.15 s of imports the trading process no longer
pays), writes the day's segments and compacts them.  The trading process and
its interpreter lock never touch Arrow.

Files, in ``folder/YYYY-MM-DD/`` (the Asia/Kolkata trading day of each tick):

* ``<session>.arrows`` — the open segment, an Arrow IPC stream: each batch is a
  self-contained message, so a killed writer leaves a file readable up to its
  last complete batch;
* ``<session>.parquet`` — a closed segment, zstd-compressed Parquet, written
  when the session stops, the day rolls, or (for a crashed session's stream)
  when the next recording process starts.  Traders' tools (pandas, polars,
  DuckDB) read these directly.

Columns: ``ts`` (epoch seconds, float64), ``exchange``, ``symbol``
(dictionary-encoded strings), ``price`` (float64), ``accepted`` (bool).

The pipe's protocol (one machine, so native byte order): each frame is a kind
byte, a little-endian ``uint32`` payload length, and the payload:

* ``K`` an instrument's code: ``int32`` code, then ``exchange NUL symbol`` in UTF-8;
* ``B`` a batch: ``uint32`` n, then n ``float64`` ts, n ``float64`` prices,
  n ``int32`` instrument codes, n bytes of accepted flags (0 or 1);
* ``S`` a sync: ``uint32`` number; answered once everything before it is written.

End of input (the session stopped, or the trading process died, even by
SIGKILL) closes the open segment and compacts it.  The process answers on its
stdout, one line each: ``ok NUMBER ROWS CPU`` for a sync, ``log LEVEL TEXT`` for
something to log, ``failed TEXT`` when it cannot write (it then exits), and
``closed ROWS CPU`` when it is done.  It ignores SIGINT: a Ctrl+C in the
trader's terminal stops tmtool, which then stops the recording in order.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO, Callable, TextIO

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from tmtool.domain.calendar import IST, trading_day
from tmtool.replay.recorder import FRAME_CODE, FRAME_COUNT, FRAME_HEADER, PARQUET_SUFFIX, STREAM_SUFFIX, day_folder

SCHEMA = pa.schema(
    [
        ("ts", pa.float64()),
        ("exchange", pa.dictionary(pa.int32(), pa.string())),
        ("symbol", pa.dictionary(pa.int32(), pa.string())),
        ("price", pa.float64()),
        ("accepted", pa.bool_()),
    ]
)


def day_end(ts: float) -> float:
    """Epoch seconds at which the Asia/Kolkata trading day of ``ts`` ends."""
    day = trading_day(ts)
    midnight = datetime(day.year, day.month, day.day, tzinfo=IST) + timedelta(days=1)
    return midnight.timestamp()


# Arrays are built from numpy buffers with ``Array.from_buffers``, never with ``pa.array``: that
# one imports pandas whenever it is installed (to check whether it was handed a pandas object),
# which costs a first batch ~0.3 s of interpreter time and the process ~40 MB.


def _numeric(values: np.ndarray, arrow_type: pa.DataType) -> pa.Array:
    values = np.ascontiguousarray(values)
    return pa.Array.from_buffers(arrow_type, len(values), [None, pa.py_buffer(values)])


def _strings(values: list[str]) -> pa.Array:
    encoded = [value.encode() for value in values]
    offsets = np.zeros(len(encoded) + 1, np.int32)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    return pa.Array.from_buffers(pa.string(), len(encoded), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))])


class Instruments:
    """The exchange and symbol dictionaries behind the instrument codes the recorder sends.

    The recorder gives each instrument (exchange, symbol) a code the first time it sees it; a batch
    carries one code per tick, and both dictionary columns' indices are taken from it with numpy.
    The dictionaries only grow, and their Arrow value arrays are rebuilt only when they do."""

    def __init__(self) -> None:
        self.exchanges: dict[str, int] = {}
        self.symbols: dict[str, int] = {}
        self._exchange_of = np.empty(0, np.int32)  # instrument code -> exchange code
        self._symbol_of = np.empty(0, np.int32)  # instrument code -> symbol code
        self._exchange_values = _strings([])
        self._symbol_values = _strings([])

    def learn(self, code: int, exchange: str, symbol: str) -> None:
        if code != len(self._exchange_of):
            raise ValueError(f"instrument code {code} out of order (expected {len(self._exchange_of)})")
        if exchange not in self.exchanges:
            self.exchanges[exchange] = len(self.exchanges)
            self._exchange_values = _strings(list(self.exchanges))
        if symbol not in self.symbols:
            self.symbols[symbol] = len(self.symbols)
            self._symbol_values = _strings(list(self.symbols))
        self._exchange_of = np.append(self._exchange_of, np.int32(self.exchanges[exchange]))
        self._symbol_of = np.append(self._symbol_of, np.int32(self.symbols[symbol]))

    def columns(self, codes: np.ndarray) -> tuple[pa.DictionaryArray, pa.DictionaryArray]:
        """The exchange and symbol columns of ticks with these instrument codes."""
        if len(codes) and (codes.min() < 0 or codes.max() >= len(self._exchange_of)):
            raise ValueError("a batch names an instrument it was not told of")
        return (
            pa.DictionaryArray.from_arrays(_numeric(self._exchange_of[codes], pa.int32()), self._exchange_values),
            pa.DictionaryArray.from_arrays(_numeric(self._symbol_of[codes], pa.int32()), self._symbol_values),
        )


def batch_from_frame(payload: bytes | memoryview, instruments: Instruments) -> pa.RecordBatch:
    """The Arrow batch a ``B`` frame's payload carries."""
    (count,) = FRAME_COUNT.unpack_from(payload, 0)
    if len(payload) != FRAME_COUNT.size + count * 21:
        raise ValueError(f"a batch of {count} ticks is {len(payload)} bytes, not {FRAME_COUNT.size + count * 21}")
    offset = FRAME_COUNT.size
    ts = np.frombuffer(payload, np.float64, count, offset)
    price = np.frombuffer(payload, np.float64, count, offset + 8 * count)
    codes = np.frombuffer(payload, np.int32, count, offset + 16 * count)
    flags = np.frombuffer(payload, np.uint8, count, offset + 20 * count)
    exchange, symbol = instruments.columns(codes)
    accepted = pa.Array.from_buffers(
        pa.bool_(), count, [None, pa.py_buffer(np.packbits(flags.astype(np.bool_), bitorder="little"))]
    )  # Arrow packs booleans in bits, least significant first
    return pa.RecordBatch.from_arrays(
        [_numeric(ts, pa.float64()), exchange, symbol, _numeric(price, pa.float64()), accepted], schema=SCHEMA
    )


def read_stream(path: Path, on_truncated: Callable[[str], None] | None = None) -> pa.Table:
    """Every complete batch of an Arrow stream segment (a killed writer's last partial batch is dropped)."""
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
        if on_truncated is not None:
            on_truncated(f"{path} read up to its last whole batch ({len(batches)} batches): {exc}")
    return pa.Table.from_batches(batches, schema=SCHEMA)


def compact(stream_path: Path, on_truncated: Callable[[str], None] | None = None) -> Path:
    """Rewrite a closed stream segment as Parquet (durably) and remove the stream; returns the Parquet path."""
    table = read_stream(stream_path, on_truncated)
    target = stream_path.with_suffix(PARQUET_SUFFIX)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    if table.num_rows:
        pq.write_table(table, str(partial), compression="zstd", row_group_size=1 << 20)
        with open(partial, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(partial, target)
    stream_path.unlink()
    return target


def compact_leftovers(folder: Path, log: Callable[[str, str], None]) -> int:
    """Compact every stream segment left by a session that did not stop cleanly; returns how many."""
    done = 0
    for stream in sorted(Path(folder).glob(f"*/*{STREAM_SUFFIX}")):
        try:
            compact(stream, lambda text: log("INFO", f"event=tick_stream_truncated {text}"))
            done += 1
        except (OSError, pa.ArrowException) as exc:
            log("WARNING", f"event=tick_compact_failed path={stream} error={exc}")
    return done


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


class DayWriter:
    """Writes batches into the segment of each tick's trading day, rolling at Asia/Kolkata midnight."""

    def __init__(self, folder: Path, session: str) -> None:
        self.folder = Path(folder)
        self.session = session
        self._segment: SegmentWriter | None = None
        self._day_end = 0.0
        self.rows_written = 0

    def write(self, batch: pa.RecordBatch) -> None:
        column = batch.column(0)  # read through its buffer: Array.to_numpy imports pandas too
        ts = np.frombuffer(column.buffers()[1], np.float64, len(column), column.offset * 8)
        count = len(ts)
        start = 0
        while start < count:
            first_ts = float(ts[start])
            if self._segment is None or first_ts >= self._day_end or first_ts < self._day_end - 86400:
                self.close()
                self._day_end = day_end(first_ts)
                path = day_folder(self.folder, trading_day(first_ts)) / f"{self.session}{STREAM_SUFFIX}"
                self._segment = SegmentWriter(path)
            if ts[-1] < self._day_end:  # the common case: the rest of the batch belongs to this day
                end = count
            else:  # the first tick stays here even when the clock stepped back a day
                later = np.flatnonzero(ts[start + 1:] >= self._day_end)
                end = start + 1 + int(later[0]) if len(later) else count
            self._segment.write(batch if start == 0 and end == count else batch.slice(start, end - start))
            self.rows_written += end - start
            start = end

    def close(self) -> None:
        segment, self._segment = self._segment, None
        if segment is not None:
            try:
                segment.close()
            except BaseException:
                segment.abandon()
                raise

    def abandon(self) -> None:
        segment, self._segment = self._segment, None
        if segment is not None:
            segment.abandon()


def _read_exact(source: BinaryIO, size: int) -> bytes | None:
    data = source.read(size)
    if len(data) < size:
        return None  # end of input (a partial frame at the end is the dying writer's, and is dropped)
    return data


def serve(folder: Path, session: str, source: BinaryIO, answers: TextIO) -> int:
    """Write what the recorder sends until its end; returns the process's exit status."""

    def say(line: str) -> None:
        answers.write(line.replace("\n", " ") + "\n")
        answers.flush()

    def log(level: str, text: str) -> None:
        say(f"log {level} {text}")

    instruments = Instruments()
    days = DayWriter(folder, session)
    try:
        compact_leftovers(folder, log)
        while True:
            header = _read_exact(source, FRAME_HEADER.size)
            if header is None:
                break
            kind, size = FRAME_HEADER.unpack(header)
            payload = _read_exact(source, size)
            if payload is None:
                break
            if kind == b"B":
                days.write(batch_from_frame(payload, instruments))
            elif kind == b"K":
                (code,) = FRAME_CODE.unpack_from(payload, 0)
                exchange, _, symbol = payload[FRAME_CODE.size:].decode().partition("\0")
                instruments.learn(code, exchange, symbol)
            elif kind == b"S":
                (number,) = FRAME_COUNT.unpack(payload)
                say(f"ok {number} {days.rows_written} {time.process_time():.6f}")
            else:
                raise ValueError(f"unknown frame kind {kind!r}")
        days.close()
    except Exception as exc:  # noqa: BLE001 - any failure ends recording, and is told, never raised at the desk
        days.abandon()
        say(f"failed {type(exc).__name__}: {exc}")
        return 1
    say(f"closed {days.rows_written} {time.process_time():.6f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # tmtool stops recording in order on a Ctrl+C
    folder, session = (argv if argv is not None else sys.argv[1:])
    return serve(Path(folder), session, sys.stdin.buffer, sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
