"""``SqliteStore``: the engine's ``Store`` on a SQLite file, written by one background thread.

Life cycle::

    store = SqliteStore(path)          # nothing touches the disk yet
    store.open()                       # lock, integrity check, migrate, start-up backup
    state = store.load()               # what was last committed
    store.start()                      # the writer thread (start() opens when needed)
    ...  save_trade / record_event / save_order(durable=True) / flush ...
    store.close()                      # drains the queue, stops the thread, releases the lock;
                                       # returns the number of changes it could not write

Changes handed in before ``start()`` wait in the queue (``record_event`` needs
``open()`` first: it numbers events after those on disk).  Every ``save_*`` and
``record_event`` only enqueues and returns; the writer thread commits what is
queued in batches of at most ``max_batch`` changes, at most one commit per
``commit_interval`` unless someone waits for durability (``save_order(durable=
True)``, ``flush()``), in which case it commits at once.  Within a batch the
last version of a row wins; events and alerts are all kept.  A batch is one
transaction, so the file always holds a prefix of the changes, in order.

When a commit fails (disk full, I/O error, lock held too long, file removed,
read-only file) the batch stays at the head of the queue: the store reports
MEMORY_ONLY once (status and one log line), retries with capped exponential
backoff, and replays the queue in order when writes work again.  Every write
is an upsert by primary key or an insert that ignores a row already present,
so a batch replayed after a commit whose outcome was unknown applies once.

A database file removed while the store runs is written back at once: a
connection held open since ``open()`` keeps the removed file (with its -wal and
-shm) readable, so everything committed is copied back to the path and the queue
is replayed on top; ``status()`` reports the incident as MEMORY_ONLY at least
once.  A file replaced by another database is never written into.  ``close()``
keeps retrying failed writes for a bounded time and returns how many changes it
could not write.

Read queries (``load``, ``closed_trades``, ``trade_events``, ``alerts``) run on
the caller's thread with their own read-only connection and see committed data.
Waits (``commit_interval``, timeouts, backoff) are real time; the injected clock
stamps rows and names backups.
"""

from __future__ import annotations

import copy
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import peewee
from peewee import SqliteDatabase, chunked, fn

from tmtool.clock import Clock, SystemClock
from tmtool.domain.models import (
    copy_trade,
    level_event,
    trade_event,
    OPEN_STATUSES,
    Alert,
    AlertCategory,
    AlertPriority,
    OrderRecord,
    OrderState,
    PortfolioState,
    Strategy,
    Trade,
    TradeEvent,
)
from tmtool.engine.ports import LoadedState, StoreStatus, StoreUnavailable
from tmtool.storage import codec
from tmtool.storage.backup import DEFAULT_BACKUPS_TO_KEEP, create_backup
from tmtool.storage.database import SYNCHRONOUS_MODES, connect, open_database, restore_hint, unwritable_files
from tmtool.storage.errors import DatabaseCorrupt, DatabaseFilesNotWritable, StorageError
from tmtool.storage.intents import IntentJournal, IntentJournalMismatch, encode_intent, intents_path_for, read_journal
from tmtool.storage.intents import set_aside as set_journal_aside
from tmtool.storage.identity import (
    database_id_of,
    remove_identity_file,
    schema_version,
    verify_schema_version,
    write_identity_file,
)
from tmtool.storage.lock import InstanceLock
from tmtool.storage.files import (
    create_private_file,
    ensure_private_dir,
    fsync_dir,
    fsync_file,
    make_database_files_private,
    make_private,
    side_files,
)
from tmtool.storage.migrations import DATABASE_ID_KEY, LATEST_VERSION
from tmtool.storage.models import (
    EVENT_COLUMNS,
    AlertRow,
    MetaRow,
    OrderRow,
    PortfolioStateRow,
    StrategyRow,
    TradeEventRow,
    TradeRow,
    event_values,
    raw_rows,
    record_columns,
    record_values,
    row_to_event,
    row_to_strategy,
    select_records,
    strategy_to_row,
)

log = logging.getLogger("tmtool.storage")

STATE_OK = "OK"
STATE_MEMORY_ONLY = "MEMORY_ONLY"
RECENT_ALERTS_ON_LOAD = 200
_ROWS_PER_INSERT = 100  # keeps each DELETE ... IN (...) well under SQLite's bound-variable limit
_FINAL_ORDER_STATES = tuple(state.value for state in OrderState if state.is_final)
_OPEN_TRADE_STATUSES = tuple(sorted(status.value for status in OPEN_STATUSES))


@dataclass(slots=True)
class _Change:
    """One queued change.  ``table`` and ``key`` identify the row it writes (for coalescing)."""

    seq: int
    table: str
    key: Any
    record: Any  # the record, or None for a strategy (or setting) deletion
    saved_at: float = 0.0


@dataclass(slots=True)
class _QueuedRatchet:
    """A trade's latest change when it was a trailing ratchet: its two queued changes (the row, then
    the event), the first event of the run and how many ratchets the run holds.  The run's event
    is built when something reads the queue (``_settle_runs_locked``), not at every ratchet:
    ``latest`` holds the newest ratchet's time, new level and price until then."""

    row: _Change
    event: _Change
    first: TradeEvent
    count: int = 1
    latest: tuple[float, object, float] | None = None  # (ts, new, price) of a ratchet the event does not show yet


@dataclass(slots=True)
class _Rows:
    """Rows for one table: their columns once, then each row's values in that order."""

    columns: tuple[str, ...]
    values: list[tuple] = field(default_factory=list)


@dataclass(slots=True)
class _PreparedBatch:
    """A batch turned into rows, grouped by table, last version of each row only."""

    upserts: dict[str, _Rows] = field(default_factory=dict)
    strategy_deletes: list[str] = field(default_factory=list)
    setting_deletes: list[str] = field(default_factory=list)
    events: list[tuple] = field(default_factory=list)  # in EVENT_COLUMNS order
    rejected: list[tuple[_Change, str]] = field(default_factory=list)


class _DatabaseFileGone(Exception):
    """The file the writer has open is no longer the file at the database path."""


_UPSERT_MODELS = {
    "strategy": StrategyRow,
    "trade": TradeRow,
    "portfolio_state": PortfolioStateRow,
    "order_ledger": OrderRow,
    "alert": AlertRow,
    "meta": MetaRow,
}


