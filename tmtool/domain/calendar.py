"""The exchange calendar: Asia/Kolkata days and each exchange's regular session.

Pure: every function takes the time as an argument (epoch seconds).
"""

from __future__ import annotations

from datetime import date, datetime, time as dtime
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
