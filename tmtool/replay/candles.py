"""An approximate tape from 1-minute candles, for days without a recording.

The candle fill model (every output of such a replay is labelled approximate):

* each candle becomes four ticks inside its minute: the open (at +0 s), the
  extreme *against* the trade (+20 s), the extreme *for* it (+40 s) and the
  close (+59 s) — so a LONG trade sees open, low, high, close and a SHORT
  trade open, high, low, close;
* a gap — an open beyond a level — fills at the open;
* a candle that crosses both the stop and the target counts the stop (the
  adverse extreme comes first);
* exits fill at the level-crossing tick's price, i.e. the open, the extreme or
  the close, never inside the bar: a stop crossed by the low fills at the low.

Because the order inside a bar is assumed, LONG and SHORT trades on one
instrument walk separate paths: the tape's keys are (exchange, symbol, side).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from tmtool.replay.reader import TickTape

Candle = tuple[float, float, float, float, float]  # (minute start, open, high, low, close)
_OFFSETS = (0.0, 20.0, 40.0, 59.0)


def tape_from_candles(candles: Mapping[tuple[str, str], Sequence[Candle]]) -> TickTape:
    keys: list[tuple[str, str, str]] = []
    ts_parts, price_parts, code_parts = [], [], []
    for (exchange, symbol), rows in candles.items():
        if not rows:
            continue
        array = np.asarray(rows, dtype=float).reshape(-1, 5)
        start, open_, high, low, close = array.T
        for side in ("LONG", "SHORT"):
            code = len(keys)
            keys.append((exchange, symbol, side))
            adverse, favourable = (low, high) if side == "LONG" else (high, low)
            ts = np.stack([start + offset for offset in _OFFSETS], axis=1).ravel()
            price = np.stack([open_, adverse, favourable, close], axis=1).ravel()
            ts_parts.append(ts)
            price_parts.append(price)
            code_parts.append(np.full(len(ts), code, dtype=np.int32))
    if not keys:
        empty = np.empty(0)
        return TickTape(empty, empty, np.empty(0, bool), np.empty(0, np.int32), (), approximate=True, side_paths=True)
    ts = np.concatenate(ts_parts)
    order = np.argsort(ts, kind="stable")
    return TickTape(
        ts=ts[order],
        price=np.concatenate(price_parts)[order],
        accepted=np.ones(len(ts), dtype=bool),
        code=np.concatenate(code_parts)[order],
        keys=tuple(keys),  # type: ignore[arg-type]
        approximate=True,
        side_paths=True,
    )
