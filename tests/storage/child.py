"""Child processes for the storage tests: ``python -m tests.storage.child <scenario> <db path>``.

Each scenario prints one line per fact the parent checks, flushed at once.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
from pathlib import Path

from tmtool.clock import ManualClock
from tmtool.storage import SqliteStore

from tmtool.domain.models import OrderState

from tests.storage.samples import full_event, full_order, full_trade
from tests.util import wait_for

TRADES_IN_BURST = 7
EVENT_EVERY = 3
ORDER_EVERY = 10


def burst_change(store: SqliteStore, index: int) -> None:
    """Change number ``index`` of the crash burst: an event every third change, else a trade version."""
    if index % EVENT_EVERY == 0:
        store.record_event(full_event(trade_id=1000, ts=float(index), kind="TICK"))
    else:
        store.save_trade(full_trade(index % TRADES_IN_BURST + 1, note=str(index), updated_at=float(index)))


def crash_burst(path: Path) -> None:
    """Write changes without pause; after every 40th, flush and acknowledge it as durable."""
    store = SqliteStore(path, clock=ManualClock(), commit_interval=0.002, backup_on_open=False)
    store.start()
    print("ready", flush=True)
    index = 0
    while True:
        index += 1
        burst_change(store, index)
        if index % 40 == 0:
            if store.flush(timeout=10.0):
                print(f"durable {index}", flush=True)


def crash_durable(path: Path) -> None:
    """Like ``crash_burst``, but every tenth change is an exit intent saved durably (committed on this
    thread when it can, while the writer commits the rest); acknowledge each one that returned True."""
    store = SqliteStore(path, clock=ManualClock(), commit_interval=0.002, backup_on_open=False)
    store.start()
    print("ready", flush=True)
    index = 0
    while True:
        index += 1
        if index % ORDER_EVERY == 0:
            if store.save_order(full_order(f"x-{index}", OrderState.INTENT), durable=True, timeout=10.0):
                print(f"durable {index}", flush=True)
        else:
            burst_change(store, index)


def hold_lock(path: Path) -> None:
    store = SqliteStore(path, clock=ManualClock(), backup_on_open=False)
    store.open()
    print(f"locked {os.getpid()}", flush=True)
    sys.stdin.readline()  # hold the lock until the parent closes our stdin or kills us
    store.close()


def disk_full(path: Path) -> None:
    """Fill the file-size limit, watch the store go memory-only, lift the limit, watch it replay."""
    store = SqliteStore(path, clock=ManualClock(), commit_interval=0.0, write_timeout=0.2,
                        retry_backoff_max=0.05, backup_on_open=False)
    store.start()
    store.save_trade(full_trade(1))
    assert store.flush()
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    largest = max(os.path.getsize(p) for p in (path, Path(f"{path}-wal")) if p.exists())
    resource.setrlimit(resource.RLIMIT_FSIZE, (largest + 64 * 1024, hard))
    big_note = "x" * 3000
    saved = 0
    for index in range(1, 2001):
        store.save_trade(full_trade(index % 50 + 1, note=f"{index} {big_note}"))
        store.record_event(full_event(trade_id=index % 50 + 1, ts=float(index)))
        saved = index
        if index % 10 == 0 and store.status().state == "MEMORY_ONLY":
            break
    wait_for(lambda: store.status().state == "MEMORY_ONLY", timeout=30.0, what="the write failure")
    failing = store.status()
    print(json.dumps({"phase": "failing", "state": failing.state, "pending": failing.pending,
                      "error": failing.last_error, "saved": saved}), flush=True)
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
    wait_for(lambda: store.status().pending == 0 and store.status().state == "OK", timeout=30.0)
    loaded = store.load()
    notes = {trade.id: trade.note.split()[0] for trade in loaded.open_trades}
    events = sum(len(store.trade_events(trade_id)) for trade_id in range(1, 51))
    print(json.dumps({"phase": "recovered", "state": store.status().state, "notes": notes,
                      "events": events}), flush=True)
    store.close()


SCENARIOS = {"crash-burst": crash_burst, "crash-durable": crash_durable, "hold-lock": hold_lock, "disk-full": disk_full}

if __name__ == "__main__":
    SCENARIOS[sys.argv[1]](Path(sys.argv[2]))
