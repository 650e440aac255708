"""The snapshot carries tmtool's orders that are not final and each net position, the broker's
against tmtool's trades (for the orders-and-positions view)."""

from __future__ import annotations

from tests.stack import running_stack
from tmtool.domain.commands import CreateTrade
from tmtool.domain.models import Distance, Side, Strategy, TradeRisk, TradeStatus


def test_a_filled_trade_shows_as_tmtools_position_and_its_entry_is_no_longer_live(tmp_path):
    with running_stack(tmp_path, strategies=(Strategy("s1", trade_risk=TradeRisk(stop_loss=Distance(50))),)) as stack:
        stack.sim.set_price("NSE", "SBIN", 800.0)
        trade_id = stack.create(CreateTrade("s1", "SBIN", "NSE", Side.LONG, quantity=10))
        stack.wait_status(trade_id, TradeStatus.ACTIVE)
        snapshot = stack.wait_snapshot(lambda s: any(p.symbol == "SBIN" and p.tmtool_net == 10 for p in s.positions))
        [position] = snapshot.positions
        assert (position.exchange, position.product) == ("NSE", "MIS")
        assert position.broker_net in (None, 10)  # None until the positionbook is read
        assert not position.differs
        assert snapshot.orders == ()  # the entry is final once filled
