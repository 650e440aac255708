"""``tmtool replay``: the day's trades run again over the day's ticks, as run or with other settings.

Wiring only: reads the day's trades (``storage.history``, read-only beside a
running engine), the recorded ticks (``replay.reader``) or, without a
recording, OpenAlgo ``history`` candles (``replay.candles``, approximate), runs
``replay.replay`` once per setting and prints ``replay.report``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from typing import TYPE_CHECKING

from tmtool.domain.calendar import IST, trading_day
from tmtool.replay.settings import Change, SettingError, parse_change, parse_sweep
from tmtool.replay.trades import LiveTrade, live_trades

if TYPE_CHECKING:  # numpy and pyarrow load only when a replay runs (not for `tmtool --help`)
    from tmtool.replay.reader import TickTape
    from tmtool.replay.replay import ReplayResult


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--day", metavar="YYYY-MM-DD", help="the trading day to replay (default: today)")
    parser.add_argument("--demo", action="store_true", help="replay the demo's database (demo.db) and its recording")
    parser.add_argument(
        "--set", dest="changes", action="append", default=[], metavar="[SCOPE:]KEY=VALUE",
        help="change one setting for the replay, e.g. trailing.distance=6, momentum:stop_loss=1%%, #12:target=none",
    )
    parser.add_argument(
        "--sweep", action="append", default=[], metavar="[SCOPE:]KEY=V1,V2,...",
        help="replay once per value (several --sweep: every combination), e.g. trailing.distance=2,4,6,8",
    )
    parser.add_argument("--slippage-ticks", type=float, default=0.0, metavar="N", help="exits fill N tick sizes worse than the crossing tick")
    parser.add_argument("--candles", action="store_true", help="use OpenAlgo 1-minute history even when a recording exists (approximate)")
    parser.add_argument("--trades", action="store_true", help="also list every trade: live exit against replayed exit")
    parser.add_argument("--plot", type=int, metavar="ID", help="chart one trade's price path, levels and exits: live vs the first replay")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--csv", action="store_true", help="print the summary as CSV")
    output.add_argument("--json", action="store_true", help="print summaries and trades as JSON")


def _day(text: str | None) -> date:
    if not text:
        return trading_day(time.time())
    return date.fromisoformat(text)


def _day_bounds(day: date) -> tuple[float, float]:
    start = datetime(day.year, day.month, day.day, tzinfo=IST)
    return start.timestamp(), (start + timedelta(days=1)).timestamp()


def settings_grid(fixed: list[Change], sweeps: list[list[Change]]) -> list[tuple[str, list[Change]]]:
    """(label, changes) per run: the fixed changes alone, then with each combination of the swept values."""
    runs = [(", ".join(c.label for c in fixed) if fixed else "replay as run", fixed)]
    if not sweeps:
        return runs
    for combination in itertools.product(*sweeps):
        runs.append((", ".join(c.label for c in (*fixed, *combination)), [*fixed, *combination]))
    return runs


def load_day(db_path: Path, day: date) -> tuple[list[LiveTrade], dict]:
    from tmtool.storage.history import TradeHistory

    history = TradeHistory(db_path)
    try:
        start, end = _day_bounds(day)
        trades = live_trades(history.trades_opened(start, end), history.trade_events)
        strategies = {s.name: s for s in history.strategies()}
    finally:
        history.close()
    return trades, strategies


def candle_tape(config, trades: list[LiveTrade], day: date) -> "TickTape":
    from tmtool.openalgo.client import OpenAlgoClient
    from tmtool.replay.candles import tape_from_candles

    if not config.openalgo.configured:
        raise SettingError("no recording for this day, and OpenAlgo is not configured for history candles")
    client = OpenAlgoClient(config.openalgo.host, config.openalgo.api_key, timeout=config.openalgo.timeout_seconds)
    try:
        candles = {}
        for key in sorted({(t.start.exchange, t.start.symbol) for t in trades}):
            candles[key] = client.history(key[1], key[0], day.isoformat(), day.isoformat(), "1m")
    finally:
        client.close()
    return tape_from_candles(candles)


def run_replays(
    trades: list[LiveTrade], strategies: dict, account, tape: "TickTape", runs: list[tuple[str, list[Change]]], slippage_ticks: float
) -> list["ReplayResult"]:
    from tmtool.replay.replay import replay

    return [replay(trades, strategies, account, tape, changes, slippage_ticks, label) for label, changes in runs]


def replay_command(args: argparse.Namespace, config) -> int:
    from rich.console import Console

    from tmtool.replay import report
    from tmtool.replay.reader import read_day

    console = Console()
    err = Console(stderr=True)
    try:
        day = _day(args.day)
        fixed = [parse_change(text) for text in args.changes]
        sweeps = [parse_sweep(text) for text in args.sweep]
    except (SettingError, ValueError) as exc:
        err.print(f"tmtool replay: {exc}")
        return 2
    if args.db:
        db_path = Path(args.db)
    elif args.demo:
        db_path = Path(config.database.path).with_name("demo.db")
    else:
        db_path = Path(config.database.path)
    try:
        trades, saved = load_day(db_path, day)
    except Exception as exc:  # a missing or unreadable database: say so, no traceback
        err.print(f"tmtool replay: cannot read {db_path}: {exc}")
        return 2
    strategies = {s.name: s for s in config.strategies}
    strategies.update(saved)  # the settings as the engine last saved them
    if args.demo:
        from tmtool.runtime import demo_strategies

        for strategy in demo_strategies():
            strategies.setdefault(strategy.name, strategy)
    if not trades:
        err.print(f"tmtool replay: no closed trades opened on {day.isoformat()} in {db_path}")
        return 1
    folder = config.recording.folder_for(db_path)
    try:
        tape = None if args.candles else read_day(folder, day)
        if tape is None or len(tape) == 0:
            tape = candle_tape(config, trades, day)
    except SettingError as exc:
        err.print(f"tmtool replay: {exc}")
        return 1
    except Exception as exc:
        err.print(f"tmtool replay: cannot read the ticks of {day.isoformat()}: {exc}")
        return 1
    try:
        results = run_replays(trades, strategies, config.account, tape, settings_grid(fixed, sweeps), args.slippage_ticks)
    except SettingError as exc:
        err.print(f"tmtool replay: {exc}")
        return 2
    if args.plot is not None:
        return _plot(args.plot, trades, results[0], tape, err)
    summaries = [report.live_summary(trades)] + [report.summarise(r) for r in results]
    if args.json:
        print(report.to_json(summaries, results))
        return 0
    if args.csv:
        sys.stdout.write(report.to_csv(summaries))
        return 0
    source = "1-minute candles" if tape.approximate else f"{len(tape):,} recorded ticks"
    console.print(report.rich_table(summaries, title=f"tmtool replay {day.isoformat()}: {len(trades)} trades over {source}",
                                    width=console.width))
    if args.trades:
        console.print(report.trades_table(trades, results[0]))
    return 0


def _plot(trade_id: int, trades: list[LiveTrade], result: "ReplayResult", tape: "TickTape", err) -> int:
    from tmtool.replay.path import trade_path_of
    from tmtool.screens.trade_path import TradePathApp

    path = trade_path_of(trade_id, trades, result, tape)
    if path is None:
        err.print(f"tmtool replay: no closed trade #{trade_id} on that day")
        return 1
    TradePathApp(path).run()
    return 0
