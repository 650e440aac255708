"""Job results and order events reach exactly the controller they belong to (no sockets)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tmtool.domain.broker import BrokerError
from tmtool.domain.models import ExitReason, OrderPurpose, OrderRecord, OrderState, Product, Side, Trade
from tmtool.engine.executor import JobKind, JobResult
from tmtool.engine.handlers import JobRouter, OrderEventRouter
from tmtool.engine.order_events import (
    BrokerAnswered,
    ExitNotSent,
    LiveOrder,
    OrderFilled,
    OrderFinal,
    PositionSettled,
    SessionExpired,
    UnknownResolved,
)


class Recorder:
    """Any attribute is a callable that records ``(name, args)``; ``returns`` sets what some return."""

    def __init__(self, calls: list, returns: dict | None = None) -> None:
        self._calls = calls
        self._returns = returns or {}

    def __getattr__(self, name: str):
        def call(*args):
            self._calls.append((name, args))
            return self._returns.get(name)

        return call


def job_router(calls: list) -> JobRouter:
    component = Recorder(calls)
    return JobRouter(orders=component, exits=component, entries=component, reconciler=component, session=component)


@pytest.mark.parametrize("kind", list(JobKind))
def test_every_job_kind_has_its_handler(kind):
    calls: list = []
    result = JobResult(kind, context=None)
    job_router(calls).on_job(result)
    assert len(calls) == 1 and calls[0][1] == (result,)


def test_a_job_kind_given_by_its_value_is_routed_like_the_enum():
    calls: list = []
    job_router(calls).on_job(JobResult("order_status", context="k"))  # type: ignore[arg-type]
    assert [name for name, _ in calls] == ["on_order_status"]


def test_a_misspelt_job_kind_is_refused_not_dropped():
    with pytest.raises(ValueError):
        job_router([]).on_job(JobResult("order_stauts", context=None))  # type: ignore[arg-type]


def test_an_auth_error_expires_the_session_before_the_handler_runs_except_for_order_sends_and_pings():
    calls: list = []
    router = job_router(calls)
    router.on_job(JobResult(JobKind.RECONCILE, context=(None, {}, 0), error=BrokerError("auth", "key refused")))
    assert [name for name, _ in calls] == ["on_auth_error", "on_reconcile"]
    calls.clear()
    router.on_job(JobResult(JobKind.ORDER_SENT, context="k", error=BrokerError("auth", "key refused")))
    router.on_job(JobResult(JobKind.PING, context=None, error=BrokerError("auth", "key refused")))
    assert [name for name, _ in calls] == ["on_order_sent", "on_ping"]


def _order(purpose: OrderPurpose) -> tuple[Trade, LiveOrder]:
    trade = Trade(id=7, strategy="s", symbol="SBIN", exchange="NSE", product=Product.MIS, side=Side.LONG, quantity=10, entry_price=100.0)
    record = OrderRecord(key="x-7", trade_id=7, purpose=purpose, action="SELL", quantity=10, state=OrderState.SENT,
                         reason=ExitReason.STOP_LOSS if purpose is OrderPurpose.EXIT else None)
    return trade, LiveOrder(record, "s", ("SBIN", "NSE", "MIS"))


def event_router(calls: list, exit_fill_returns=None) -> OrderEventRouter:
    state = SimpleNamespace(clock=SimpleNamespace(time=lambda: 123.0))
    component = Recorder(calls, {"on_exit_fill": exit_fill_returns})
    return OrderEventRouter(state, entries=component, exits=component, risk=component, session=component)  # type: ignore[arg-type]


def test_fills_go_to_the_entry_or_exit_controller_by_the_order_purpose():
    calls: list = []
    trade, entry = _order(OrderPurpose.ENTRY)
    event_router(calls).apply(OrderFilled(trade, entry, 4, 101.0))
    assert calls == [("on_entry_fill", (trade, 4, 101.0))]


def test_an_exit_fill_then_re_evaluates_the_strategy_whose_realised_pnl_moved():
    calls: list = []
    trade, exit_order = _order(OrderPurpose.EXIT)
    runtime = object()
    event_router(calls, exit_fill_returns=runtime).apply(OrderFilled(trade, exit_order, 4, 99.0))
    assert calls == [("on_exit_fill", (trade, 4, 99.0, ExitReason.STOP_LOSS)), ("evaluate_strategy", (runtime, 123.0))]
    calls.clear()
    event_router(calls, exit_fill_returns=None).apply(OrderFilled(trade, exit_order, 0, 99.0))
    assert [name for name, _ in calls] == ["on_exit_fill"]


def test_every_other_order_event_reaches_its_controller():
    calls: list = []
    router = event_router(calls)
    trade, entry = _order(OrderPurpose.ENTRY)
    _, exit_order = _order(OrderPurpose.EXIT)
    router.apply(OrderFinal(trade, entry, OrderState.CANCELLED))
    router.apply(OrderFinal(trade, exit_order, OrderState.REJECTED))
    router.apply(PositionSettled(("SBIN", "NSE", "MIS")))
    router.apply(UnknownResolved(("SBIN", "NSE", "MIS")))
    router.apply(ExitNotSent(trade, parked=True))
    router.apply(SessionExpired("expired"))
    router.apply(BrokerAnswered())
    assert calls == [
        ("after_entry_final", (trade, entry, OrderState.CANCELLED)),
        ("after_exit_final", (trade, exit_order, OrderState.REJECTED)),
        ("settle_key", (("SBIN", "NSE", "MIS"),)),
        ("unblock_key", (("SBIN", "NSE", "MIS"),)),
        ("exit_not_sent", (trade, True)),
        ("on_auth_error", ("expired",)),
        ("broker_ok", ()),
    ]
