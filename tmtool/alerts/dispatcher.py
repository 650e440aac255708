"""Delivers the engine's alerts to the configured channels, off the engine thread.

``publish`` (called on the engine thread) decides in a few microseconds what
goes where and appends to one bounded queue per channel; each channel has its
own worker thread, so a slow or dead channel never holds up the others or the
engine.  Per alert a channel gets ``1 + retries`` attempts with doubling
backoff; while a channel is known to be failing it gets a single attempt per
alert after a pause that doubles up to a minute, so a dead receiver costs
neither CPU nor a full retry cycle per alert (its full queue drops INFO first).

Decisions, in order:
  1. quiet hours (Asia/Kolkata): alerts are held back, CRITICAL optionally let through;
  2. folding: an alert repeated by the engine (``count > 1``) goes out at most
     once per ``fold_window`` unless its priority rose; the newest repeat held
     back in a window is sent when the window ends;
  3. routing: each channel takes its categories at or above its minimum priority.

A channel that fails calls ``report_failure(channel, message)`` once; it is
called again only after that channel delivered successfully and then failed anew.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Callable, Sequence

from tmtool.alerts.channels import Channel, DeliveryError, build_channels
from tmtool.alerts.config import AlertsConfig, Route
from tmtool.clock import Clock
from tmtool.domain.models import Alert, AlertPriority

log = logging.getLogger("tmtool.alerts")

MAX_BACKOFF = 60.0
FOLD_CHECK_INTERVAL = 0.2  # real seconds between checks for held-back repeats whose window ended


@dataclass(frozen=True, slots=True)
class ChannelStats:
    name: str
    queued: int
    delivered: int
    failed: int  # alerts given up on after their attempts
    dropped: int  # alerts pushed out of a full queue, or left queued at stop
    failing: bool  # in an outage (reported once)
    last_error: str


@dataclass(frozen=True, slots=True)
class DispatcherStats:
    channels: tuple[ChannelStats, ...]
    published: int
    held_quiet: int  # not sent because of quiet hours
    held_folded: int  # repeats not sent within a fold window (the newest is sent when it ends)


_RANK = {priority: priority.rank for priority in AlertPriority}


class BoundedAlertQueue:
    """A FIFO of alerts with a capacity; when full it sheds the oldest alert of the lowest priority.

    One lane per priority, each in arrival order, so both shedding and taking
    the next alert (the oldest across lanes) cost O(1).  Not thread-safe: the
    worker guards it with its condition.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._lanes: list[deque[tuple[int, Alert]]] = [deque() for _ in AlertPriority]  # index = rank
        self._sequence = itertools.count()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def push(self, alert: Alert) -> bool:
        """Append ``alert``; False when something (it, or an older lower-priority alert) was shed."""
        rank = _RANK[alert.priority]
        shed = False
        if self._size >= self._capacity:
            lowest = next(index for index, lane in enumerate(self._lanes) if lane)
            if rank < lowest:
                return False  # the newcomer ranks below everything queued
            self._lanes[lowest].popleft()
            self._size -= 1
            shed = True
        self._lanes[rank].append((next(self._sequence), alert))
        self._size += 1
        return not shed

    def pop(self) -> Alert | None:
        """The oldest alert queued, whatever its priority; None when empty."""
        heads = [lane for lane in self._lanes if lane]
        if not heads:
            return None
        self._size -= 1
        return min(heads, key=lambda lane: lane[0][0]).popleft()[1]

    def clear(self) -> int:
        """Empty the queue; returns how many alerts were in it."""
        dropped = self._size
        for lane in self._lanes:
            lane.clear()
        self._size = 0
        return dropped


