"""Reading a recorded day back: every segment of the day, in time order, as plain columns.

``read_day`` concatenates the day's Parquet segments and any stream segment
still open or left by a crash (read up to its last complete batch), ordered by
time (stable: ticks of one timestamp keep the order they were recorded in).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tmtool.replay.recorder import PARQUET_SUFFIX, STREAM_SUFFIX, day_folder
from tmtool.replay.segments import SCHEMA, read_stream


@dataclass(frozen=True)
class TickTape:
    """One day's ticks as columns; ``keys[code[i]]`` is the (exchange, symbol) of tick ``i``."""

    ts: np.ndarray  # float64
    price: np.ndarray  # float64
    accepted: np.ndarray  # bool
    code: np.ndarray  # int32 index into keys
    keys: tuple[tuple[str, str], ...]
    approximate: bool = False  # built from candles, not recorded ticks
    side_paths: bool = False  # keys are (exchange, symbol, side): a price path per trade side (candles)

    def __len__(self) -> int:
        return len(self.ts)

    def symbol_ticks(self, exchange: str, symbol: str, side: str = "LONG") -> tuple[np.ndarray, np.ndarray]:
        """(ts, price) of the accepted ticks of one instrument (on a candle tape: the path ``side`` walks)."""
        key = (exchange, symbol, side) if self.side_paths else (exchange, symbol)
        try:
            code = self.keys.index(key)  # type: ignore[arg-type]
        except ValueError:
            return np.empty(0), np.empty(0)
        mask = (self.code == code) & self.accepted
        return self.ts[mask], self.price[mask]


def segments(folder: Path, day: date) -> list[Path]:
    where = day_folder(folder, day)
    if not where.is_dir():
        return []
    return sorted(p for p in where.iterdir() if p.suffix in (PARQUET_SUFFIX, STREAM_SUFFIX))


def read_table(folder: Path, day: date) -> pa.Table:
    tables = []
    for path in segments(folder, day):
        if path.suffix == PARQUET_SUFFIX:
            tables.append(pq.read_table(str(path)))
        else:
            tables.append(read_stream(path))
    if not tables:
        return SCHEMA.empty_table()
    return pa.concat_tables([t.cast(SCHEMA) for t in tables]).unify_dictionaries()


def read_day(folder: Path, day: date) -> TickTape:
    """The day's recorded ticks in time order (an empty tape when nothing was recorded)."""
    table = read_table(folder, day)
    if table.num_rows == 0:
        empty = np.empty(0)
        return TickTape(empty, empty, np.empty(0, dtype=bool), np.empty(0, dtype=np.int32), ())
    table = table.combine_chunks()
    exchange = table.column("exchange").chunk(0) if table.column("exchange").num_chunks else None
    symbol = table.column("symbol").chunk(0)
    ex_values = exchange.dictionary.to_pylist()
    sy_values = symbol.dictionary.to_pylist()
    ex_idx = exchange.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    sy_idx = symbol.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    pair = ex_idx * len(sy_values) + sy_idx
    unique, code = np.unique(pair, return_inverse=True)
    keys = tuple((ex_values[int(u) // len(sy_values)], sy_values[int(u) % len(sy_values)]) for u in unique)
    ts = table.column("ts").to_numpy()
    order = np.argsort(ts, kind="stable")
    return TickTape(
        ts=ts[order],
        price=table.column("price").to_numpy()[order],
        accepted=np.asarray(pc.fill_null(table.column("accepted"), False).to_numpy(zero_copy_only=False))[order],
        code=code.astype(np.int32)[order],
        keys=keys,
    )
