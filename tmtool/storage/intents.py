"""The intent journal: an order's intent made durable without waiting for the store writer's backlog.

Why it exists.  Before an order leaves, its ledger row (state INTENT) must be
durable, so that after a crash tmtool knows the order may have reached the
broker and resolves it from the broker's evidence instead of sending it again.
Committing that row through the store writer commits the writer's whole backlog
(every trailing-stop move, audit event and alert queued since its last group
commit) first, and each SQLite call on the way hands the interpreter lock to a
busy thread: that hop was the tail of tick-to-exit latency.  The journal is a
file of its own, ``<db>.intents`` beside the database (mode 0600), written on
the caller's thread with one ``write`` per intent to a descriptor opened with
``O_APPEND | O_DSYNC``: when ``append`` returns, the intent is on disk (the
same guarantee as SQLite's ``synchronous=FULL``), and the call releases the
interpreter lock once instead of once per SQLite step.  A store run with
``synchronous=NORMAL`` (survives a crash of the process, not of the machine)
writes the journal without ``O_DSYNC``, to the same guarantee.

File format: a header line ``tmtool-intents 1 <database_id>`` naming the
database the intents belong to, then one line per intent,
``<crc32 as 8 hex digits> <json>``, where the JSON holds the ``OrderRecord``,
the newest version of its trade the store had been handed (or null) and the
newest versions of the trade's other order rows.  A last line without its
newline or failing its checksum is a write that never completed (its ``append`` never returned, so its order
never left) and is ignored with a warning; any other damage refuses the
journal with ``IntentJournalDamaged``, because a lost intent could be an order
at the broker that tmtool would no longer know about.

Why the ordering the engine relies on still holds.  The engine needs one
thing of a durable intent: if its order may have left, a restart knows the
order (and the trade it belongs to).  It does not need every change handed to
the store before the intent to be durable: those changes are versions of rows
that the main database holds in an older version or not at all, and a crash
could always lose the writer's tail after the last commit.  So:

- ``SqliteStore.save_order(durable=True)`` enqueues the row for the main
  database as before, and appends it to the journal together with the newest
  versions of its trade and of the trade's other order rows handed in before
  it: the trade whose order leaves is durable exactly as the engine saw it,
  fills of its earlier orders included.  Only then does the executor send
  the order.  The main database still receives every change in order, as one
  prefix-preserving stream, at the writer's own pace.
- A durable save is an order's intent: the first row of a new order key (the
  order manager makes a fresh key for every order).  So when, at the next
  start, the main database holds no row for a journaled key, its committed
  prefix ends before that intent, and the journaled order, trade and sibling
  orders are at least as new as anything it holds for them.  ``SqliteStore.open``
  writes them into the main database (in journal order, so a later intent's
  copy of an earlier one wins) before the start-up backup and ``load``, so
  recovery restores the order and the existing unknown-order resolution looks
  it up at the broker before anything else is sent for that position.
  A trade that the main database shows ACTIVE with a journaled EXIT intent is
  taken back to EXITING by recovery, as with any exit intent.  Changes to
  other trades queued before the intent may be lost with the writer's tail, as
  they could be before (a crash just before the intent loses them too).
- When the main database holds the key, it committed the intent itself or a
  later version of that row (its queue is applied in order), so the journal's
  copy is stale and is dropped: the main database wins.
- Journal entries are pruned (the file truncated back to its header) once the
  writer has committed every journaled intent; the truncation needs no fsync,
  because an entry that outlives it is dropped at the next start for the
  reason above.  A clean ``close`` with nothing left unwritten leaves only the
  header.

Identity, lock and faults.  The journal is covered by the database's instance
lock (it is only opened while the store holds it) and names its database: a
journal of another database is refused (or, with ``--new-database``, moved
aside as ``<db>.intents.orphaned-<UTC time>``), and a journal present where
the database is missing or empty is evidence that tmtool used a database there
before, so the start is refused with the restore hint like a missing identity
file.  ``tmtool db check`` reports intents not yet in the database; ``tmtool
db restore`` keeps a journal of the restored database (so its intents are
folded in at the next start) and moves any other aside.  A journal removed
while tmtool runs is written back with the intents the database does not hold
yet.  If the journal cannot be written (disk full, removed folder), the
durable save falls back to waiting for the main database's commit, as before
the journal existed; a failed append is cut off so that no later intent
follows half a line.  While the main database fails (memory-only mode) the
journal still makes intents durable.

The deterministic simulation (``tests/simulation``) models the journal in its
in-memory store; its ``crash_journal`` profile kills the engine with sends
under way whose intents reached only the journal.
"""

