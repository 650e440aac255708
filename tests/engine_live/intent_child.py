"""A child process for the intent-journal crash test: the real stack against the parent's simulator.

    python -m tests.engine_live.intent_child --rest URL --ws URL --db PATH enter|resume

The API key comes from the environment (TMTOOL_TEST_API_KEY).

``enter``: a store whose writer commits only when asked (commit interval of an
hour); opens one LONG trade of ``QUANTITY`` RELIANCE with a stop ``STOP_POINTS``
below the entry, commits everything once it is ACTIVE, prints ``READY <trade
id>``, then monitors until killed: an exit it sends after that is durable only
in the intent journal.

``resume``: starts from the database (and the journal the killed run left),
waits until no trade is open, prints ``DONE {trade id: status}`` and stops
cleanly.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

from tmtool.domain.commands import Accepted, CreateTrade, SaveStrategy
from tmtool.domain.models import Distance, Side, Strategy, TradeRisk, TradeStatus
from tmtool.storage import SqliteStore

from tests.engine_live.crash_child import start_engine

SYMBOL = "RELIANCE"
QUANTITY = 10
STOP_POINTS = 15
STRATEGY = "journal"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rest", required=True)
    parser.add_argument("--ws", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("phase", choices=("enter", "resume"))
    args = parser.parse_args()
    api_key = os.environ["TMTOOL_TEST_API_KEY"]

    commit_interval = 3600.0 if args.phase == "enter" else 0.02
    engine, store, broker = start_engine(args.rest, args.ws, api_key, Path(args.db), commit_interval=commit_interval)

    if args.phase == "enter":
        engine.submit(SaveStrategy(Strategy(STRATEGY, trade_risk=TradeRisk(stop_loss=Distance(STOP_POINTS))))).result(10)
        result = engine.submit(CreateTrade(STRATEGY, SYMBOL, "NSE", Side.LONG, quantity=QUANTITY)).result(10)
        if not isinstance(result, Accepted):
            print(f"FAILED {result}", flush=True)
            return 1
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            view = engine.snapshot().trade(result.trade_id)
            if view is not None and view.status is TradeStatus.ACTIVE:
                break
            time.sleep(0.01)  # ok: polling the published snapshot within a deadline
        if not store.flush(timeout=10.0):
            print("FAILED flush", flush=True)
            return 1
        print(f"READY {result.trade_id}", flush=True)
        threading.Event().wait()  # monitor until killed
        return 0

    deadline = time.monotonic() + 20
    while engine.snapshot().open_trades and time.monotonic() < deadline:
        time.sleep(0.01)  # ok: polling the published snapshot within a deadline
    engine.stop()
    store.close()
    print(f"DONE {json.dumps(_statuses(Path(args.db)))}", flush=True)
    broker.close()
    return 0


def _statuses(db: Path) -> dict[int, str]:
    store = SqliteStore(db, backup_on_open=False)
    store.open()
    try:
        trades = [*store.load().open_trades, *store.closed_trades()]
        return {trade.id: trade.status.value for trade in trades}
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(main())
