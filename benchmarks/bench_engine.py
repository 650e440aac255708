"""Engine benchmarks on the real stack (simulator over loopback, SQLite file, real client and feed).

    python -m benchmarks.bench_engine                      # both measurements
    python -m benchmarks.bench_engine --ticks 2000000      # a longer throughput run

1. Throughput: 1,000 ACTIVE trades over 200 symbols in 10 strategies (portfolio
   limits on, so every tick also runs the per-strategy P&L gate), driven by a
   seeded random walk through ``engine.process_tick`` on the engine thread —
   the same code path the inbox uses, without the queue.  Reports ticks/s.
2. Tick-to-exit-order latency: one trade at a time, a tick crossing its stop
   is published by ``sim.set_price``; the latency is from just before that call
   to the simulator receiving the ``placeorder`` request (``sim.order_events``
   arrival times, same monotonic clock).  Reports median, p99 and max.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from tests.stack import API_KEY, FAST_SETTINGS, build_engine, running_stack
from tests.util import wait_for
from tmtool.engine.commands import CreateTrade
from tmtool.engine.models import (
    Amount,
    Distance,
    PortfolioRisk,
    Product,
    Side,
    Strategy,
    Tick,
    Trade,
    TradeRisk,
    TradeStatus,
    TrailingSettings,
)
from tmtool.engine.settings import EngineSettings
from tmtool.sim import SimSymbol, Simulator
from tmtool.storage import SqliteStore

SYMBOLS = 200
TRADES_PER_SYMBOL = 5
STRATEGIES = 10
START_PRICE = 1000.0


def _bench_symbols() -> list[SimSymbol]:
    return [SimSymbol(f"BENCH{i:03d}", "NSE", START_PRICE, token=str(90000 + i)) for i in range(SYMBOLS)]


def _seed(db: Path, sim: Simulator) -> None:
    """1,000 ACTIVE trades in the database and the matching positions at the broker."""
    store = SqliteStore(db, backup_on_open=False)
    store.start()
    _, broker, _, _ = build_engine(sim, db.with_name("unused.db"))
    trade_id = 1
    for index in range(SYMBOLS):
        symbol = f"BENCH{index:03d}"
        net = 0
        for slot in range(TRADES_PER_SYMBOL):
            side = Side.LONG if slot % 2 == 0 else Side.SHORT
            net += side.sign * 10
            store.save_trade(
                Trade(
                    id=trade_id, strategy=f"bench{trade_id % STRATEGIES}", symbol=symbol, exchange="NSE",
                    product=Product.MIS, side=side, quantity=10, entry_price=START_PRICE, entry_quantity=10,
                    stop_loss=START_PRICE - side.sign * 200, target=START_PRICE + side.sign * 200,
                    trailing=TrailingSettings(distance=Distance(100)), high_watermark=START_PRICE,
                    low_watermark=START_PRICE, status=TradeStatus.ACTIVE, opened_at=time.time(),
                )
            )
            trade_id += 1
        broker.place_order(strategy="bench", symbol=symbol, exchange="NSE", action="BUY" if net > 0 else "SELL",
                           quantity=abs(net), product="MIS")
    store.flush()
    store.close()
    broker.close()


def _random_walk(count: int, seed: int) -> list[Tick]:
    rng = random.Random(seed)
    prices = [START_PRICE] * SYMBOLS
    ticks = []
    now = time.time()
    for _ in range(count):
        index = rng.randrange(SYMBOLS)
        prices[index] = round(prices[index] * (1.0 + rng.gauss(0.0, 0.0002)), 2)
        ticks.append(Tick("NSE", f"BENCH{index:03d}", prices[index], now))
    return ticks


def throughput(ticks: int = 1_000_000, seed: int = 7) -> dict:
    strategies = [
        Strategy(f"bench{i}", portfolio=PortfolioRisk(stop_loss=Amount(1_000_000), target=Amount(1_000_000)))
        for i in range(STRATEGIES)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        sim = Simulator(api_key=API_KEY, tick_interval=None, symbols=_bench_symbols(), rate_limits=None)
        sim.start()
        try:
            _seed(db, sim)
            store, broker, feed, engine = build_engine(sim, db, strategies=strategies, settings=FAST_SETTINGS)
            store.start()
            engine.start()
            try:
                assert len(engine.snapshot().open_trades) == SYMBOLS * TRADES_PER_SYMBOL
                stream = _random_walk(ticks, seed)
                warm = stream[: len(stream) // 10]

                def drive() -> float:
                    process = engine.process_tick
                    for tick in warm:
                        process(tick)
                    started = time.perf_counter()
                    for tick in stream:
                        process(tick)
                    return time.perf_counter() - started

                elapsed = engine.run_in_engine_thread(drive).result(timeout=600)
                open_after = len(engine.snapshot().open_trades)
            finally:
                engine.stop()
                store.close()
                broker.close()
        finally:
            sim.stop()
    return {
        "trades": SYMBOLS * TRADES_PER_SYMBOL,
        "symbols": SYMBOLS,
        "ticks": ticks,
        "ticks_per_second": round(ticks / elapsed),
        "microseconds_per_tick": round(elapsed / ticks * 1e6, 2),
        "open_trades_after": open_after,
    }


def latency(samples: int = 100) -> dict:
    strategy = Strategy("lat", trade_risk=TradeRisk(stop_loss=Distance(10)))
    symbols = ["RELIANCE", "SBIN", "INFY", "TCS", "HDFCBANK"]
    base = {"RELIANCE": 2500.0, "SBIN": 800.0, "INFY": 1500.0, "TCS": 3500.0, "HDFCBANK": 1650.0}
    latencies: list[float] = []
    settings = EngineSettings(reconcile_interval=30.0, order_status_poll=0.2)
    with tempfile.TemporaryDirectory() as tmp:
        with running_stack(Path(tmp), strategies=(strategy,), settings=settings, sim_kwargs={"rate_limits": None}) as stack:
            for index in range(samples):
                symbol = symbols[index % len(symbols)]
                price = base[symbol]
                stack.sim.set_price("NSE", symbol, price)
                trade_id = stack.create(CreateTrade("lat", symbol, "NSE", Side.LONG, quantity=1))
                stack.wait_status(trade_id, TradeStatus.ACTIVE)
                stack.tick(symbol, price + 0.05)  # subscribed and flowing
                seen = len(stack.sim.order_events)
                started = time.monotonic()
                stack.sim.set_price("NSE", symbol, price - 10.0)
                wait_for(lambda: len(stack.sim.order_events) > seen, 10, interval=0.0005, what="exit order")
                latencies.append(stack.sim.order_events[seen][0] - started)
                stack.wait_status(trade_id, TradeStatus.CLOSED)
    latencies.sort()
    return {
        "samples": samples,
        "median_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 3),
        "max_ms": round(latencies[-1] * 1000, 3),
    }


def run(ticks: int = 1_000_000, samples: int = 100) -> dict:
    return {"throughput": throughput(ticks), "tick_to_exit_order": latency(samples)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=100)
    options = parser.parse_args()
    print(json.dumps(run(options.ticks, options.samples), indent=2))