class SqliteStore:
    """The engine's ``Store`` on a SQLite file (see the module docstring for its life cycle).

    ``commit_interval``: least time between two commits unless someone waits for
    durability.  ``max_batch``: most changes per transaction.  ``write_timeout``:
    how long a write waits for a lock held elsewhere before it counts as failed.
    ``lock``: take the single-instance lock.  ``synchronous``: FULL (survives
    power loss) or NORMAL (survives a crash of the process only).
    ``backups_to_keep`` / ``backup_on_open`` / ``backup_dir``: the start-up
    backup and its rotation.  ``retry_backoff_max``: cap of the retry delay in
    memory-only mode.  ``on_commit(committed)``: called on the writer thread
    after each commit with the number of changes committed since start; it
    must return quickly.
    """

    def __init__(
        self,
        path: Path,
        clock: Clock = SystemClock(),
        commit_interval: float = 0.02,
        max_batch: int = 500,
        write_timeout: float = 2.0,
        lock: bool = True,
        *,
        synchronous: str = "FULL",
        backups_to_keep: int = DEFAULT_BACKUPS_TO_KEEP,
        backup_on_open: bool = True,
        backup_dir: Path | None = None,
        retry_backoff_max: float = 2.0,
        on_commit: Callable[[int], None] | None = None,
        new_database: bool = False,
        start_fresh: bool = False,
        watch_interval: float = 1.0,
    ) -> None:
        if not commit_interval >= 0:
            raise ValueError(f"commit_interval must be >= 0 seconds, got {commit_interval!r}")
        if not (isinstance(max_batch, int) and max_batch >= 1):
            raise ValueError(f"max_batch must be a positive integer, got {max_batch!r}")
        if not write_timeout > 0:
            raise ValueError(f"write_timeout must be > 0 seconds, got {write_timeout!r}")
        if not retry_backoff_max > 0:
            raise ValueError(f"retry_backoff_max must be > 0 seconds, got {retry_backoff_max!r}")
        if synchronous not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}, got {synchronous!r}")
        if not (isinstance(backups_to_keep, int) and backups_to_keep >= 1):
            raise ValueError(f"backups_to_keep must be a positive integer, got {backups_to_keep!r}")
        if not watch_interval > 0:
            raise ValueError(f"watch_interval must be > 0 seconds, got {watch_interval!r}")
        self.path = Path(path)
        self._clock = clock
        self._commit_interval = commit_interval
        self._max_batch = max_batch
        self._write_timeout = write_timeout
        self._synchronous = synchronous
        self._backups_to_keep = backups_to_keep
        self._backup_on_open = backup_on_open
        self._backup_dir = backup_dir
        self._retry_backoff_max = retry_backoff_max
        self._lock = InstanceLock(self.path) if lock else None
        self._on_commit = on_commit
        self._new_database = new_database or start_fresh
        self._start_fresh = start_fresh
        self._watch_interval = watch_interval

        # The condition's own lock, held directly on the enqueue path: entering it costs one C call
        # where entering the Condition costs a Python-level call as well, on every ratchet.
        self._cond_lock = threading.RLock()
        self._cond = threading.Condition(self._cond_lock)
        self._queue: deque[_Change] = deque()  # removed from only after the commit succeeded
        self._last_seq = 0
        self._done_seq = 0  # every change with seq <= this is committed (or rejected as invalid)
        self._rejected_seqs: set[int] = set()
        self._durable_waiters = 0
        self._committed = 0
        self._state = STATE_OK
        self._last_error = ""
        self._closing = False
        self._closed = False
        self._close_deadline = float("inf")
        self._unwritten_at_close = 0
        self._incident_latched = False  # an incident is reported as MEMORY_ONLY by status() at least once
        self._written_since_incident = False
        self._recreations = 0
        self._event_seq_lock = threading.Lock()
        self._next_event_seq: dict[int, int] = {}

        self._opened = False
        self._thread: threading.Thread | None = None
        self._write_db: SqliteDatabase | None = None
        self._read_db: SqliteDatabase | None = None
        self._file_identity: tuple[int, int] | None = None
        self._database_id: str | None = None
        # A connection held open for the store's whole life: it keeps the database's inode (and its
        # -wal and -shm) alive when the file is removed, so the database can be copied back to the path.
        self._anchor: sqlite3.Connection | None = None
        self._read_gate = _ReadGate()
        # The intent journal (tmtool.storage.intents): durable saves are appended there under
        # _journal_lock (taken before _cond, never after) and pruned once the writer committed them.
        self._journal: IntentJournal | None = None
        self._journal_lock = threading.Lock()
        self._journal_lines: list[tuple[int, bytes]] = []  # (queue seq, line) journaled, not yet committed
        self._journal_failing = False
        self._queued_trades: dict[int, Trade] = {}  # newest version of each trade handed in
        self._ratchets: dict[int, _QueuedRatchet] = {}  # by trade: its latest change, when that was a ratchet
        self._taken_seq = 0  # the writer reads every change up to here without the lock: never changed in place
        self._unsettled: list[_QueuedRatchet] = []  # runs whose queued event does not show their newest ratchet
        self._queued_orders: dict[int, dict[str, OrderRecord]] = {}  # newest order rows handed in, by trade

    # ------------------------------------------------------------------ life cycle

    def open(self) -> None:
        """Take the instance lock, check and migrate the file, take the start-up backup.  Idempotent.

        Raises ``DatabaseInUse``, ``DatabaseCorrupt``, ``SchemaTooNew`` or
        ``NotTmtoolDatabase`` (all ``StorageError``) with a message for the user.
        """
        if self._opened:
            return
        if self._closed:
            raise StorageError(self.path, f"store for {self.path} is closed")
        if self._lock is not None:
            self._lock.acquire()  # before any file is created, moved or removed
        try:
            if self._start_fresh:
                for stale in (self.path, *side_files(self.path), intents_path_for(self.path)):
                    stale.unlink(missing_ok=True)
                remove_identity_file(self.path)
            self._database_id = open_database(
                self.path,
                clock=self._clock,
                synchronous=self._synchronous,
                busy_timeout=self._write_timeout,
                backup_dir=self._backup_dir,
                new_database=self._new_database,
            )
            try:
                self._fold_journal()  # before the backup, so it holds the intents too
                self._journal = IntentJournal(self.path, self._database_id, sync=self._synchronous != "NORMAL")
                self._journal.open_empty()
                if self._backup_on_open:
                    create_backup(self.path, self._clock, backup_dir=self._backup_dir, keep=self._backups_to_keep)
                self._read_db = connect(self.path, busy_timeout=max(self._write_timeout, 5.0), read_only=True)
                self._write_db = connect(self.path, synchronous=self._synchronous, busy_timeout=self._write_timeout)
                self._load_event_sequences()
                self._open_anchor()
            except peewee.OperationalError as exc:
                raise StorageError(self.path, f"cannot use database {self.path}: {exc}") from None
            except (peewee.DatabaseError, sqlite3.DatabaseError) as exc:
                raise DatabaseCorrupt(self.path, str(exc), restore_hint(self.path, self._backup_dir)) from None
        except BaseException:
            self._close_anchor()
            self._close_journal()
            if self._read_db is not None:
                self._read_db.close()
            if self._lock is not None:
                self._lock.release()
            raise
        self._opened = True

    def start(self) -> None:
        """Start the writer thread (opening the store first if needed).  Idempotent."""
        self.open()
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="tmtool-store-writer", daemon=True)
        self._thread.start()

    def close(self, timeout: float | None = None) -> int:
        """Write what is queued, retrying failed writes for up to ``timeout`` (default
        ``2 * write_timeout + 1`` seconds); stop; release the lock.

        Returns the number of changes that could not be written (0 when everything
        is on disk); they are lost and logged as such.
        """
        if self._closed:
            with self._cond:
                return self._unwritten_at_close
        retry_window = timeout if timeout is not None else 2 * self._write_timeout + 1.0
        with self._cond:
            self._closing = True
            self._close_deadline = time.monotonic() + retry_window
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(retry_window + self._write_timeout + 1.0)
            if self._thread.is_alive():
                log.error("store writer for %s did not stop in time", self.path)
        with self._cond:
            unwritten = len(self._queue)
            self._unwritten_at_close = unwritten
            self._closed = True
            self._cond.notify_all()
        if unwritten:
            log.error(
                "store %s closed with %d change(s) not written after retrying for %.1f s: %s",
                self.path,
                unwritten,
                retry_window,
                self._last_error,
            )
        if self._read_db is not None:
            self._read_db.close()
        self._close_anchor()
        with self._journal_lock:
            if not unwritten and self._journal is not None:
                self._journal_lines.clear()
                try:
                    self._journal.prune()  # everything is in the database
                except OSError as exc:
                    log.warning("intent journal %s: could not prune it at close: %s", self._journal.path, exc)
            self._close_journal()
        if self._lock is not None:
            self._lock.release()
        if self._opened:
            make_database_files_private(self.path)
        return unwritten

    def __enter__(self) -> "SqliteStore":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writes (enqueue only)

    def save_trade(self, trade: Trade, event: TradeEvent | None = None) -> None:
        """Queue the trade's row; ``event``, its audit event for this change, right behind it."""
        _require(trade, Trade, "save_trade")
        if event is not None:
            self._require_event(event, "save_trade")
        version = copy_trade(trade)
        saved_at = self._clock.time()
        with self._cond_lock:  # the newest version and its place in the queue go together (see save_order)
            self._queued_trades[trade.id] = version
            self._ratchets.pop(trade.id, None)
            self._enqueue_locked("trade", trade.id, version, saved_at)
            if event is not None:
                self._enqueue_locked("trade_event", (event.trade_id, self._event_seq(event.trade_id)), event, saved_at)

    def save_ratchet(self, trade: Trade, ts: float, kind: str, field: str, old: object, new: object, price: float) -> None:
        """A trailing ratchet: queue the trade's row and, right behind it, the audit event of ``field``
        moving from ``old`` to ``new`` at ``price`` (``models.level_event``).

        While the trade's previous change is a ratchet the writer has not taken yet, this one takes
        its place instead of queueing behind it: the queued row becomes this version, and the queued
        event runs from the first ratchet's old level to this one's new level, its reason counting
        the ratchets (built once, when the writer or a reader takes the queue).  The writer only
        writes fewer ratchets when it is behind (a writer that keeps up has taken each one before
        the next arrives), and the backlog, the time to disk of the newest stop and the audit log
        then stop growing with every new best price of every trade.  Nothing else is reordered: a
        run ends at any other change of the trade (a row, an event, an order row)."""
        _require(trade, Trade, "save_ratchet")
        self._require_open()
        version = copy_trade(trade)
        saved_at = self._clock.time()
        with self._cond_lock:
            self._queued_trades[trade.id] = version
            run = self._ratchets.get(trade.id)
            if run is not None and run.row.seq > self._taken_seq:
                run.count += 1
                run.row.record, run.row.saved_at = version, saved_at
                run.event.saved_at = saved_at
                if run.latest is None:
                    self._unsettled.append(run)
                run.latest = (ts, new, price)
                return
            event = level_event(trade, ts, kind, field, old, new, "", price)
            self._enqueue_locked("trade", trade.id, version, saved_at)
            seq = self._enqueue_locked("trade_event", (trade.id, self._event_seq(trade.id)), event, saved_at)
            if seq is None:  # the store is closed: nothing was queued
                self._ratchets.pop(trade.id, None)
            else:
                self._ratchets[trade.id] = _QueuedRatchet(self._queue[-2], self._queue[-1], event)

    def _settle_runs_locked(self) -> None:
        """Give each run of ratchets that grew since it was last read its event (first old level to newest)."""
        for run in self._unsettled:
            ts, new, price = run.latest
            first = run.first
            run.event.record = trade_event(
                first.trade_id, ts, first.kind, first.field, first.old, "" if new is None else str(new),
                f"{run.count} ratchets", price, first.strategy,
            )
            run.latest = None
        self._unsettled.clear()

    def save_strategy(self, strategy: Strategy) -> None:
        _require(strategy, Strategy, "save_strategy")
        codec.to_json(strategy, f"strategy {strategy.name!r}")  # refuse unstorable settings here, not later
        self._enqueue("strategy", strategy.name, strategy)

    def delete_strategy(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"delete_strategy needs a strategy name, got {name!r}")
        self._enqueue("strategy", name, None)

    def save_portfolio(self, state: PortfolioState) -> None:
        _require(state, PortfolioState, "save_portfolio")
        self._enqueue("portfolio_state", (state.strategy, state.trading_day), copy.copy(state))

    def record_event(self, event: TradeEvent) -> None:
        """Append to the audit log.  The event's per-trade sequence number is assigned here, which
        needs the numbers already on disk: the store must be open."""
        self._require_event(event, "record_event")
        saved_at = self._clock.time()
        with self._cond_lock:
            self._ratchets.pop(event.trade_id, None)
            self._enqueue_locked("trade_event", (event.trade_id, self._event_seq(event.trade_id)), event, saved_at)

    def _require_event(self, event: TradeEvent, method: str) -> None:
        _require(event, TradeEvent, method)
        self._require_open()

    def _require_open(self) -> None:
        """Events take per-trade sequence numbers that need the numbers already on disk."""
        if not self._opened:
            raise StoreUnavailable(f"store for {self.path} is not open; open() it before recording events")

    def _event_seq(self, trade_id: int) -> int:
        """The next audit sequence number of the trade (taken under the sequence lock alone; callers may hold ``_cond``)."""
        with self._event_seq_lock:
            seq = self._next_event_seq.get(trade_id, 1)
            self._next_event_seq[trade_id] = seq + 1
        return seq

    def save_alert(self, alert: Alert) -> None:
        _require(alert, Alert, "save_alert")
        self._enqueue("alert", alert.id, alert)

    def save_setting(self, key: str, value: str | None) -> None:
        """Keep an engine-wide setting in the ``meta`` table (None removes it); the database's
        identity row is not a setting and cannot be written here."""
        if not isinstance(key, str) or not key or key == DATABASE_ID_KEY:
            raise ValueError(f"save_setting needs a setting name other than {DATABASE_ID_KEY!r}, got {key!r}")
        if value is not None and not isinstance(value, str):
            raise TypeError(f"save_setting stores text, got {type(value).__name__}")
        self._enqueue("meta", key, value)

    def save_order(self, order: OrderRecord, durable: bool = False, timeout: float = 0.5) -> bool:
        """Enqueue an order ledger row; with ``durable`` make it durable first: True once it is.

        A durable save is an order's intent (the first row of a new order key):
        it is appended to the intent journal with the newest versions of its
        trade and of the trade's other order rows handed in so far, and is
        durable when that returns, without
        waiting for the writer's backlog (see ``tmtool.storage.intents``).
        When the journal cannot be written, it waits until the main database
        committed the row, for at most ``timeout`` (False after that).
        Never raises for a failing database: the row stays queued for replay.
        """
        _require(order, OrderRecord, "save_order")
        saved_at = self._clock.time()
        if not durable:
            with self._cond:
                self._ratchets.pop(order.trade_id, None)
                self._queued_orders.setdefault(order.trade_id, {})[order.key] = order
                self._enqueue_locked("order_ledger", order.key, order, saved_at)
            return False
        with self._journal_lock:
            with self._cond:  # what is journaled with the intent is exactly what was queued before it
                orders_of_trade = self._queued_orders.setdefault(order.trade_id, {})
                siblings = [sibling for key, sibling in orders_of_trade.items() if key != order.key]
                trade = self._queued_trades.get(order.trade_id)
                self._ratchets.pop(order.trade_id, None)
                orders_of_trade[order.key] = order
                seq = self._enqueue_locked("order_ledger", order.key, order, saved_at)
            if seq is None:
                return False
            try:
                line: bytes | None = encode_intent(order, trade, siblings)
            except codec.CodecError:
                line = None  # the writer rejects the row as well, loudly; the wait below says False
            if line is not None and self._journal is not None and self._journal_append(line):
                self._journal_lines.append((seq, line))
                return True
        return self._wait_until_done(seq, timeout)

    def _journal_append(self, line: bytes) -> bool:
        """Append under ``_journal_lock``; False (logged once per failing spell) when the journal fails."""
        assert self._journal is not None
        try:
            self._journal.append(line)
        except OSError as exc:
            if not self._journal_failing:
                log.error("intent journal %s cannot be written (%s); durable saves wait for the database", self._journal.path, exc)
            self._journal_failing = True
            return False
        if self._journal_failing:
            log.warning("intent journal %s writable again", self._journal.path)
            self._journal_failing = False
        return True

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything enqueued so far is committed; False after ``timeout``."""
        with self._cond:
            target = self._last_seq
        return self._wait_until_done(target, timeout, count_rejected=False)

    def status(self) -> StoreStatus:
        """The writer's state.  An incident (the file removed and recreated) is reported as
        MEMORY_ONLY at least once, however fast it was repaired, so the engine raises its alert."""
        with self._cond:
            status = StoreStatus(
                state=self._state, pending=len(self._queue), last_error=self._last_error, committed=self._committed
            )
            if self._incident_latched:
                self._incident_latched = False
                if self._written_since_incident:
                    self._state = STATE_OK
                    self._last_error = ""
            return status

    @property
    def recreations(self) -> int:
        """How many times the database file was found removed and written back from memory."""
        with self._cond:
            return self._recreations

    # ------------------------------------------------------------------ reads (caller's thread)

    def load(self) -> LoadedState:
        """The committed state the engine resumes from (changes still queued are not in it)."""
        db = self._reader()
        with self._read_gate.reading(), db.connection_context(), db.atomic():  # one consistent snapshot
            open_trades = self._select_trades(
                db, TradeRow.select().where(TradeRow.status.in_(_OPEN_TRADE_STATUSES)).order_by(TradeRow.id)
            )
            strategies = tuple(row_to_strategy(row) for row in raw_rows(db, StrategyRow.select().order_by(StrategyRow.name)))
            portfolios = tuple(select_records(
                db, PortfolioState, PortfolioStateRow.select().order_by(PortfolioStateRow.trading_day, PortfolioStateRow.strategy)
            ))
            open_orders = tuple(select_records(
                db, OrderRecord,
                OrderRow.select().where(OrderRow.state.not_in(_FINAL_ORDER_STATES)).order_by(OrderRow.created_at, OrderRow.key),
            ))
            highest_trade_id = max(
                _scalar(db, TradeRow.select(fn.MAX(TradeRow.id))),
                _scalar(db, OrderRow.select(fn.MAX(OrderRow.trade_id))),
                _scalar(db, TradeEventRow.select(fn.MAX(TradeEventRow.trade_id))),
            )
            highest_alert_id = _scalar(db, AlertRow.select(fn.MAX(AlertRow.id)))
            settings = {
                row["key"]: row["value"]
                for row in MetaRow.select().where(MetaRow.key != DATABASE_ID_KEY).dicts().execute(db)
            }
            recent_alerts = self._select_alerts(
                db, AlertRow.select().order_by(AlertRow.ts.desc(), AlertRow.id.desc()).limit(RECENT_ALERTS_ON_LOAD)
            )
        return LoadedState(
            open_trades=open_trades,
            strategies=strategies,
            portfolios=portfolios,
            open_orders=open_orders,
            next_trade_id=highest_trade_id + 1,
            next_alert_id=highest_alert_id + 1,
            recent_alerts=tuple(recent_alerts),
            settings=settings,
        )

    def closed_trades(
        self, start: float | None = None, end: float | None = None, strategy: str | None = None
    ) -> list[Trade]:
        """Trades in a final status whose ``closed_at`` lies in [start, end), oldest first."""
        query = TradeRow.select().where(TradeRow.status.not_in(_OPEN_TRADE_STATUSES))
        if start is not None:
            query = query.where(TradeRow.closed_at >= _finite(start, "start"))
        if end is not None:
            query = query.where(TradeRow.closed_at < _finite(end, "end"))
        if strategy is not None:
            query = query.where(TradeRow.strategy == strategy)
        db = self._reader()
        with self._read_gate.reading(), db.connection_context():
            return list(self._select_trades(db, query.order_by(TradeRow.closed_at, TradeRow.id)))

    def trade_events(self, trade_id: int) -> list[TradeEvent]:
        """The audit log of one trade, in the order the events were recorded: the committed rows and
        the events still queued for the writer's next commit (a story read the moment a trade closes
        shows its exit), each once."""
        if isinstance(trade_id, bool) or not isinstance(trade_id, int):
            raise TypeError(f"trade_events needs an integer trade id, got {trade_id!r}")
        # The queue first, then the file: an event committed in between is in both (kept once by its
        # sequence number); one committed before is in the file, one queued after is newer than the read.
        with self._cond_lock:
            self._settle_runs_locked()
            queued = {c.key[1]: c.record for c in self._queue if c.table == "trade_event" and c.key[0] == trade_id}
        query = TradeEventRow.select().where(TradeEventRow.trade_id == trade_id).order_by(TradeEventRow.seq)
        db = self._reader()
        with self._read_gate.reading(), db.connection_context():
            rows = list(raw_rows(db, query))
        events = {row["seq"]: row_to_event(row) for row in rows}
        for seq, event in queued.items():
            events.setdefault(seq, event)
        return [events[seq] for seq in sorted(events)]

    def alerts(
        self,
        since: float | None = None,
        category: str | None = None,
        priority: str | None = None,
        include_acknowledged: bool = True,
        limit: int = 500,
    ) -> list[Alert]:
        """Alerts raised at or after ``since``, of exactly this category and priority when given; newest first."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive integer, got {limit!r}")
        query = AlertRow.select()
        if since is not None:
            query = query.where(AlertRow.ts >= _finite(since, "since"))
        if category is not None:
            query = query.where(AlertRow.category == _enum_value(AlertCategory, category, "category"))
        if priority is not None:
            query = query.where(AlertRow.priority == _enum_value(AlertPriority, priority, "priority"))
        if not include_acknowledged:
            query = query.where(AlertRow.acknowledged == False)  # noqa: E712 - a SQL expression
        db = self._reader()
        with self._read_gate.reading(), db.connection_context():
            return self._select_alerts(db, query.order_by(AlertRow.ts.desc(), AlertRow.id.desc()).limit(limit))

    # ------------------------------------------------------------------ queue

    def _enqueue(self, table: str, key: Any, record: Any) -> int | None:
        saved_at = self._clock.time()
        with self._cond_lock:
            return self._enqueue_locked(table, key, record, saved_at)

    def _enqueue_locked(self, table: str, key: Any, record: Any, saved_at: float) -> int | None:
        """``_enqueue`` for a caller holding ``_cond``."""
        if self._closed or self._closing:
            log.error("store %s is closed: %s change %r was not saved", self.path, table, key)
            return None
        self._last_seq += 1
        queue = self._queue
        queue.append(_Change(self._last_seq, table, key, record, saved_at))
        # Wake the writer only when that changes what it waits for: the first change after
        # an empty queue, or a full batch that ends its commit-interval wait early.  Waking
        # it for every change handed the interpreter lock to the writer thread on every
        # trailing ratchet, for a thread that would only go back to waiting.
        if len(queue) == 1 or len(queue) == self._max_batch:
            self._cond.notify_all()
        return self._last_seq

    def _wait_until_done(self, seq: int, timeout: float, count_rejected: bool = True) -> bool:
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            self._durable_waiters += 1
            self._cond.notify_all()
            try:
                while self._done_seq < seq:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._closed:
                        return False
                    self._cond.wait(remaining)
                return not (count_rejected and seq in self._rejected_seqs)
            finally:
                self._durable_waiters -= 1

    # ------------------------------------------------------------------ writer thread

    def _run(self) -> None:
        failures = 0
        last_commit = float("-inf")
        while True:
            batch = self._next_batch(last_commit, failures)
            if batch is None:
                break
            last_commit = time.monotonic()
            try:
                prepared = self._prepare(batch)
                self._commit(prepared)
            except Exception as exc:  # noqa: BLE001 - any failure keeps the batch queued for retry
                failures += 1
                closing = self._closing_requested()
                self._on_failure(exc, final_attempt=closing)
                if isinstance(exc, _DatabaseFileGone) and not self.path.exists():
                    self._recreate_from_memory()
                if self._journal_lines:  # the journal holds what the database cannot take: keep it in place
                    self._rewrite_journal_if_removed()
                if closing and time.monotonic() >= self._close_deadline:
                    break
                continue
            self._on_success(batch, prepared, recovered=failures > 0)
            failures = 0
        self._disconnect_writer()

    def _next_batch(self, last_commit: float, failures: int) -> list[_Change] | None:
        """Wait for work (pacing commits, backing off after failures) and return the next batch to commit."""
        with self._cond:
            while not self._queue and not self._closing:
                if not self._cond.wait(self._watch_interval) and not self._queue and not self._closing:
                    self._cond.release()  # look at the file without holding up savers
                    try:
                        self._watch_file()
                    finally:
                        self._cond.acquire()
            if not self._queue:
                return None
            if failures:
                delay = min(self._retry_backoff_max, 0.05 * 2 ** (failures - 1))
                if self._closing:  # keep retrying at shutdown, paced, until the close deadline
                    delay = min(delay, max(0.0, self._close_deadline - time.monotonic()))
                    self._wait_while(lambda: True, delay)
                else:
                    self._wait_while(lambda: not self._closing, delay)
            else:
                self._wait_while(
                    lambda: not self._closing and not self._durable_waiters and len(self._queue) < self._max_batch,
                    last_commit + self._commit_interval - time.monotonic(),
                )
            self._settle_runs_locked()
            batch = list(islice(self._queue, self._max_batch))
            self._taken_seq = batch[-1].seq
            return batch

    def _wait_while(self, condition: Callable[[], bool], duration: float) -> None:
        deadline = time.monotonic() + duration
        while condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._cond.wait(remaining)

    def _closing_requested(self) -> bool:
        with self._cond:
            return self._closing

    def _prepare(self, batch: list[_Change]) -> _PreparedBatch:
        """Coalesce the batch (last version of each row wins) and convert records to rows.

        A record that cannot be stored (a NaN price, an unknown type) is rejected
        alone, loudly, so one bad record never stalls the queue behind it.
        """
        latest: dict[tuple[str, Any], _Change] = {}
        for change in batch:
            latest[(change.table, change.key)] = change
        prepared = _PreparedBatch()
        upserts = prepared.upserts
        for (table, key), change in latest.items():
            try:
                if table == "trade_event":
                    prepared.events.append(event_values(change.record, key[1]))
                elif table == "strategy" and change.record is None:
                    prepared.strategy_deletes.append(key)
                elif table == "meta" and change.record is None:
                    prepared.setting_deletes.append(key)
                else:
                    if table == "strategy":
                        row = strategy_to_row(change.record, change.saved_at)
                        columns, values = tuple(row), tuple(row.values())
                    elif table == "meta":
                        columns, values = ("key", "value"), (key, change.record)
                    else:
                        columns, values = record_columns(type(change.record)), record_values(change.record)
                    rows = upserts.get(table)
                    if rows is None:
                        rows = upserts[table] = _Rows(columns)
                    rows.values.append(values)
            except codec.CodecError as exc:
                prepared.rejected.append((change, str(exc)))
        return prepared

    def _commit(self, prepared: _PreparedBatch) -> None:
        db = self._writer_db()
        self._check_file_identity()
        with db.atomic("IMMEDIATE"):
            for table, rows in prepared.upserts.items():
                _execute_many(db, _UPSERT_MODELS[table], rows.columns, rows.values, replace=True)
            for chunk in chunked(prepared.strategy_deletes, _ROWS_PER_INSERT):
                StrategyRow.delete().where(StrategyRow.name.in_(chunk)).execute(db)
            if prepared.setting_deletes:
                MetaRow.delete().where(MetaRow.key.in_(prepared.setting_deletes)).execute(db)
            _execute_many(db, TradeEventRow, EVENT_COLUMNS, prepared.events, replace=False)

    def _on_success(self, batch: list[_Change], prepared: _PreparedBatch, recovered: bool) -> None:
        for change, reason in prepared.rejected:
            log.error("store %s: dropped a %s change that cannot be stored: %s", self.path, change.table, reason)
        if self._journal_lines:
            self._prune_journal(committed_through=batch[-1].seq)  # before waiters of this commit wake
        with self._cond:
            for _ in batch:
                self._queue.popleft()
            self._done_seq = batch[-1].seq
            self._committed += len(batch) - len(prepared.rejected)
            self._rejected_seqs.update(change.seq for change, _ in prepared.rejected)
            if prepared.rejected:
                self._last_error = prepared.rejected[-1][1]
            pending = len(self._queue)
            was_failing = self._state == STATE_MEMORY_ONLY
            if self._incident_latched:
                self._written_since_incident = True  # status() reports the incident once, then OK
            else:
                self._state = STATE_OK
                if was_failing:
                    self._last_error = ""
            committed = self._committed
            self._cond.notify_all()
        if self._on_commit is not None:
            self._on_commit(committed)
        if recovered and was_failing:
            log.warning("storage %s writable again; replaying queued changes (%d still pending)", self.path, pending)

    def _on_failure(self, exc: BaseException, final_attempt: bool) -> None:
        exc = _original_error(exc)
        message = f"{type(exc).__name__}: {exc}"
        with self._cond:
            first = self._state != STATE_MEMORY_ONLY
            self._state = STATE_MEMORY_ONLY
            self._written_since_incident = False
            self._last_error = message
            pending = len(self._queue)
        if first:
            expected = isinstance(
                exc, (peewee.DatabaseError, peewee.InterfaceError, sqlite3.Error, OSError, StorageError, _DatabaseFileGone)
            )
            log.error(
                "storage %s write failed (%s); keeping %d changes in memory and retrying",
                self.path,
                message,
                pending,
                exc_info=None if expected else exc,
            )
        elif final_attempt:
            log.error("storage %s still failing at shutdown (%s)", self.path, message)
        self._disconnect_writer()

    def _writer_db(self) -> SqliteDatabase:
        if self._write_db is None:
            raise StoreUnavailable(f"store for {self.path} is not open")
        if self._write_db.is_closed():
            identity = self._current_file_identity()
            blocked = unwritable_files(self.path)
            if blocked:  # a read-only -shm must never reach SQLite's mmap
                raise DatabaseFilesNotWritable(self.path, blocked)
            self._write_db.connect()
            try:
                version, application_id = schema_version(self._write_db)
                verify_schema_version(self.path, version, application_id)
                if version != LATEST_VERSION:
                    raise StorageError(self.path, f"database {self.path} now has schema version {version}")
                database_id = database_id_of(self._write_db)
                if database_id != self._database_id:
                    raise StorageError(
                        self.path,
                        f"database file {self.path} now holds another database (id {database_id}, "
                        f"expected {self._database_id}); not writing into it",
                    )
            except BaseException:
                self._disconnect_writer()
                raise
            self._file_identity = identity
        return self._write_db

    def _disconnect_writer(self) -> None:
        if self._write_db is not None and not self._write_db.is_closed():
            try:
                self._write_db.close()
            except peewee.DatabaseError:
                log.debug("closing the writer connection of %s failed", self.path, exc_info=True)

    def _current_file_identity(self) -> tuple[int, int]:
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            raise _DatabaseFileGone(f"database file {self.path} was removed") from None
        return (info.st_dev, info.st_ino)

    def _check_file_identity(self) -> None:
        if self._current_file_identity() != self._file_identity:
            self._disconnect_writer()
            raise _DatabaseFileGone(f"database file {self.path} was replaced while open")

    # ------------------------------------------------------------------ the file removed while open

    def _open_anchor(self) -> None:
        anchor = sqlite3.connect(
            Path(self.path).absolute().as_uri() + "?mode=rw",
            uri=True,
            isolation_level=None,
            check_same_thread=False,
            timeout=max(self._write_timeout, 5.0),
        )
        try:
            # Maps the -wal and -shm and holds them.  fetchall() finishes the statement, so the anchor
            # keeps no read transaction open that would stop checkpoints from emptying the -wal.
            anchor.execute("SELECT COUNT(*) FROM sqlite_master").fetchall()
        except BaseException:
            anchor.close()
            raise
        self._anchor = anchor

    def _close_anchor(self) -> None:
        anchor, self._anchor = self._anchor, None
        if anchor is not None:
            try:
                anchor.close()
            except sqlite3.Error:
                log.debug("closing the anchor connection of %s failed", self.path, exc_info=True)

    def _watch_file(self) -> None:
        """While idle: a database file removed from under the store is written back without waiting for a change;
        so is a removed intent journal, with the intents the database does not hold yet."""
        if self._opened and not self._closing_requested() and not self.path.exists():
            self._on_failure(_DatabaseFileGone(f"database file {self.path} was removed"), final_attempt=False)
            self._recreate_from_memory()
        if self._opened and not self._closing_requested():
            self._rewrite_journal_if_removed()

    # ------------------------------------------------------------------ the intent journal

    def _fold_journal(self) -> None:
        """Write the intents a journal left by the last run holds and the database does not into the
        database (see ``tmtool.storage.intents`` for why the journal's copy is then the newer one)."""
        path = intents_path_for(self.path)
        if not path.exists():
            return
        contents = read_journal(path)
        if contents.database_id is None:
            return
        if contents.database_id != self._database_id:
            if not self._new_database:
                raise IntentJournalMismatch(path, contents.database_id, self._database_id or "?")
            set_journal_aside(self.path, self._clock, f"it belongs to database {contents.database_id}, not the new one")
            return
        if not contents.intents:
            return
        db = connect(self.path, synchronous=self._synchronous, busy_timeout=max(self._write_timeout, 5.0))
        with db.connection_context(), db.atomic("IMMEDIATE"):
            keys = [intent.order.key for intent in contents.intents]
            present: set[str] = set()
            for chunk in chunked(keys, _ROWS_PER_INSERT):
                present.update(row[0] for row in OrderRow.select(OrderRow.key).where(OrderRow.key.in_(chunk)).tuples().execute(db))
            missing = [intent for intent in contents.intents if intent.order.key not in present]
            trades: dict[int, Trade] = {}
            orders: dict[str, OrderRecord] = {}
            for intent in missing:  # in journal order: a later intent's copy of a row is the newer one
                if intent.trade is not None:
                    trades[intent.trade.id] = intent.trade
                for sibling in intent.sibling_orders:
                    orders[sibling.key] = sibling
                orders[intent.order.key] = intent.order
            _execute_many(db, TradeRow, record_columns(Trade), [record_values(trade) for trade in trades.values()], replace=True)
            _execute_many(db, OrderRow, record_columns(OrderRecord), [record_values(order) for order in orders.values()], replace=True)
        if missing:
            log.warning(
                "database %s: recovered %d order intent(s) from the intent journal that the database did not hold "
                "(%s); their orders may have reached the broker and are looked up",
                self.path,
                len(missing),
                ", ".join(intent.order.key for intent in missing[:10]),
            )

    def _prune_journal(self, committed_through: int) -> None:
        """On the writer thread after a commit: drop journaled intents the database now holds."""
        with self._journal_lock:
            self._journal_lines = [(seq, line) for seq, line in self._journal_lines if seq > committed_through]
            if self._journal_lines or self._journal is None:
                return
            try:
                self._journal.prune()
            except OSError as exc:
                log.warning("intent journal %s: could not prune it: %s", self._journal.path, exc)

    def _rewrite_journal_if_removed(self) -> None:
        with self._journal_lock:
            journal = self._journal
            if journal is None or not journal.replaced_or_removed():
                return
            try:
                journal.rewrite([line for _, line in self._journal_lines])
            except OSError as exc:
                log.critical("intent journal %s was removed and could not be written back yet: %s", journal.path, exc)
                return
        log.critical(
            "intent journal %s was removed while tmtool ran; wrote it back with %d intent(s) not yet in the database",
            journal.path,
            len(self._journal_lines),
        )

    def _close_journal(self) -> None:
        journal, self._journal = self._journal, None
        if journal is not None:
            journal.close()

    def _recreate_from_memory(self) -> None:
        """Write the database back to its path after the file was removed while open.

        The anchor connection still holds the removed file's inode with its
        -wal and -shm, so everything committed until then is copied from it
        (SQLite's backup API) to ``<db>.recovering``, checked, and linked into
        place; the writer then replays what is queued on top.  Nothing that was
        saved is lost.  Reads wait at the gate meanwhile, so no connection to
        the removed file outlives the anchor (the last one to close would
        delete the -wal by name, which by then could be the new file's).
        """
        temporary = self.path.with_name(self.path.name + ".recovering")
        try:
            with self._read_gate.exclusive():
                if self.path.exists():
                    return
                self._disconnect_writer()
                ensure_private_dir(self.path.parent)  # the folder may have gone with the file
                if self._anchor is not None:
                    self._copy_anchor_to(temporary)
                    self._close_anchor()  # the removed file's -wal and -shm go with it
                if not temporary.exists():
                    raise StorageError(self.path, f"no copy of {self.path} is left to write back")
                for side in side_files(self.path):
                    side.unlink(missing_ok=True)
                os.link(temporary, self.path)  # never over a file someone else put there meanwhile
                temporary.unlink()
                fsync_dir(self.path.parent)
                make_private(self.path)
                write_identity_file(self.path, self._database_id)
                self._open_anchor()
        except (OSError, sqlite3.Error, StorageError) as exc:
            log.critical("storage %s: the database file was removed and could not be written back yet: %s", self.path, exc)
            return
        with self._cond:
            self._recreations += 1
            self._state = STATE_MEMORY_ONLY
            self._incident_latched = True
            pending = len(self._queue)
            self._written_since_incident = pending == 0  # nothing queued: the file is whole again now
            self._last_error = (
                f"database file {self.path} was removed while tmtool ran; recreated it with everything committed "
                f"before ({self._committed} change(s) since start) and {pending} queued change(s) being written"
            )
        log.critical("storage %s: the database file was removed; recreated it, %d queued change(s) follow", self.path, pending)

    def _copy_anchor_to(self, temporary: Path) -> None:
        for leftover in (temporary, *side_files(temporary)):
            leftover.unlink(missing_ok=True)
        create_private_file(temporary)
        destination = sqlite3.connect(temporary, isolation_level=None)
        try:
            self._anchor.backup(destination)
            destination.execute("PRAGMA journal_mode=DELETE")  # one self-contained file; WAL again once opened
            problems = [row[0] for row in destination.execute("PRAGMA quick_check").fetchall()]
            copied_id = database_id_of(destination)
        finally:
            destination.close()
        if problems != ["ok"] or copied_id != self._database_id:
            temporary.unlink(missing_ok=True)
            raise StorageError(self.path, f"the copy kept in memory fails its check: {'; '.join(problems[:3])}")
        fsync_file(temporary)

    # ------------------------------------------------------------------ helpers

    def _reader(self) -> SqliteDatabase:
        if self._read_db is None:
            raise StoreUnavailable(f"store for {self.path} is not open; call open() first")
        return self._read_db

    def _load_event_sequences(self) -> None:
        db = self._reader()
        query = TradeEventRow.select(TradeEventRow.trade_id, fn.MAX(TradeEventRow.seq)).group_by(
            TradeEventRow.trade_id
        )
        with db.connection_context():
            highest = dict(query.tuples().execute(db))
        with self._event_seq_lock:
            for trade_id, seq in highest.items():
                self._next_event_seq[trade_id] = max(self._next_event_seq.get(trade_id, 1), seq + 1)

    @staticmethod
    def _select_trades(db: SqliteDatabase, query: peewee.ModelSelect) -> tuple[Trade, ...]:
        return tuple(select_records(db, Trade, query))

    @staticmethod
    def _select_alerts(db: SqliteDatabase, query: peewee.ModelSelect) -> list[Alert]:
        return select_records(db, Alert, query)


