"""The control API's HTTP server (stdlib ``ThreadingHTTPServer``).

Robustness: bodies are bounded (``max_body_bytes``; larger ones get 413 and the
connection is closed unread), sockets time out (``request_timeout``), at most
``max_connections`` are served at once (more get 503), only JSON is accepted
(415 otherwise), NaN/Infinity literals are refused, and ``stop()`` closes the
listener and every open connection.  Nothing is logged from a body, and the
key never appears in a log line, an error message or a repr.
"""

from __future__ import annotations

import hmac
import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from tmtool.api.openapi import API_PREFIX, body_fields, openapi_document
from tmtool.api.ratelimit import RateLimiter, retry_after_header
from tmtool.api.schema import ValidationError, validate
from tmtool.api.verbs import VERBS, ApiError, VerbContext
from tmtool.clock import Clock, SystemClock
from tmtool.engine.ports import EngineHandle

log = logging.getLogger("tmtool.api")

MIN_KEY_LENGTH = 8
_GET_PATHS = ("health", "openapi.json")


class _BadJson(ValueError):
    pass


def _refuse_constant(name: str) -> float:
    raise _BadJson(f"{name} is not allowed in JSON")


def _decode_json(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _BadJson("body is not UTF-8") from None
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except _BadJson:
        raise
    except (ValueError, RecursionError):
        raise _BadJson("body is not valid JSON") from None


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], api: "ApiServer") -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.api = api
        self._slots = threading.BoundedSemaphore(api.max_connections)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            self._refuse_busy(request)
            return
        with self._connections_lock:
            self._connections.add(request)
        try:
            super().process_request(request, client_address)
        except Exception:
            self._forget(request)
            self.shutdown_request(request)
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._forget(request)

    def _forget(self, request) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        self._slots.release()

    def _refuse_busy(self, request) -> None:
        body = json.dumps({"status": "error", "message": "too many connections, try again"}).encode()
        head = (
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\nRetry-After: 1\r\n\r\n"
        ).encode()
        try:
            request.settimeout(1.0)
            request.sendall(head + body)
        except OSError:
            pass
        self.shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tmtool-api"
    sys_version = ""
    server: _HttpServer

    def setup(self) -> None:
        self.timeout = self.server.api.request_timeout
        super().setup()

    # ------------------------------------------------------------------ plumbing

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        log.debug("%s %s", self.client_address[0], format % args)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = urlsplit(getattr(self, "path", "") or "").path  # never the query string
        level = logging.DEBUG if str(code).startswith(("1", "2")) else logging.INFO
        log.log(level, "%s %s %s -> %s", self.client_address[0], getattr(self, "command", "-"), path[:200], code)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors raised by the stdlib's request parsing, answered in the JSON envelope."""
        if code == 501:  # a method we do not serve
            code, message = 405, f"method {self.command} is not allowed"
        self.close_connection = True
        self._reply(code, {"status": "error", "message": message or self.responses.get(code, ("error",))[0]})

    def _reply(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload, allow_nan=False, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, message: str, **extra: Any) -> None:
        self._reply(status, {"status": "error", "message": message, **extra})

    def _method_not_allowed(self) -> None:
        self._error(405, f"method {self.command} is not allowed")

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _method_not_allowed

    # ------------------------------------------------------------------ routing

    def _verb_name(self) -> str | None:
        path = urlsplit(self.path).path
        if not path.startswith(API_PREFIX):
            return None
        name = path[len(API_PREFIX):]
        return name[:-1] if name.endswith("/") else name

    def _rate_limited(self) -> bool:
        wait = self.server.api.rate_limiter.acquire(self.client_address[0])
        if wait is None:
            return False
        seconds = retry_after_header(wait)
        self._reply(
            429,
            {"status": "error", "message": "rate limit exceeded, slow down", "retry_after": int(seconds)},
            {"Retry-After": seconds},
        )
        return True

    def do_GET(self) -> None:
        self._discard_body()
        if self._rate_limited():
            return
        name = self._verb_name()
        if name == "openapi.json":
            self._reply(200, self.server.api.openapi)
        elif name == "health":
            self._run(VERBS["health"], {})
        elif name in VERBS:
            self._method_not_allowed()
        else:
            self._error(404, "not found")

    def do_POST(self) -> None:
        body = self._read_body()
        if body is None or self._rate_limited():
            return
        name = self._verb_name()
        verb = VERBS.get(name or "")
        if verb is None:
            self._error(405 if name == "openapi.json" else 404, "unknown verb" if name != "openapi.json" else "use GET")
            return
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if body and content_type != "application/json":
            self._error(415, "send the body as JSON with Content-Type: application/json")
            return
        if not body and not verb.needs_key:
            self._run(verb, {})
            return
        try:
            request = _decode_json(body)
        except _BadJson as exc:
            self._error(400, str(exc))
            return
        if not isinstance(request, dict):
            self._error(400, "body must be a JSON object")
            return
        if verb.needs_key and not self.server.api.key_matches(request.get("apikey")):
            self._error(403, "invalid API key")
            return
        try:
            accepted = validate(body_fields(verb), request)
        except ValidationError as exc:
            self._error(400, str(exc))
            return
        accepted.pop("apikey", None)
        self._run(verb, accepted)

    def _run(self, verb, accepted: dict[str, Any]) -> None:
        try:
            data = verb.handler(self.server.api.context, accepted)
        except ValidationError as exc:
            self._error(400, str(exc))
        except ApiError as exc:
            extra = {"code": exc.code} if exc.code else {}
            self._error(exc.status, exc.message, **extra)
        except Exception:
            log.exception("control API verb %s failed", verb.name)
            self._error(500, "internal error; see the tmtool log")
        else:
            self._reply(200, {"status": "success", "data": data})

    def _discard_body(self) -> None:
        """A GET with a body: read and drop it (bounded), or close the connection."""
        length = self.headers.get("Content-Length")
        if length and length.isdigit() and 0 < int(length) <= self.server.api.max_body_bytes:
            self.rfile.read(int(length))
        elif length and length != "0" or self.headers.get("Transfer-Encoding"):
            self.close_connection = True

    def _read_body(self) -> bytes | None:
        """The request body, or None after answering a bad framing (411/400/413)."""
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            self._error(411, "send the body with a Content-Length (no chunked encoding)")
            return None
        length_text = self.headers.get("Content-Length", "0").strip()
        if not length_text.isdigit():
            self.close_connection = True
            self._error(400, "Content-Length must be a whole number")
            return None
        length = int(length_text)
        if length > self.server.api.max_body_bytes:
            self.close_connection = True
            self._error(413, f"body larger than {self.server.api.max_body_bytes} bytes")
            return None
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            self.close_connection = True
            return None
        return body


