"""OpenAlgo's WebSocket market-data proxy (openalgo-api.md §5), on its own asyncio thread.

Tick path: the market thread calls :meth:`WsServer.publish_market`, which looks
up the subscribers of that instrument in a copy-on-write index, encodes one
frame per subscribed mode and appends ``(client, frame)`` pairs to a pending
list.  Only the first append after a drain schedules a wake-up on the loop
(``call_soon_threadsafe``), so a burst of ticks costs one cross-thread hand-off
per batch, not one per client per tick.  On the loop, frames move to each
client's outbox and one writer task per client sends them in order.  Every
reply (acks, pongs, errors) goes through the same outbox, so a client sees
frames in the order the server produced them.

Faults: during a ``stall_ws`` nothing is queued; a stall with
``answer_pings=False`` also pauses reading every socket and stops the
keepalive pings (so protocol pings go unanswered) until it ends.  A symbol
under ``silence_symbol`` publishes no market frames; everything else goes on.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
from http import HTTPStatus
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from tmtool.sim.host import SimulatorHost
from tmtool.sim.market import Quote, round_to_tick

log = logging.getLogger(__name__)

MODE_LABELS = {1: "LTP", 2: "Quote", 3: "Depth"}
_MODE_NAMES = {"ltp": 1, "quote": 2, "depth": 3, "1": 1, "2": 2, "3": 3}
AUTH_TIMEOUT_CODE = 4401
_OPEN_ACTIONS = frozenset({"authenticate", "auth", "ping"})
USER_ID = "simuser"


def _encode(message: dict) -> str:
    return orjson.dumps(message).decode()


def _error_frame(code: str, message: str) -> str:
    """Error frames carry no ``type`` (the server's ``send_error``)."""
    return _encode({"status": "error", "code": code, "message": message})


def parse_mode(value: Any) -> int | None:
    """1/2/3 or LTP/Quote/Depth in any case; None (absent) means Quote; unknown → None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value in MODE_LABELS else None
    if isinstance(value, str):
        return _MODE_NAMES.get(value.strip().lower())
    return None


class _Client:
    __slots__ = ("connection", "authenticated", "subscriptions", "orders", "outbox", "wake", "closed", "deaf")

    def __init__(self, connection: ServerConnection) -> None:
        self.connection = connection
        self.authenticated = False
        self.subscriptions: set[tuple[str, str, int]] = set()  # (exchange, symbol, mode)
        self.orders = False
        self.outbox: collections.deque[str] = collections.deque()
        self.wake = asyncio.Event()
        self.closed = False
        self.deaf = False  # reading paused and keepalive stopped by a stall_ws(answer_pings=False)


class WsServer:
    def __init__(self, sim: SimulatorHost, host: str, port: int, auth_grace_seconds: float,
                 ping_interval: float | None) -> None:
        self._sim = sim
        self._host = host
        self._port = port
        self._auth_grace = auth_grace_seconds
        self._ping_interval = ping_interval
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._stop_future: asyncio.Future | None = None
        self.address: tuple[str, int] = (host, port)
        self._clients: set[_Client] = set()
        self.messages_handled = 0  # text frames taken from any client, whatever they asked (read from any thread)
        # (exchange, symbol) -> tuple of (client, mode); replaced, never mutated, so the
        # market thread can read it without a lock.
        self._index: dict[tuple[str, str], tuple[tuple[_Client, int], ...]] = {}
        self._index_lock = threading.Lock()
        self._order_clients: tuple[_Client, ...] = ()
        self._pending: list[tuple[_Client | None, str]] = []
        self._pending_lock = threading.Lock()
        self._wake_scheduled = False

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sim-ws", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            self._thread.join()
            raise self._startup_error

    def stop(self) -> None:
        if self._loop is not None and self._stop_future is not None:
            self._loop.call_soon_threadsafe(lambda: self._stop_future.done() or self._stop_future.set_result(None))
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as error:  # surfaced to start() if it happened during start-up
            if not self._ready.is_set():
                self._startup_error = error
                self._ready.set()
            else:
                log.exception("simulator WebSocket server crashed")

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_future = self._loop.create_future()
        server = await serve(
            self._handle, self._host, self._port, process_request=self._process_request,
            compression=None, ping_interval=self._ping_interval, ping_timeout=self._ping_interval,
            close_timeout=1, max_queue=None,
        )
        self.address = server.sockets[0].getsockname()[:2]
        self._ready.set()
        try:
            await self._stop_future
        finally:
            for client in list(self._clients):
                self._set_deaf(client, False)  # so the closing handshake can be read
            server.close(close_connections=True)
            await server.wait_closed()

    def _process_request(self, connection: ServerConnection, request: Any):
        if self._sim.faults.ws_refusing():
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "Service temporarily unavailable\n")
        return None

    # ---- thread-safe API (any thread) ------------------------------------------------------

    def client_count(self) -> int:
        return len(self._clients)

    def subscriptions(self) -> set[tuple[str, str, int]]:
        with self._index_lock:
            return {(exchange, symbol, mode)
                    for (exchange, symbol), entries in self._index.items() for _, mode in entries}

    def publish_market(self, quote: Quote, now_ms: int) -> None:
        """Send one tick to every subscriber of the instrument, once per subscribed mode."""
        entries = self._index.get(quote.instrument.key)
        if not entries or self._sim.faults.symbol_silent(quote.instrument.exchange, quote.instrument.symbol):
            return
        frames: dict[int, str] = {}
        batch = []
        for client, mode in entries:
            frame = frames.get(mode)
            if frame is None:
                frame = frames[mode] = _encode(self._market_message(quote, mode, now_ms))
            batch.append((client, frame))
        self._enqueue(batch)

    def publish_order_update(self, update: dict) -> None:
        clients = self._order_clients
        if clients:
            frame = _encode({"type": "order_update", "user_id": USER_ID, "broker": self._sim.broker_profile, **update})
            self._enqueue([(client, frame) for client in clients])

    def inject_raw_frame(self, text: str) -> None:
        """Send ``text`` verbatim to every connected client (authenticated or not)."""
        self._enqueue([(None, text)])

    def drop_connections(self) -> None:
        """Abort every connection (no close frame) and wait until that is done."""
        if self._loop is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._abort_all(), self._loop)
        future.result(timeout=5)

    def apply_stall(self) -> None:
        """Bring every socket's reading and keepalive in line with the current stall fault."""
        if self._loop is None:
            return
        try:
            self._loop.call_soon_threadsafe(self._update_deafness)
        except RuntimeError:  # loop closed during stop()
            pass

    def _update_deafness(self) -> None:
        faults = self._sim.faults
        deaf = faults.ws_deaf()
        for client in list(self._clients):
            self._set_deaf(client, deaf)
        remaining = faults.ws_stall_remaining()
        if deaf and remaining != float("inf"):
            self._loop.call_later(max(remaining, 0.01), self._update_deafness)

    @staticmethod
    def _set_deaf(client: _Client, deaf: bool) -> None:
        if client.deaf == deaf or client.closed:
            return
        connection = client.connection
        client.deaf = deaf
        try:
            if deaf:
                connection.transport.pause_reading()
                if connection.keepalive_task is not None:
                    connection.keepalive_task.cancel()
                    connection.keepalive_task = None
            else:
                connection.transport.resume_reading()
                connection.start_keepalive()
        except (RuntimeError, AttributeError):  # the transport is closing
            pass

    async def _abort_all(self) -> None:
        for client in list(self._clients):
            client.connection.transport.abort()

    def _enqueue(self, batch: list[tuple[_Client | None, str]]) -> None:
        if self._sim.faults.ws_stalled():
            return  # a mute feed: frames produced during a stall are lost, the sockets stay open
        with self._pending_lock:
            self._pending.extend(batch)
            if self._wake_scheduled or self._loop is None:
                return
            self._wake_scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._distribute)
        except RuntimeError:  # loop closed during stop()
            pass

    # ---- on the loop -----------------------------------------------------------------------

    def _distribute(self) -> None:
        with self._pending_lock:
            batch, self._pending = self._pending, []
            self._wake_scheduled = False
        touched = set()
        for client, frame in batch:
            targets = self._clients if client is None else (client,)
            for target in targets:
                if not target.closed:
                    target.outbox.append(frame)
                    touched.add(target)
        for client in touched:
            client.wake.set()

    def _send(self, client: _Client, frame: str) -> None:
        if self._sim.faults.ws_stalled():
            return
        client.outbox.append(frame)
        client.wake.set()

    async def _writer(self, client: _Client) -> None:
        while True:
            await client.wake.wait()
            client.wake.clear()
            while client.outbox:
                await client.connection.send(client.outbox.popleft())

    async def _auth_deadline(self, client: _Client) -> None:
        await asyncio.sleep(self._auth_grace)
        if not client.authenticated:
            await client.connection.close(AUTH_TIMEOUT_CODE, "auth timeout")

    async def _handle(self, connection: ServerConnection) -> None:
        client = _Client(connection)
        self._clients.add(client)
        if self._sim.faults.ws_deaf():
            self._set_deaf(client, True)
        writer = asyncio.create_task(self._writer(client))
        deadline = asyncio.create_task(self._auth_deadline(client))
        try:
            async for message in connection:
                self._on_message(client, message)
        except ConnectionClosed:
            pass
        finally:
            client.closed = True
            self._clients.discard(client)
            self._forget(client)
            writer.cancel()
            deadline.cancel()

    def _on_message(self, client: _Client, raw: str | bytes) -> None:
        self.messages_handled += 1
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self._send(client, _error_frame("INVALID_JSON", "Invalid JSON message"))
            return
        if not isinstance(message, dict):
            self._send(client, _error_frame("INVALID_JSON", "Message must be a JSON object"))
            return
        action = message.get("action") or message.get("type")
        handler = self._ACTIONS.get(action if isinstance(action, str) else "")
        if handler is None or (action in ("subscribe_orders", "unsubscribe_orders")
                               and not self._sim.order_updates_enabled):
            self._send(client, _error_frame("INVALID_ACTION", f"Invalid action: {action}"))
            return
        if action not in _OPEN_ACTIONS and not client.authenticated:
            self._send(client, _error_frame("NOT_AUTHENTICATED", "You must authenticate first"))
            return
        handler(self, client, message)

    # ---- actions ---------------------------------------------------------------------------

    def _authenticate(self, client: _Client, message: dict) -> None:
        key = message.get("api_key") or message.get("apikey")
        if not key:
            self._send(client, _error_frame("AUTHENTICATION_ERROR", "API key is required"))
        elif not self._sim._key_matches(key):
            self._send(client, _error_frame("AUTHENTICATION_ERROR", "Invalid API key"))
        elif self._sim.session_expired:
            self._send(client, _error_frame("BROKER_ERROR", "No broker configuration found for user"))
        else:
            client.authenticated = True
            self._send(client, _encode({
                "type": "auth", "status": "success", "message": "Authentication successful",
                "broker": self._sim.broker_profile, "user_id": USER_ID,
                "supported_features": {"ltp": True, "quote": True, "depth": True},
            }))

    @staticmethod
    def _requested_symbols(message: dict) -> list[Any] | None:
        symbols = message.get("symbols")
        if isinstance(symbols, list) and symbols:
            return symbols
        if message.get("symbol") and message.get("exchange"):
            return [{"symbol": message["symbol"], "exchange": message["exchange"]}]
        return None

    def _subscribe(self, client: _Client, message: dict) -> None:
        mode = parse_mode(message.get("mode", 2))
        if mode is None:
            self._send(client, _error_frame("INVALID_MODE", f"Invalid mode: {message.get('mode')!r}. Use 1 (LTP), 2 (Quote) or 3 (Depth)"))
            return
        symbols = self._requested_symbols(message)
        if symbols is None:
            self._send(client, _error_frame("INVALID_PARAMETERS", "Either 'symbols' or 'symbol' and 'exchange' are required"))
            return
        depth = message.get("depth", 5)
        broker = self._sim.broker_profile
        rows = []
        for item in symbols:
            symbol, exchange = (item.get("symbol"), item.get("exchange")) if isinstance(item, dict) else (None, None)
            if not (isinstance(symbol, str) and isinstance(exchange, str)) or self._sim._market.instrument(exchange, symbol) is None:
                rows.append({"symbol": symbol, "exchange": exchange, "status": "error",
                             "message": f"Token not found for {symbol} on {exchange}", "broker": broker})
                continue
            self._add_subscription(client, exchange, symbol, mode)
            rows.append({"symbol": symbol, "exchange": exchange, "status": "success", "mode": MODE_LABELS[mode],
                         "depth": depth if depth in (5, 20, 30, 50) else 5, "broker": broker})
        ok = sum(row["status"] == "success" for row in rows)
        ack = {"type": "subscribe", "status": "success" if ok == len(rows) else "partial" if ok else "error",
               "message": "Subscription processing complete", "broker": broker, "subscriptions": rows}
        if "request_id" in message:
            ack["request_id"] = message["request_id"]
        self._send(client, _encode(ack))

    def _unsubscribe(self, client: _Client, message: dict) -> None:
        broker = self._sim.broker_profile
        listed = message.get("symbols")
        if isinstance(listed, list) and listed:
            items = [(item, item.get("mode", 2) if isinstance(item, dict) else None) for item in listed]
        elif message.get("symbol") and message.get("exchange"):
            items = [({"symbol": message["symbol"], "exchange": message["exchange"]}, message.get("mode", 2))]
        else:
            self._send(client, _error_frame("INVALID_PARAMETERS", "Either 'symbols' or 'symbol' and 'exchange' are required"))
            return
        successful, failed = [], []
        for item, raw_mode in items:
            symbol, exchange = (item.get("symbol"), item.get("exchange")) if isinstance(item, dict) else (None, None)
            mode = parse_mode(raw_mode)
            if mode is None or not isinstance(symbol, str) or not isinstance(exchange, str) \
                    or self._sim._market.instrument(exchange, symbol) is None:
                failed.append({"symbol": symbol, "exchange": exchange, "status": "error",
                               "message": f"Cannot unsubscribe {symbol} on {exchange} (mode {raw_mode!r})", "broker": broker})
                continue
            self._remove_subscription(client, exchange, symbol, mode)
            successful.append({"symbol": symbol, "exchange": exchange, "status": "success", "broker": broker})
        ack = {"type": "unsubscribe", "status": "error" if not successful else "partial" if failed else "success",
               "message": "Unsubscription processing complete", "successful": successful, "failed": failed,
               "broker": broker}
        if "request_id" in message:
            ack["request_id"] = message["request_id"]
        self._send(client, _encode(ack))

    def _unsubscribe_all(self, client: _Client, message: dict) -> None:
        count = len(client.subscriptions)
        for exchange, symbol, mode in list(client.subscriptions):
            self._remove_subscription(client, exchange, symbol, mode)
        self._send(client, _encode({"type": "unsubscribe", "status": "success",
                                    "message": f"Unsubscribed from {count} subscriptions",
                                    "successful": [], "failed": [], "broker": self._sim.broker_profile}))

    def _ping(self, client: _Client, message: dict) -> None:
        self._send(client, _encode({"type": "pong", "status": "success",
                                    "server_timestamp": int(self._sim._clock.time() * 1000),
                                    "client_timestamp": message.get("timestamp")}))

    def _broker_info(self, client: _Client, message: dict) -> None:
        self._send(client, _encode({"type": "broker_info", "status": "success", "broker": self._sim.broker_profile,
                                    "adapter_status": "connected", "user_id": USER_ID}))

    def _supported_brokers(self, client: _Client, message: dict) -> None:
        self._send(client, _encode({"type": "supported_brokers", "status": "success",
                                    "brokers": ["angel", "zerodha"], "count": 2}))

    def _subscribe_orders(self, client: _Client, message: dict) -> None:
        client.orders = True
        self._order_clients = tuple(c for c in self._clients if c.orders and not c.closed)
        self._send(client, _encode({"type": "subscribe_orders", "status": "success",
                                    "message": "Subscribed to order updates"}))

    def _unsubscribe_orders(self, client: _Client, message: dict) -> None:
        client.orders = False
        self._order_clients = tuple(c for c in self._order_clients if c is not client)
        self._send(client, _encode({"type": "unsubscribe_orders", "status": "success",
                                    "message": "Unsubscribed from order updates"}))

    _ACTIONS = {
        "authenticate": _authenticate, "auth": _authenticate, "subscribe": _subscribe,
        "unsubscribe": _unsubscribe, "unsubscribe_all": _unsubscribe_all, "ping": _ping,
        "get_broker_info": _broker_info, "get_supported_brokers": _supported_brokers,
        "subscribe_orders": _subscribe_orders, "unsubscribe_orders": _unsubscribe_orders,
    }

    # ---- the subscription index ------------------------------------------------------------

    def _add_subscription(self, client: _Client, exchange: str, symbol: str, mode: int) -> None:
        if (exchange, symbol, mode) in client.subscriptions:
            return
        client.subscriptions.add((exchange, symbol, mode))
        with self._index_lock:
            self._index[(exchange, symbol)] = self._index.get((exchange, symbol), ()) + ((client, mode),)

    def _remove_subscription(self, client: _Client, exchange: str, symbol: str, mode: int) -> None:
        if (exchange, symbol, mode) not in client.subscriptions:
            return
        client.subscriptions.discard((exchange, symbol, mode))
        with self._index_lock:
            remaining = tuple(e for e in self._index.get((exchange, symbol), ()) if e != (client, mode))
            if remaining:
                self._index[(exchange, symbol)] = remaining
            else:
                self._index.pop((exchange, symbol), None)

    def _forget(self, client: _Client) -> None:
        for exchange, symbol, mode in list(client.subscriptions):
            self._remove_subscription(client, exchange, symbol, mode)
        if client.orders:
            self._order_clients = tuple(c for c in self._order_clients if c is not client)

    # ---- frames ----------------------------------------------------------------------------

    def _market_message(self, quote: Quote, mode: int, now_ms: int) -> dict:
        instrument = quote.instrument
        data: dict[str, Any] = {"symbol": instrument.symbol, "exchange": instrument.exchange, "mode": mode,
                                "ltp": quote.ltp, "ltt": quote.ltt_ms, "timestamp": now_ms}
        if mode >= 2:
            data.update(open=quote.open, high=quote.high, low=quote.low, close=quote.prev_close,
                        volume=quote.volume, average_price=quote.average_price,
                        last_trade_quantity=quote.last_quantity)
            bids, asks = quote.depth()
            data["total_buy_quantity"] = sum(level["quantity"] for level in bids)
            data["total_sell_quantity"] = sum(level["quantity"] for level in asks)
            if instrument.is_derivative:
                data["oi"] = quote.oi
            if mode == 3:
                tick = instrument.tick_size
                data["depth"] = {"buy": bids, "sell": asks}
                data["upper_circuit"] = round_to_tick(quote.prev_close * 1.2, tick)
                data["lower_circuit"] = round_to_tick(quote.prev_close * 0.8, tick)
        return {"type": "market_data", "symbol": instrument.symbol, "exchange": instrument.exchange,
                "mode": mode, "broker": self._sim.broker_profile, "data": data}
