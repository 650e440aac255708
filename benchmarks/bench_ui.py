"""The TUI under load: 200 open trades while ticks flow at ~100/s and ~5,000/s.

    python -m benchmarks.bench_ui                    # both rates, 6 s each
    python -m benchmarks.bench_ui --rates 5000 --seconds 10

The real stack runs (simulator over loopback, SQLite file, client, feed,
engine); the app runs headless at a fixed terminal size in this process, as it
would over SSH.  For each tick rate it reports:

- the UI thread's CPU use (``time.thread_time`` of the event-loop thread over
  the window, as a share of one core) and the whole process's;
- the key-press-to-screen delay: ``app.simulate_key("down")`` (a real key event
  through the binding machinery) until the table's cursor moved (seen by a
  watcher, no polling) and the next screen refresh after it ran
  (``call_after_refresh``) — median, p95, p99 and max over 100 presses at
  irregular gaps.  Pilot's idle wait is not used: under load it would measure
  the wait, not the key;
- the ticks the engine accepted per second (what the UI actually saw);
- the UI frames that carried a new snapshot version (prices-only changes are
  shown at 4 Hz whatever the poll rate; see ``tmtool.screens.app``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

from tests.stack import running_stack
from tests.util import wait_for
from tmtool.domain.commands import CreateTrade
from tmtool.domain.models import (
    Distance,
    Side,
    Sizing,
    SizingMode,
    Strategy,
    TradeRisk,
    TradeStatus,
)
from tmtool.screens.app import TmtoolApp
from tmtool.screens.dashboard import DashboardScreen
from tmtool.screens.widgets.trades_table import TradesTable
from tmtool.sim import SimSymbol

SYMBOL_COUNT = 40
START_PRICE = 1000.0
KEY_SAMPLES = 100


def _symbols() -> list[SimSymbol]:
    return [SimSymbol(f"UIB{i:03d}", "NSE", START_PRICE, token=str(95000 + i)) for i in range(SYMBOL_COUNT)]


class TickPump(threading.Thread):
    """Moves simulator prices at ``rate`` per second (a seeded random walk inside a narrow band)."""

    def __init__(self, sim, symbols: list[str], rate: float, seed: int = 11) -> None:
        super().__init__(name="bench-ticks", daemon=True)
        self.sim, self.symbols, self.rate = sim, symbols, rate
        self.random = random.Random(seed)
        self.halt = threading.Event()
        self.sent = 0

    def run(self) -> None:
        prices = {symbol: START_PRICE for symbol in self.symbols}
        interval = 1.0 / self.rate
        next_at = time.perf_counter()
        index = 0
        while not self.halt.is_set():
            symbol = self.symbols[index % len(self.symbols)]
            index += 1
            step = self.random.choice((-0.05, 0.05))
            prices[symbol] = min(START_PRICE * 1.004, max(START_PRICE * 0.996, round(prices[symbol] + step, 2)))
            self.sim.set_price("NSE", symbol, prices[symbol])
            self.sent += 1
            next_at += interval
            delay = next_at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            elif delay < -0.5:
                next_at = time.perf_counter()  # fell behind: do not burst to catch up


class FrameCounter:
    """Counts the frames in which the dashboard received a new snapshot."""

    def __init__(self) -> None:
        self.frames = 0
        self._original = DashboardScreen.apply_snapshot

    def __enter__(self) -> "FrameCounter":
        counter = self

        def counting(screen, snapshot):
            counter.frames += 1
            return counter._original(screen, snapshot)

        DashboardScreen.apply_snapshot = counting
        return self

    def __exit__(self, *exc) -> None:
        DashboardScreen.apply_snapshot = self._original


async def _key_delays(app: TmtoolApp, samples: int, seed: int = 5) -> list[float]:
    """Press down/up ``samples`` times at irregular gaps; the delay of each until it is on screen.

    The cursor change is observed by a watcher (no polling that would itself
    load the UI thread); the press counts as on screen when the refresh after
    the cursor moved has run.
    """
    table = app.screen_stack[0].query_one(TradesTable)
    loop = asyncio.get_running_loop()
    gaps = random.Random(seed)
    delays = []
    painted: asyncio.Future | None = None

    def cursor_moved(_old, _new) -> None:
        future = painted
        if future is not None and not future.done():
            app.call_after_refresh(lambda: future.done() or future.set_result(time.perf_counter()))

    app.watch(table, "cursor_coordinate", cursor_moved, init=False)
    for index in range(samples):
        painted = loop.create_future()
        start = time.perf_counter()
        app.simulate_key("down" if index % 2 == 0 else "up")
        delays.append(await painted - start)
        await asyncio.sleep(gaps.uniform(0.02, 0.06))
    return delays


def _percentile(ordered: list[float], share: float) -> float:
    """The nearest-rank percentile of an ascending list."""
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


async def _measure(app: TmtoolApp, stack, pump: TickPump, seconds: float, size: tuple[int, int]) -> dict:
    async with app.run_test(size=size) as pilot:
        table = app.screen_stack[0].query_one(TradesTable)
        while table.row_count < 200:
            await pilot.pause(0.05)
        table.move_cursor(row=50)
        await asyncio.sleep(1.0)  # let the feed settle
        ticks_before = stack.engine.snapshot().system.ticks_processed
        offered_before = pump.sent
        wall_before, cpu_before, process_before = time.perf_counter(), time.thread_time(), time.process_time()
        with FrameCounter() as frames:
            await asyncio.sleep(seconds / 2)
            delays = await _key_delays(app, KEY_SAMPLES)
            remaining = seconds - (time.perf_counter() - wall_before)
            if remaining > 0:
                await asyncio.sleep(remaining)
        wall = time.perf_counter() - wall_before
        ui_cpu = time.thread_time() - cpu_before
        process_cpu = time.process_time() - process_before
        ticks = stack.engine.snapshot().system.ticks_processed - ticks_before
        offered = pump.sent - offered_before
    delays.sort()
    return {
        "seconds": round(wall, 2),
        "engine_ticks_per_second": round(ticks / wall, 1),
        "ui_thread_cpu_percent": round(100 * ui_cpu / wall, 1),
        "process_cpu_percent": round(100 * process_cpu / wall, 1),
        "ui_frames_with_new_snapshot_per_second": round(frames.frames / wall, 2),
        "ticks_offered_per_second": round(offered / wall, 1),
        "key_presses": len(delays),
        "key_to_screen_ms_median": round(1000 * statistics.median(delays), 2),
        "key_to_screen_ms_p95": round(1000 * _percentile(delays, 0.95), 2),
        "key_to_screen_ms_p99": round(1000 * _percentile(delays, 0.99), 2),
        "key_to_screen_ms_max": round(1000 * delays[-1], 2),
    }


def run(
    rates: tuple[float, ...] = (100.0, 5000.0),
    seconds: float = 6.0,
    trades: int = 200,
    size: tuple[int, int] = (160, 45),
    refresh_hz: float = 8.0,
) -> dict:
    """Measure the UI at each tick rate; returns the numbers per rate."""
    symbols = _symbols()
    strategy = Strategy(
        "bench",
        trade_risk=TradeRisk(stop_loss=Distance(50.0), target=Distance(50.0)),
        sizing=Sizing(SizingMode.FIXED_QUANTITY, 1),
    )
    results: dict = {"trades": trades, "terminal": f"{size[0]}x{size[1]}", "refresh_hz": refresh_hz, "rates": {}}
    with tempfile.TemporaryDirectory() as tmp:
        sim_kwargs = {"symbols": symbols, "rate_limits": None}
        with running_stack(Path(tmp), strategies=(strategy,), sim_kwargs=sim_kwargs) as stack:
            trade_ids = [
                stack.create(CreateTrade("bench", symbols[index % SYMBOL_COUNT].symbol, "NSE", Side.LONG, quantity=1))
                for index in range(trades)
            ]
            wait_for(
                lambda: all(
                    (view := stack.engine.snapshot().trade(trade_id)) is not None and view.status is TradeStatus.ACTIVE
                    for trade_id in trade_ids
                ),
                60,
                what="all bench trades active",
            )
            for rate in rates:
                pump = TickPump(stack.sim, [symbol.symbol for symbol in symbols], rate)
                pump.start()
                try:
                    app = TmtoolApp(
                        stack.engine,
                        config_path=None,
                        clock=stack.clock,
                        simulated=True,
                        bell=False,
                        refresh_hz=refresh_hz,
                        lifecycle=None,  # the stack runs the engine
                    )
                    measured = asyncio.run(_measure(app, stack, pump, seconds, size))
                finally:
                    pump.halt.set()
                    pump.join()
                results["rates"][str(int(rate))] = measured
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[100.0, 5000.0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--trades", type=int, default=200)
    args = parser.parse_args()
    print(json.dumps(run(tuple(args.rates), args.seconds, args.trades), indent=2))


if __name__ == "__main__":
    main()