class ApiServer:
    """The control API on ``host:port`` (port 0 picks a free one); see ``url`` once started."""

    def __init__(
        self,
        engine: EngineHandle,
        *,
        host: str = "127.0.0.1",
        port: int = 5080,
        api_key: str,
        requests_per_minute: int = 120,
        clock: Clock = SystemClock(),
        command_timeout: float = 5.0,
        request_timeout: float = 10.0,
        max_body_bytes: int = 65_536,
        max_connections: int = 64,
    ) -> None:
        if not isinstance(api_key, str) or len(api_key.strip()) < MIN_KEY_LENGTH:
            raise ValueError(f"the control API key must be at least {MIN_KEY_LENGTH} characters")
        if not 0 <= port <= 65535:
            raise ValueError("the control API port must be between 0 and 65535")
        self._key = api_key.encode("utf-8")
        self.host = host
        self.port = port
        self.request_timeout = request_timeout
        self.max_body_bytes = max_body_bytes
        self.max_connections = max_connections
        self.rate_limiter = RateLimiter(requests_per_minute, clock)
        self.context = VerbContext(engine=engine, clock=clock, command_timeout=command_timeout)
        self.openapi = openapi_document()
        self._server: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"ApiServer(host={self.host!r}, port={self.port})"

    def key_matches(self, given: object) -> bool:
        """Constant-time comparison of a request's key with ours."""
        if not isinstance(given, str):
            return False
        return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), self._key)

    @property
    def url(self) -> str:
        """``http://host:port`` of the running server."""
        if self._server is None:
            raise RuntimeError("the control API is not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("the control API is already started")
        self._server = _HttpServer((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="tmtool-api", daemon=True
        )
        self._thread.start()
        log.info("control API listening on %s", self.url)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close open connections, and wait for the server thread."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        deadline = time.monotonic() + timeout
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join(max(0.0, deadline - time.monotonic()))
        self._server = self._thread = None
        log.info("control API stopped")
