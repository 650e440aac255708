"""Broker and disk work off the engine thread.

The engine never waits on the network or the disk.  It hands jobs to this
executor (a small thread pool, so a panic exit sends every order at once) and
gets each outcome back as a ``JobResult`` on its inbox, where it applies it in
order with everything else.

Orders go out through ``send_order`` only: the ledger row (state INTENT) is
made durable first — on the worker, not the engine thread; the SQLite store
appends it to its intent journal rather than committing its whole backlog
(``tmtool.storage.intents``) — and only then is the request sent.  If the store cannot make it durable in time (memory-only
mode) the order goes anyway, because a missed stop is worse than a ledger row
that is replayed later; the result says so and the engine raises an alert.

Exits use ``placeorder`` with the opposite action for a trade's own quantity,
never ``placesmartorder``: a smart order targets the absolute net position of a
symbol, so ``position_size=0`` flattens every trade and manual position in it,
and sent while already flat with a quantity it opens a new position.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Callable, Protocol

from tmtool.domain.models import OrderRecord
from tmtool.engine.ports import Broker, Store
from tmtool.domain.broker import BrokerError, OrderAck

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """The fields of one ``placeorder`` call."""

    strategy: str
    symbol: str
    exchange: str
    action: str
    quantity: int
    product: str
    price_type: str = "MARKET"
    price: float = 0.0
    trigger_price: float = 0.0


@dataclass(frozen=True, slots=True)
class OrderSendResult:
    ack: OrderAck | None
    durable: bool


class JobKind(StrEnum):
    """What a job was for: the engine routes each ``JobResult`` by its kind.

    A kind the engine has no handler for is refused when the result arrives
    (``JobKind(value)`` raises), so a misspelt kind cannot vanish silently."""

    ORDER_SENT = "order_sent"
    ORDER_STATUS = "order_status"
    ORDER_LOOKUP = "order_lookup"
    APPROVAL_LOOKUP = "approval_lookup"
    MOVED_CHECK = "moved_check"
    EXIT_POSITION = "exit_position"
    PARTIAL_POSITION = "partial_position"
    RECONCILE = "reconcile"
    PING = "ping"
    PREPARE_ENTRY = "prepare_entry"
    ADOPT_POSITIONS = "adopt_positions"
    TRADEBOOK = "tradebook"
    ORDER_FILLS = "order_fills"
    CLAIM_FILL = "claim_fill"
    MODIFY_ORDER = "modify_order"
    CANCEL_ORDER = "cancel_order"


@dataclass(frozen=True, slots=True)
class JobResult:
    """The outcome of one job, posted to the engine inbox.

    ``error`` is a ``BrokerError`` for broker failures; anything else that a
    job raised arrives as a ``BrokerError`` of kind "protocol" (or, for an
    order send, "server" — the request may have gone out).
    """

    kind: JobKind
    context: Any
    value: Any = None
    error: BrokerError | None = None


class JobRunner(Protocol):
    """What the engine needs of an executor: run broker and disk work off the engine
    thread and post each outcome to the inbox as a ``JobResult``.  ``Executor`` is the
    real one (a thread pool); the deterministic simulation tests hand in one that runs
    jobs when the test says."""

    @property
    def broker(self) -> Broker: ...

    def run(self, kind: JobKind, context: Any, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None: ...

    def run_order_call(self, kind: JobKind, context: Any, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None: ...

    def send_order(self, record: OrderRecord, request: OrderRequest, durable_timeout: float) -> None: ...

    def shutdown(self, wait: bool = True) -> None: ...


class Executor:
    """``orders_per_second``: order requests are kept within this many in any one-second
    window (OpenAlgo's default order rate limit is 10/s per client); a burst up to the
    limit goes out at once, the rest wait on their worker."""

    def __init__(
        self, broker: Broker, store: Store, post: Callable[[object], None], workers: int = 8, orders_per_second: int = 10
    ) -> None:
        self._broker = broker
        self._store = store
        self._post = post
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tmtool-exec")
        self._closed = False
        self._orders_per_second = orders_per_second
        self._order_times: deque[float] = deque()
        self._order_lock = threading.Lock()

    @property
    def broker(self) -> Broker:
        return self._broker

    def run(self, kind: JobKind, context: Any, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``fn(*args, **kwargs)`` on a worker; post ``JobResult(kind, context, value | error)``."""
        if self._closed:
            return
        self._pool.submit(self._call, kind, context, fn, args, kwargs)

    def run_order_call(self, kind: JobKind, context: Any, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Like ``run``, for a call that shares the order rate limit with ``placeorder``
        (``modifyorder``, ``cancelorder``): it waits for a slot in the same window."""
        if self._closed:
            return
        self._pool.submit(self._order_call, kind, context, fn, args, kwargs)

    def send_order(self, record: OrderRecord, request: OrderRequest, durable_timeout: float) -> None:
        """Make ``record`` durable, then place ``request``; posts kind ``ORDER_SENT`` with an ``OrderSendResult``."""
        if self._closed:
            return
        self._pool.submit(self._send, record, request, durable_timeout)

    def shutdown(self, wait: bool = True) -> None:
        self._closed = True
        self._pool.shutdown(wait=wait, cancel_futures=True)

    def _call(self, kind: JobKind, context: Any, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        try:
            value = fn(*args, **kwargs)
        except BrokerError as exc:
            self._post(JobResult(kind, context, error=exc))
        except Exception as exc:  # a bug or an unwrapped transport error: report it, keep the worker
            log.exception("engine job %s failed", kind)
            self._post(JobResult(kind, context, error=BrokerError("protocol", f"{type(exc).__name__}: {exc}")))
        else:
            self._post(JobResult(kind, context, value=value))

    def _order_call(self, kind: JobKind, context: Any, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        self._wait_for_order_slot()
        self._call(kind, context, fn, args, kwargs)

    def _wait_for_order_slot(self) -> None:
        while True:
            with self._order_lock:
                now = time.monotonic()
                while self._order_times and now - self._order_times[0] >= 1.0:
                    self._order_times.popleft()
                if len(self._order_times) < self._orders_per_second:
                    self._order_times.append(now)
                    return
                wait = 1.0 - (now - self._order_times[0])
            time.sleep(wait)  # on a worker: keeps the broker's order rate limit

    def _send(self, record: OrderRecord, request: OrderRequest, durable_timeout: float) -> None:
        try:
            durable = bool(self._store.save_order(record, durable=True, timeout=durable_timeout))
        except Exception:  # the store promises not to raise; if it does, the order still goes
            log.exception("order ledger write failed for %s", record.key)
            durable = False
        self._wait_for_order_slot()
        try:
            ack = self._broker.place_order(**asdict(request))
        except BrokerError as exc:
            self._post(JobResult(JobKind.ORDER_SENT, record.key, value=OrderSendResult(None, durable), error=exc))
        except Exception as exc:  # unknown failure after the request may have left: treat as ambiguous
            log.exception("placeorder failed for %s", record.key)
            error = BrokerError("server", f"{type(exc).__name__}: {exc}")
            self._post(JobResult(JobKind.ORDER_SENT, record.key, value=OrderSendResult(None, durable), error=error))
        else:
            self._post(JobResult(JobKind.ORDER_SENT, record.key, value=OrderSendResult(ack, durable)))
