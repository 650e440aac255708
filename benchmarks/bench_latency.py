"""Tick-to-exit latency under a steady tick load: headless, with the TUI in the same process, and attached.

    python -m benchmarks.bench_latency                           # 200 samples per case
    python -m benchmarks.bench_latency --samples 50 --no-tui --placement separate

The real stack: simulator over loopback, SQLite file, client, feed, engine and
store writer.  200 background trades (stop, target and trailing) sit on 40
symbols whose prices a pump moves at 5,000 ticks/s inside a narrow band, so each
of those ticks reaches the engine and none exits.  Each sample enters one more
trade (stop 10 points away) on one of five separate symbols, waits until it is
ACTIVE and its price flows, then publishes a tick below the stop.  Latency =
from just before the simulator publishes that tick to the simulator receiving
the exit ``placeorder`` request (``sim.order_events`` arrival times; both are
``time.monotonic``, which is system-wide on Linux).

Two placements of the simulator and its pump:

* ``separate``: in a process of its own (``benchmarks/sim_process.py``), as
  OpenAlgo is in production — the figure the targets are judged on;
* ``in_process``: in tmtool's process, as ``tmtool demo`` runs it — the
  simulator's own work (encoding and sending 5,000 frames/s, its HTTP server)
  then competes with tmtool for the one interpreter lock.

With the TUI the Textual app runs headless at 160x45 in tmtool's process
(``app.run_test``) showing the 200 trades at its normal refresh rate, while the
samples are taken from a worker thread.  Attached (``tmtool serve`` + ``tmtool
attach``): the engine serves its control API on a Unix socket and streams its
snapshots to the same TUI running in a process of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator, Protocol

from benchmarks.common import START_PRICE, TickPump, bench_symbols, percentile, seed_active_trades
from benchmarks.sim_process import SimProcess
from tests.stack import API_KEY, build_engine
from tests.util import wait_for
from tmtool.clock import SystemClock
from tmtool.domain.commands import Accepted, CreateTrade
from tmtool.engine.engine import Engine
from tmtool.domain.models import (
    Distance,
    Side,
    Sizing,
    SizingMode,
    Strategy,
    TradeRisk,
    TradeStatus,
)
from tmtool.engine.settings import EngineSettings
from tmtool.runtime import settle_heap, unsettle_heap
from tmtool.sim import SimSymbol, Simulator

LOAD_SYMBOLS = 40
LOAD_TRADES = 200
LOAD_RATE = 5_000.0
STOP_DISTANCE = 10.0
LATENCY_SYMBOLS = [f"LAT{i}" for i in range(5)]
SETTINGS = EngineSettings(reconcile_interval=30.0, order_status_poll=0.2)
PLACEMENTS = ("separate", "in_process")


class MarketControl(Protocol):
    """What a sample needs from the simulator, wherever it runs."""

    rest_url: str
    ws_url: str

    def set_price(self, exchange: str, symbol: str, price: float) -> float: ...
    def order_count(self) -> int: ...
    def wait_order(self, after: int, timeout: float = 10.0) -> float: ...
    def subscribed(self, exchange: str, symbol: str) -> bool: ...
    def subscription_count(self) -> int: ...
    def start_pump(self, symbols: list[str], rate: float) -> None: ...
    def stop_pump(self) -> float: ...


class InProcessSim:
    """The simulator in this process, behind the same calls as ``SimProcess``."""

    def __init__(self, api_key: str, symbols: list[SimSymbol]) -> None:
        self.sim = Simulator(api_key=api_key, tick_interval=None, symbols=symbols, rate_limits=None)
        self.sim.start()
        self.rest_url, self.ws_url = self.sim.rest_url, self.sim.ws_url
        self._pump: TickPump | None = None

    def set_price(self, exchange: str, symbol: str, price: float) -> float:
        at = time.monotonic()
        self.sim.set_price(exchange, symbol, price)
        return at

    def order_count(self) -> int:
        return len(self.sim.order_events)

    def wait_order(self, after: int, timeout: float = 10.0) -> float:
        wait_for(lambda: len(self.sim.order_events) > after, timeout, interval=0.0002, what="exit order")
        return self.sim.order_events[after][0]

    def subscribed(self, exchange: str, symbol: str) -> bool:
        return (exchange, symbol, 1) in self.sim.subscriptions()

    def subscription_count(self) -> int:
        return len(self.sim.subscriptions())

    def start_pump(self, symbols: list[str], rate: float) -> None:
        self._pump = TickPump(self.sim, symbols, rate)
        self._pump.start()

    def stop_pump(self) -> float:
        rate = self._pump.stop() if self._pump is not None else 0.0
        self._pump = None
        return rate

    def close(self) -> None:
        self.stop_pump()
        self.sim.stop()


@contextlib.contextmanager
def _market(placement: str, symbols: list[SimSymbol]) -> Iterator[MarketControl]:
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {', '.join(PLACEMENTS)}, got {placement!r}")
    market = SimProcess(API_KEY, symbols) if placement == "separate" else InProcessSim(API_KEY, symbols)
    try:
        yield market
    finally:
        market.close()


def _strategies() -> tuple[Strategy, ...]:
    exit_fast = Strategy(
        "lat", trade_risk=TradeRisk(stop_loss=Distance(STOP_DISTANCE)), sizing=Sizing(SizingMode.FIXED_QUANTITY, 1)
    )
    return (exit_fast, *(Strategy(f"bench{i}") for i in range(10)))


def _wait_status(engine: Engine, trade_id: int, status: TradeStatus) -> None:
    def reached() -> bool:
        view = engine.snapshot().trade(trade_id)
        return view is not None and view.status is status

    wait_for(reached, 10, what=f"trade #{trade_id} {status.name}")


def _sample(market: MarketControl, engine: Engine, index: int) -> float:
    """One stop crossing; returns seconds from the crossing tick to the exit order's arrival."""
    symbol = LATENCY_SYMBOLS[index % len(LATENCY_SYMBOLS)]
    market.set_price("NSE", symbol, START_PRICE)
    result = engine.submit(CreateTrade("lat", symbol, "NSE", Side.LONG, quantity=1)).result(timeout=10)
    if not isinstance(result, Accepted) or result.trade_id is None:
        raise RuntimeError(f"the sample trade was refused: {result}")
    _wait_status(engine, result.trade_id, TradeStatus.ACTIVE)
    wait_for(lambda: market.subscribed("NSE", symbol), 10, what=f"subscription to {symbol}")
    flowing = START_PRICE + 0.05
    market.set_price("NSE", symbol, flowing)
    wait_for(lambda: engine.last_price("NSE", symbol) == flowing, 10, what=f"{symbol} price flowing")
    seen = market.order_count()
    crossed_at = market.set_price("NSE", symbol, START_PRICE - STOP_DISTANCE - 1.0)
    arrived_at = market.wait_order(seen)
    _wait_status(engine, result.trade_id, TradeStatus.CLOSED)
    return arrived_at - crossed_at


