"""Logging: structured key=value lines, each output (the terminal, the log file) written by a
thread of its own so that a terminal or disk that stops keeping up never stalls trading."""

from __future__ import annotations

import logging
import logging.handlers
import os
import queue
import re
import sys
from datetime import datetime
from pathlib import Path

from tmtool.config import Config
from tmtool.domain.calendar import IST
from tmtool.domain.keyvalue import log_value


_VALUE = r"""(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^\s"']*)"""
_KEY_VALUE_LINE = re.compile(rf"^\w+={_VALUE}(?: \w+={_VALUE})*$")


CONSOLE_LOGGER = "tmtool.console"  # plain lines for the person at the terminal (the banner), written as they are


class KeyValueFormatter(logging.Formatter):
    """``ts=2026-11-21T09:15:00+05:30 level=INFO logger=tmtool.engine event=exit trade=12 ...``.

    One line per record, every field ``key=value``, times in IST with the zone
    (the desk shows IST too).  A message that is not already ``key=value`` pairs
    (prose from a library, say) becomes ``msg="..."``.
    """

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.name == CONSOLE_LOGGER:  # the banner, for the person at the terminal: as it is
            return message
        if not _KEY_VALUE_LINE.match(message):
            message = f"msg={log_value(message)}"
        when = datetime.fromtimestamp(record.created, IST).isoformat(timespec="seconds")
        line = f"ts={when} level={record.levelname} logger={record.name} {message}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log file that is mode 0600 from the start and after every rotation.

    ``RotatingFileHandler`` reopens the file after a rollover with the process
    umask (0644 by default); this one creates it with an explicit mode.
    """

    def _open(self):
        descriptor = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(descriptor, 0o600)  # an existing file (or a umask-made one) is tightened as well
        return open(descriptor, self.mode, encoding=self.encoding, errors=self.errors)


LOG_QUEUE_RECORDS = 10_000  # per output: lines waiting for a terminal or disk that is not keeping up


class LogOutput(logging.handlers.QueueHandler):
    """One log output (stderr, the file) behind a bounded queue and a writer thread of its own.

    The thread that logs - the engine's, a feed's - only formats the line and enqueues it: a
    terminal that stops reading (a paused pager, a stalled SSH session, a full pipe) or a slow
    disk stalls this output's writer, never trading, and never the other output.  When the
    queue is full the line is dropped and counted; the count is written when there is room.
    """

    def __init__(self, handler: logging.Handler, formatter: logging.Formatter) -> None:
        super().__init__(queue.Queue(LOG_QUEUE_RECORDS))
        self.target = handler
        self.setFormatter(formatter)  # formatted here, on the logging thread; written as is
        handler.setFormatter(logging.Formatter("%(message)s"))
        self.dropped = 0
        self._listener = logging.handlers.QueueListener(self.queue, handler)
        self._listener.start()

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            if self.dropped:
                note = logging.makeLogRecord({"name": "tmtool", "levelno": logging.WARNING, "levelname": "WARNING",
                                              "msg": f"event=log_lines_dropped count={self.dropped} reason=output_not_keeping_up"})
                self.queue.put_nowait(self.prepare(note))
                self.dropped = 0
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1

    def wait_written(self, timeout: float) -> bool:
        """True once every line queued so far was written (False after ``timeout`` seconds)."""
        pending = self.queue
        with pending.all_tasks_done:
            return pending.all_tasks_done.wait_for(lambda: pending.unfinished_tasks == 0, timeout)

    def close(self) -> None:
        """Write what is queued (waiting at most a few seconds for an output that is stuck), then close."""
        listener, self._listener = self._listener, None
        if listener is not None and listener._thread is not None:
            try:
                self.queue.put(listener._sentinel, timeout=2.0)
            except queue.Full:
                pass
            listener._thread.join(timeout=5.0)
            listener._thread = None
        self.target.close()
        super().close()


def setup_logging(config: Config, *, headless: bool, level: str | None = None) -> None:
    """Headless: structured lines to stderr and a rotating file (0600).  With the UI: the file only.
    Each output is written by a thread of its own (``LogOutput``)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        if isinstance(handler, LogOutput):
            handler.close()
    root.setLevel((level or config.log.level).upper())
    # Third-party socket libraries log raw frames at DEBUG, authentication frames included: keep them quiet.
    for noisy in ("websockets", "websocket", "httpx", "httpcore", "uvicorn", "uvicorn.error"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    formatter = KeyValueFormatter()
    console = logging.getLogger(CONSOLE_LOGGER)
    for handler in list(console.handlers):
        console.removeHandler(handler)
    if headless:
        terminal = LogOutput(logging.StreamHandler(sys.stderr), formatter)
        root.addHandler(terminal)
        console.addHandler(terminal)  # the same writer: banner and log lines in the order they were made
        console.propagate = False  # the banner is for the terminal, not the log file
        console.setLevel(logging.INFO)
    path = Path(config.log.file)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.touch(mode=0o600)
        os.chmod(path, 0o600)
        handler = PrivateRotatingFileHandler(
            path, maxBytes=config.log.max_bytes, backupCount=config.log.backups, encoding="utf-8"
        )
        root.addHandler(LogOutput(handler, formatter))
    except OSError as exc:  # a log file we cannot write must not stop monitoring
        print(f"tmtool: not logging to {path}: {exc}", file=sys.stderr)


# --------------------------------------------------------------------------- settings
