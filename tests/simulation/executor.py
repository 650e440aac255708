"""``StepExecutor``: a ``tmtool.engine.executor.JobRunner`` that runs nothing until told.

The engine hands it jobs; they wait in ``pending`` until the harness runs one
(in any order it likes) with an optional fault.  A result can be posted at once
or held (``hang``: the call reached the broker, the reply comes late) and posted
when the harness releases it.  Single-threaded: a job runs on the harness's
thread, and its result goes to the engine's inbox for the next ``pump()``.

Faults of an order send ("order_sent" job): "reject", "server_before" (5xx, not
placed), "rate_limited" (429, not placed), "lost_reply" / "lost_reply_5xx" (placed,
the reply lost: an ambiguous timeout or 500), "hang" (placed, the reply held),
"delay_fill" (a MARKET order fills late), "partial" (fills half until released).
Faults of any other call: "server", "timeout", "rate_limited" (the call fails
before it reaches the broker) and "hang".
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from tmtool.domain.broker import BrokerError
from tmtool.domain.models import OrderRecord
from tmtool.engine.executor import JobResult, OrderRequest, OrderSendResult

from tests.simulation.broker import SimBroker
from tests.simulation.store import MemoryStore

ORDER_FAULTS = ("reject", "server_before", "rate_limited", "lost_reply", "lost_reply_5xx", "hang", "delay_fill", "partial")
CALL_FAULTS = ("server", "timeout", "rate_limited", "hang")

log = logging.getLogger("tmtool.engine.executor")  # where the real executor reports a job that raised


@dataclass
class Job:
    seq: int
    kind: str
    context: Any = None
    fn: Callable[..., Any] | None = None
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    record: OrderRecord | None = None
    request: OrderRequest | None = None
    decided_seq: int | None = None  # order sends: the broker's ``next_seq`` when the engine queued the send

    @property
    def is_order(self) -> bool:
        return self.record is not None

    def describe(self) -> str:
        if self.record is not None:
            r = self.record
            return f"send {r.purpose.value} #{r.trade_id} {r.action} {r.quantity} {r.price_type.value}"
        return self.kind


class StepExecutor:
    def __init__(self, broker: SimBroker, store: MemoryStore, post: Callable[[object], None]) -> None:
        self._broker = broker
        self._store = store
        self._post = post
        self._seq = 0
        self.pending: list[Job] = []
        self.held: list[JobResult] = []
        self.closed = False

    # ---------------------------------------------------------------- JobRunner

    @property
    def broker(self) -> SimBroker:
        return self._broker

    def run(self, kind: str, context: Any, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._add(Job(0, kind, context, fn, args, kwargs))

    def run_order_call(self, kind: str, context: Any, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._add(Job(0, kind, context, fn, args, kwargs))

    def send_order(self, record: OrderRecord, request: OrderRequest, durable_timeout: float) -> None:
        self._add(Job(0, "order_sent", record.key, record=record, request=request, decided_seq=self._broker.next_seq))

    def shutdown(self, wait: bool = True) -> None:
        self.closed = True

    def _add(self, job: Job) -> None:
        if self.closed:
            return
        self._seq += 1
        job.seq = self._seq
        self.pending.append(job)

    # ---------------------------------------------------------------- driven by the harness

    def take(self, index: int) -> Job:
        return self.pending.pop(index)

    def execute(self, job: Job, fault: str | None = None) -> None:
        """Run ``job`` now with ``fault``; its result goes to the inbox (or is held for ``hang``)."""
        result = self._order(job, fault) if job.is_order else self._call(job, fault)
        if fault == "hang":
            self.held.append(result)
        else:
            self._post(result)

    def release(self, index: int = 0) -> JobResult:
        result = self.held.pop(index)
        self._post(result)
        return result

    def place_without_reply(self, job: Job, durable: bool) -> None:
        """What a crash leaves of an order send that was under way: the intent made durable
        (``durable``) and the order placed, but no reply to anyone."""
        assert job.record is not None and job.request is not None
        if durable:
            self._store.save_order(job.record, durable=True)
        self._broker.tag = (job.record.trade_id, job.record.purpose.value)
        self._broker.decided_seq = job.decided_seq
        self._broker.place_order(**asdict(job.request))

    def _order(self, job: Job, fault: str | None) -> JobResult:
        assert job.record is not None and job.request is not None
        durable = self._store.save_order(job.record, durable=True)
        self._broker.tag = (job.record.trade_id, job.record.purpose.value)
        self._broker.decided_seq = job.decided_seq
        self._broker.place_fault = None if fault == "hang" else fault
        try:
            ack = self._broker.place_order(**asdict(job.request))
        except BrokerError as exc:
            return JobResult("order_sent", job.record.key, value=OrderSendResult(None, durable), error=exc)
        return JobResult("order_sent", job.record.key, value=OrderSendResult(ack, durable))

    def _call(self, job: Job, fault: str | None) -> JobResult:
        if fault == "server":
            return JobResult(job.kind, job.context, error=BrokerError("server", "503 Service Unavailable", 503))
        if fault == "timeout":
            return JobResult(job.kind, job.context, error=BrokerError("timeout", "read timed out"))
        if fault == "rate_limited":
            return JobResult(job.kind, job.context, error=BrokerError("rate_limited", "429 Too Many Requests", 429))
        assert job.fn is not None
        try:
            value = job.fn(*job.args, **job.kwargs)
        except BrokerError as exc:
            return JobResult(job.kind, job.context, error=exc)
        except Exception as exc:  # as the real executor: reported (an engine error to the checker), never fatal
            log.exception("engine job %s failed", job.kind)
            return JobResult(job.kind, job.context, error=BrokerError("protocol", f"{type(exc).__name__}: {exc}"))
        return JobResult(job.kind, job.context, value=value)
