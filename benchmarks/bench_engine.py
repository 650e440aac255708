"""Engine throughput on the real stack (simulator over loopback, SQLite file, real client, feed and store writer).

    python -m benchmarks.bench_engine                          # 10, 1,000 and 10,000 trades
    python -m benchmarks.bench_engine --trades 1000 --ticks 2000000

For each size: that many ACTIVE trades (stop, target and trailing on every one)
spread over up to 200 symbols in 10 strategies with portfolio limits on (so
every tick also runs the per-strategy P&L gate), positions matching at the
simulator so start-up reconciliation passes, the store writer running.  A
seeded random walk is driven through ``engine.process_tick`` on the engine
thread (``run_in_engine_thread``) — the code path the inbox uses, without the
queue — after a 10% warm-up.  Trailing stops ratchet as the walk makes new
highs and lows, and each ratchet is handed to the store writer.  Reports ticks/s
(one core: the engine thread) and the trades still open afterwards.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import START_PRICE, bench_symbols, seed_active_trades
from tests.stack import API_KEY, FAST_SETTINGS, build_engine
from tests.util import wait_for
from tmtool.domain.models import (
    Amount,
    PortfolioRisk,
    Strategy,
    Tick,
)
from tmtool.sim import Simulator

MAX_SYMBOLS = 200
STRATEGIES = 10
TRADE_COUNTS = (10, 1_000, 10_000)


def _random_walk(count: int, symbols: list[str], seed: int) -> list[Tick]:
    rng = random.Random(seed)
    prices = [START_PRICE] * len(symbols)
    ticks = []
    now = time.time()
    for _ in range(count):
        index = rng.randrange(len(symbols))
        prices[index] = round(prices[index] * (1.0 + rng.gauss(0.0, 0.0002)), 2)
        ticks.append(Tick("NSE", symbols[index], prices[index], now))
    return ticks


def throughput(trades: int = 1_000, ticks: int = 1_000_000, seed: int = 7, runs: int = 1, recording: bool = False) -> dict:
    """Ticks per second through ``process_tick`` with ``trades`` open trades: the median of ``runs``
    runs, each a fresh engine on a fresh copy of the seeded database walking the same ticks (one
    simulator holds the positions for all: the walk goes straight to ``process_tick`` and exits none).

    ``recording``: each run is made twice, back to back, with tick recording off and on (tmtool's
    Parquet recorder wired as ``tmtool run`` wires it, its writer thread running).  A recording-on
    run is timed until the recorder has written every tick it was handed, not only until the engine
    is done, and both wall and CPU time are kept (this process's and the recording process's): ``recording_on`` then holds the on
    figures and each round's on ÷ off ratio."""
    from tmtool.domain.calendar import trading_day
    from tmtool.replay.recorder import ParquetTickRecorder

    symbol_count = min(MAX_SYMBOLS, trades)
    sim_symbols = bench_symbols(symbol_count)
    names = [s.symbol for s in sim_symbols]
    strategies = [
        Strategy(f"bench{i}", portfolio=PortfolioRisk(stop_loss=Amount(1_000_000), target=Amount(1_000_000)))
        for i in range(STRATEGIES)
    ]
    stream = _random_walk(ticks, names, seed)
    warm = stream[: len(stream) // 10]
    modes = (False, True) if recording else (False,)
    rates: dict[bool, list[int]] = {mode: [] for mode in modes}
    cpu_rates: dict[bool, list[int]] = {mode: [] for mode in modes}
    with tempfile.TemporaryDirectory(prefix="tmtool-bench-engine-") as tmp:
        seeded = Path(tmp) / "seeded.db"
        sim = Simulator(api_key=API_KEY, tick_interval=None, symbols=sim_symbols, rate_limits=None)
        sim.start()
        try:
            seed_active_trades(seeded, sim.rest_url, API_KEY, trades, names, STRATEGIES)
            for run in range(runs):
                for mode in modes:
                    db = Path(tmp) / f"run{run}-{int(mode)}.db"
                    with sqlite3.connect(seeded) as source, sqlite3.connect(db) as copy:
                        source.backup(copy)
                    recorder = ParquetTickRecorder(Path(tmp) / f"ticks{run}", session="bench") if mode else None
                    # no feed frames arrive (ticks go straight to process_tick): a long staleness window keeps
                    # the books from degrading while a large run lasts
                    store, broker, _feed, engine = build_engine(sim, db, strategies=strategies, settings=FAST_SETTINGS,
                                                                stale_after=3600.0, tick_recorder=recorder)
                    store.start()
                    engine.start()
                    if recorder is not None:
                        recorder.start(trading_day(time.time()))
                    try:
                        opened = len(engine.snapshot().open_trades)
                        if opened != trades:
                            raise RuntimeError(f"{trades} trades seeded but {opened} open after start-up")

                        writer_started = recorder.writer_cpu if recorder is not None and recorder.flush() else 0.0

                        def drive() -> tuple[float, float]:
                            process = engine.process_tick
                            for tick in warm:
                                process(tick)
                            started, cpu_started = time.perf_counter(), time.process_time()
                            for tick in stream:
                                process(tick)
                            return started, cpu_started

                        started, cpu_started = engine.run_in_engine_thread(drive).result(timeout=600)
                        writer_cpu = 0.0
                        if recorder is not None:  # done when the last tick is written, not when the engine is
                            if not recorder.flush(timeout=600) or recorder.rows_written < len(warm) + len(stream):
                                raise RuntimeError(f"the recorder did not write every tick: {recorder.failed}")
                            writer_cpu = recorder.writer_cpu - writer_started  # the recording process's share
                        elapsed = time.perf_counter() - started
                        cpu = time.process_time() - cpu_started + writer_cpu
                        processed = wait_for(
                            lambda: (snap := engine.snapshot()).system.ticks_processed >= len(stream) and snap, 10,
                            what="a snapshot after the run",
                        )
                        open_after = len(processed.open_trades)
                        # every ratchet written before the next run starts, so no run pays for the last one's writes
                        if not store.flush(timeout=600.0):
                            raise RuntimeError("the store did not write the run's changes within 600 s")
                        writes = store.status()
                    finally:
                        engine.stop()
                        if recorder is not None:
                            recorder.stop()
                        store.close()
                        broker.close()
                    if recorder is not None and recorder.failed:
                        raise RuntimeError(f"the recorder failed: {recorder.failed}")
                    rates[mode].append(round(ticks / elapsed))
                    cpu_rates[mode].append(round(ticks / cpu))
        finally:
            sim.stop()
    rate = statistics.median(rates[False])
    result = {
        "trades": trades,
        "symbols": symbol_count,
        "ticks": ticks,
        "runs": rates[False],
        "ticks_per_second": round(rate),
        "microseconds_per_tick": round(1e6 / rate, 2),
        "open_trades_after": open_after,
        "store_changes_committed": writes.committed,
    }
    if recording:
        result["recording_on"] = {
            "runs": rates[True],
            "ticks_per_second": round(statistics.median(rates[True])),
            "cpu_runs_off": cpu_rates[False],
            "cpu_runs_on": cpu_rates[True],
            "on_vs_off": round(statistics.median(on / off for on, off in zip(rates[True], rates[False])), 3),
            "cpu_on_vs_off": round(statistics.median(on / off for on, off in zip(cpu_rates[True], cpu_rates[False])), 3),
        }
    return result


def recording_cost(trades: int = 1_000, ticks: int = 500_000, rounds: int = 3, passes: int = 6, seed: int = 7) -> dict:
    """Ticks per CPU second through ``process_tick`` with tick recording off, append only (the tick
    path's share: the recorder's queue, no writer), on (Parquet, tmtool's recorder) and on with the
    SQLite alternative, on one stack.

    Each measurement is ``passes`` walks over the ``ticks`` (forwards, then back) on the engine
    thread, and counts the CPU time from the first tick until the recorder has written the last one:
    this process's (the engine thread, the recorder's sending thread and everything else) plus the
    recording process's (``tmtool.replay.segments``, which writes the files).  That CPU time is what
    the ticks cost.  CPU time, not
    wall time, because this machine is shared and other processes' load swamps a wall-clock
    comparison.  A warm-up walk first (the trailing stops' first ratchets); then each mode runs
    ``rounds`` times, interleaved; each figure is the median of its rounds, and the ratios are the
    median of each round's own ratio (the rounds run back to back, so a round's modes share its load)."""
    from benchmarks.bench_replay import SqliteTickRecorder
    from tmtool.domain.calendar import trading_day
    from tmtool.replay.recorder import ParquetTickRecorder

    symbol_count = min(MAX_SYMBOLS, trades)
    sim_symbols = bench_symbols(symbol_count)
    names = [s.symbol for s in sim_symbols]
    strategies = [
        Strategy(f"bench{i}", portfolio=PortfolioRisk(stop_loss=Amount(1_000_000), target=Amount(1_000_000)))
        for i in range(STRATEGIES)
    ]
    rates: dict[str, list[float]] = {"off": [], "append_only": [], "parquet": [], "sqlite": []}
    recorded: dict[str, int] = {}
    runs: list[tuple[str, int, int]] = []  # (mode, ticks per CPU second, open trades after)
    with tempfile.TemporaryDirectory(prefix="tmtool-bench-recording-") as tmp:
        db = Path(tmp) / "bench.db"
        sim = Simulator(api_key=API_KEY, tick_interval=None, symbols=sim_symbols, rate_limits=None)
        sim.start()
        parquet = ParquetTickRecorder(Path(tmp) / "ticks", session="bench")
        # The tick path alone: the same recorder with no writer thread (its queue is emptied between runs).
        append_only = ParquetTickRecorder(Path(tmp) / "append-only", session="bench")
        sqlite = SqliteTickRecorder(Path(tmp) / "ticks.db")
        try:
            seed_active_trades(db, sim.rest_url, API_KEY, trades, names, STRATEGIES)
            # no feed frames arrive (ticks go straight to process_tick): a long staleness window keeps
            # the books from degrading during the minute this runs
            store, broker, _feed, engine = build_engine(sim, db, strategies=strategies, settings=FAST_SETTINGS, stale_after=3600.0)
            store.start()
            engine.start()
            parquet.start(trading_day(time.time()))
            sqlite.start()
            try:
                stream = _random_walk(ticks, names, seed)
                back = list(reversed(stream))  # walking back keeps prices near the start, round after round

                def drive(recorder) -> None:
                    engine._watch.recorder = recorder  # the wiring's attribute, switched between runs
                    process = engine.process_tick
                    for walk in range(passes):
                        for tick in back if walk % 2 else stream:
                            process(tick)
                    engine._watch.recorder = None

                engine.run_in_engine_thread(lambda: drive(None)).result(timeout=600)  # warm-up
                expected = {"parquet": 0, "sqlite": 0}
                for _ in range(rounds):
                    for mode, recorder in (("off", None), ("append_only", append_only), ("parquet", parquet), ("sqlite", sqlite)):
                        parquet.flush()
                        started, writer_started = time.process_time(), parquet.writer_cpu
                        engine.run_in_engine_thread(lambda r=recorder: drive(r)).result(timeout=600)
                        if recorder is parquet:
                            expected[mode] += ticks * passes
                            if not parquet.flush(timeout=600) or parquet.rows_written < expected[mode]:
                                raise RuntimeError(f"the recorder did not write every tick: {parquet.failed}")
                        elif recorder is sqlite:
                            expected[mode] += ticks * passes
                            wait_for(lambda r=recorder, n=expected[mode]: r.rows_written >= n, 300, interval=0.05,
                                     what="every recorded tick written")
                        # the recording process's CPU counts as the process's own did when it was a thread
                        cpu = time.process_time() - started + parquet.writer_cpu - writer_started
                        if recorder is append_only:
                            del append_only._rows[:]
                        rates[mode].append(ticks * passes / cpu)
                        runs.append((mode, round(ticks * passes / cpu), len(engine.snapshot().open_trades)))
            finally:
                engine.stop()
                store.close()
                broker.close()
                parquet.stop()
                sqlite.stop()
                recorded = {"parquet_rows": parquet.rows_written, "parquet_failed": parquet.failed}
        finally:
            sim.stop()
    median = {mode: statistics.median(values) for mode, values in rates.items()}

    def ratio(mode: str) -> float:
        return round(statistics.median(on / off for on, off in zip(rates[mode], rates["off"])), 3)

    return {
        "trades": trades,
        "ticks": ticks * passes,
        "rounds": rounds,
        "ticks_per_second_off": round(median["off"]),
        "ticks_per_second_append_only": round(median["append_only"]),
        "append_ns_per_tick": round((1 / median["append_only"] - 1 / median["off"]) * 1e9, 1),
        "ticks_per_second_parquet": round(median["parquet"]),
        "ticks_per_second_sqlite": round(median["sqlite"]),
        "append_only_vs_off": ratio("append_only"),
        "parquet_vs_off": ratio("parquet"),
        "sqlite_vs_off": ratio("sqlite"),
        **recorded,
        "runs": runs,
    }


def run(ticks: int = 1_000_000, trade_counts: tuple[int, ...] = TRADE_COUNTS) -> dict:
    """Throughput at each size, keyed by the trade count."""
    return {str(trades): throughput(trades, ticks) for trades in trade_counts}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=1_000_000)
    parser.add_argument("--trades", type=int, nargs="+", default=list(TRADE_COUNTS))
    parser.add_argument("--recording", action="store_true", help="compare recording off / Parquet / SQLite at 1,000 trades, flat out on calm ticks")
    parser.add_argument("--recording-throughput", action="store_true",
                        help="engine throughput at --trades (first size) with recording off and on, interleaved")
    parser.add_argument("--runs", type=int, default=1)
    options = parser.parse_args()
    if options.recording:
        print(json.dumps(recording_cost(1_000, options.ticks), indent=2))
    elif options.recording_throughput:
        print(json.dumps(throughput(options.trades[0], options.ticks, runs=options.runs, recording=True), indent=2))
    else:
        print(json.dumps(run(options.ticks, tuple(options.trades)), indent=2))
