"""The exchange calendar: Asia/Kolkata days and each exchange's regular session.

Pure: every function takes the time as an argument (epoch seconds).
"""

from __future__ import annotations

from datetime import date, datetime, time as dtime
from enum import Enum
from typing import Collection
from zoneinfo import ZoneInfo

IST = ZoneInfo("Asia/Kolkata")


def to_ist(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, IST)


def trading_day(ts: float) -> date:
    """The trading day (Asia/Kolkata calendar date) an epoch time falls in."""
    return to_ist(ts).date()


def exchange_open(exchange: str, ts: float) -> bool:
    """True during the exchange's regular session (Asia/Kolkata, weekdays).

    NSE/BSE/NFO/BFO 09:15–15:30, currency 09:00–17:00, commodities 09:00–23:30.
    Pre-open and evening lulls are outside, so a quiet symbol there is not alarming.
    """
    moment = to_ist(ts)
    if moment.weekday() >= 5:
        return False
    now = moment.time()
    if exchange in ("MCX", "NCDEX", "NCO"):
        return dtime(9, 0) <= now <= dtime(23, 30)
    if exchange in ("CDS", "BCD"):
        return dtime(9, 0) <= now <= dtime(17, 0)
    if exchange == "CRYPTO":
        return True
    return dtime(9, 15) <= now <= dtime(15, 30)


class MarketSession(str, Enum):
    """Where an exchange's day stands (Asia/Kolkata)."""

    PRE_OPEN = "PRE-OPEN"  # the equity call auction, 09:00–09:15
    OPEN = "OPEN"
    CLOSING = "CLOSING"  # the last CLOSING_MINUTES of the regular session: square-offs are due
    CLOSED = "CLOSED"
    HOLIDAY = "HOLIDAY"  # a weekday the exchange does not trade (from the configured holidays)


CLOSING_MINUTES = 10
_EQUITY_PRE_OPEN = dtime(9, 0)


def _session_hours(exchange: str) -> tuple[dtime, dtime] | None:
    if exchange in ("MCX", "NCDEX", "NCO"):
        return dtime(9, 0), dtime(23, 30)
    if exchange in ("CDS", "BCD"):
        return dtime(9, 0), dtime(17, 0)
    if exchange == "CRYPTO":
        return None
    return dtime(9, 15), dtime(15, 30)


def market_session(exchange: str, ts: float, holidays: Collection[date] = ()) -> MarketSession:
    """The exchange's session at ``ts``: pre-open, open, closing (its last minutes), closed or holiday."""
    moment = to_ist(ts)
    hours = _session_hours(exchange)
    if hours is None:
        return MarketSession.OPEN
    if moment.date() in holidays:
        return MarketSession.HOLIDAY
    if moment.weekday() >= 5:
        return MarketSession.CLOSED
    start, end = hours
    now = moment.time()
    if start == dtime(9, 15) and _EQUITY_PRE_OPEN <= now < start:
        return MarketSession.PRE_OPEN
    if not start <= now <= end:
        return MarketSession.CLOSED
    minutes = now.hour * 60 + now.minute
    if minutes >= end.hour * 60 + end.minute - CLOSING_MINUTES:
        return MarketSession.CLOSING
    return MarketSession.OPEN
