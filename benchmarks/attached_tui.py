"""A TUI attached to an engine's socket, headless (Textual's test driver), for the latency benchmark.

    python -m benchmarks.attached_tui SOCKET TRADES WIDTHxHEIGHT

Prints ``ready`` once the trades table shows TRADES rows, then keeps drawing
live snapshots until its standard input closes.
"""

from __future__ import annotations

import asyncio
import sys

from tmtool.api.client import RemoteEngine
from tmtool.clock import SystemClock
from tmtool.screens.app import TmtoolApp
from tmtool.screens.widgets.trades_table import TradesTable


async def _drive(socket_path: str, trades: int, size: tuple[int, int]) -> None:
    engine = RemoteEngine(socket_path)
    engine.connect()
    try:
        app = TmtoolApp(engine, config_path=None, clock=SystemClock(), simulated=True, bell=False, lifecycle=None,
                        engine_in_process=False)
        async with app.run_test(size=size) as pilot:
            table = app.screen_stack[0].query_one(TradesTable)
            while table.row_count < trades:
                await pilot.pause(0.05)
            print("ready", flush=True)
            closed = asyncio.ensure_future(asyncio.to_thread(sys.stdin.read))
            while not closed.done():
                await pilot.pause(0.1)
    finally:
        engine.close()


if __name__ == "__main__":
    width, height = (int(part) for part in sys.argv[3].split("x"))
    asyncio.run(_drive(sys.argv[1], int(sys.argv[2]), (width, height)))
