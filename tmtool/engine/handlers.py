"""Routing what comes back to the controllers: job results and order events.

Every ``JobResult`` the executor posts is routed by its ``JobKind`` through one
table that must cover every kind (checked when the engine is built), and an
auth error from any job but an order send or a ping marks the session expired
first.  Every event the order manager emits (``order_events``) is applied here,
at once, by the controller it concerns: fills and final states of entries by
``entries``, of exits by ``exits`` (then ``risk`` re-evaluates the strategy whose
realised P&L moved), session changes by the ``BrokerSession``.
"""

from __future__ import annotations

from typing import Any, Callable

from tmtool.domain.models import OrderPurpose
from tmtool.engine.entries import EntryController
from tmtool.engine.executor import JobKind, JobResult
from tmtool.engine.exits import ExitController
from tmtool.engine.order_events import (
    BrokerAnswered,
    ExitNotSent,
    OrderEvent,
    OrderFilled,
    OrderFinal,
    PositionSettled,
    SessionExpired,
    UnknownResolved,
)
from tmtool.engine.orders import OrderManager
from tmtool.engine.reconciler import BrokerSession, Reconciler
from tmtool.engine.risk import RiskMonitor
from tmtool.engine.state import EngineState


class OrderEventRouter:
    """Applies the order manager's events (install ``apply`` as ``OrderManager.emit``)."""

    def __init__(
        self, state: EngineState, entries: EntryController, exits: ExitController, risk: RiskMonitor, session: BrokerSession
    ) -> None:
        self.state = state
        self._entries = entries
        self._exits = exits
        self._risk = risk
        self._session = session
        self._handlers: dict[type, Callable[[Any], None]] = {
            OrderFilled: self._filled,
            OrderFinal: self._final,
            PositionSettled: lambda event: exits.settle_key(event.pos_key),
            UnknownResolved: lambda event: exits.unblock_key(event.pos_key),
            ExitNotSent: lambda event: exits.exit_not_sent(event.trade, event.parked),
            SessionExpired: lambda event: session.on_auth_error(event.message),
            BrokerAnswered: lambda event: session.broker_ok(),
        }

    def apply(self, event: OrderEvent) -> None:
        self._handlers[type(event)](event)

    def _filled(self, event: OrderFilled) -> None:
        record = event.order.record
        if record.purpose is OrderPurpose.ENTRY:
            self._entries.on_entry_fill(event.trade, event.quantity, event.price)
            return
        runtime = self._exits.on_exit_fill(event.trade, event.quantity, event.price, record.reason)
        if runtime is not None:
            self._risk.evaluate_strategy(runtime, self.state.clock.time())

    def _final(self, event: OrderFinal) -> None:
        if event.order.record.purpose is OrderPurpose.ENTRY:
            self._entries.after_entry_final(event.trade, event.order, event.state)
        else:
            self._exits.after_exit_final(event.trade, event.order, event.state)


class JobRouter:
    """Routes each ``JobResult`` by its kind."""

    def __init__(
        self,
        orders: OrderManager,
        exits: ExitController,
        entries: EntryController,
        reconciler: Reconciler,
        session: BrokerSession,
    ) -> None:
        self._session = session
        self._handlers: dict[JobKind, Callable[[JobResult], None]] = {
            JobKind.ORDER_SENT: orders.on_order_sent,
            JobKind.ORDER_STATUS: orders.on_order_status,
            JobKind.ORDER_FILLS: orders.on_order_fills,
            JobKind.ORDER_LOOKUP: orders.on_order_lookup,
            JobKind.APPROVAL_LOOKUP: orders.on_approval_lookup,
            JobKind.MOVED_CHECK: orders.on_moved_check,
            JobKind.MODIFY_ORDER: orders.on_modify_order,
            JobKind.CANCEL_ORDER: orders.on_cancel_order,
            JobKind.EXIT_POSITION: exits.on_exit_position,
            JobKind.PARTIAL_POSITION: exits.on_partial_position,
            JobKind.PREPARE_ENTRY: entries.on_prepare_entry,
            JobKind.ADOPT_POSITIONS: entries.on_adopt_positions,
            JobKind.RECONCILE: reconciler.on_reconcile,
            JobKind.TRADEBOOK: reconciler.on_tradebook,
            JobKind.CLAIM_FILL: reconciler.on_claim_fill,
            JobKind.PING: session.on_ping,
        }
        missing = set(JobKind) - set(self._handlers)
        if missing:
            raise RuntimeError(f"no handler for job kinds {sorted(missing)}")

    def on_job(self, result: JobResult) -> None:
        kind = JobKind(result.kind)  # an unknown kind raises here instead of vanishing
        if result.error is not None and result.error.kind == "auth" and kind not in (JobKind.ORDER_SENT, JobKind.PING):
            self._session.on_auth_error(result.error.message)
        self._handlers[kind](result)