class _ChannelWorker:
    """One channel's bounded queue and its delivery thread."""

    def __init__(
        self,
        channel: Channel,
        route: Route,
        capacity: int,
        retries: int,
        backoff: float,
        report_failure: Callable[[str, str], None] | None,
    ) -> None:
        self.channel = channel
        self.route = route
        self._retries = retries
        self._backoff = backoff
        self._report_failure = report_failure
        self._queue = BoundedAlertQueue(capacity)
        self._wake = threading.Condition()
        self._draining = False  # stop requested: finish the queue, then exit
        self._abort = threading.Event()  # stop deadline passed: give up now
        self._thread = threading.Thread(target=self._run, name=f"alerts-{channel.name}", daemon=True)
        self.delivered = 0
        self.failed = 0
        self.dropped = 0
        self.failing = False
        self._failed_in_row = 0
        self.last_error = ""

    # ------------------------------------------------------------------ engine side

    def offer(self, alert: Alert) -> None:
        """Enqueue without blocking; when full, the oldest of the lowest priority queued goes."""
        with self._wake:
            if not self._queue.push(alert):
                self.dropped += 1
            self._wake.notify()

    # ------------------------------------------------------------------ lifetime

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        with self._wake:
            self._draining = True
            self._wake.notify()

    def abort(self) -> None:
        self._abort.set()
        self.request_stop()

    def join(self, timeout: float) -> bool:
        if self._thread.ident is None:  # never started: nothing to deliver with
            self.channel.close()
            return True
        self._thread.join(max(0.0, timeout))
        return not self._thread.is_alive()

    def stats(self) -> ChannelStats:
        with self._wake:
            queued = len(self._queue)
        return ChannelStats(
            name=self.channel.name,
            queued=queued,
            delivered=self.delivered,
            failed=self.failed,
            dropped=self.dropped,
            failing=self.failing,
            last_error=self.last_error,
        )

    # ------------------------------------------------------------------ worker thread

    def _next(self) -> Alert | None:
        with self._wake:
            while not self._queue and not self._draining:
                self._wake.wait()
            if self._abort.is_set():
                self.dropped += self._queue.clear()
            return self._queue.pop()

    def _run(self) -> None:
        try:
            while (alert := self._next()) is not None:
                self._deliver(alert)
        finally:
            self.channel.close()

    def _wait_before(self, attempt: int) -> bool:
        """Pause before an attempt; False when stop's deadline passed meanwhile.

        Retries back off by doubling; in an outage every alert's single attempt
        waits a pause that doubles with each failed alert, up to MAX_BACKOFF, so
        a dead receiver neither burns CPU nor holds each alert for a full retry cycle.
        """
        if self.failing:
            step = self._failed_in_row - 1
        elif attempt:
            step = attempt - 1
        else:
            return True
        return not self._abort.wait(min(MAX_BACKOFF, self._backoff * 2 ** min(step, 16)))

    def _deliver(self, alert: Alert) -> None:
        attempts = 1 if self.failing else 1 + self._retries
        error = ""
        for attempt in range(attempts):
            if not self._wait_before(attempt):
                break
            try:
                self.channel.send(alert)
            except DeliveryError as exc:
                error = str(exc)
            except Exception as exc:  # a channel bug must not kill the worker
                error = self.channel.redact(f"unexpected {type(exc).__name__}: {exc}")
                log.error("alert channel %s: %s", self.channel.name, error)
            else:
                self._delivered()
                return
            log.debug("alert %d to %s: attempt %d of %d failed: %s", alert.id, self.channel.name, attempt + 1, attempts, error)
        self._failed(alert, error or "stopped before delivery")

    def _delivered(self) -> None:
        self.delivered += 1
        self._failed_in_row = 0
        if self.failing:
            self.failing = False
            log.info("alert channel %s is delivering again", self.channel.name)

    def _failed(self, alert: Alert, error: str) -> None:
        self.failed += 1
        self._failed_in_row += 1
        self.last_error = error
        if self.failing:
            log.debug("alert %d not delivered to %s (still failing): %s", alert.id, self.channel.name, error)
            return
        self.failing = True
        message = f"alerts to {self.channel.name} are failing: {error}"
        log.warning("%s (alert %d not delivered)", message, alert.id)
        if self._report_failure is not None:
            try:
                self._report_failure(self.channel.name, message)
            except Exception:
                log.exception("reporting the failure of alert channel %s failed", self.channel.name)


