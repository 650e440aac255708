"""One trade's price path with its levels and exits, live against replayed: the data a chart draws.

Times are seconds since the trade's entry.  Level series are steps: a level
holds from its time until the next change (None: no such level then).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from tmtool.replay.reader import TickTape
from tmtool.replay.replay import ReplayedTrade, ReplayResult
from tmtool.replay.trades import END_OF_DATA, LiveTrade

LEVEL_FIELDS = ("stop_loss", "target", "trailing_stop")


@dataclass(frozen=True)
class TradePath:
    title: str
    times: list[float]
    prices: list[float]
    live_levels: dict[str, list[tuple[float, float | None]]]  # field -> steps (time, level)
    replay_levels: dict[str, list[tuple[float, float | None]]]
    live_exits: list[tuple[float, float, str]]  # (time, tick price, reason)
    replay_exits: list[tuple[float, float, str]]
    approximate: bool = False


def _steps(changes, start: float) -> dict[str, list[tuple[float, float | None]]]:
    steps: dict[str, list[tuple[float, float | None]]] = {name: [] for name in LEVEL_FIELDS}
    for ts, name, level in sorted(changes, key=lambda c: c[0]):
        if name in steps:
            steps[name].append((ts - start, level))
    return steps


def trade_path(live: LiveTrade, replayed: ReplayedTrade | None, tape: TickTape, label: str = "replay") -> TradePath:
    trade = live.start
    start = live.opened_at
    ends = [live.closed_at or start]
    if replayed is not None:
        ends += [d.ts for d in replayed.exits]
    end = max(ends)
    ts, prices = tape.symbol_ticks(trade.exchange, trade.symbol, trade.side.value)
    mask = (ts >= start) & (ts <= end + 1e-9)
    times = (ts[mask] - start).tolist()
    path_prices = prices[mask].tolist()
    if not times or times[0] > 0:
        times.insert(0, 0.0)
        path_prices.insert(0, trade.entry_price)
    replay_exits = []
    if replayed is not None:
        replay_exits = [(d.ts - start, d.tick_price or 0.0, d.reason) for d in replayed.exits if d.reason != END_OF_DATA]
    title = f"#{trade.id} {trade.symbol} {trade.side.value} {trade.entry_quantity} @ {trade.entry_price}: live vs {label}"
    return TradePath(
        title=title,
        times=times,
        prices=path_prices,
        live_levels=_steps(live.levels, start),
        replay_levels=_steps(replayed.levels if replayed is not None else (), start),
        live_exits=[(d.ts - start, d.tick_price or 0.0, d.reason) for d in live.live_exits],
        replay_exits=replay_exits,
        approximate=tape.approximate,
    )


def step_series(steps: list[tuple[float, float | None]], end: float) -> tuple[list[float], list[float]]:
    """Points that draw ``steps`` as a staircase up to ``end`` (gaps where the level is None are left out)."""
    xs: list[float] = []
    ys: list[float] = []
    for index, (at, level) in enumerate(steps):
        until = steps[index + 1][0] if index + 1 < len(steps) else end
        if level is None:
            continue
        xs += [at, until]
        ys += [level, level]
    return xs, ys


def end_time(path: TradePath) -> float:
    points = [path.times[-1] if path.times else 0.0] + [e[0] for e in path.live_exits + path.replay_exits]
    return float(np.max(points))



def trade_path_of(trade_id: int, day_trades: Sequence[LiveTrade], result: ReplayResult, tape: TickTape) -> TradePath | None:
    """Trade ``trade_id``'s path, live against ``result`` (a replay of its day); None when the
    trade is not among ``day_trades``."""
    live = next((t for t in day_trades if t.start.id == trade_id), None)
    if live is None:
        return None
    replayed = next((t for t in result.trades if t.trade_id == trade_id), None)
    return trade_path(live, replayed, tape, result.label)
