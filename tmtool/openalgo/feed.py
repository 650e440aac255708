"""Live prices from OpenAlgo's WebSocket proxy: implements ``tmtool.engine.ports.Feed``.

Threads (all daemons):

* the **reader** connects, authenticates, subscribes, reads frames and hands
  each tick to ``callbacks.on_tick``; on a drop or a silent socket it
  reconnects with exponential backoff and jitter, re-authenticates and
  re-subscribes everything;
* the **monitor** recomputes the per-symbol stale set and notices a missing
  ``subscribe_orders`` acknowledgement;
* the **poller** covers, during its exchange's hours, every subscribed symbol
  whose socket ticks stopped: silent for ``poll_silent_after`` (sooner for a
  symbol marked near a level with ``set_near_level``), or all of them once the
  socket has been down ``poll_after``.  It fetches their quotes over REST —
  batched with ``multiquotes`` (``quotes`` one symbol at a time on a server
  without it), within a request budget per endpoint — and hands each new
  price to ``callbacks.on_tick`` exactly as a socket tick, until the socket
  ticks that symbol again.  A polled price is dropped when the socket already
  delivered it (or a tick arrived while the request was out), and when the
  quote has not moved since the last poll (same ltp and day volume).

Freshness: a symbol is **stale** (``FeedStatus.stale``) when no price reached
tmtool from either source within its window; **polled** lists the symbols
REST is covering.  A connected socket that sends no frame of any kind for
``stall_after`` is torn down and reopened with backoff (repeated stalls do not
reset the backoff), while polling covers every symbol.

States: LIVE (socket up), RECONNECTING (socket down, no prices), POLLING
(socket down, REST prices flowing), DOWN (stopped, or the server refused
authentication and REST gives nothing either).

Frames are decoded with orjson: on captured simulator frames ``parse_frame``
runs about 2.7 times faster with it than with the json module
(``python -m benchmarks.bench_feed`` prints both rates).
"""

from __future__ import annotations

import json
import logging
import math
import random
import threading
from collections import OrderedDict, deque
from typing import Any, Callable, NamedTuple

import orjson
import websocket

from tmtool.clock import Clock, SystemClock
from tmtool.domain.calendar import exchange_open
from tmtool.domain.models import (
    DATA_ONLY_EXCHANGES,
    EXCHANGES,
    FeedState,
    Tick,
)
from tmtool.engine.ports import Broker, FeedCallbacks
from tmtool.domain.broker import BrokerError, FeedStatus, OrderUpdate

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (exchange, symbol)

_KNOWN_EXCHANGES = EXCHANGES | DATA_ONLY_EXCHANGES
_RECENT_PER_SYMBOL = 4  # (ltp, timestamp) pairs remembered per symbol to drop cross-mode duplicates
_SEEN_ORDER_UPDATES = 10_000  # order-update keys remembered for de-duplication
_STABLE_CONNECTION = 1.0  # seconds a connection must hold before the reconnect backoff starts over
_MULTIQUOTES_BATCH = 50  # symbols per multiquotes request
_MULTIQUOTES_RETRY = 60.0  # seconds before a server that lacked multiquotes is asked again
_UNKNOWN_SYMBOL_RETRY = 30.0  # seconds before a symbol the server does not know is polled again
_RATE_WINDOW = 1.0  # OpenAlgo's limits are per endpoint over a moving one-second window


# ---------------------------------------------------------------------- parsing


class MalformedFrame(ValueError):
    """A frame that cannot be used; the message says why."""


class PriceFrame(NamedTuple):
    """A market-data frame reduced to what the engine needs."""

    exchange: str
    symbol: str
    price: float
    data_ts: Any  # the server's data.timestamp (epoch ms), None when absent
    mode: Any


class ControlFrame(NamedTuple):
    """Any other frame: acknowledgements (``kind`` = the frame's type) and errors (``kind`` = "error")."""

    kind: str
    status: str
    message: str
    code: str
    body: dict


def parse_frame(raw: bytes | str, loads: Callable[[Any], Any] = orjson.loads) -> PriceFrame | OrderUpdate | ControlFrame:
    """Decode one text frame; raise ``MalformedFrame`` when it cannot be used.

    Market data is routed on the top-level ``exchange``/``symbol``/``mode`` and
    priced from ``data.ltp`` (a finite number > 0).  Error frames carry no
    ``type``: they are recognised by ``status == "error"``.
    """
    try:
        msg = loads(raw)
    except (ValueError, TypeError) as exc:
        raise MalformedFrame(f"not JSON ({exc.__class__.__name__})") from None
    if type(msg) is not dict:
        raise MalformedFrame(f"not a JSON object but {type(msg).__name__}")
    kind = msg.get("type")
    if kind == "market_data":
        return _price_frame(msg)
    if kind == "order_update":
        return parse_order_update(msg)
    if kind is None:
        if msg.get("status") == "error":
            return ControlFrame("error", "error", str(msg.get("message", "")), str(msg.get("code", "")), msg)
        raise MalformedFrame("frame has no 'type'")
    return ControlFrame(str(kind), str(msg.get("status", "")), str(msg.get("message", "")), str(msg.get("code", "")), msg)


