"""The engine loop: one inbox, one thread, everything in order.

The feed's threads, the executor's workers, the TUI and the control API only
put messages on the inbox: ticks, commands, job results, order updates, feed
status and calls.  The loop takes them one by one — on its own thread, or on
the caller's with ``pump()`` — and dispatches each: ticks to ``watch`` (each
evaluated, never coalesced), commands to ``commands``, job results to
``handlers.JobRouter``, order updates to ``orders``.  Between batches it runs
due timers (on the injected clock), looks at the trading calendar and publishes
a snapshot.
"""

from __future__ import annotations

import logging
import queue
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable

from tmtool.domain.broker import FeedStatus, OrderUpdate
from tmtool.domain.commands import Denied
from tmtool.domain.models import Tick
from tmtool.engine.commands import CommandHandlers
from tmtool.engine.executor import JobKind, JobResult
from tmtool.engine.handlers import JobRouter
from tmtool.engine.journal import Journal
from tmtool.engine.orders import OrderManager
from tmtool.engine.publisher import SnapshotPublisher
from tmtool.engine.risk import RiskMonitor
from tmtool.engine.state import EngineState
from tmtool.engine.watch import Watch

log = logging.getLogger(__name__)

STOP = object()
_WAKE = 0.1  # the loop wakes at least this often (real seconds) for timers and the calendar
_BATCH = 512  # inbox items drained per wake before timers and snapshots get a turn


@dataclass(frozen=True, slots=True)
class CommandMessage:
    command: object
    future: Future


@dataclass(frozen=True, slots=True)
class Call:
    """Run ``fn`` on the engine thread (internal requests from other threads)."""

    fn: Callable[..., Any]
    args: tuple = ()


class EngineLoop:
    def __init__(
        self,
        state: EngineState,
        journal: Journal,
        publisher: SnapshotPublisher,
        watch: Watch,
        orders: OrderManager,
        risk: RiskMonitor,
        commands: CommandHandlers,
        jobs: JobRouter,
    ) -> None:
        self.state = state
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._journal = journal
        self._publisher = publisher
        self._watch = watch
        self._orders = orders
        self._risk = risk
        self._commands = commands
        self._jobs = jobs

    def on_feed_tick(self, tick: Tick) -> None:
        if self.state.accepting_ticks:
            self.inbox.put(tick)

    def run(self) -> None:
        """The engine thread: until ``STOP`` arrives."""
        inbox = self.inbox
        state = self.state
        clock = state.clock
        publisher = self._publisher
        while True:
            timeout = _WAKE
            due = state.timers.next_due()
            if due is not None:
                timeout = min(timeout, max(0.0, due - clock.monotonic()))
            if state.dirty:
                timeout = min(timeout, max(0.0, publisher.last_publish + 1.0 / state.settings.snapshot_hz - clock.monotonic()))
            try:
                item = inbox.get(timeout=timeout)
            except queue.Empty:
                item = None
            handled = 0
            while item is not None:
                if item is STOP:
                    return
                try:
                    self.dispatch(item)
                except Exception:  # one bad message must not stop the monitor
                    log.exception("engine failed handling %r", type(item).__name__)
                handled += 1
                if handled >= _BATCH:
                    break
                try:
                    item = inbox.get_nowait()
                except queue.Empty:
                    item = None
            self.housekeeping()

    def pump(self, limit: int | None = None) -> int:
        handled = 0
        while limit is None or handled < limit:
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                break
            if item is STOP:
                break
            try:
                self.dispatch(item)
            except Exception:  # one bad message must not stop the monitor
                log.exception("engine failed handling %r", type(item).__name__)
            handled += 1
        self.housekeeping()
        return handled

    def housekeeping(self) -> None:
        try:
            self.state.timers.run_due()
            looked_at = self._risk.check_calendar()
            if looked_at is not None:
                self._watch.update_degraded(looked_at)
            self._publisher.publish()
        except Exception:
            log.exception("engine housekeeping failed")

    def dispatch(self, item: object) -> None:
        kind = type(item)
        if kind is Tick:
            if self.state.accepting_ticks:
                self._watch.process_tick(item)  # type: ignore[arg-type]
        elif kind is JobResult:
            self._jobs.on_job(item)  # type: ignore[arg-type]
        elif kind is CommandMessage:
            self._commands.handle(item.command, item.future)  # type: ignore[union-attr]
        elif kind is OrderUpdate:
            self._orders.on_order_update(item)  # type: ignore[arg-type]
        elif kind is FeedStatus:
            self._watch.on_feed_status(item)  # type: ignore[arg-type]
        elif kind is Call:
            item.fn(*item.args)  # type: ignore[union-attr]
        else:
            log.warning("engine ignored an unknown message %r", kind.__name__)

    def refuse_leftovers(self) -> None:
        """Answer what is still queued after the loop ended, so no caller waits forever."""
        refused = Denied("NOT_RUNNING", "the engine stopped before handling this")
        while True:
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                return
            future = None
            if type(item) is CommandMessage:
                future = item.future
            elif type(item) is JobResult:
                if item.kind == JobKind.PREPARE_ENTRY:
                    future = item.context[1]
                elif item.kind == JobKind.ADOPT_POSITIONS:
                    future = item.context
                elif item.kind == JobKind.RECONCILE:
                    future = item.context[0]
            if future is not None and not future.done():
                future.set_result(refused)