class _ReadGate:
    """Read queries run side by side; writing the database back after a removal waits for them and holds new ones."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._exclusive = False

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._cond:
            while self._exclusive:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            while self._exclusive:
                self._cond.wait()
            self._exclusive = True
            while self._readers:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


def _execute_many(db: SqliteDatabase, model: type[peewee.Model], columns: tuple[str, ...], rows: list[tuple], replace: bool) -> None:
    """Insert rows (each its values in ``columns`` order) with one prepared statement.  ``replace``:
    upsert by primary key; otherwise skip rows already present.  (Building the statement per row
    through the query builder costs more than the write itself, so the statement text is built
    once per column set.)"""
    if not rows:
        return
    db.cursor().executemany(_insert_sql(model, columns, replace), rows)


_INSERT_SQL_CACHE: dict[tuple[str, tuple[str, ...], bool], str] = {}


def _insert_sql(model: type[peewee.Model], columns: tuple[str, ...], replace: bool) -> str:
    table = model._meta.table_name
    cache_key = (table, columns, replace)
    sql = _INSERT_SQL_CACHE.get(cache_key)
    if sql is None:
        unknown = set(columns) - set(model._meta.columns)
        if unknown:
            raise ValueError(f"table {table} has no column(s) {', '.join(sorted(unknown))}")
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        names = ", ".join(f'"{column}"' for column in columns)
        sql = f'{verb} INTO "{table}" ({names}) VALUES ({", ".join("?" * len(columns))})'
        _INSERT_SQL_CACHE[cache_key] = sql
    return sql


def _original_error(exc: BaseException) -> BaseException:
    """The error that started a failure: a failed COMMIT is followed by a failed ROLLBACK that hides it."""
    while not exc.__suppress_context__ and isinstance(exc.__context__, (peewee.DatabaseError, sqlite3.Error, OSError)):
        exc = exc.__context__
    return exc


def _require(record: object, expected: type, method: str) -> None:
    if not isinstance(record, expected):
        raise TypeError(f"{method} needs a {expected.__name__}, got {type(record).__name__}")


def _finite(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value in (
        float("inf"),
        float("-inf"),
    ):
        raise ValueError(f"{name} must be a finite number of epoch seconds, got {value!r}")
    return float(value)


def _enum_value(enum_type: type, value: str, name: str) -> str:
    try:
        return enum_type(value).value
    except ValueError:
        allowed = ", ".join(member.value for member in enum_type)
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}") from None


def _scalar(db: SqliteDatabase, query: peewee.ModelSelect) -> int:
    value = query.scalar(db)
    return int(value) if value is not None else 0
