"""The per-channel bounded queue: arrival order, and shedding the oldest of the lowest priority."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tmtool.alerts.dispatcher import BoundedAlertQueue
from tmtool.domain.models import AlertPriority

from tests.alerts.conftest import make_alert

PRIORITIES = [p.value for p in AlertPriority]


def drain(queue: BoundedAlertQueue) -> list[int]:
    out = []
    while (alert := queue.pop()) is not None:
        out.append(alert.id)
    return out


def test_a_full_queue_sheds_the_oldest_info_then_warning_and_refuses_lower_newcomers():
    queue = BoundedAlertQueue(3)
    for alert_id, priority in [(1, "WARNING"), (2, "INFO"), (3, "INFO")]:
        assert queue.push(make_alert(alert_id, priority))
    assert not queue.push(make_alert(4, "CRITICAL"))  # sheds INFO 2
    assert not queue.push(make_alert(5, "WARNING"))  # sheds INFO 3
    assert not queue.push(make_alert(6, "INFO"))  # below everything queued: refused
    assert not queue.push(make_alert(7, "CRITICAL"))  # sheds WARNING 1, the oldest of the lowest
    assert len(queue) == 3
    assert drain(queue) == [4, 5, 7]
    assert len(queue) == 0


@settings(max_examples=200, deadline=None)
@given(capacity=st.integers(1, 6), priorities=st.lists(st.sampled_from(PRIORITIES), max_size=40))
def test_the_queue_keeps_the_highest_priorities_in_arrival_order(capacity, priorities):
    queue = BoundedAlertQueue(capacity)
    alerts = [make_alert(i, p) for i, p in enumerate(priorities)]
    shed = sum(not queue.push(alert) for alert in alerts)
    kept = drain(queue)

    assert len(kept) == min(capacity, len(alerts)) and shed == len(alerts) - len(kept)
    assert kept == sorted(kept)  # delivered in arrival order
    # Once full, the lowest priority queued only rises: every kept alert ranks at or
    # above every shed one.
    shed_ranks = [a.priority.rank for a in alerts if a.id not in set(kept)]
    if shed_ranks:
        assert min(alerts[i].priority.rank for i in kept) >= max(shed_ranks)


def test_clear_counts_what_it_drops():
    queue = BoundedAlertQueue(5)
    for i in range(4):
        queue.push(make_alert(i, "INFO"))
    assert queue.clear() == 4 and queue.pop() is None
