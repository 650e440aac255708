"""Kill the engine with SIGKILL at random moments, restart it, and check nothing went wrong.

A child process runs the real stack (tests/engine_live/crash_child.py) against a
simulator in this process; this process drives prices and kills the child.
Every restart opens a fresh trade on each symbol whose last trade closed, so
kills land before, during and after exits.  After every kill: no trade lost,
no entry or exit sent twice, no position reversed against its trade, and no
trailing stop looser than before the kill.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.engine_live.crash_child import QUANTITY, SYMBOLS
from tests.util import wait_for
from tmtool.domain.models import Side, TradeStatus
from tmtool.sim import Simulator
from tmtool.storage import SqliteStore

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "crash-test-key"
CYCLES = 20
START_PRICES = {"RELIANCE": 2500.0, "SBIN": 800.0, "INFY": 1500.0, "TCS": 3500.0}


class Child:
    def __init__(self, sim: Simulator, db: Path, *flags: str) -> None:
        env = {**os.environ, "TMTOOL_TEST_API_KEY": API_KEY, "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.engine_live.crash_child", "--rest", sim.rest_url, "--ws", sim.ws_url, "--db", str(db), *flags],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    def read_line(self, prefix: str) -> str:
        line = self.process.stdout.readline().strip()  # blocks until the child prints (or dies: empty line)
        assert line.startswith(prefix), f"child said {line!r}, expected {prefix}"
        return line[len(prefix):].strip()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.process.stdout.close()


class Ledger:
    """What the parent knows of the trades the child opened: trade id -> (symbol, strategy)."""

    def __init__(self) -> None:
        self.trades: dict[int, tuple[str, str]] = {}
        self.committed_trailing: dict[int, float | None] = {}

    def add(self, opened: dict[str, list[str]]) -> None:
        for trade_id, (symbol, strategy) in opened.items():
            self.trades[int(trade_id)] = (symbol, strategy)

    def orders(self, sim: Simulator, trade_id: int, action: str) -> list[dict]:
        symbol, strategy = self.trades[trade_id]
        return [o for o in sim.orders() if o["symbol"] == symbol and o["strategy"] == strategy and o["action"] == action]

    def check_broker(self, sim: Simulator) -> None:
        for trade_id, (symbol, _) in self.trades.items():
            side = SYMBOLS[symbol]
            entries = [o for o in self.orders(sim, trade_id, side.entry_action) if o["status"] != "rejected"]
            # 0 when the broker refused it (e.g. its order rate limit right after a restart): the trade is CANCELLED.
            assert len(entries) <= 1, f"trade {trade_id}: entry sent {len(entries)} times"
            exits = self.orders(sim, trade_id, side.exit_action)
            live = [o for o in exits if o["status"] != "rejected"]
            assert len(live) <= 1, f"trade {trade_id}: exit sent twice: {live}"
            assert sum(o["filled_quantity"] for o in exits) <= QUANTITY, f"trade {trade_id}: exits overshoot"
        positions = sim.positions()
        for symbol, side in SYMBOLS.items():
            net = positions.get((symbol, "NSE", "MIS"), 0)
            assert net * side.sign >= 0, f"{symbol}: position {net} reversed against a {side.value} trade"
            assert abs(net) <= QUANTITY, f"{symbol}: position {net} larger than one trade"

    def check_store(self, db: Path, cycle: int) -> dict:
        stored = _stored_trades(db)
        lost = set(self.trades) - set(stored)
        assert not lost, f"cycle {cycle}: trades lost: {lost}"
        for trade_id, (symbol, _) in self.trades.items():
            trade = stored[trade_id]
            if not trade.status.is_open:
                continue
            before = self.committed_trailing.get(trade_id)
            assert not _looser(SYMBOLS[symbol], trade.trailing_stop, before), (
                f"cycle {cycle}: trade {trade_id} trailing stop {trade.trailing_stop} looser than {before}"
            )
            self.committed_trailing[trade_id] = trade.trailing_stop
        return stored


def _stored_trades(db: Path) -> dict[int, object]:
    store = SqliteStore(db, backup_on_open=False)
    store.open()
    try:
        trades = {t.id: t for t in store.load().open_trades}
        trades.update({t.id: t for t in store.closed_trades()})
        return trades
    finally:
        store.close()


def _looser(side: Side, now: float | None, before: float | None) -> bool:
    if before is None:
        return False
    if now is None:
        return True
    return now < before if side is Side.LONG else now > before


def _drive(sim: Simulator, rng: random.Random, prices: dict[str, float], seconds: float) -> None:
    """A random walk on every symbol, with the occasional lurch that may cross a stop."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        symbol = rng.choice(list(SYMBOLS))
        step = rng.choice((-1.0, -0.5, 0.5, 1.0))
        if rng.random() < 0.01:
            step = -SYMBOLS[symbol].sign * rng.uniform(4, 10)
        prices[symbol] = round(max(1.0, prices[symbol] + step), 1)
        sim.set_price("NSE", symbol, prices[symbol])
        time.sleep(0.002)  # ok: paces the price stream (what is tested is the kill, not this rate)


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing_and_never_exits_twice(tmp_path):
    rng = random.Random(20261121)
    db = tmp_path / "crash.db"
    prices = dict(START_PRICES)
    ledger = Ledger()
    with Simulator(api_key=API_KEY, tick_interval=None, seed=11) as sim:
        for symbol, price in prices.items():
            sim.set_price("NSE", symbol, price)
        for cycle in range(CYCLES):
            child = Child(sim, db, "--open", "--cycle", str(cycle))
            ledger.add(json.loads(child.read_line("READY")))
            _drive(sim, rng, prices, rng.uniform(0.05, 0.6))
            child.kill()
            ledger.check_broker(sim)
            ledger.check_store(db, cycle)

        child = Child(sim, db, "--finish")
        child.read_line("READY")
        assert child.read_line("DONE") == ""
        child.process.wait(10)

        wait_for(lambda: sim.positions() == {}, 5, what="every position flat")
        ledger.check_broker(sim)
        stored = ledger.check_store(db, CYCLES)
        for trade_id in ledger.trades:
            side = SYMBOLS[ledger.trades[trade_id][0]]
            entered = sum(o["filled_quantity"] for o in ledger.orders(sim, trade_id, side.entry_action))
            exited = sum(o["filled_quantity"] for o in ledger.orders(sim, trade_id, side.exit_action))
            assert exited == entered, f"trade {trade_id}: exited {exited} of {entered}"
            expected = TradeStatus.CLOSED if entered else TradeStatus.CANCELLED
            assert stored[trade_id].status is expected, f"trade {trade_id}: {stored[trade_id].status}"
        assert len(ledger.trades) > 2 * len(SYMBOLS), "too few trades to exercise the kills"
