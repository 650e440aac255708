"""F&O entries: split at the freeze quantity like exits, funds checked against margin, not notional."""

from __future__ import annotations

import dataclasses

from tests.stack import FAST_SETTINGS, running_stack
from tests.util import wait_for
from tmtool.domain.commands import Accepted, CreateTrade, Denied, ExitTrade
from tmtool.domain.models import Distance, PriceType, Product, Side, Strategy, TradeRisk, TradeStatus

OPTION = "NIFTY30DEC2626000CE"  # lot 75, freeze 1800 in the simulator
FUTURE = "NIFTY30DEC26FUT"
RISK = TradeRisk(stop_loss=Distance(20))


def _buys(stack, symbol: str) -> list[int]:
    return [int(o["quantity"]) for o in stack.orders_for(symbol, action="BUY")]


def test_an_entry_above_the_freeze_quantity_goes_out_in_pieces_and_fills_as_one_trade(tmp_path):
    with running_stack(tmp_path, strategies=(Strategy("fno", trade_risk=RISK, product=Product.NRML),)) as stack:
        stack.sim.set_price("NFO", OPTION, 240.0)
        trade_id = stack.create(CreateTrade("fno", OPTION, "NFO", Side.LONG, quantity=4500))
        view = stack.wait_trade(trade_id, lambda t: t.status is TradeStatus.ACTIVE and t.quantity == 4500)
        assert sorted(_buys(stack, OPTION), reverse=True) == [1800, 1800, 900]
        assert stack.position(OPTION, "NFO", "NRML") == 4500
        assert view.entry_quantity == 4500 and view.entry_price == 240.0

        assert isinstance(stack.submit(ExitTrade(trade_id)), Accepted)
        stack.wait_status(trade_id, TradeStatus.CLOSED)
        assert stack.position(OPTION, "NFO", "NRML") == 0


def test_an_f_and_o_entry_is_checked_against_the_margin_the_server_quotes(tmp_path):
    # 1 lot of the future: notional 1,957,500; the simulator's margin (20 %) is 391,500.
    strategy = Strategy("fno", trade_risk=TradeRisk(stop_loss=Distance(100)), product=Product.NRML, allocated_funds=500_000.0)
    with running_stack(tmp_path, strategies=(strategy,)) as stack:
        stack.sim.set_price("NFO", FUTURE, 26100.0)
        trade_id = stack.create(CreateTrade("fno", FUTURE, "NFO", Side.LONG, quantity=75))
        stack.wait_status(trade_id, TradeStatus.ACTIVE)
        denied = stack.submit(CreateTrade("fno", FUTURE, "NFO", Side.LONG, quantity=75))  # 500,000 − 391,500 left
        assert isinstance(denied, Denied) and denied.code == "INSUFFICIENT_FUNDS", denied
        assert "margin" in denied.message


def test_without_a_margin_calculator_the_configured_percentage_of_notional_is_used(tmp_path):
    strategy = Strategy("fno", trade_risk=TradeRisk(stop_loss=Distance(100)), product=Product.NRML, allocated_funds=500_000.0)
    for percent, accepted in ((25.0, True), (30.0, False)):  # 489,375 and 587,250 against 500,000
        settings = dataclasses.replace(FAST_SETTINGS, fno_margin_percent=percent)
        with running_stack(tmp_path / str(percent), strategies=(strategy,), settings=settings) as stack:
            stack.sim.margin_calculator = False
            stack.sim.set_price("NFO", FUTURE, 26100.0)
            result = stack.submit(CreateTrade("fno", FUTURE, "NFO", Side.LONG, quantity=75))
            assert isinstance(result, Accepted) is accepted, result
            if not accepted:
                assert result.code == "INSUFFICIENT_FUNDS" and "margin" in result.message


def test_equity_entries_still_need_the_full_notional(tmp_path):
    strategy = Strategy("eq", trade_risk=RISK, allocated_funds=10_000.0)
    with running_stack(tmp_path, strategies=(strategy,)) as stack:
        stack.sim.set_price("NSE", "SBIN", 800.0)
        denied = stack.submit(CreateTrade("eq", "SBIN", "NSE", Side.LONG, quantity=13))  # 10,400
        assert isinstance(denied, Denied) and denied.code == "INSUFFICIENT_FUNDS"
        assert isinstance(stack.submit(CreateTrade("eq", "SBIN", "NSE", Side.LONG, quantity=12)), Accepted)


def test_a_rejected_piece_of_a_split_entry_leaves_the_trade_to_the_pieces_still_working(tmp_path):
    with running_stack(tmp_path, strategies=(Strategy("fno", trade_risk=RISK, product=Product.NRML),)) as stack:
        stack.sim.set_price("NFO", OPTION, 240.0)
        stack.sim.faults.reject_orders(1)  # one piece is refused by the broker's RMS
        trade_id = stack.create(CreateTrade("fno", OPTION, "NFO", Side.LONG, quantity=4500,
                                            price_type=PriceType.LIMIT, limit_price=230.0))
        wait_for(lambda: len(stack.orders_for(OPTION, action="BUY")) == 3, what="three pieces at the broker")
        wait_for(lambda: any(o["status"] == "rejected" for o in stack.orders_for(OPTION, action="BUY")),
                 what="one piece rejected")
        assert stack.wait_trade(trade_id, lambda t: True).status is TradeStatus.PENDING_ENTRY
        working = sum(int(o["quantity"]) for o in stack.orders_for(OPTION, action="BUY") if o["status"] != "rejected")
        stack.tick(OPTION, 229.0, exchange="NFO")
        view = stack.wait_trade(trade_id, lambda t: t.status is TradeStatus.ACTIVE and t.quantity == working)
        assert stack.position(OPTION, "NFO", "NRML") == working == view.quantity
