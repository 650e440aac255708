"""An exit intent durable only in the intent journal survives SIGKILL: the restart resolves the order that
reached the broker from its evidence and sends no second exit.

A child process (tests/engine_live/intent_child.py) runs the real stack on a SQLite file against a
simulator in this process, with a store writer that commits only when asked: the trade is committed
ACTIVE, then a price below its stop makes the engine send its exit, whose intent reaches the journal
but not the database; the child is killed once the simulator holds the exit order.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.engine_live.intent_child import QUANTITY, STOP_POINTS, STRATEGY, SYMBOL
from tests.util import wait_for
from tmtool.domain.models import OrderPurpose, OrderState
from tmtool.sim import Simulator
from tmtool.storage.intents import intents_path_for, read_journal

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "journal-test-key"
ENTRY_PRICE = 2500.0


def _child(sim: Simulator, db: Path, phase: str) -> subprocess.Popen:
    env = {**os.environ, "TMTOOL_TEST_API_KEY": API_KEY, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.engine_live.intent_child", "--rest", sim.rest_url, "--ws", sim.ws_url,
         "--db", str(db), phase],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )


def _said(child: subprocess.Popen, prefix: str) -> str:
    line = child.stdout.readline().strip()  # blocks until the child prints (or dies: empty line)
    assert line.startswith(prefix), f"child said {line!r}, expected {prefix}"
    return line[len(prefix):].strip()


def _exit_rows_in_database(db: Path, trade_id: int) -> list[tuple[str, str]]:
    conn = sqlite3.connect(db.absolute().as_uri() + "?mode=ro", uri=True)
    try:
        return conn.execute(
            'SELECT "key", "state" FROM "order_ledger" WHERE "trade_id" = ? AND "purpose" = ?',
            (trade_id, OrderPurpose.EXIT.value),
        ).fetchall()
    finally:
        conn.close()


def test_an_exit_intent_only_in_the_journal_is_resolved_after_sigkill_without_a_second_exit(tmp_path):
    db = tmp_path / "journal.db"
    with Simulator(api_key=API_KEY, tick_interval=None, seed=3) as sim:
        sim.set_price("NSE", SYMBOL, ENTRY_PRICE)
        child = _child(sim, db, "enter")
        try:
            trade_id = int(_said(child, "READY"))
            sim.set_price("NSE", SYMBOL, ENTRY_PRICE - STOP_POINTS - 5)  # through the stop
            wait_for(lambda: [o for o in sim.orders() if o["action"] == "SELL"], what="the exit order at the broker")
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(10)
            child.stdout.close()

        # What the kill left: the database never got the exit, the journal has its intent.
        assert _exit_rows_in_database(db, trade_id) == []
        journaled = [i.order for i in read_journal(intents_path_for(db)).intents if i.order.purpose is OrderPurpose.EXIT]
        assert [(o.trade_id, o.state, o.quantity) for o in journaled] == [(trade_id, OrderState.INTENT, QUANTITY)]
        assert sim.positions().get((SYMBOL, "NSE", "MIS"), 0) == 0  # the exit filled at the broker

        child = _child(sim, db, "resume")
        try:
            statuses = json.loads(_said(child, "DONE"))
            assert child.wait(20) == 0
        finally:
            if child.poll() is None:
                child.send_signal(signal.SIGKILL)
                child.wait(10)
            child.stdout.close()

        sells = [o for o in sim.orders() if o["strategy"] == STRATEGY and o["action"] == "SELL"]
        assert [(o["quantity"], o["status"]) for o in sells] == [(QUANTITY, "complete")]  # no second exit
        assert sim.positions().get((SYMBOL, "NSE", "MIS"), 0) == 0
        assert statuses == {str(trade_id): "CLOSED"}
        assert [(key, state) for key, state in _exit_rows_in_database(db, trade_id)] == [
            (journaled[0].key, OrderState.COMPLETE.value)
        ]
