"""The simulator's instrument master: the symbols it quotes and trades.

Symbols follow OpenAlgo's own format (openalgo-api.md §8): equities by base name,
futures as ``<BASE><DDMMMYY>FUT``, options as ``<BASE><DDMMMYY><STRIKE><CE|PE>``,
indices on ``NSE_INDEX`` (data only, never tradable).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Exchanges OpenAlgo's request schemas accept, in the order its error message lists them.
VALID_EXCHANGES: tuple[str, ...] = (
    "NSE", "NFO", "CDS", "BSE", "BFO", "BCD", "MCX", "NCDEX", "NCO",
    "NSE_INDEX", "BSE_INDEX", "MCX_INDEX", "GLOBAL_INDEX", "CRYPTO",
)
DERIVATIVE_EXCHANGES = frozenset({"NFO", "BFO", "CDS", "BCD", "MCX", "NCDEX", "NCO"})
INDEX_EXCHANGES = frozenset({"NSE_INDEX", "BSE_INDEX", "MCX_INDEX", "GLOBAL_INDEX"})

#: The expiry every built-in derivative uses (``DDMMMYY`` in symbols, ``DD-MMM-YY`` in the master).
BUILTIN_EXPIRY = "30DEC26"


@dataclass(frozen=True)
class SimSymbol:
    """One instrument: where it trades, its opening price and its contract specification."""

    symbol: str
    exchange: str
    price: float
    tick_size: float = 0.05
    lot_size: int = 1
    freeze_qty: int | None = None
    name: str = ""
    instrument_type: str = "EQ"
    expiry: str = ""
    strike: float = -1.0
    token: str = ""

    def __post_init__(self) -> None:
        if not self.symbol or self.symbol != self.symbol.strip():
            raise ValueError(f"symbol {self.symbol!r}: must be a non-empty name without surrounding spaces")
        if self.exchange not in VALID_EXCHANGES:
            raise ValueError(f"symbol {self.symbol}: exchange {self.exchange!r} is not one of {', '.join(VALID_EXCHANGES)}")
        if not (math.isfinite(self.price) and self.price > 0):
            raise ValueError(f"symbol {self.symbol}: price must be a positive finite number, got {self.price!r}")
        if not (math.isfinite(self.tick_size) and self.tick_size > 0):
            raise ValueError(f"symbol {self.symbol}: tick_size must be a positive finite number, got {self.tick_size!r}")
        if self.lot_size < 1:
            raise ValueError(f"symbol {self.symbol}: lot_size must be at least 1, got {self.lot_size!r}")
        if self.freeze_qty is not None and self.freeze_qty < self.lot_size:
            raise ValueError(f"symbol {self.symbol}: freeze_qty {self.freeze_qty} is below the lot size {self.lot_size}")

    @property
    def key(self) -> tuple[str, str]:
        """``(exchange, symbol)``: how the market and the feed address an instrument."""
        return (self.exchange, self.symbol)

    @property
    def tradable(self) -> bool:
        return self.exchange not in INDEX_EXCHANGES

    @property
    def is_derivative(self) -> bool:
        return self.exchange in DERIVATIVE_EXCHANGES


def _equity(symbol: str, price: float, name: str, token: str, tick_size: float = 0.05) -> SimSymbol:
    return SimSymbol(symbol, "NSE", price, tick_size=tick_size, name=name, token=token)


def _future(base: str, price: float, lot: int, freeze: int, token: str) -> SimSymbol:
    return SimSymbol(
        f"{base}{BUILTIN_EXPIRY}FUT", "NFO", price, tick_size=0.10 if base == "NIFTY" else 0.20,
        lot_size=lot, freeze_qty=freeze, name=base, instrument_type="FUTIDX",
        expiry=_dashed(BUILTIN_EXPIRY), token=token,
    )


def _option(base: str, strike: int, kind: str, price: float, lot: int, freeze: int, token: str) -> SimSymbol:
    return SimSymbol(
        f"{base}{BUILTIN_EXPIRY}{strike}{kind}", "NFO", price, tick_size=0.05, lot_size=lot,
        freeze_qty=freeze, name=base, instrument_type="OPTIDX", expiry=_dashed(BUILTIN_EXPIRY),
        strike=float(strike), token=token,
    )


def _dashed(expiry: str) -> str:
    """``30DEC26`` → ``30-DEC-26`` (how the symbol master stores it)."""
    return f"{expiry[:2]}-{expiry[2:5]}-{expiry[5:]}"


def builtin_symbols() -> list[SimSymbol]:
    """The default NSE / NFO / NSE_INDEX instrument set."""
    return [
        _equity("RELIANCE", 2500.0, "RELIANCE INDUSTRIES LTD", "2885"),
        _equity("SBIN", 800.0, "STATE BANK OF INDIA", "3045"),
        _equity("INFY", 1500.0, "INFOSYS LIMITED", "1594"),
        _equity("TCS", 3500.0, "TATA CONSULTANCY SERV LT", "11536"),
        _equity("HDFCBANK", 1650.0, "HDFC BANK LTD", "1333"),
        _equity("YESBANK", 20.0, "YES BANK LIMITED", "11915", tick_size=0.01),
        _future("NIFTY", 26100.0, 75, 1800, "52001"),
        _future("BANKNIFTY", 59200.0, 35, 900, "52002"),
        _option("NIFTY", 26000, "CE", 240.0, 75, 1800, "60001"),
        _option("NIFTY", 26000, "PE", 180.0, 75, 1800, "60002"),
        _option("BANKNIFTY", 59000, "CE", 520.0, 35, 900, "60003"),
        _option("BANKNIFTY", 59000, "PE", 450.0, 35, 900, "60004"),
        SimSymbol("NIFTY", "NSE_INDEX", 26000.0, name="NIFTY 50", instrument_type="INDEX", token="26000"),
        SimSymbol("BANKNIFTY", "NSE_INDEX", 59000.0, name="NIFTY BANK", instrument_type="INDEX", token="26009"),
    ]