def _measure(placement: str, take_samples: Callable[[MarketControl, Engine], list[float]]) -> dict:
    """Build the loaded stack with the simulator placed as asked, run the pump and ``take_samples``."""
    load = bench_symbols(LOAD_SYMBOLS, prefix="LOAD", first_token=91000)
    latency_symbols = [SimSymbol(name, "NSE", START_PRICE, token=str(92000 + i)) for i, name in enumerate(LATENCY_SYMBOLS)]
    load_names = [s.symbol for s in load]
    with tempfile.TemporaryDirectory(prefix="tmtool-bench-latency-") as tmp, _market(placement, load + latency_symbols) as market:
        db = Path(tmp) / "bench.db"
        seed_active_trades(db, market.rest_url, API_KEY, LOAD_TRADES, load_names)
        store, broker, _feed, engine = build_engine(market, db, strategies=_strategies(), settings=SETTINGS,
                                                    clock=SystemClock())
        store.start()
        engine.start()
        settle_heap()  # as `tmtool run` does once its engine is up
        try:
            wait_for(lambda: market.subscription_count() >= LOAD_SYMBOLS, 10, what="load subscriptions")
            market.start_pump(load_names, LOAD_RATE)
            ticks_before = engine.snapshot().system.ticks_processed
            started = time.perf_counter()
            latencies = take_samples(market, engine)
            seconds = time.perf_counter() - started
            pump_rate = market.stop_pump()
            ticks = engine.snapshot().system.ticks_processed - ticks_before
        finally:
            engine.stop()
            store.close()
            broker.close()
            unsettle_heap()  # the benchmarks after this one start from Python's usual collector
    latencies.sort()
    return {
        "simulator": placement,
        "samples": len(latencies),
        "median_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 3),
        "max_ms": round(latencies[-1] * 1000, 3),
        "background_ticks_offered_per_s": round(pump_rate),
        "engine_ticks_per_s": round(ticks / seconds),
    }


