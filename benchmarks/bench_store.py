"""Store writer benchmark: throughput and change-to-commit delay on a real SQLite file.

    python -m benchmarks.bench_store            # 20 000 changes
    python -m benchmarks.bench_store 50000

Two runs per durability setting (synchronous FULL, the default, and NORMAL):

- burst: ``n_changes`` enqueued as fast as possible, then ``flush()``;
  throughput = changes committed per second.
- paced: ``n_changes // 4`` changes at a steady 2 000 changes/s (an engine busy
  with ticks); delay = time from enqueue to the commit that made it durable
  (median, p99, max); every 100th change is followed by a durable
  ``save_order`` whose round trip is timed (median, p99).

The mix: two of three changes are trade versions (30 trades, trailing-stop
moves), one in three an audit event, every tenth an alert fold.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

from tmtool.clock import ManualClock
from tmtool.domain.models import (
    Alert,
    AlertCategory,
    AlertPriority,
    OrderPurpose,
    OrderRecord,
    OrderState,
    Product,
    Side,
    Trade,
    TradeEvent,
)
from tmtool.storage import SqliteStore

PACED_RATE = 2000.0  # changes per second
TRADES = 30


def _trade(trade_id: int) -> Trade:
    return Trade(id=trade_id, strategy="bench", symbol=f"SYM{trade_id}", exchange="NSE", product=Product.MIS,
                 side=Side.LONG, quantity=10, entry_price=100.0, stop_loss=95.0, trailing_stop=96.0)


class _CommitLog:
    """Records when each change became durable (the writer reports committed counts)."""

    def __init__(self) -> None:
        self.marks: list[tuple[int, float]] = []
        self._lock = threading.Lock()

    def __call__(self, committed: int) -> None:
        now = time.perf_counter()
        with self._lock:
            self.marks.append((committed, now))

    def commit_times(self, n: int) -> list[float]:
        times, index = [], 0
        with self._lock:
            marks = list(self.marks)
        for committed, at in marks:
            while index < min(committed, n):
                times.append(at)
                index += 1
        return times


def _apply_change(store: SqliteStore, trades: list[Trade], alert: Alert, index: int) -> None:
    if index % 10 == 9:
        store.save_alert(replace(alert, count=index, last_ts=float(index)))
    elif index % 3 == 2:
        store.record_event(TradeEvent(trade_id=index % TRADES + 1, ts=float(index), kind="TRAIL", new=str(index)))
    else:
        trade = trades[index % TRADES]
        trade.trailing_stop = 96.0 + index * 0.05
        trade.updated_at = float(index)
        store.save_trade(trade)  # the store takes its own copy


def _run_one(directory: Path, synchronous: str, n_changes: int, paced: bool) -> dict:
    commits = _CommitLog()
    path = directory / f"bench-{synchronous}-{'paced' if paced else 'burst'}.db"
    store = SqliteStore(path, clock=ManualClock(), synchronous=synchronous, backup_on_open=False, on_commit=commits)
    store.start()
    trades = [_trade(trade_id) for trade_id in range(1, TRADES + 1)]
    alert = Alert(id=1, ts=0.0, category=AlertCategory.SYSTEM, priority=AlertPriority.INFO, text="bench", key="bench")
    enqueued: list[float] = []
    durable_ms: list[float] = []
    started = time.perf_counter()
    for index in range(n_changes):
        if paced:
            due = started + index / PACED_RATE
            while time.perf_counter() < due:
                time.sleep(max(0.0, min(0.001, due - time.perf_counter())))
        enqueued.append(time.perf_counter())
        _apply_change(store, trades, alert, index)
        if paced and index % 100 == 99:  # an exit intent made durable before its order would be sent
            order = OrderRecord(f"x-{index}", 1, OrderPurpose.EXIT, "SELL", 10, OrderState.INTENT)
            before = time.perf_counter()
            assert store.save_order(order, durable=True, timeout=5.0), "durable save timed out"
            durable_ms.append((time.perf_counter() - before) * 1000)
            enqueued.append(before)
    n_changes = len(enqueued)
    enqueue_seconds = time.perf_counter() - started
    assert store.flush(timeout=120.0), "flush timed out"
    elapsed = time.perf_counter() - started
    status = store.status()
    store.close()
    delays_ms = sorted((committed - queued) * 1000 for committed, queued in zip(commits.commit_times(n_changes), enqueued))
    result = {
        "changes": n_changes,
        "commits": len(commits.marks),
        "committed": status.committed,
        "seconds": round(elapsed, 3),
        "enqueue_us_per_change": round(enqueue_seconds / n_changes * 1e6, 2),
        "delay_ms_median": round(statistics.median(delays_ms), 2),
        "delay_ms_p99": round(delays_ms[int(len(delays_ms) * 0.99) - 1], 2),
        "delay_ms_max": round(delays_ms[-1], 2),
    }
    if paced:
        durable_ms.sort()
        result["durable_order_ms_median"] = round(statistics.median(durable_ms), 2)
        result["durable_order_ms_p99"] = round(durable_ms[int(len(durable_ms) * 0.99) - 1], 2)
    else:
        result["changes_per_second"] = round(n_changes / elapsed)
    return result


def run(n_changes: int = 20000) -> dict:
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="tmtool-bench-store-") as name:
        directory = Path(name)
        for synchronous in ("FULL", "NORMAL"):
            results[f"{synchronous.lower()}_burst"] = _run_one(directory, synchronous, n_changes, paced=False)
            results[f"{synchronous.lower()}_paced_{int(PACED_RATE)}_per_s"] = _run_one(
                directory, synchronous, max(1, n_changes // 4), paced=True
            )
    return results


if __name__ == "__main__":
    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 20000), indent=2))