class AlertDispatcher:
    """An ``AlertSink`` that delivers alerts to webhook, Telegram, e-mail and a command.

    ``publish`` never blocks and never raises; ``start`` launches the workers;
    ``stop(timeout)`` lets them finish what is queued until the deadline and
    returns True when every worker ended in time.
    """

    def __init__(
        self,
        config: AlertsConfig,
        *,
        clock: Clock,
        report_failure: Callable[[str, str], None] | None = None,
    ) -> None:
        self._config = config
        self._clock = clock
        channels: Sequence[Channel] = build_channels(config.channels, config.secret_env_names)
        routes = [channel_config.route for channel_config in config.channels.values()]
        self._workers = [
            _ChannelWorker(channel, route, config.queue_size, config.retries, config.retry_backoff, report_failure)
            for channel, route in zip(channels, routes)
        ]
        self._lock = threading.Lock()
        # alert id -> when and at what priority it last went out (oldest first)
        self._last_sent: OrderedDict[int, tuple[float, AlertPriority]] = OrderedDict()
        self._held_folds: dict[int, Alert] = {}  # alert id -> newest repeat held back in the window
        self._published = 0
        self._held_quiet = 0
        self._held_folded = 0
        self._closed = False
        self._stop_housekeeping = threading.Event()
        self._housekeeping = threading.Thread(target=self._housekeep, name="alerts-folds", daemon=True)

    @property
    def channel_names(self) -> tuple[str, ...]:
        return tuple(worker.channel.name for worker in self._workers)

    def __repr__(self) -> str:
        return f"AlertDispatcher(channels={list(self.channel_names)!r})"

    # ------------------------------------------------------------------ AlertSink

    def publish(self, alert: Alert) -> None:
        """Route one new or folded alert to the channels' queues.  Engine thread; never blocks."""
        if self._closed or not self._workers or alert.acknowledged:
            return  # an acknowledgement is no news to send off the desk
        now = self._clock.time()
        with self._lock:
            self._published += 1
            admitted = self._admit(alert, now)  # first: a newer repeat supersedes a held one
            deliveries = self._release_due_folds(now)
            if admitted:
                deliveries.append(alert)
        self._enqueue(deliveries)

    def _admit(self, alert: Alert, now: float) -> bool:
        quiet = self._config.quiet_hours
        if quiet is not None and quiet.holds_back(alert, now):
            self._held_quiet += 1
            return False
        last = self._last_sent.get(alert.id)
        if (
            alert.count > 1
            and last is not None
            and now - last[0] < self._config.fold_window
            and _RANK[alert.priority] <= _RANK[last[1]]  # an escalated repeat goes out at once
        ):
            self._held_folds[alert.id] = alert
            self._held_folded += 1
            return False
        self._mark_sent(alert, now)
        self._held_folds.pop(alert.id, None)
        return True

    def _mark_sent(self, alert: Alert, now: float) -> None:
        self._last_sent[alert.id] = (now, alert.priority)
        self._last_sent.move_to_end(alert.id)  # oldest first, so pruning stops at the first fresh one

    def _release_due_folds(self, now: float) -> list[Alert]:
        """Held-back repeats whose window has ended (sent unless quiet hours now hold them)."""
        window = self._config.fold_window
        due = [alert for alert_id, alert in self._held_folds.items() if now - self._last_sent[alert_id][0] >= window]
        released = []
        for alert in due:
            del self._held_folds[alert.id]
            quiet = self._config.quiet_hours
            if quiet is not None and quiet.holds_back(alert, now):
                self._held_quiet += 1
                continue
            self._mark_sent(alert, now)
            released.append(alert)
        self._forget_old_sends(now)
        return released

    def _forget_old_sends(self, now: float) -> None:
        """Drop send times older than the window: a repeat after that goes out at once anyway."""
        window = self._config.fold_window
        while self._last_sent:
            alert_id, (sent, _) = next(iter(self._last_sent.items()))
            if now - sent < window or alert_id in self._held_folds:
                return
            del self._last_sent[alert_id]

    def _enqueue(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            for worker in self._workers:
                if worker.route.accepts(alert):
                    worker.offer(alert)

    def _housekeep(self) -> None:
        while not self._stop_housekeeping.wait(FOLD_CHECK_INTERVAL):
            with self._lock:
                released = self._release_due_folds(self._clock.time())
            self._enqueue(released)

    # ------------------------------------------------------------------ lifetime

    def start(self) -> None:
        for worker in self._workers:
            worker.start()
        if self._workers:
            self._housekeeping.start()
        log.info("alert delivery started: %s", ", ".join(self.channel_names) or "no channels")

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop taking alerts, deliver what is queued until ``timeout``, then give up the rest."""
        deadline = time.monotonic() + timeout  # a real-time bound on shutdown, whatever the clock
        self._closed = True
        self._stop_housekeeping.set()
        for worker in self._workers:
            worker.request_stop()
        ended = True
        for worker in self._workers:
            if not worker.join(deadline - time.monotonic()):
                worker.abort()
                ended = False
        if not ended:
            log.warning("alert delivery stopped with channels still busy; queued alerts were dropped")
        return ended

    def stats(self) -> DispatcherStats:
        with self._lock:
            published, held_quiet, held_folded = self._published, self._held_quiet, self._held_folded
        return DispatcherStats(
            channels=tuple(worker.stats() for worker in self._workers),
            published=published,
            held_quiet=held_quiet,
            held_folded=held_folded,
        )