def _price_frame(msg: dict) -> PriceFrame:
    exchange = msg.get("exchange")
    symbol = msg.get("symbol")
    data = msg.get("data")
    if type(exchange) is not str or type(symbol) is not str or not exchange or not symbol:
        raise MalformedFrame("market_data without a top-level exchange and symbol")
    if type(data) is not dict:
        raise MalformedFrame(f"market_data for {exchange}:{symbol} without a data object")
    ltp = data.get("ltp")
    price_type = type(ltp)
    if price_type is float or price_type is int:
        price = float(ltp)
    elif price_type is str:
        try:
            price = float(ltp)
        except ValueError:
            raise MalformedFrame(f"{exchange}:{symbol} ltp is not a number: {ltp!r}") from None
    else:
        raise MalformedFrame(f"{exchange}:{symbol} ltp is not a number: {ltp!r}")
    if not (price > 0 and math.isfinite(price)):
        raise MalformedFrame(f"{exchange}:{symbol} ltp is not a finite price > 0: {ltp!r}")
    return PriceFrame(exchange, symbol, price, data.get("timestamp"), msg.get("mode"))


def parse_order_update(msg: dict) -> OrderUpdate:
    """An ``order_update`` frame as a ``ports.OrderUpdate`` (numbers may be strings)."""
    order_id = msg.get("orderid")
    if order_id in (None, ""):
        raise MalformedFrame("order_update without an orderid")
    try:
        return OrderUpdate(
            order_id=str(order_id),
            symbol=str(msg.get("symbol", "")),
            exchange=str(msg.get("exchange", "")),
            action=str(msg.get("action", "")).upper(),
            quantity=_whole(msg.get("quantity")),
            status=str(msg.get("order_status", "")).strip().lower(),
            filled_quantity=_whole(msg.get("filled_quantity")),
            pending_quantity=_whole(msg.get("pending_quantity")),
            average_price=_number(msg.get("average_price")),
            product=str(msg.get("product") or ""),
            mode=str(msg.get("mode") or "live"),
            rejection_reason=str(msg.get("rejection_reason") or ""),
        )
    except ValueError as exc:
        raise MalformedFrame(f"order_update {order_id}: {exc}") from None


def _number(value: object) -> float:
    if value is None or value == "":
        return 0.0
    number = float(str(value))
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"not a finite number >= 0: {value!r}")
    return number


def _whole(value: object) -> int:
    return int(_number(value))


def loads_with_json(raw: bytes | str) -> Any:
    """The standard library decoder, for comparison in the benchmark."""
    return json.loads(raw)


# ---------------------------------------------------------------------- feed


class _AuthRefused(Exception):
    """The server answered the authentication with an error."""


class _RateLimitedLog:
    """Log each kind of problem at most once per ``interval`` seconds, with a count of the rest."""

    def __init__(self, clock: Clock, interval: float = 10.0) -> None:
        self._clock = clock
        self._interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, category: str, text: str, *args: object, exc_info: bool = False) -> None:
        now = self._clock.monotonic()
        last = self._last.get(category)
        if last is not None and now - last < self._interval:
            self._suppressed[category] = self._suppressed.get(category, 0) + 1
            return
        self._last[category] = now
        suppressed = self._suppressed.pop(category, 0)
        if suppressed:
            log.warning(text + " (and %d more like it)", *args, suppressed, exc_info=exc_info)
        else:
            log.warning(text, *args, exc_info=exc_info)


class _RequestBudget:
    """At most ``per_second`` requests per endpoint in any moving one-second window,
    and none while an endpoint is paused after the server said 429."""

    def __init__(self, clock: Clock, per_second: int) -> None:
        self._clock = clock
        self._per_second = per_second
        self._sent: dict[str, deque] = {}
        self._paused_until: dict[str, float] = {}

    def take(self, endpoint: str) -> bool:
        now = self._clock.monotonic()
        if now < self._paused_until.get(endpoint, -math.inf):
            return False
        sent = self._sent.setdefault(endpoint, deque())
        while sent and now - sent[0] >= _RATE_WINDOW:
            sent.popleft()
        if len(sent) >= self._per_second:
            return False
        sent.append(now)
        return True

    def pause(self, endpoint: str, seconds: float) -> None:
        self._paused_until[endpoint] = self._clock.monotonic() + seconds


