"""Recording format, replay speed and sweep speed.

    python -m benchmarks.bench_replay                    # 1,000,000 ticks
    python -m benchmarks.bench_replay --ticks 200000

* **format**: the same seeded 1,000,000 ticks (20 symbols, 5% refused) written
  in batches of 50,000 the way the recorder writes them, as
  (a) an Arrow stream compacted to zstd Parquet (what tmtool ships) and
  (b) an append-only SQLite table in WAL mode (executemany per batch, one
  commit per batch); reports the writer's CPU seconds per million ticks, bytes
  per million ticks and the CPU time to read the day back into columns (CPU
  time, not wall time: this machine is shared).
* **replay**: 100 trades (stop, target, trailing, breakeven, a partial target;
  5 strategies with portfolio stops) entered through the day over those ticks,
  replayed as run; then a sweep of 10 trailing distances.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import tempfile
import threading
import time
from collections import deque
from datetime import datetime
from pathlib import Path

import numpy as np

from tmtool.domain.calendar import IST, trading_day
from tmtool.domain.models import (
    AccountLimits,
    Amount,
    Distance,
    PartialLevel,
    PortfolioRisk,
    Product,
    Side,
    Strategy,
    Tick,
    Trade,
    TradeStatus,
    TrailingSettings,
)
from tmtool.replay.reader import read_day
from tmtool.replay.recorder import ParquetTickRecorder, Refused
from tmtool.replay.replay import replay
from tmtool.replay.settings import parse_change
from tmtool.replay.trades import LiveTrade

DAY_START = datetime(2026, 12, 7, 9, 15, tzinfo=IST).timestamp()
SESSION_SECONDS = 6.25 * 3600
SYMBOLS = 20
BATCH = 50_000


def seeded_ticks(count: int, seed: int = 11) -> tuple[list[Tick], list[bool]]:
    rng = random.Random(seed)
    prices = [1000.0] * SYMBOLS
    ticks, accepted = [], []
    step = SESSION_SECONDS / count
    for i in range(count):
        k = rng.randrange(SYMBOLS)
        prices[k] = round(prices[k] * (1.0 + rng.gauss(0.0, 0.0004)) / 0.05) * 0.05
        ticks.append(Tick("NSE", f"SYM{k:02d}", round(prices[k], 2), DAY_START + i * step))
        accepted.append(rng.random() >= 0.05)
    return ticks, accepted


# ---------------------------------------------------------------------- format


class SqliteTickRecorder:
    """The alternative measured against: the same O(1) append, written by a thread to an append-only
    SQLite table (WAL, one transaction per batch).  Benchmark only."""

    def __init__(self, path: Path, batch_seconds: float = 1.0, batch_rows: int = BATCH) -> None:
        self._queue: deque = deque()
        self._path = path
        self._batch_seconds = batch_seconds
        self._batch_rows = batch_rows
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._db: sqlite3.Connection | None = None
        self.rows_written = 0
        self.record = self._queue.append  # the same queue as tmtool's recorder: accepted ticks as themselves

    def refuse(self, tick: Tick) -> None:
        self._queue.append(Refused(tick))

    def _open(self) -> sqlite3.Connection:
        if self._db is None:
            db = self._db = sqlite3.connect(self._path, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("CREATE TABLE IF NOT EXISTS ticks (ts REAL, exchange TEXT, symbol TEXT, price REAL, accepted INTEGER)")
        return self._db

    @property
    def backlog(self) -> int:
        return len(self._queue)

    def flush(self) -> None:
        db = self._open()
        queue = self._queue
        while queue:
            popleft = queue.popleft
            rows = [popleft() for _ in range(min(len(queue), self._batch_rows))]
            with db:
                db.executemany(
                    "INSERT INTO ticks VALUES (?, ?, ?, ?, ?)",
                    [
                        (t.ts, t.exchange, t.symbol, t.price, 1) if t.__class__ is not Refused
                        else (t.tick.ts, t.tick.exchange, t.tick.symbol, t.tick.price, 0)
                        for t in rows
                    ],
                )
            self.rows_written += len(rows)

    def start(self) -> None:
        def run() -> None:
            while not self._stop.wait(self._batch_seconds):
                self.flush()
            self.flush()

        self._thread = threading.Thread(target=run, name="sqlite-tick-recorder", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._db is not None:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()
            self._db = None


def _write_parquet(folder: Path, ticks: list[Tick], accepted: list[bool]) -> float:
    """CPU seconds to write ``ticks`` as the recorder does (the appends excluded: they are the engine's):
    this process's, packing and sending, plus the recording process's, writing and compacting (its
    start-up imports excluded)."""
    recorder = ParquetTickRecorder(folder, session="bench", batch_rows=BATCH)
    if not (recorder.open() and recorder.flush()):
        raise RuntimeError(f"the recording process did not start: {recorder.failed}")
    writer_started = recorder.writer_cpu
    for tick, flag in zip(ticks, accepted):
        (recorder.record if flag else recorder.refuse)(tick)
    started = time.process_time()
    recorder.stop(timeout=600)  # no writer thread ran: sends the queue here; the recording process compacts
    if recorder.failed:
        raise RuntimeError(f"the recorder failed: {recorder.failed}")
    return time.process_time() - started + recorder.writer_cpu - writer_started


def _write_sqlite(path: Path, ticks: list[Tick], accepted: list[bool]) -> float:
    recorder = SqliteTickRecorder(path)
    for tick, flag in zip(ticks, accepted):
        (recorder.record if flag else recorder.refuse)(tick)
    started = time.process_time()
    recorder.flush()
    recorder.stop()
    return time.process_time() - started


def _read_sqlite(path: Path) -> int:
    db = sqlite3.connect(path)
    rows = db.execute("SELECT ts, exchange, symbol, price, accepted FROM ticks ORDER BY rowid").fetchall()
    ts = np.fromiter((r[0] for r in rows), float, len(rows))
    price = np.fromiter((r[3] for r in rows), float, len(rows))
    flags = np.fromiter((r[4] for r in rows), bool, len(rows))
    keys: dict[tuple[str, str], int] = {}
    code = np.fromiter((keys.setdefault((r[1], r[2]), len(keys)) for r in rows), np.int32, len(rows))
    db.close()
    return len(ts) + len(price) + len(flags) + len(code)


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size


def format_comparison(ticks: list[Tick], accepted: list[bool]) -> dict:
    per_million = 1_000_000 / len(ticks)
    with tempfile.TemporaryDirectory(prefix="tmtool-bench-replay-") as tmp:
        folder = Path(tmp) / "parquet"
        parquet_write = _write_parquet(folder, ticks, accepted)
        parquet_bytes = _size(folder)
        started = time.process_time()
        tape = read_day(folder, trading_day(DAY_START))
        parquet_read = time.process_time() - started
        assert len(tape) == len(ticks)
        sqlite_path = Path(tmp) / "ticks.db"
        sqlite_write = _write_sqlite(sqlite_path, ticks, accepted)
        sqlite_bytes = _size(sqlite_path)
        started = time.process_time()
        _read_sqlite(sqlite_path)
        sqlite_read = time.process_time() - started
    return {
        "ticks": len(ticks),
        "parquet": {
            "writer_cpu_seconds_per_million": round(parquet_write * per_million, 3),
            "bytes_per_million": round(parquet_bytes * per_million),
            "read_cpu_seconds_per_million": round(parquet_read * per_million, 3),
        },
        "sqlite": {
            "writer_cpu_seconds_per_million": round(sqlite_write * per_million, 3),
            "bytes_per_million": round(sqlite_bytes * per_million),
            "read_cpu_seconds_per_million": round(sqlite_read * per_million, 3),
        },
    }


# ---------------------------------------------------------------------- replay


def seeded_trades(ticks: list[Tick], count: int = 100, seed: int = 5) -> tuple[list[LiveTrade], dict[str, Strategy]]:
    rng = random.Random(seed)
    strategies = {
        f"s{i}": Strategy(f"s{i}", portfolio=PortfolioRisk(stop_loss=Amount(20_000.0))) for i in range(5)
    }
    trades = []
    span = len(ticks) // (count + 1)
    for n in range(count):
        tick = ticks[(n + 1) * span // 2 + rng.randrange(span // 2)]
        side = Side.LONG if n % 2 else Side.SHORT
        entry = tick.price
        sign = side.sign
        trade = Trade(
            id=n + 1, strategy=f"s{n % 5}", symbol=tick.symbol, exchange="NSE", product=Product.MIS, side=side,
            quantity=20, entry_price=entry, status=TradeStatus.ACTIVE, entry_quantity=20,
            stop_loss=round(entry - sign * 8.0, 2), target=round(entry + sign * 15.0, 2),
            trailing=TrailingSettings(Distance(6.0), activation=Distance(3.0)),
            breakeven_after=Distance(4.0),
            partial_levels=(PartialLevel(round(entry + sign * 7.0, 2), 10),),
            high_watermark=entry, low_watermark=entry, last_price=entry, tick_size=0.05, opened_at=tick.ts,
        )
        trades.append(LiveTrade(trade, tick.ts, (), (), 0.0, None))
    return trades, strategies


def replay_speed(ticks: list[Tick], accepted: list[bool], sweep_values: int = 10) -> dict:
    with tempfile.TemporaryDirectory(prefix="tmtool-bench-replay-") as tmp:
        folder = Path(tmp)
        _write_parquet(folder, ticks, accepted)
        started = time.perf_counter()
        tape = read_day(folder, trading_day(DAY_START))
        read_seconds = time.perf_counter() - started
    trades, strategies = seeded_trades(ticks)
    started = time.perf_counter()
    result = replay(trades, strategies, AccountLimits(), tape)
    replay_seconds = time.perf_counter() - started
    values = [2 + i for i in range(sweep_values)]
    started = time.perf_counter()
    sweep = [
        replay(trades, strategies, AccountLimits(), tape, [parse_change(f"trailing.distance={v}")], label=str(v))
        for v in values
    ]
    sweep_seconds = time.perf_counter() - started
    return {
        "ticks": len(ticks),
        "trades": len(trades),
        "read_seconds": round(read_seconds, 3),
        "replay_seconds": round(replay_seconds, 3),
        "replay_with_read_seconds": round(read_seconds + replay_seconds, 3),
        "ticks_evaluated": result.ticks,
        "exits": sum(len(t.exits) for t in result.trades),
        "sweep_settings": len(values),
        "sweep_seconds": round(sweep_seconds, 3),
        "sweep_pnl": {r.label: round(sum(t.pnl for t in r.trades), 2) for r in sweep},
    }


def run(ticks: int = 1_000_000) -> dict:
    stream, accepted = seeded_ticks(ticks)
    return {"format": format_comparison(stream, accepted), "replay": replay_speed(stream, accepted)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=1_000_000)
    options = parser.parse_args()
    print(json.dumps(run(options.ticks), indent=2))
