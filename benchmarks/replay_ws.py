"""A tiny WebSocket server on loopback that replays the same recorded frames to each consumer.

It speaks just enough of OpenAlgo's WebSocket protocol for a market-data client:
the HTTP upgrade, ``authenticate`` (answered with success), ``subscribe`` (either
form: a ``symbols`` list or one ``symbol``/``exchange``), ``subscribe_orders``.
Once the client has subscribed to every expected instrument, the whole
recording — encoded as WebSocket frames once, up front — goes out with one
``sendall``, so the server costs almost nothing and what is measured is the
consumer.  One connection is served at a time; ``sent_at`` is when the replay
began.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import struct
import threading
import time

import orjson

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_OPCODE_TEXT, _OPCODE_CLOSE, _OPCODE_PING, _OPCODE_PONG = 0x1, 0x8, 0x9, 0xA


def encode_frame(payload: bytes, opcode: int = _OPCODE_TEXT) -> bytes:
    """One unmasked, final server frame."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, length)
    return header + payload


def _read_exact(conn: socket.socket, size: int) -> bytes:
    chunks, remaining = [], size
    while remaining:
        chunk = conn.recv(remaining)
        if not chunk:
            raise ConnectionError("the client closed the connection")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _read_client_frame(conn: socket.socket) -> tuple[int, bytes]:
    first, second = _read_exact(conn, 2)
    opcode, length = first & 0x0F, second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", _read_exact(conn, 2))
    elif length == 127:
        (length,) = struct.unpack("!Q", _read_exact(conn, 8))
    mask = _read_exact(conn, 4) if second & 0x80 else b""
    payload = _read_exact(conn, length)
    if mask:
        payload = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return opcode, payload


class ReplayServer:
    """Serve ``frames`` (raw text payloads) to each client once it subscribed to ``instruments``."""

    def __init__(self, frames: list[bytes], instruments: set[tuple[str, str]]) -> None:
        self.instruments = set(instruments)
        self._blob = b"".join(encode_frame(frame) for frame in frames)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="bench-replay-ws", daemon=True)
        self.sent_at: float | None = None  # perf_counter when the current replay began
        self.replayed = threading.Event()

    @property
    def url(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"ws://{host}:{port}"

    def start(self) -> "ReplayServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._halt.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def reset(self) -> None:
        """Before the next consumer connects."""
        self.sent_at = None
        self.replayed.clear()

    def _serve(self) -> None:
        while not self._halt.is_set():
            try:
                conn, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                try:
                    self._session(conn)
                except (ConnectionError, OSError):
                    pass  # the consumer went away: ready for the next one

    def _session(self, conn: socket.socket) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = conn.recv(4096)
            if not chunk:
                return
            request += chunk
        key = next(
            line.split(b":", 1)[1].strip()
            for line in request.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        conn.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        wanted = set(self.instruments)
        while True:
            opcode, payload = _read_client_frame(conn)
            if opcode == _OPCODE_CLOSE:
                conn.sendall(encode_frame(payload[:2], _OPCODE_CLOSE))
                return
            if opcode == _OPCODE_PING:
                conn.sendall(encode_frame(payload, _OPCODE_PONG))
                continue
            if opcode != _OPCODE_TEXT:
                continue
            message = orjson.loads(payload)
            action = message.get("action")
            if action == "authenticate":
                self._reply(conn, {"type": "auth", "status": "success", "message": "Authentication successful",
                                   "broker": "angel", "user_id": "bench"})
            elif action == "subscribe_orders":
                self._reply(conn, {"type": "subscribe_orders", "status": "success", "message": "Subscribed"})
            elif action == "subscribe":
                items = message.get("symbols") or [{"exchange": message.get("exchange"), "symbol": message.get("symbol")}]
                rows = [{"symbol": i["symbol"], "exchange": i["exchange"], "status": "success", "mode": "LTP"} for i in items]
                self._reply(conn, {"type": "subscribe", "status": "success", "message": "Subscription processing complete",
                                   "subscriptions": rows})
                wanted -= {(i["exchange"], i["symbol"]) for i in items}
                if not wanted and not self.replayed.is_set():
                    self.sent_at = time.perf_counter()
                    conn.sendall(self._blob)
                    self.replayed.set()

    @staticmethod
    def _reply(conn: socket.socket, message: dict) -> None:
        conn.sendall(encode_frame(orjson.dumps(message)))