class OpenAlgoFeed:
    """OpenAlgo WebSocket market data (and order updates) with REST fallback.

    ``stale_after``: a subscribed symbol without a price (socket or REST) for
    this long is reported stale; the socket counts as silently dead (closed and
    reopened) after ``stall_after`` seconds without any frame while something
    is subscribed (default: ``stale_after``).  ``stale_after_overrides`` maps
    (exchange, symbol) to its own window.  ``seed`` makes the reconnect jitter
    reproducible.  ``mode`` is the subscription mode (1 = LTP).

    REST polling (needs ``broker``): a symbol without a socket tick for
    ``poll_silent_after`` seconds (``poll_near_level_after`` when marked near a
    level; never longer than a window given to it by ``set_stale_after``) is polled every
    ``poll_interval`` during its exchange's hours; all symbols are once the
    socket has been down ``poll_after``.  ``poll_requests_per_second`` bounds
    the requests per endpoint (OpenAlgo's default ``API_RATE_LIMIT`` is 10 per
    second per endpoint and client address, shared with tmtool's other reads).
    """

    def __init__(
        self,
        ws_url: str,
        api_key: str,
        broker: Broker | None = None,
        clock: Clock | None = None,
        stale_after: float = 5.0,
        poll_after: float = 1.0,
        poll_interval: float = 1.0,
        max_backoff: float = 10.0,
        seed: int | None = None,
        mode: int = 1,
        *,
        stall_after: float | None = None,
        stale_after_overrides: dict[Key, float] | None = None,
        initial_backoff: float = 0.05,
        poll_silent_after: float = 2.5,
        poll_near_level_after: float = 2.0,
        poll_requests_per_second: int = 5,
        connect_timeout: float = 5.0,
        auth_timeout: float = 5.0,
        order_ack_timeout: float = 3.0,
    ) -> None:
        if not isinstance(ws_url, str) or not ws_url.startswith(("ws://", "wss://")):
            raise ValueError(f"ws_url must start with ws:// or wss://, got {ws_url!r}")
        if not api_key:
            raise ValueError("api_key is empty: set the OpenAlgo API key")
        if not (isinstance(poll_after, (int, float)) and math.isfinite(poll_after) and poll_after >= 0):
            raise ValueError(f"poll_after must be a number of seconds >= 0, got {poll_after!r}")
        if isinstance(poll_requests_per_second, bool) or not isinstance(poll_requests_per_second, int) or poll_requests_per_second < 1:
            raise ValueError(f"poll_requests_per_second must be a whole number >= 1, got {poll_requests_per_second!r}")
        for name, value in (
            ("stale_after", stale_after),
            ("poll_silent_after", poll_silent_after),
            ("poll_near_level_after", poll_near_level_after),
            ("poll_interval", poll_interval),
            ("max_backoff", max_backoff),
            ("initial_backoff", initial_backoff),
        ):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if mode not in (1, 2, 3):
            raise ValueError(f"mode must be 1 (LTP), 2 (Quote) or 3 (Depth), got {mode!r}")
        self.ws_url = ws_url
        self._api_key = api_key
        self._broker = broker
        self._clock = clock or SystemClock()
        self.stale_after = float(stale_after)
        self.stall_after = float(stall_after if stall_after is not None else stale_after)
        self.poll_after = float(poll_after)
        self.poll_interval = float(poll_interval)
        self.poll_silent_after = float(poll_silent_after)
        self.poll_near_level_after = float(poll_near_level_after)
        self.poll_requests_per_second = poll_requests_per_second
        self.max_backoff = float(max_backoff)
        self.initial_backoff = float(initial_backoff)
        self.connect_timeout = connect_timeout
        self.auth_timeout = auth_timeout
        self.order_ack_timeout = order_ack_timeout
        self.mode = mode
        self._random = random.Random(seed)
        self._lock = threading.RLock()
        self._stale_overrides: dict[Key, float] = {}
        self._near_level: set[Key] = set()
        for (exchange, symbol), seconds in (stale_after_overrides or {}).items():
            self.set_stale_after(exchange, symbol, seconds)
        self._stop = threading.Event()
        self._callbacks: FeedCallbacks | None = None
        self._threads: list[threading.Thread] = []
        self._bad = _RateLimitedLog(self._clock)

        self._refs: dict[Key, int] = {}
        self._retired: set[Key] = set()  # unsubscribed: late ticks for these are expected, not malformed
        self._last_tick: dict[Key, float] = {}  # monotonic time of the last socket tick (or of subscribing)
        self._last_fresh: dict[Key, float] = {}  # ... of the last price from either source (or of subscribing)
        self._socket_ticks: dict[Key, int] = {}  # socket ticks delivered per symbol (a poll must not overtake one)
        self._last_delivered: dict[Key, tuple] = {}  # ("socket", ltp) or ("poll", (ltp, volume))
        self._recent: dict[Key, deque] = {}  # recent (ltp, data.timestamp) per symbol
        self._seen_orders: OrderedDict[tuple, None] = OrderedDict()
        self._stale: tuple[Key, ...] = ()
        self._polled: tuple[Key, ...] = ()  # symbols REST polling covers now
        self._next_poll: dict[Key, float] = {}  # monotonic time each covered symbol is due again
        self._delivery_lock = threading.Lock()  # orders socket and polled ticks of a symbol; never held by callers
        self._budget = _RequestBudget(self._clock, poll_requests_per_second)
        self._multiquotes_missing_until: float | None = None

        self._ws: websocket.WebSocket | None = None
        self._ready = False  # authenticated and subscribed on the current socket
        self._state = FeedState.RECONNECTING
        self._auth_refused = False
        self._down_since: float | None = None
        self._connected_once = False
        self._last_frame = 0.0
        self._last_tick_ts: float | None = None
        self._order_updates = False
        self._order_ack_deadline: float | None = None

        self._frames = 0
        self._malformed = 0
        self._errors = 0
        self._reconnects = 0
        self._polls = 0
        self._polled_ticks = 0

    def __repr__(self) -> str:
        return f"OpenAlgoFeed(ws_url={self.ws_url!r}, api_key='***', state={self._state.value})"

    # ------------------------------------------------------------------ public API

    def start(self, callbacks: FeedCallbacks) -> None:
        """Start the background threads; returns at once (state RECONNECTING until LIVE)."""
        with self._lock:
            if self._callbacks is not None:
                raise RuntimeError("the feed was already started")
            self._callbacks = callbacks
            self._down_since = self._clock.monotonic()
        for name, target in (("reader", self._run_reader), ("monitor", self._run_monitor), ("poller", self._run_poller)):
            thread = threading.Thread(target=target, name=f"tmtool-feed-{name}", daemon=True)
            self._threads.append(thread)
            thread.start()
        self._notify()

    def subscribe(self, exchange: str, symbol: str) -> None:
        """Reference-counted: the first call for (exchange, symbol) subscribes on the wire."""
        key = _key(exchange, symbol)
        with self._lock:
            count = self._refs.get(key, 0)
            self._refs[key] = count + 1
            if count:
                return
            now = self._clock.monotonic()
            self._last_tick[key] = now
            self._last_fresh[key] = now
            self._recent.pop(key, None)
            self._last_delivered.pop(key, None)
            self._retired.discard(key)
            if self._ready:
                self._send_locked({"action": "subscribe", "symbols": [_item(key)], "mode": self.mode})

    def unsubscribe(self, exchange: str, symbol: str) -> None:
        """Reference-counted: the last matching call unsubscribes on the wire.

        Raises ``ValueError`` for a symbol that is not subscribed (nothing changes).
        """
        key = _key(exchange, symbol)
        with self._lock:
            count = self._refs.get(key, 0)
            if count == 0:
                raise ValueError(f"{key[0]}:{key[1]} is not subscribed; nothing to unsubscribe")
            if count > 1:
                self._refs[key] = count - 1
                return
            del self._refs[key]
            self._retired.add(key)
            self._last_tick.pop(key, None)
            self._last_fresh.pop(key, None)
            self._last_delivered.pop(key, None)
            self._next_poll.pop(key, None)
            self._recent.pop(key, None)
            stale_changed = key in self._stale or key in self._polled
            if stale_changed:
                self._stale = tuple(k for k in self._stale if k != key)
                self._polled = tuple(k for k in self._polled if k != key)
            if self._ready:
                item = {**_item(key), "mode": self.mode}  # the per-item mode is the one the server uses
                self._send_locked({"action": "unsubscribe", "symbols": [item]})
        if stale_changed:
            self._notify()

    def set_stale_after(self, exchange: str, symbol: str, seconds: float) -> None:
        """Give one symbol its own staleness window (e.g. an illiquid option).

        REST polling of the symbol starts no later than this window either.
        """
        if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"stale_after for {exchange}:{symbol} must be a positive number, got {seconds!r}")
        with self._lock:
            self._stale_overrides[_key(exchange, symbol)] = float(seconds)

    def set_near_level(self, exchange: str, symbol: str, near: bool) -> None:
        """Mark (or unmark) a symbol whose price is near a stop or target: when its
        socket ticks stop it is polled after ``poll_near_level_after`` seconds."""
        key = _key(exchange, symbol)
        with self._lock:
            if near:
                self._near_level.add(key)
            else:
                self._near_level.discard(key)

    def subscriptions(self) -> dict[Key, int]:
        """(exchange, symbol) → number of users."""
        with self._lock:
            return dict(self._refs)

    def status(self) -> FeedStatus:
        with self._lock:
            return FeedStatus(
                state=self._state,
                last_tick_ts=self._last_tick_ts,
                stale=self._stale,
                polled=self._polled,
                polls=self._polls,
                polled_ticks=self._polled_ticks,
                subscribed=len(self._refs),
                frames=self._frames,
                malformed=self._malformed,
                errors=self._errors,
                reconnects=self._reconnects,
                order_updates=self._order_updates,
            )

    def stop(self, timeout: float = 2.0) -> None:
        """Close the socket cleanly and join the threads (bounded by ``timeout``)."""
        self._stop.set()
        reader = self._threads[0] if self._threads else None
        if reader is not None:
            reader.join(timeout / 2)
            if reader.is_alive():  # stuck connecting: cut the socket
                with self._lock:
                    ws = self._ws
                if ws is not None:
                    ws.abort()
        for thread in self._threads:
            thread.join(timeout / 2)
        with self._lock:
            changed = self._state is not FeedState.DOWN
            self._state = FeedState.DOWN
            self._ready = False
            self._polled = ()
        if changed and self._callbacks is not None:
            self._notify()

    # ------------------------------------------------------------------ reader thread

    def _run_reader(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            ws: websocket.WebSocket | None = None
            connected_at: float | None = None
            stalled = False
            try:
                ws = self._connect()
                connected_at = self._clock.monotonic()
                stalled = self._read(ws)
            except _AuthRefused as refusal:
                self._on_auth_refused(str(refusal))
            except (websocket.WebSocketException, OSError, ValueError) as exc:
                if not self._stop.is_set():
                    self._bad.warning("connection", "OpenAlgo feed: connection failed or lost: %s", _describe(exc))
                    with self._lock:
                        self._errors += 1
            except Exception:  # noqa: BLE001 - whatever went wrong, the prices must keep coming
                with self._lock:
                    self._errors += 1
                self._bad.warning("reader", "OpenAlgo feed: unexpected failure; reconnecting", exc_info=True)
            finally:
                self._on_socket_down(ws)
            if self._stop.is_set():
                break
            if not stalled and connected_at is not None and self._clock.monotonic() - connected_at >= _STABLE_CONNECTION:
                attempt = 0  # the connection held: the next reconnect starts from the first step again
            self._stop.wait(self._backoff(attempt))
            attempt += 1

    def _backoff(self, attempt: int) -> float:
        """Exponential with jitter in [50%, 100%] of the step, capped at ``max_backoff``."""
        if self._auth_refused:
            step = self.max_backoff
        else:
            step = min(self.max_backoff, self.initial_backoff * (2 ** min(attempt, 30)))
        return step * (0.5 + 0.5 * self._random.random())

    def _connect(self) -> websocket.WebSocket:
        ws = websocket.create_connection(
            self.ws_url, timeout=self.connect_timeout, skip_utf8_validation=True, enable_multithread=True
        )
        ws.frame_buffer.recv = _ReadAhead(ws.frame_buffer.recv)
        with self._lock:
            self._ws = ws  # so stop() can cut a hanging handshake
        try:
            ws.send(json.dumps({"action": "authenticate", "api_key": self._api_key}))
            self._await_auth(ws)
            ws.settimeout(0.1)
            self._on_authenticated(ws)
        except BaseException:
            _discard(ws)
            raise
        return ws

    def _await_auth(self, ws: websocket.WebSocket) -> None:
        deadline = self._clock.monotonic() + self.auth_timeout
        while True:
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0 or self._stop.is_set():
                raise websocket.WebSocketTimeoutException("no authentication reply")
            ws.settimeout(min(remaining, 0.25))
            try:
                opcode, data = ws.recv_data()
            except websocket.WebSocketTimeoutException:
                continue
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                raise websocket.WebSocketConnectionClosedException("closed during authentication")
            try:
                frame = parse_frame(data)
            except MalformedFrame:
                continue
            if isinstance(frame, ControlFrame):
                if frame.kind == "auth":
                    if frame.status == "success":
                        return
                    raise _AuthRefused(self._redact(frame.message or frame.status))
                if frame.kind == "error":
                    raise _AuthRefused(self._redact(f"{frame.code}: {frame.message}"))

    def _on_authenticated(self, ws: websocket.WebSocket) -> None:
        now = self._clock.monotonic()
        with self._lock:
            if self._stop.is_set():
                return
            self._ready = True
            self._last_frame = now
            if self._refs:
                ws.send(orjson.dumps({"action": "subscribe", "symbols": [_item(k) for k in self._refs], "mode": self.mode}))
            ws.send('{"action":"subscribe_orders"}')
            self._order_ack_deadline = now + self.order_ack_timeout
            if self._connected_once:
                self._reconnects += 1
            self._connected_once = True
            self._auth_refused = False
            self._down_since = None
            changed = self._state is not FeedState.LIVE
            self._state = FeedState.LIVE
        log.info("OpenAlgo feed: connected and subscribed to %d symbols", len(self._refs))
        if changed:
            self._notify()

    def _read(self, ws: websocket.WebSocket) -> bool:
        """Read frames until the socket closes (False) or falls silent for ``stall_after`` (True)."""
        recv = ws.recv_data
        on_frame = self.handle_frame
        text, binary, close = websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY, websocket.ABNF.OPCODE_CLOSE
        while not self._stop.is_set():
            try:
                opcode, data = recv()
            except websocket.WebSocketTimeoutException:
                if self._stalled():
                    self._bad.warning(
                        "stall", "OpenAlgo feed: no frame for %.1fs while subscribed; reconnecting", self.stall_after
                    )
                    with self._lock:
                        self._errors += 1
                    return True
                continue
            if opcode == text or opcode == binary:
                on_frame(data)
            elif opcode == close:
                log.info("OpenAlgo feed: the server closed the connection")
                return False
        return False

    def _stalled(self) -> bool:
        return bool(self._refs) and self._clock.monotonic() - self._last_frame >= self.stall_after

    def handle_frame(self, raw: bytes | str) -> None:
        """Process one raw frame as if it came from the socket (the reader's hot path;
        public for replay and tests)."""
        now = self._clock.monotonic()
        self._frames += 1
        self._last_frame = now
        try:
            frame = parse_frame(raw)
        except MalformedFrame as exc:
            self._count_malformed(str(exc))
            return
        if type(frame) is PriceFrame:
            self._on_price(frame, now)
        elif type(frame) is OrderUpdate:
            self._on_order_update(frame)
        else:
            self._on_control(frame)

    def _on_price(self, frame: PriceFrame, now: float) -> None:
        key = (frame.exchange, frame.symbol)
        if key not in self._refs:
            if key not in self._retired:
                self._count_malformed(f"tick for a symbol never subscribed: {key[0]}:{key[1]}")
            return
        with self._delivery_lock:
            if frame.data_ts is not None:
                fingerprint = (frame.price, frame.data_ts)
                recent = self._recent.get(key)
                if recent is None:
                    recent = self._recent[key] = deque(maxlen=_RECENT_PER_SYMBOL)
                elif fingerprint in recent:
                    return  # the same tick delivered again (cross-mode duplicate)
                recent.append(fingerprint)
            self._last_tick[key] = now
            self._last_fresh[key] = now
            self._socket_ticks[key] = self._socket_ticks.get(key, 0) + 1
            self._last_delivered[key] = ("socket", frame.price)
            ts = self._clock.time()
            self._last_tick_ts = ts
            callbacks = self._callbacks
            if callbacks is not None:
                self._deliver(callbacks.on_tick, Tick(frame.exchange, frame.symbol, frame.price, ts))

    def _on_order_update(self, update: OrderUpdate) -> None:
        identity = (update.order_id, update.status, update.filled_quantity)
        with self._lock:
            if identity in self._seen_orders:
                return
            self._seen_orders[identity] = None
            if len(self._seen_orders) > _SEEN_ORDER_UPDATES:
                self._seen_orders.popitem(last=False)
        callbacks = self._callbacks
        if callbacks is not None and callbacks.on_order_update is not None:
            self._deliver(callbacks.on_order_update, update)

    def _on_control(self, frame: ControlFrame) -> None:
        if frame.kind == "subscribe_orders":
            self._set_order_updates(frame.status == "success")
        elif frame.kind == "error":
            with self._lock:
                self._errors += 1
                awaiting_orders_ack = self._order_ack_deadline is not None
            if awaiting_orders_ack and (frame.code == "INVALID_ACTION" or "order" in frame.message.lower()):
                self._set_order_updates(False)
            self._bad.warning("error-frame", "OpenAlgo feed: server error %s: %s", frame.code, self._redact(frame.message))
        elif frame.kind in ("subscribe", "unsubscribe") and frame.status not in ("success", ""):
            failed = [
                f"{row.get('exchange')}:{row.get('symbol')} ({row.get('message', row.get('status'))})"
                for row in (frame.body.get("subscriptions") or frame.body.get("failed") or [])
                if isinstance(row, dict) and row.get("status") != "success"
            ]
            with self._lock:
                self._errors += 1
            self._bad.warning("subscribe", "OpenAlgo feed: %s %s: %s", frame.kind, frame.status, ", ".join(failed) or frame.message)

    def _set_order_updates(self, offered: bool) -> None:
        with self._lock:
            self._order_ack_deadline = None
            changed = self._order_updates != offered
            self._order_updates = offered
        if changed:
            log.info("OpenAlgo feed: order updates %s", "available" if offered else "not offered by the server")
            self._notify()

    def _count_malformed(self, reason: str) -> None:
        with self._lock:
            self._malformed += 1
        self._bad.warning("malformed", "OpenAlgo feed: ignored a frame: %s", self._redact(reason))

    def _on_auth_refused(self, message: str) -> None:
        log.error(
            "OpenAlgo feed: the server refused authentication (%s). The API key is wrong or the broker "
            "session expired: log in to OpenAlgo again.",
            message,
        )
        with self._lock:
            self._errors += 1
            self._auth_refused = True
            # REST polling may still bring prices: then the state stays POLLING.
            changed = self._state not in (FeedState.DOWN, FeedState.POLLING)
            if changed:
                self._state = FeedState.DOWN
        if changed:
            self._notify()

    def _on_socket_down(self, ws: websocket.WebSocket | None) -> None:
        with self._lock:
            was_ready = self._ready
            self._ready = False
            self._ws = None
            if self._down_since is None:
                self._down_since = self._clock.monotonic()
            self._order_ack_deadline = None
            changed = was_ready and self._state is FeedState.LIVE
            if changed:
                self._state = FeedState.RECONNECTING
        if ws is not None:
            if self._stop.is_set():
                try:
                    ws.close(timeout=0.2)
                except (websocket.WebSocketException, OSError):
                    pass
            _discard(ws)
        if changed:
            self._notify()

    # ------------------------------------------------------------------ monitor thread

    def _run_monitor(self) -> None:
        period = min(0.1, self.stale_after / 4)
        while not self._stop.wait(period):
            self._check_staleness()
            deadline = self._order_ack_deadline
            if deadline is not None and self._clock.monotonic() >= deadline:
                self._set_order_updates(False)

    def _check_staleness(self) -> None:
        now = self._clock.monotonic()
        with self._lock:
            stale = tuple(
                sorted(key for key in self._refs if now - self._last_fresh.get(key, now) >= self._stale_limit(key))
            )
            changed = stale != self._stale
            self._stale = stale
        if changed:
            if stale:
                self._bad.warning("stale", "OpenAlgo feed: no recent tick for %s", ", ".join(f"{e}:{s}" for e, s in stale))
            self._notify()

    def _stale_limit(self, key: Key) -> float:
        return self._stale_overrides.get(key, self.stale_after)

    # ------------------------------------------------------------------ poller thread

    def _run_poller(self) -> None:
        if self._broker is None:
            return
        idle = min(0.05, self.poll_interval)
        while not self._stop.is_set():
            try:
                self._poll_round()
            except Exception:  # noqa: BLE001 - the poller must outlive any one bad reply
                with self._lock:
                    self._errors += 1
                self._bad.warning("poller", "OpenAlgo feed: quote polling failed unexpectedly", exc_info=True)
            self._stop.wait(idle)

    def _poll_limit(self, key: Key) -> float:
        """Seconds without a socket tick before ``key`` is polled."""
        limit = min(self.poll_silent_after, self._stale_overrides.get(key, math.inf))
        if key in self._near_level:
            limit = min(limit, self.poll_near_level_after)
        return limit

    def _covered_locked(self, now: float, ts: float) -> tuple[Key, ...]:
        """The symbols polling covers now (caller holds the lock)."""
        if not self._refs:
            return ()
        down_since = self._down_since
        socket_down = not self._ready and down_since is not None and now - down_since >= self.poll_after
        open_now: dict[str, bool] = {}
        covered = []
        for key in self._refs:
            exchange = key[0]
            is_open = open_now.get(exchange)
            if is_open is None:
                is_open = open_now[exchange] = exchange_open(exchange, ts)
            if is_open and (socket_down or now - self._last_tick.get(key, now) >= self._poll_limit(key)):
                covered.append(key)
        return tuple(sorted(covered))

    def _poll_round(self) -> None:
        """Recompute the covered symbols; poll those that are due, within the request budget."""
        now, ts = self._clock.monotonic(), self._clock.time()
        with self._lock:
            covered = self._covered_locked(now, ts)
            added = [key for key in covered if key not in self._polled]
            changed = covered != self._polled
            self._polled = covered
            for key in list(self._next_poll):
                if key not in covered:
                    del self._next_poll[key]
            due = [key for key in covered if self._next_poll.get(key, -math.inf) <= now]
            use_multi = self._multiquotes_missing_until is None or now >= self._multiquotes_missing_until
        if added:
            self._bad.warning(
                "polling", "OpenAlgo feed: no socket tick for %s; polling quotes over REST every %.1fs",
                ", ".join(f"{e}:{s}" for e, s in added), self.poll_interval,
            )
        if changed:
            self._notify()
        if not due:
            return
        if use_multi:
            # One batch covers every symbol being polled, so they stay in step.
            for start in range(0, len(covered), _MULTIQUOTES_BATCH):
                if not self._poll_batch(list(covered[start:start + _MULTIQUOTES_BATCH])):
                    break
        else:
            with self._lock:
                due.sort(key=lambda k: (k not in self._near_level, self._next_poll.get(k, -math.inf)))
            for key in due:
                if not self._poll_single(key):
                    break

    def _poll_batch(self, keys: list[Key]) -> bool:
        """One ``multiquotes`` request; False when nothing more should be sent this round."""
        if not self._budget.take("multiquotes"):
            return False
        seen, now = self._before_request(keys)
        assert self._broker is not None
        try:
            quotes = self._broker.multi_quotes([(symbol, exchange) for exchange, symbol in keys])
        except BrokerError as error:
            if error.kind == "not_found":
                with self._lock:
                    self._multiquotes_missing_until = self._clock.monotonic() + _MULTIQUOTES_RETRY
                    for key in keys:
                        self._next_poll[key] = now  # due again at once, one symbol at a time
                log.warning("OpenAlgo feed: the server has no multiquotes (%s); polling quotes one symbol at a time",
                            error.message)
            else:
                self._poll_failed("multiquotes", error)
            return False
        self._deliver_polled(keys, quotes, seen, now)
        return True

    def _poll_single(self, key: Key) -> bool:
        """One ``quotes`` request; False when the budget for this round is spent."""
        if not self._budget.take("quotes"):
            return False
        seen, now = self._before_request([key])
        assert self._broker is not None
        try:
            quote = self._broker.quotes(key[1], key[0])
        except BrokerError as error:
            if error.kind == "validation":  # the server does not know the symbol
                with self._lock:
                    self._next_poll[key] = now + _UNKNOWN_SYMBOL_RETRY
            self._poll_failed("quotes", error)
            return error.kind not in ("rate_limited", "auth")
        self._deliver_polled([key], {key: quote}, seen, now)
        return True

    def _before_request(self, keys: list[Key]) -> tuple[dict[Key, int], float]:
        """Mark ``keys`` polled until the next interval; note each one's socket tick count."""
        now = self._clock.monotonic()
        with self._lock:
            self._polls += 1
            for key in keys:
                self._next_poll[key] = now + self.poll_interval
        with self._delivery_lock:
            seen = {key: self._socket_ticks.get(key, 0) for key in keys}
        return seen, now

    def _poll_failed(self, endpoint: str, error: BrokerError) -> None:
        if error.kind == "rate_limited":
            # OpenAlgo's retry_after is a constant 60; its window moves over one second.
            self._budget.pause(endpoint, _RATE_WINDOW)
        with self._lock:
            self._errors += 1
        self._bad.warning("poll", "OpenAlgo feed: REST quote polling failed (%s): %s", error.kind, error.message)

    def _deliver_polled(self, keys: list[Key], quotes: dict[Key, Any], seen: dict[Key, int], sent_at: float) -> None:
        """Hand the new polled prices to ``on_tick`` in the order of ``keys``."""
        callbacks = self._callbacks
        got_any = False
        with self._delivery_lock:
            if self._stop.is_set():
                return
            ts = self._clock.time()
            for key in keys:
                quote = quotes.get(key)
                if quote is None or key not in self._refs:
                    continue
                ltp = quote.ltp
                if not (isinstance(ltp, float) and ltp > 0 and math.isfinite(ltp)):
                    with self._lock:
                        self._malformed += 1
                    continue
                got_any = True
                if self._socket_ticks.get(key, 0) != seen[key]:
                    continue  # the socket ticked while the request was out: its price is newer
                self._last_fresh[key] = max(self._last_fresh.get(key, sent_at), sent_at)
                fingerprint = (ltp, quote.volume)
                last = self._last_delivered.get(key)
                self._last_delivered[key] = ("poll", fingerprint)
                if last == ("socket", ltp) or last == ("poll", fingerprint):
                    continue  # the same moment as the price already delivered
                self._last_tick_ts = ts
                self._polled_ticks += 1
                if callbacks is not None:
                    self._deliver(callbacks.on_tick, Tick(key[0], key[1], ltp, ts))
        if not got_any:
            return
        with self._lock:
            changed = not self._ready and self._state is not FeedState.POLLING and not self._stop.is_set()
            if changed:
                self._state = FeedState.POLLING
        if changed:
            log.warning("OpenAlgo feed: socket down; polling quotes over REST every %.1fs", self.poll_interval)
            self._notify()

    # ------------------------------------------------------------------ helpers

    def _send_locked(self, message: dict) -> None:
        """Send on the current socket (caller holds the lock); a failure is left to the reader."""
        ws = self._ws
        if ws is None:
            return
        try:
            ws.send(orjson.dumps(message).decode())
        except (websocket.WebSocketException, OSError) as exc:
            self._bad.warning("send", "OpenAlgo feed: send failed (%s); will resubscribe on reconnect", _describe(exc))

    def _notify(self) -> None:
        callbacks = self._callbacks
        if callbacks is not None and callbacks.on_status is not None:
            self._deliver(callbacks.on_status, self.status())

    def _deliver(self, callback: Callable[[Any], None], item: object) -> None:
        """Call a consumer's callback; its failure is logged, never allowed to kill a feed thread."""
        try:
            callback(item)
        except Exception:  # noqa: BLE001 - a consumer bug must not stop the prices
            with self._lock:
                self._errors += 1
            self._bad.warning("callback", "OpenAlgo feed: a %s callback failed", type(item).__name__, exc_info=True)

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if text else text


class _ReadAhead:
    """Serves the socket library's small exact-size reads from one large socket read.

    websocket-client reads each frame's header and payload with separate
    ``recv`` calls, and each call gives up the interpreter lock and has to win
    it back.  When another thread of the process is busy (the TUI painting),
    winning it back can take a whole switch interval (5 ms), so at thousands of
    frames a second the frames queued up in the socket and a stop-crossing tick
    reached the engine tens to hundreds of milliseconds late
    (``python -m benchmarks.bench_latency``).  One read of up to ``chunk`` bytes
    now serves every frame already waiting.  Timeouts and a closed connection
    come through from the wrapped call unchanged.
    """

    __slots__ = ("_recv", "_chunk", "_data", "_pos")

    def __init__(self, recv: Callable[[int], bytes], chunk: int = 1 << 16) -> None:
        self._recv = recv
        self._chunk = chunk
        self._data = b""
        self._pos = 0

    def __call__(self, bufsize: int) -> bytes:
        data, pos = self._data, self._pos
        if pos >= len(data):
            data, pos = self._recv(self._chunk), 0
        end = min(pos + bufsize, len(data))
        self._data, self._pos = data, end
        return data[pos:end]


def _key(exchange: str, symbol: str) -> Key:
    if not isinstance(exchange, str) or exchange.strip().upper() not in _KNOWN_EXCHANGES:
        raise ValueError(f"unknown exchange {exchange!r}; expected one of {sorted(_KNOWN_EXCHANGES)}")
    if not isinstance(symbol, str) or not symbol.strip():
        raise ValueError(f"symbol must be a non-empty string, got {symbol!r}")
    return (exchange.strip().upper(), symbol.strip())


def _item(key: Key) -> dict[str, str]:
    return {"symbol": key[1], "exchange": key[0]}


def _discard(ws: websocket.WebSocket) -> None:
    """Cut a socket at once (no closing handshake)."""
    try:
        ws.abort()
        ws.shutdown()
    except (websocket.WebSocketException, OSError):
        pass


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
