"""Start-up time, resident memory and the TUI's first painted frame, each in a fresh process.

    python -m benchmarks.bench_startup                          # 10, 1,000 and 10,000 open trades
    python -m benchmarks.bench_startup --trades 10000

For each size the database is built with the real store (that many ACTIVE
trades with stop, target and trailing, over up to 200 symbols), the simulator
runs in a process of its own holding the matching positions (so start-up
reconciliation finds every trade covered) and moves every symbol's price at
1,000 ticks/s.  A config file points tmtool at it.  Then, each in a new Python
process:

* ``headless``: ``build_runtime(config, db_path=...)`` (opens the database,
  takes the start-up backup) and ``Runtime.start()`` (load, reconcile, resume,
  subscribe) — times for each, plus until the first tick is accepted
  (monitoring); then, after 2 s of monitoring, the resident size (VmRSS from
  /proc/self/status) and its peak;
* ``cli`` (largest size only): ``tmtool run --no-ui`` as a subprocess, from
  launch to its "connected to OpenAlgo" line on stderr (interpreter start,
  imports and all);
* ``tui`` (largest size only): the app as ``tmtool`` runs it (the app starts the
  engine itself), headless at 160x45 — from the process's first line to the
  first painted frame, and to the first frame showing trades.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROCESS_STARTED = time.perf_counter()  # before the heavy imports: the child's clock starts here

from benchmarks.common import bench_symbols, resident_memory_mb, seed_active_trades  # noqa: E402
from benchmarks.sim_process import SimProcess  # noqa: E402

API_KEY = "bench-startup-key"
TRADE_COUNTS = (10, 1_000, 10_000)
MAX_SYMBOLS = 200
STRATEGIES = 10
PUMP_RATE = 1_000.0
MONITOR_SECONDS = 2.0


def _write_config(directory: Path, rest_url: str, ws_url: str) -> Path:
    strategies = "".join(f'\n[[strategies]]\nname = "bench{i}"\n' for i in range(STRATEGIES))
    path = directory / "tmtool.toml"
    path.write_text(
        f'[openalgo]\nhost = "{rest_url}"\nws_url = "{ws_url}"\napi_key = "{API_KEY}"\n'
        f'[database]\nbackup_dir = "{directory / "backups"}"\nbackups_to_keep = 2\n'
        f'[log]\nfile = "{directory / "tmtool.log"}"\nlevel = "WARNING"\n{strategies}'
    )
    path.chmod(0o600)
    return path


def _child(args: list[str], timeout: float = 120.0) -> dict:
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_startup", *args], capture_output=True, text=True, timeout=timeout
    )
    if completed.returncode != 0:
        raise RuntimeError(f"start-up child failed ({completed.returncode}): {completed.stderr.strip()[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _cli_to_monitoring(config: Path, db: Path, timeout: float = 60.0) -> float:
    """Seconds from launching ``tmtool run --no-ui`` to its banner line (printed after start-up)."""
    tmtool = Path(sys.executable).with_name("tmtool")
    command = [str(tmtool)] if tmtool.exists() else [sys.executable, "-m", "tmtool"]
    started = time.perf_counter()
    process = subprocess.Popen(
        [*command, "run", "--no-ui", "--config", str(config), "--db", str(db), "--duration", "30"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stderr is not None
        deadline = started + timeout
        for line in process.stderr:
            if "connected to OpenAlgo" in line and "NOT connected" not in line:
                return time.perf_counter() - started
            if time.perf_counter() > deadline:
                break
        raise RuntimeError(f"tmtool run --no-ui did not report monitoring (exit code {process.poll()})")
    finally:
        process.terminate()
        process.wait(timeout=30)


def measure(trades: int, extras: bool) -> dict:
    symbols = bench_symbols(min(MAX_SYMBOLS, trades))
    names = [s.symbol for s in symbols]
    with tempfile.TemporaryDirectory(prefix="tmtool-bench-startup-") as tmp, SimProcess(API_KEY, symbols) as sim:
        directory = Path(tmp)
        seeded = directory / "seeded.db"
        seed_active_trades(seeded, sim.rest_url, API_KEY, trades, names, STRATEGIES)
        config = _write_config(directory, sim.rest_url, sim.ws_url)
        sim.start_pump(names, PUMP_RATE)

        def fresh_copy(name: str) -> Path:
            target = directory / name
            shutil.copyfile(seeded, target)
            target.chmod(0o600)
            return target

        result = {"trades": trades, "symbols": len(names),
                  **_child(["--child", "headless", str(config), str(fresh_copy("headless.db")), str(trades)])}
        if extras:
            result["cli_run_no_ui_to_monitoring_s"] = round(_cli_to_monitoring(config, fresh_copy("cli.db")), 3)
            result.update(_child(["--child", "tui", str(config), str(fresh_copy("tui.db")), str(trades)]))
        sim.stop_pump()
    return result


def run(trade_counts: tuple[int, ...] = TRADE_COUNTS) -> dict:
    largest = max(trade_counts)
    return {str(trades): measure(trades, extras=trades == largest) for trades in trade_counts}


# ---------------------------------------------------------------------- the measured processes


def _headless(config_path: Path, db: Path, trades: int) -> dict:
    imported = time.perf_counter()
    from tests.util import wait_for
    from tmtool.config import load_config
    from tmtool.runtime import build_runtime

    config = load_config(config_path)
    modules_loaded = time.perf_counter()
    runtime = build_runtime(config, db_path=db)
    runtime.settle_heap_after_start = True  # as the tmtool command sets it
    built = time.perf_counter()
    runtime.start()
    started = time.perf_counter()
    try:
        open_trades = len(runtime.snapshot().open_trades)
        if open_trades != trades:
            raise RuntimeError(f"{trades} trades seeded, {open_trades} open after start-up")
        wait_for(lambda: runtime.snapshot().system.ticks_processed > 0, 30, interval=0.001, what="the first tick")
        monitoring = time.perf_counter()
        time.sleep(MONITOR_SECONDS)  # monitor with ticks flowing before reading the memory
        memory = resident_memory_mb()
    finally:
        runtime.stop()
    return {
        "imports_s": round(modules_loaded - imported, 3),
        "build_runtime_s": round(built - modules_loaded, 3),
        "runtime_start_s": round(started - built, 3),
        "launch_to_started_s": round(started - PROCESS_STARTED, 3),
        "build_and_start_to_first_tick_s": round(monitoring - modules_loaded, 3),
        **memory,
    }


def _tui(config_path: Path, db: Path, trades: int) -> dict:
    from tmtool.config import load_config
    from tmtool.runtime import build_runtime
    from tmtool.screens.app import TmtoolApp
    from tmtool.screens.widgets.trades_table import TradesTable

    runtime = build_runtime(load_config(config_path), db_path=db)
    runtime.settle_heap_after_start = True  # as the tmtool command sets it
    app = TmtoolApp(runtime, config_path=config_path, clock=runtime.clock, simulated=False, bell=False, lifecycle=runtime)
    frames: dict[str, float] = {}
    display = app._display

    def timed_display(screen, renderable) -> None:
        now = time.perf_counter()
        if renderable is not None:
            frames.setdefault("first", now)
            if "trades" not in frames and app.screen_stack and app.screen_stack[0].query(TradesTable):
                if app.screen_stack[0].query_one(TradesTable).row_count > 0:
                    frames["trades"] = now
        display(screen, renderable)

    app._display = timed_display  # headless apps paint into nothing: note when each frame is made

    async def drive() -> None:
        async with app.run_test(size=(160, 45)) as pilot:
            deadline = time.perf_counter() + 60
            while "trades" not in frames and time.perf_counter() < deadline:
                await pilot.pause(0.01)

    try:
        asyncio.run(drive())
    finally:
        app.stop_engine()
        runtime.stop()
    if "trades" not in frames:
        raise RuntimeError("the TUI showed no trades within 60 s")
    return {
        "tui_launch_to_first_frame_s": round(frames["first"] - PROCESS_STARTED, 3),
        "tui_launch_to_trades_shown_s": round(frames["trades"] - PROCESS_STARTED, 3),
    }


def _child_main(mode: str, config_path: str, db: str, trades: str) -> None:
    measure_child = _headless if mode == "headless" else _tui
    result = measure_child(Path(config_path), Path(db), int(trades))
    sys.stdout.flush()
    os.write(1, (json.dumps(result) + "\n").encode())


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child_main(*sys.argv[2:6])
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--trades", type=int, nargs="+", default=list(TRADE_COUNTS))
        options = parser.parse_args()
        print(json.dumps(run(tuple(options.trades)), indent=2))
