"""A child process for the crash test: the real stack against the parent's simulator.

    python -m tests.engine_live.crash_child --rest URL --ws URL --db PATH --cycle N [--open] [--finish]

The API key comes from the environment (TMTOOL_TEST_API_KEY).  The child
resumes from the database; with ``--open`` it then opens a trade on every
symbol that has none open, each in a strategy of its own (so the parent can
tell their orders apart), and prints ``READY {trade id: [symbol, strategy]}``
once they are active.  Then it monitors until killed.  With ``--finish`` it
exits every trade, waits until none is open, prints ``DONE`` and stops cleanly.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

from tmtool.clock import SystemClock
from tmtool.domain.commands import (
    Accepted,
    CreateTrade,
    ExitAll,
    SaveStrategy,
)
from tmtool.engine.engine import Engine
from tmtool.openalgo.feed import OpenAlgoFeed
from tmtool.domain.models import (
    Distance,
    Side,
    Strategy,
    TradeRisk,
    TradeStatus,
    TrailingSettings,
)
from tmtool.openalgo.client import OpenAlgoClient
from tmtool.engine.settings import EngineSettings
from tmtool.storage import SqliteStore

SYMBOLS = {"RELIANCE": Side.LONG, "SBIN": Side.SHORT, "INFY": Side.LONG, "TCS": Side.SHORT}
QUANTITY = 10
RISK = TradeRisk(stop_loss=Distance(15), trailing=TrailingSettings(distance=Distance(6)))
SETTINGS = EngineSettings(
    reconcile_interval=0.5,
    exit_retry_backoff=0.05,
    order_status_poll=0.05,
    order_update_backstop=0.5,
    ltp_persist_interval=0.5,
    store_check_interval=0.5,
    adopt_fills_interval=5.0,
)


def strategy_for(symbol: str, cycle: int) -> str:
    return f"crash-{symbol.lower()}-{cycle}"


def start_engine(rest: str, ws: str, api_key: str, db: Path, **store_options: object) -> tuple[Engine, SqliteStore, OpenAlgoClient]:
    """The real engine on a real store, client and feed (a crash child's whole stack), started."""
    clock = SystemClock()
    store = SqliteStore(db, clock=clock, backup_on_open=False, **store_options)
    broker = OpenAlgoClient(rest, api_key, timeout=1.0, clock=clock, retry_backoff=0.02, max_retry_wait=0.2)
    feed = OpenAlgoFeed(ws, api_key, broker=broker, clock=clock, stale_after=30.0, poll_after=30.0,
                        poll_silent_after=30.0, poll_near_level_after=30.0, seed=1)
    engine = Engine(store=store, broker=broker, feed=feed, clock=clock, settings=SETTINGS)
    store.start()
    engine.start()
    return engine, store, broker


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rest", required=True)
    parser.add_argument("--ws", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--cycle", type=int, default=0)
    parser.add_argument("--open", action="store_true")
    parser.add_argument("--finish", action="store_true")
    args = parser.parse_args()
    api_key = os.environ["TMTOOL_TEST_API_KEY"]

    engine, store, broker = start_engine(args.rest, args.ws, api_key, Path(args.db))

    opened: dict[int, list[str]] = {}
    if args.open:
        busy = {t.symbol for t in engine.snapshot().open_trades}
        for symbol, side in SYMBOLS.items():
            if symbol in busy:
                continue
            name = strategy_for(symbol, args.cycle)
            engine.submit(SaveStrategy(Strategy(name, trade_risk=RISK))).result(10)
            result = engine.submit(CreateTrade(name, symbol, "NSE", side, quantity=QUANTITY)).result(10)
            if not isinstance(result, Accepted):
                print(f"FAILED {result}", flush=True)
                return 1
            opened[result.trade_id] = [symbol, name]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            views = [engine.snapshot().trade(t) for t in opened]
            if all(v is not None and v.status is not TradeStatus.PENDING_ENTRY for v in views):
                break
            time.sleep(0.01)  # ok: polling the published snapshot within a deadline
    print(f"READY {json.dumps(opened)}", flush=True)

    if args.finish:
        engine.submit(ExitAll()).result(10)
        deadline = time.monotonic() + 20
        while engine.snapshot().open_trades and time.monotonic() < deadline:
            time.sleep(0.01)  # ok: polling the published snapshot within a deadline
        print("DONE" if not engine.snapshot().open_trades else "STUCK", flush=True)
        engine.stop()
        store.close()
        broker.close()
        return 0

    threading.Event().wait()  # monitor until killed
    return 0


if __name__ == "__main__":
    sys.exit(main())
