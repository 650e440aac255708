"""Shared pieces of the benchmarks: seeded trade books, a paced tick pump, percentiles, memory.

Everything here drives the real parts (the SQLite store, the simulator over
loopback, the OpenAlgo client); nothing is mocked.
"""

from __future__ import annotations

import math
import random
import threading
import time
from pathlib import Path

from tmtool.domain.models import (
    Distance,
    Product,
    Side,
    Trade,
    TradeStatus,
    TrailingSettings,
)
from tmtool.openalgo.client import OpenAlgoClient
from tmtool.sim import SimSymbol, Simulator
from tmtool.storage import SqliteStore

START_PRICE = 1000.0
STOP_DISTANCE = 200.0  # far from the walk, so the measured trades stay open
TRAILING_DISTANCE = 100.0


def bench_symbols(count: int, prefix: str = "BENCH", first_token: int = 90000) -> list[SimSymbol]:
    """``count`` simulator instruments ``<prefix>000``... priced at ``START_PRICE``."""
    return [SimSymbol(f"{prefix}{i:03d}", "NSE", START_PRICE, token=str(first_token + i)) for i in range(count)]


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list (``fraction`` = 0.99 for p99)."""
    if not sorted_values:
        raise ValueError("percentile of an empty list")
    rank = max(1, min(len(sorted_values), math.ceil(fraction * len(sorted_values))))
    return sorted_values[rank - 1]


def seed_active_trades(
    db: Path,
    rest_url: str,
    api_key: str,
    trades: int,
    symbols: list[str],
    strategies: int = 10,
) -> None:
    """Write ``trades`` ACTIVE trades (stop, target and trailing on each) spread over ``symbols``
    with the real store, and open the matching net positions at the simulator (its REST API
    at ``rest_url``), so the
    engine's start-up reconciliation finds every trade covered."""
    store = SqliteStore(db, backup_on_open=False)
    store.start()
    net: dict[str, int] = {}
    now = time.time()
    try:
        for index in range(trades):
            trade_id = index + 1
            symbol = symbols[index % len(symbols)]
            side = Side.LONG if (index // len(symbols)) % 2 == 0 else Side.SHORT
            net[symbol] = net.get(symbol, 0) + side.sign * 10
            store.save_trade(
                Trade(
                    id=trade_id, strategy=f"bench{trade_id % strategies}", symbol=symbol, exchange="NSE",
                    product=Product.MIS, side=side, quantity=10, entry_price=START_PRICE, entry_quantity=10,
                    stop_loss=START_PRICE - side.sign * STOP_DISTANCE, target=START_PRICE + side.sign * STOP_DISTANCE,
                    trailing=TrailingSettings(distance=Distance(TRAILING_DISTANCE)), high_watermark=START_PRICE,
                    low_watermark=START_PRICE, status=TradeStatus.ACTIVE, opened_at=now,
                )
            )
        if not store.flush(timeout=120.0):
            raise RuntimeError("the store did not commit the seeded trades within 120 s")
    finally:
        store.close()
    broker = OpenAlgoClient(rest_url, api_key, timeout=5.0)
    try:
        for symbol, quantity in net.items():
            if quantity:
                broker.place_order(strategy="bench", symbol=symbol, exchange="NSE",
                                   action="BUY" if quantity > 0 else "SELL", quantity=abs(quantity), product="MIS")
    finally:
        broker.close()


class TickPump(threading.Thread):
    """Moves simulator prices at about ``rate`` ticks per second: a seeded walk inside a narrow
    band around ``START_PRICE`` (no stop or target is reached), published in small batches
    every ``interval`` seconds so the pump itself costs little."""

    def __init__(self, sim: Simulator, symbols: list[str], rate: float, seed: int = 11, interval: float = 0.01) -> None:
        super().__init__(name="bench-tick-pump", daemon=True)
        self.sim, self.symbols, self.rate, self.interval = sim, symbols, rate, interval
        self.random = random.Random(seed)
        self.halt = threading.Event()
        self.sent = 0
        self.started_at = 0.0
        self.stopped_at = 0.0

    def run(self) -> None:
        prices = {symbol: START_PRICE for symbol in self.symbols}
        low, high = START_PRICE * 0.996, START_PRICE * 1.004
        index = 0
        self.started_at = time.perf_counter()
        set_price = self.sim.set_price
        while not self.halt.wait(self.interval):
            due = int((time.perf_counter() - self.started_at) * self.rate) - self.sent
            for _ in range(min(due, int(self.rate))):  # never more than a second's worth at once
                symbol = self.symbols[index % len(self.symbols)]
                index += 1
                price = min(high, max(low, round(prices[symbol] + self.random.choice((-0.05, 0.05)), 2)))
                prices[symbol] = price
                set_price("NSE", symbol, price)
                self.sent += 1
        self.stopped_at = time.perf_counter()

    def stop(self) -> float:
        """Stop and return the ticks per second actually published."""
        self.halt.set()
        self.join()
        return self.sent / max(1e-9, self.stopped_at - self.started_at)


def resident_memory_mb() -> dict[str, float]:
    """This process's resident size now (VmRSS) and at its peak (VmHWM), in MB."""
    values: dict[str, float] = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0]) / 1024.0
    return {"rss_mb": round(values["VmRSS"], 1), "peak_rss_mb": round(values["VmHWM"], 1)}
