"""A strategy deleted during the day keeps its realised P&L in the account's day: the header's
day P&L and the account daily-loss limit both still count it (as History does)."""

from __future__ import annotations

from tests.stack import running_stack
from tmtool.domain.commands import Accepted, CreateTrade, DeleteStrategy, ExitTrade
from tmtool.domain.models import AccountLimits, Distance, ExitReason, Side, Strategy, TradeRisk, TradeStatus

WIDE = TradeRisk(stop_loss=Distance(100))


def _open(stack, strategy: str, symbol: str, quantity: int, price: float) -> int:
    stack.sim.set_price("NSE", symbol, price)
    trade_id = stack.create(CreateTrade(strategy, symbol, "NSE", Side.LONG, quantity=quantity))
    stack.wait_status(trade_id, TradeStatus.ACTIVE)
    return trade_id


def test_deleting_a_strategy_keeps_its_realised_pnl_in_the_account(tmp_path):
    strategies = (Strategy("a", trade_risk=WIDE), Strategy("b", trade_risk=WIDE))
    with running_stack(tmp_path, strategies=strategies, account=AccountLimits(daily_loss_limit=300.0)) as stack:
        loser = _open(stack, "a", "RELIANCE", 10, 2500.0)
        stack.tick("RELIANCE", 2480.0)
        stack.sim.set_price("NSE", "RELIANCE", 2480.0)
        assert isinstance(stack.submit(ExitTrade(loser)), Accepted)
        closed = stack.wait_status(loser, TradeStatus.CLOSED)
        realised = closed.realised_pnl
        assert realised < -150
        moved = _open(stack, "a", "SBIN", 10, 800.0)
        before = stack.wait_snapshot(lambda s: abs(s.account_pnl - realised) < 0.01).account_pnl

        assert isinstance(stack.submit(DeleteStrategy("a", open_trades="move", move_to="b")), Accepted)
        after = stack.wait_snapshot(lambda s: "a" not in {v.name for v in s.strategies})
        assert after.account_pnl == before  # the deleted strategy's loss still counts today

        stack.tick("SBIN", 790.0)  # -100 more: the account is past its 300 limit only with the deleted loss
        assert stack.wait_status(moved, TradeStatus.CLOSED).exit_reason is ExitReason.ACCOUNT_LOSS_LIMIT
