"""A trade paused live is paused in the replay too: its levels are not acted on from the pause to the resume."""

from __future__ import annotations

from datetime import datetime

import numpy as np

from tmtool.domain.calendar import IST
from tmtool.domain.models import AccountLimits, ExitReason, Product, Side, Trade, TradeEvent, TradeStatus
from tmtool.replay.reader import TickTape
from tmtool.replay.replay import replay
from tmtool.replay.trades import live_trade

T0 = datetime(2026, 12, 7, 10, 0, tzinfo=IST).timestamp()


def _event(ts: float, kind: str, field: str, old: str, new: str, reason: str = "", price: float | None = None) -> TradeEvent:
    return TradeEvent(trade_id=3, ts=ts, kind=kind, field=field, old=old, new=new, reason=reason, price=price, strategy="s")


def test_a_stop_crossed_while_paused_exits_at_the_resume_on_the_last_price():
    prices = [(T0 + 10, 100.0), (T0 + 20, 96.0), (T0 + 30, 96.5), (T0 + 40, 96.2)]  # the stop is 97: crossed at +20
    tape = TickTape(np.array([ts for ts, _ in prices]), np.array([p for _, p in prices]), np.ones(len(prices), bool),
                    np.zeros(len(prices), np.int32), (("NSE", "SBIN"),))
    closed = Trade(
        id=3, strategy="s", symbol="SBIN", exchange="NSE", product=Product.MIS, side=Side.LONG, quantity=0,
        entry_price=100.0, entry_quantity=10, status=TradeStatus.CLOSED, stop_loss=97.0, opened_at=T0 + 5,
        closed_at=T0 + 36, exit_reason=ExitReason.STOP_LOSS, exit_trigger_price=97.0, realised_pnl=-35.0,
    )
    events = [
        _event(T0 + 5, "LEVEL", "levels", "", "stop=97.0 target=None trail=None", price=100.0),
        _event(T0 + 12, "STATUS", "paused", "False", "True"),
        _event(T0 + 35, "STATUS", "paused", "True", "False"),
        _event(T0 + 35, "EXIT_INTENT", "exit_reason", "", "STOP_LOSS", "STOP_LOSS", 96.5),
    ]
    live = live_trade(closed, events)
    result = replay([live], {}, AccountLimits(), tape)
    replayed = [(d.ts, d.reason, d.tick_price) for d in result.trades[0].exits]
    # as it ran: nothing while paused; the resume looks at the last price (96.5, below the stop) at once
    assert replayed == [(T0 + 35, "STOP_LOSS", 96.5)]
    assert [d.key() for d in result.trades[0].exits] == [d.key() for d in live.live_exits]
