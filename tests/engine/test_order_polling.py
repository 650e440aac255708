"""Order status is polled at ``order_status_poll`` whenever order updates cannot be trusted to arrive (no sockets)."""

from __future__ import annotations

from types import SimpleNamespace

from tmtool.clock import ManualClock
from tmtool.domain.broker import FeedStatus
from tmtool.domain.models import FeedState, OrderPurpose, OrderRecord, OrderState
from tmtool.engine.order_events import LiveOrder
from tmtool.engine.orders import OrderManager
from tmtool.engine.settings import EngineSettings
from tmtool.engine.timers import Timers

FLOWING = FeedStatus(FeedState.LIVE, order_updates=True)


def _manager(status: FeedStatus) -> tuple[OrderManager, SimpleNamespace, list]:
    clock = ManualClock()
    timers = Timers(clock)
    jobs: list = []
    state = SimpleNamespace(
        clock=clock,
        timers=timers,
        settings=EngineSettings(order_status_poll=0.5, order_update_backstop=5.0),
        feed_status=status,
        schedule=timers.schedule,
        job=lambda kind, context, fn, *args: jobs.append((kind.value, context, args)),
        broker=SimpleNamespace(order_status=lambda *args: None),
    )
    orders = OrderManager(state, positions=None, journal=None)  # type: ignore[arg-type]
    record = OrderRecord(key="k-1", trade_id=1, purpose=OrderPurpose.EXIT, action="SELL", quantity=5,
                         state=OrderState.SENT, order_id="OID1")
    orders.live[record.key] = LiveOrder(record, "s", ("SBIN", "NSE", "MIS"))
    return orders, state, jobs


def _advance(state: SimpleNamespace, seconds: float) -> None:
    state.clock.advance(seconds)
    state.timers.run_due()


def test_the_backstop_applies_only_while_updates_flow():
    assert FLOWING.order_updates_flowing
    assert not FeedStatus(FeedState.LIVE, order_updates=False).order_updates_flowing
    assert not FeedStatus(FeedState.RECONNECTING, order_updates=True).order_updates_flowing  # offered, socket down
    assert not FeedStatus(FeedState.POLLING, order_updates=True).order_updates_flowing
    assert not FeedStatus(FeedState.LIVE, order_updates=True, polled=(("NSE", "SBIN"),)).order_updates_flowing


def test_when_updates_stop_flowing_a_pending_backstop_poll_is_brought_forward_and_not_repeated():
    orders, state, jobs = _manager(FLOWING)
    orders.poll("k-1", orders.poll_interval())  # due after the 5 s backstop
    _advance(state, 1.0)
    assert jobs == []

    state.feed_status = FeedStatus(FeedState.RECONNECTING, order_updates=True)
    orders.repoll_all()
    _advance(state, 0.5)
    assert jobs == [("order_status", "k-1", ("OID1", "s"))]  # 1.5 s after, not 5 s
    _advance(state, 5.0)
    assert len(jobs) == 1  # the superseded backstop timer asked nothing


def test_a_later_poll_never_postpones_an_earlier_one():
    orders, state, jobs = _manager(FeedStatus(FeedState.RECONNECTING, order_updates=True))
    orders.poll("k-1", 0.5)
    orders.poll("k-1", 5.0)
    _advance(state, 0.5)
    assert len(jobs) == 1
    _advance(state, 5.0)
    assert len(jobs) == 1  # still waiting for the answer: no second request