def headless(samples: int = 200, placement: str = "separate") -> dict:
    return _measure(placement, lambda market, engine: [_sample(market, engine, i) for i in range(samples)])


def with_tui(samples: int = 200, placement: str = "separate", size: tuple[int, int] = (160, 45)) -> dict:
    from tmtool.screens.app import TmtoolApp
    from tmtool.screens.widgets.trades_table import TradesTable

    def take(market: MarketControl, engine: Engine) -> list[float]:
        async def drive() -> list[float]:
            app = TmtoolApp(engine, config_path=None, clock=SystemClock(), simulated=True, bell=False, lifecycle=None)
            async with app.run_test(size=size) as pilot:
                table = app.screen_stack[0].query_one(TradesTable)
                while table.row_count < LOAD_TRADES:
                    await pilot.pause(0.05)
                settle_heap()  # `tmtool run` starts its engine once the app is up, then settles: the app's widgets too
                return await asyncio.to_thread(lambda: [_sample(market, engine, i) for i in range(samples)])

        return asyncio.run(drive())

    result = _measure(placement, take)
    result.update(terminal=f"{size[0]}x{size[1]}", trades_on_screen=LOAD_TRADES)
    return result


def attached(samples: int = 200, placement: str = "separate", size: tuple[int, int] = (160, 45)) -> dict:
    """The ``tmtool serve`` shape: the engine with its control API on a Unix socket, and a TUI in a
    process of its own attached to it (``benchmarks/attached_tui.py``), drawing the streamed snapshots."""
    from tmtool.api import ApiServer

    def take(market: MarketControl, engine: Engine) -> list[float]:
        with tempfile.TemporaryDirectory(prefix="tmtb", dir="/tmp") as folder:
            api = ApiServer(engine, port=None, unix_path=Path(folder) / "engine.sock")
            api.start()
            client = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.attached_tui", str(api.unix_path), str(LOAD_TRADES), f"{size[0]}x{size[1]}"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            )
            try:
                if client.stdout is None or client.stdout.readline().strip() != "ready":
                    raise RuntimeError("the attached TUI did not come up")
                return [_sample(market, engine, i) for i in range(samples)]
            finally:
                if client.stdin is not None:
                    client.stdin.close()
                client.wait(timeout=30)
                api.stop()

    result = _measure(placement, take)
    result.update(terminal=f"{size[0]}x{size[1]}", trades_on_screen=LOAD_TRADES, tui="attached, own process")
    return result


def run(samples: int = 200, tui: bool = True, placements: tuple[str, ...] = PLACEMENTS) -> dict:
    results: dict = {}
    for placement in placements:
        results[f"headless_{placement}"] = headless(samples, placement)
        if tui:
            results[f"tui_{placement}"] = with_tui(samples, placement)
            results[f"attached_{placement}"] = attached(samples, placement)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--no-tui", action="store_true")
    parser.add_argument("--placement", choices=PLACEMENTS, nargs="+", default=list(PLACEMENTS))
    options = parser.parse_args()
    print(json.dumps(run(options.samples, not options.no_tui, tuple(options.placement)), indent=2))
