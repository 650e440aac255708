"""Headless log lines are ``key=value`` with IST times and the zone, name the strategy, and a
closing line reports the price the exit itself filled at (not the average of every exit)."""

from __future__ import annotations

import logging
import re

import pytest

from tests.stack import running_stack
from tmtool.domain.commands import CreateTrade
from tmtool.domain.keyvalue import key_values, log_value
from tmtool.domain.models import Distance, PartialTarget, Side, Strategy, TradeRisk, TradeStatus
from tmtool.logs import KeyValueFormatter

KEY_VALUE = re.compile(r'^(\w+=("([^"\\]|\\.)*"|[^\s"]*))( \w+=("([^"\\]|\\.)*"|[^\s"]*))*$')


def test_values_are_quoted_only_when_needed():
    assert log_value("SBIN") == "SBIN"
    assert log_value('closed: "STOP" at 800') == '"closed: \\"STOP\\" at 800"'
    assert key_values(event="alert", trade=12, strategy=None, text="a b") == 'event=alert trade=12 text="a b"'


def test_every_line_is_key_value_in_ist_with_the_zone():
    formatter = KeyValueFormatter()
    record = logging.LogRecord("tmtool.engine.journal", logging.INFO, __file__, 1, "prose from a library: %s", ("x y",), None)
    record.created = 1767591930.0  # 2026-01-05 05:45:30 UTC
    line = formatter.format(record)
    assert line.startswith("ts=2026-01-05T11:15:30+05:30 level=INFO logger=tmtool.engine.journal ")
    assert 'msg="prose from a library: x y"' in line
    assert KEY_VALUE.match(line), line
    record.msg, record.args = "event=signal signal=SIGTERM action=shutdown", ()
    assert formatter.format(record).endswith(" event=signal signal=SIGTERM action=shutdown")


def test_the_closing_line_names_the_strategy_and_the_exits_own_fill(tmp_path, caplog):
    strategy = Strategy(
        "scalps",
        trade_risk=TradeRisk(stop_loss=Distance(10), target=Distance(30), partial_targets=(PartialTarget(Distance(10), 0.5),)),
    )
    caplog.set_level(logging.INFO, logger="tmtool.engine.journal")
    with running_stack(tmp_path, strategies=(strategy,)) as stack:
        stack.sim.set_price("NSE", "RELIANCE", 2500.0)
        trade_id = stack.create(CreateTrade("scalps", "RELIANCE", "NSE", Side.LONG, quantity=10))
        stack.wait_status(trade_id, TradeStatus.ACTIVE)
        stack.tick("RELIANCE", 2511.0)  # half out at the partial target
        stack.wait_trade(trade_id, lambda t: t.quantity == 5)
        stack.tick("RELIANCE", 2530.0)  # the rest at the target
        closed = stack.wait_status(trade_id, TradeStatus.CLOSED)
    fills = [e.price for e in stack.engine.trade_events(trade_id) if e.kind == "EXIT_FILL"]
    assert len(fills) == 2 and fills[0] != fills[1]
    line = next(r.getMessage() for r in caplog.records if "closed:" in r.getMessage())
    assert line.startswith("event=alert category=TRADE priority=INFO strategy=scalps trade=")
    assert "symbol=RELIANCE" in line
    assert f"filled at {fills[1]:.2f} (all exits average {closed.exit_price:.2f})" in line
    assert closed.exit_price == pytest.approx((fills[0] + fills[1]) / 2)