from __future__ import annotations

import json
import logging
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from tmtool.clock import Clock
from tmtool.domain.models import OrderRecord, Trade
from tmtool.storage import codec
from tmtool.storage.errors import StorageError
from tmtool.storage.files import fsync_dir, make_private, replace_privately, unused_stamped_name

log = logging.getLogger("tmtool.storage")

MAGIC = "tmtool-intents"
FORMAT_VERSION = 1


class IntentJournalDamaged(StorageError):
    """The intent journal cannot be read; it may hold orders that reached the broker."""

    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(
            path,
            f"intent journal {path} is damaged ({detail}); it may name orders that reached the broker. "
            f"tmtool refuses to start: check the broker's order book for orders tmtool does not show, "
            f"then move the file aside and start again",
        )
        self.detail = detail


class IntentJournalMismatch(StorageError):
    """The intent journal belongs to another database than the one at the path."""

    def __init__(self, path: Path, journal_id: str, database_id: str) -> None:
        super().__init__(
            path,
            f"intent journal {path} belongs to database {journal_id}, not to {database_id} now at this path; "
            f"its intents may name orders that reached the broker. Restore that database, or check the "
            f"broker's order book and start with --new-database (the journal is then kept aside)",
        )


@dataclass(frozen=True, slots=True)
class JournaledIntent:
    """One journaled intent: the order row, the newest version of its trade handed in before it (if any)
    and the newest versions of that trade's other order rows."""

    order: OrderRecord
    trade: Trade | None
    sibling_orders: tuple[OrderRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class JournalContents:
    database_id: str | None  # None: the file is empty (created, header never written)
    intents: tuple[JournaledIntent, ...]


def intents_path_for(db_path: Path) -> Path:
    """``<db>.intents``: the intent journal of the database at ``db_path``."""
    db_path = Path(db_path)
    return db_path.with_name(db_path.name + ".intents")


def journal_exists(db_path: Path) -> bool:
    return intents_path_for(db_path).exists()


def encode_intent(order: OrderRecord, trade: Trade | None, sibling_orders: Iterable[OrderRecord] = ()) -> bytes:
    """One journal line; raises ``codec.CodecError`` for a record that cannot be stored."""
    payload = json.dumps(
        {
            "order": codec.encode(order, f"order {order.key}"),
            "trade": None if trade is None else codec.encode(trade, f"trade {trade.id}"),
            "siblings": [codec.encode(sibling, f"order {sibling.key}") for sibling in sibling_orders],
        },
        separators=(",", ":"),
    ).encode("utf-8")
    return b"%08x %s\n" % (zlib.crc32(payload), payload)


def read_journal(path: Path) -> JournalContents:
    """Parse a journal file (``IntentJournalDamaged`` when it cannot be trusted)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IntentJournalDamaged(path, f"cannot read it: {exc}") from None
    if not data:
        return JournalContents(None, ())
    lines = data.split(b"\n")
    complete, tail = lines[:-1], lines[-1]  # tail: bytes after the last newline (a torn write)
    if not complete:
        raise IntentJournalDamaged(path, "its header line is incomplete")
    header = complete[0].decode("utf-8", errors="replace").split(" ")
    if len(header) != 3 or header[0] != MAGIC:
        raise IntentJournalDamaged(path, "it does not start with a tmtool intent journal header")
    if header[1] != str(FORMAT_VERSION):
        raise IntentJournalDamaged(path, f"format version {header[1]} is not one this tmtool reads")
    intents = []
    for number, line in enumerate(complete[1:], start=2):
        intent = _parse_line(line)
        if intent is None:
            if number == len(complete) and not tail:
                log.warning("intent journal %s: ignoring its last line, a write that never completed", path)
                break
            raise IntentJournalDamaged(path, f"line {number} fails its checksum or does not parse")
        intents.append(intent)
    if tail:
        log.warning("intent journal %s: ignoring %d bytes of a write that never completed", path, len(tail))
    return JournalContents(header[2], tuple(intents))


def _parse_line(line: bytes) -> JournaledIntent | None:
    checksum, _, payload = line.partition(b" ")
    try:
        if len(checksum) != 8 or int(checksum, 16) != zlib.crc32(payload):
            return None
        data: Any = json.loads(payload)
        order = codec.decode(OrderRecord, data["order"], "journaled order")
        trade = None if data["trade"] is None else codec.decode(Trade, data["trade"], "journaled trade")
        siblings = tuple(codec.decode(OrderRecord, sibling, "journaled order") for sibling in data["siblings"])
    except (ValueError, KeyError, TypeError):
        return None
    return JournaledIntent(order, trade, siblings)


def set_aside(db_path: Path, clock: Clock, why: str) -> Path | None:
    """Move the journal of ``db_path`` to ``<db>.intents.orphaned-<UTC time>``; None when there is none."""
    path = intents_path_for(db_path)
    if not path.exists():
        return None
    kept = unused_stamped_name(path, "orphaned", clock.time())
    os.replace(path, kept)
    fsync_dir(path.parent)
    log.warning("intent journal %s moved aside to %s: %s", path, kept, why)
    return kept


class IntentJournal:
    """The open journal of one database (see the module docstring).  Not thread-safe: the store
    serialises ``append`` and ``prune`` under its own lock."""

    def __init__(self, db_path: Path, database_id: str, *, sync: bool = True) -> None:
        self.path = intents_path_for(db_path)
        self._sync_flag = os.O_DSYNC if sync else 0
        self._header = f"{MAGIC} {FORMAT_VERSION} {database_id}\n".encode("ascii")
        self._descriptor: int | None = None
        self._identity: tuple[int, int] | None = None
        self._size = 0  # bytes of whole lines in the file
        self._broken = False  # a failed append could not be cut off again: no more appends until rewritten
        self.entries = 0  # intents written since the last prune

    def open_empty(self) -> None:
        """Start a journal holding only the header (replacing any old one atomically)."""
        replace_privately(self.path, self._header)
        self._reopen()

    def _reopen(self) -> None:
        self.close()
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | self._sync_flag)
        info = os.fstat(descriptor)
        self._descriptor = descriptor
        self._identity = (info.st_dev, info.st_ino)
        self._size = info.st_size
        self._broken = False
        self.entries = 0
        make_private(self.path)

    def append(self, line: bytes) -> None:
        """Write one encoded intent; durable when this returns (``O_DSYNC``; without ``sync``, safe from a
        crash of the process but not of the machine).  Raises ``OSError``."""
        if self._descriptor is None or self._broken:
            raise OSError(f"intent journal {self.path} is not open for writing")
        try:
            written = os.write(self._descriptor, line)
            if written != len(line):  # a short write to a regular file: the disk is full
                raise OSError(f"intent journal {self.path}: short write ({written} of {len(line)} bytes)")
        except OSError:
            self._cut_back()  # never leave part of a line for the next one to follow
            raise
        self._size += written
        self.entries += 1

    def _cut_back(self) -> None:
        try:
            os.ftruncate(self._descriptor, self._size)
        except OSError:
            self._broken = True

    def prune(self) -> None:
        """Drop every entry (all are committed to the main database): truncate back to the header."""
        if self._descriptor is None or not self.entries:
            return
        os.ftruncate(self._descriptor, len(self._header))
        self._size = len(self._header)
        self.entries = 0

    def replaced_or_removed(self) -> bool:
        """True when the path no longer names the file this journal writes (removed or replaced)."""
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return True
        return (info.st_dev, info.st_ino) != self._identity

    def rewrite(self, lines: list[bytes]) -> None:
        """Write the journal back at its path (after it was removed) with ``lines`` still pending."""
        self.open_empty()
        for line in lines:
            self.append(line)

    def close(self) -> None:
        descriptor, self._descriptor = self._descriptor, None
        if descriptor is not None:
            os.close(descriptor)
