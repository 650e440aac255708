"""Stale prices during market hours degrade the trades and alert; quiet hours do not."""

from __future__ import annotations

from datetime import datetime

from tests.stack import running_stack
from tests.util import wait_for
from tmtool.domain.calendar import IST
from tmtool.clock import ManualClock
from tmtool.domain.commands import CreateTrade
from tmtool.domain.calendar import exchange_open
from tmtool.domain.models import (
    AlertPriority,
    Distance,
    Side,
    Strategy,
    TradeRisk,
    TradeStatus,
)

RISK = Strategy("s1", trade_risk=TradeRisk(stop_loss=Distance(10)))


def _stale_alerts(stack) -> list[str]:
    return [a.text for a in stack.engine.snapshot().alerts if "stale" in a.text and a.priority is AlertPriority.WARNING]


def test_stale_symbol_in_market_hours_degrades_its_trades_until_prices_return(tmp_path):
    clock = ManualClock(datetime(2026, 1, 5, 10, 0, tzinfo=IST), real_timers=True)  # a Monday, market open
    with running_stack(tmp_path, strategies=(RISK,), clock=clock, stale_after=5.0) as stack:
        stack.sim.set_price("NSE", "RELIANCE", 2500.0)
        trade_id = stack.create(CreateTrade("s1", "RELIANCE", "NSE", Side.LONG, quantity=1))
        stack.wait_status(trade_id, TradeStatus.ACTIVE)
        stack.tick("RELIANCE", 2501.0)

        clock.advance(10.0)
        assert stack.wait_trade(trade_id, lambda t: t.degraded).status is TradeStatus.ACTIVE
        wait_for(lambda: _stale_alerts(stack), what="stale alert")
        assert ("NSE", "RELIANCE") in stack.engine.snapshot().system.stale_symbols

        stack.tick("RELIANCE", 2502.0)
        stack.wait_trade(trade_id, lambda t: not t.degraded)


def test_stale_symbol_outside_market_hours_is_not_alarming(tmp_path):
    clock = ManualClock(datetime(2026, 1, 3, 10, 0, tzinfo=IST), real_timers=True)  # a Saturday
    with running_stack(tmp_path, strategies=(RISK,), clock=clock, stale_after=5.0) as stack:
        stack.sim.set_price("NSE", "RELIANCE", 2500.0)
        trade_id = stack.create(CreateTrade("s1", "RELIANCE", "NSE", Side.LONG, quantity=1))
        stack.wait_status(trade_id, TradeStatus.ACTIVE)
        clock.advance(10.0)
        stack.wait_snapshot(lambda s: ("NSE", "RELIANCE") in s.system.stale_symbols)
        assert not stack.engine.snapshot().trade(trade_id).degraded
        assert _stale_alerts(stack) == []


def test_trading_hours_per_exchange():
    monday = datetime(2026, 1, 5, tzinfo=IST)
    assert not exchange_open("NSE", monday.replace(hour=9, minute=10).timestamp())  # pre-open
    assert exchange_open("NSE", monday.replace(hour=9, minute=15).timestamp())
    assert not exchange_open("NFO", monday.replace(hour=15, minute=45).timestamp())
    assert exchange_open("MCX", monday.replace(hour=21, minute=0).timestamp())
    assert not exchange_open("MCX", monday.replace(hour=23, minute=45).timestamp())
