"""Simulated prices: a seeded, tick-size-aligned random walk per instrument.

The market is not thread-safe on its own; the simulator serialises every call
under its state lock.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from tmtool.clock import Clock
from tmtool.sim.symbols import SimSymbol

DEPTH_LEVELS = 5
CANDLE_SECONDS = 60
MAX_CANDLES = 3 * 24 * 60  # per instrument: three days of 1-minute candles


def round_to_tick(price: float, tick_size: float) -> float:
    """The nearest multiple of ``tick_size`` (at least one tick), without float dust."""
    ticks = max(1, round(price / tick_size))
    decimals = max(0, -math.floor(math.log10(tick_size)) + 1)
    return round(ticks * tick_size, decimals)


@dataclass
class Quote:
    """The live state of one instrument."""

    instrument: SimSymbol
    ltp: float
    open: float
    high: float
    low: float
    prev_close: float
    volume: int
    last_quantity: int
    traded_value: float
    ltt_ms: int
    oi: int

    @property
    def bid(self) -> float:
        return round_to_tick(self.ltp - self.instrument.tick_size, self.instrument.tick_size)

    @property
    def ask(self) -> float:
        return round_to_tick(self.ltp + self.instrument.tick_size, self.instrument.tick_size)

    @property
    def average_price(self) -> float:
        return round(self.traded_value / self.volume, 2) if self.volume else self.ltp

    def depth(self) -> tuple[list[dict], list[dict]]:
        """Five bid and five ask levels one tick apart, sizes derived from the volume."""
        tick = self.instrument.tick_size
        lot = self.instrument.lot_size
        bids, asks = [], []
        for level in range(DEPTH_LEVELS):
            size = lot * (1 + (self.volume // (level + 3)) % 40)
            bids.append({"price": round_to_tick(self.ltp - tick * (level + 1), tick), "quantity": size,
                         "orders": 1 + size % 7})
            asks.append({"price": round_to_tick(self.ltp + tick * (level + 1), tick), "quantity": size + lot,
                         "orders": 1 + (size + 3) % 7})
        return bids, asks

    @property
    def total_buy_quantity(self) -> int:
        return sum(level["quantity"] for level in self.depth()[0])

    @property
    def total_sell_quantity(self) -> int:
        return sum(level["quantity"] for level in self.depth()[1])


class Market:
    """Prices for a fixed set of instruments, moved by :meth:`step` or :meth:`set_price`."""

    def __init__(self, symbols: list[SimSymbol], seed: int, volatility: float, clock: Clock) -> None:
        if not (math.isfinite(volatility) and volatility >= 0):
            raise ValueError(f"volatility must be a non-negative finite number, got {volatility!r}")
        self._rng = random.Random(seed)
        self._volatility = volatility
        self._clock = clock
        self._quotes: dict[tuple[str, str], Quote] = {}
        # (exchange, symbol) -> 1-minute candles [minute start (epoch s), open, high, low, close, volume]
        self._candles: dict[tuple[str, str], list[list[float]]] = {}
        for instrument in symbols:
            if instrument.key in self._quotes:
                raise ValueError(f"symbol {instrument.symbol} on {instrument.exchange} is listed twice")
            self._quotes[instrument.key] = self._opening_quote(instrument)

    def _opening_quote(self, instrument: SimSymbol) -> Quote:
        price = round_to_tick(instrument.price, instrument.tick_size)
        prev_close = round_to_tick(price * (1 + self._rng.uniform(-0.01, 0.01)), instrument.tick_size)
        volume = self._rng.randint(50_000, 5_000_000) // instrument.lot_size * instrument.lot_size
        return Quote(
            instrument=instrument, ltp=price, open=price, high=price, low=price, prev_close=prev_close,
            volume=volume, last_quantity=instrument.lot_size, traded_value=volume * price,
            ltt_ms=self._now_ms(), oi=self._rng.randint(1_000, 50_000) * instrument.lot_size if instrument.is_derivative else 0,
        )

    def _now_ms(self) -> int:
        return int(self._clock.time() * 1000)

    def keys(self) -> list[tuple[str, str]]:
        return list(self._quotes)

    def instrument(self, exchange: str, symbol: str) -> SimSymbol | None:
        quote = self._quotes.get((exchange, symbol))
        return quote.instrument if quote else None

    def quote(self, exchange: str, symbol: str) -> Quote:
        """The live quote; ``KeyError`` naming the instrument when it is unknown."""
        try:
            return self._quotes[(exchange, symbol)]
        except KeyError:
            raise KeyError(f"unknown instrument {symbol} on {exchange}") from None

    def set_price(self, exchange: str, symbol: str, price: float) -> Quote:
        """Trade at ``price`` (aligned to the tick size); returns the updated quote."""
        if isinstance(price, bool) or not isinstance(price, (int, float)) or not math.isfinite(price) or price <= 0:
            raise ValueError(f"price for {symbol} on {exchange} must be a positive finite number, got {price!r}")
        quote = self.quote(exchange, symbol)
        self._trade(quote, round_to_tick(float(price), quote.instrument.tick_size))
        return quote

    def step(self) -> list[Quote]:
        """One random-walk round over every instrument; returns the quotes in listing order."""
        moved = []
        for quote in self._quotes.values():
            change = self._rng.gauss(0.0, self._volatility)
            self._trade(quote, round_to_tick(quote.ltp * (1.0 + change), quote.instrument.tick_size))
            moved.append(quote)
        return moved

    def _trade(self, quote: Quote, price: float) -> None:
        lot = quote.instrument.lot_size
        quantity = lot * self._rng.randint(1, 20)
        quote.ltp = price
        quote.high = max(quote.high, price)
        quote.low = min(quote.low, price)
        quote.volume += quantity
        quote.traded_value += quantity * price
        quote.last_quantity = quantity
        quote.ltt_ms = self._now_ms()
        self._add_to_candle(quote.instrument.key, price, quantity)

    def _add_to_candle(self, key: tuple[str, str], price: float, quantity: int) -> None:
        minute = int(self._clock.time() // CANDLE_SECONDS * CANDLE_SECONDS)
        candles = self._candles.setdefault(key, [])
        if candles and candles[-1][0] == minute:
            candle = candles[-1]
            candle[2] = max(candle[2], price)
            candle[3] = min(candle[3], price)
            candle[4] = price
            candle[5] += quantity
            return
        candles.append([minute, price, price, price, price, quantity])
        if len(candles) > MAX_CANDLES:
            del candles[: len(candles) - MAX_CANDLES]

    def candles(self, exchange: str, symbol: str, start: float, end: float) -> list[list[float]]:
        """1-minute candles (copies) of the trades made at the simulator whose minute starts in [start, end)."""
        return [list(c) for c in self._candles.get((exchange, symbol), ()) if start <= c[0] < end]
