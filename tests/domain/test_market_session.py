"""The exchange session by the Asia/Kolkata clock: pre-open, open, closing, closed, holiday."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from tmtool.domain.calendar import IST, MarketSession, market_session


def at(day: int, hour: int, minute: int) -> float:
    return datetime(2026, 1, day, hour, minute, tzinfo=IST).timestamp()


@pytest.mark.parametrize(
    ("moment", "session"),
    [
        (at(5, 8, 59), MarketSession.CLOSED),
        (at(5, 9, 0), MarketSession.PRE_OPEN),
        (at(5, 9, 14), MarketSession.PRE_OPEN),
        (at(5, 9, 15), MarketSession.OPEN),
        (at(5, 15, 19), MarketSession.OPEN),
        (at(5, 15, 20), MarketSession.CLOSING),
        (at(5, 15, 30), MarketSession.CLOSING),
        (at(5, 15, 31), MarketSession.CLOSED),
        (at(3, 11, 0), MarketSession.CLOSED),  # a Saturday
    ],
)
def test_nse_sessions(moment, session):
    assert market_session("NSE", moment) is session


def test_a_configured_holiday_is_a_holiday():
    assert market_session("NSE", at(26, 11, 0), {date(2026, 1, 26)}) is MarketSession.HOLIDAY
    assert market_session("NSE", at(26, 11, 0)) is MarketSession.OPEN


def test_commodities_trade_into_the_evening():
    assert market_session("MCX", at(5, 21, 0)) is MarketSession.OPEN
    assert market_session("MCX", at(5, 23, 25)) is MarketSession.CLOSING
