"""Running the control API: uvicorn in a thread of its own, on TCP and/or a Unix socket.

TCP (``host:port``, port 0 picks a free one) needs the key; it listens on
loopback unless ``allow_remote`` is given, and then logs and prints a warning
naming the address.  The Unix socket (``unix_path``) is created mode 0600 and
needs no key: its permissions are the access control.

Limits: at most ``max_connections`` connections and tasks at once (uvicorn's
``limit_concurrency``: more get 503), a request's line and headers must arrive
within ``request_timeout`` (else the connection is closed), bodies up to
``max_body_bytes`` within ``request_timeout`` more (else 408 and closed), idle
kept-alive connections closed after ``keep_alive_timeout``.  ``stop()`` closes
the listeners and every open connection.  The key never appears in a log line,
an error message or a repr.

Only the listeners are bound on the caller's thread: uvicorn, FastAPI and the
application's models (about 0.3 s of imports, 45 MB) load on the server's own
thread, so a start-up that serves the API without waiting for it
(``Runtime.start``) never pays for them before monitoring.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import stat
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from tmtool.api.ratelimit import RateLimiter
from tmtool.clock import Clock, SystemClock
from tmtool.engine.ports import EngineHandle

if TYPE_CHECKING:
    import uvicorn
    from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("tmtool.api")

MIN_KEY_LENGTH = 8


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _protocol_with_header_deadline(seconds: float) -> type[H11Protocol]:
    """uvicorn's HTTP/1.1 protocol, plus a deadline for a request's head: a client that connects and
    trickles (or never sends) its request line and headers is disconnected after ``seconds``."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderDeadlineProtocol(H11Protocol):
        _head_deadline: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            self._disarm()
            self._head_deadline = self.loop.call_later(seconds, self._head_overdue)

        def _disarm(self) -> None:
            if self._head_deadline is not None:
                self._head_deadline.cancel()
                self._head_deadline = None

        def _head_overdue(self) -> None:
            self._head_deadline = None
            if (self.cycle is None or self.cycle.response_complete) and not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
            super().connection_made(transport)
            self._arm()

        def handle_events(self) -> None:
            super().handle_events()
            if self.cycle is not None and not self.cycle.response_complete:
                self._disarm()  # a request is in: the body guard's deadline takes over

        def handle_websocket_upgrade(self, event) -> None:  # type: ignore[no-untyped-def]
            self._disarm()  # the connection becomes a WebSocket (the snapshot stream): no more heads
            super().handle_websocket_upgrade(event)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()  # the next request's head has the same deadline

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeaderDeadlineProtocol


class RemoteBindRefused(ValueError):
    """A TCP address beyond loopback without ``allow_remote``."""


class ApiServer:
    """The control API on ``host:port`` and/or ``unix_path``; see ``url`` / ``unix_path`` once started."""

    def __init__(
        self,
        engine: EngineHandle,
        *,
        host: str = "127.0.0.1",
        port: int | None = 5080,
        api_key: str | None = None,
        unix_path: str | Path | None = None,
        allow_remote: bool = False,
        requests_per_minute: int = 120,
        clock: Clock = SystemClock(),
        command_timeout: float = 5.0,
        request_timeout: float = 10.0,
        keep_alive_timeout: float = 5.0,
        max_body_bytes: int = 65_536,
        max_connections: int = 64,
        stream_interval: float = 0.125,  # the TUI draws at 8 Hz: no use sending more often
    ) -> None:
        if port is not None:
            if not isinstance(api_key, str) or len(api_key.strip()) < MIN_KEY_LENGTH:
                raise ValueError(f"the control API key must be at least {MIN_KEY_LENGTH} characters")
            if not 0 <= port <= 65535:
                raise ValueError("the control API port must be between 0 and 65535")
            if not is_loopback(host) and not allow_remote:
                raise RemoteBindRefused(
                    f"the control API would listen on {host}, beyond loopback: set allow_remote = true in [api] "
                    "to mean it (anyone who can reach that address can then try the key)"
                )
        elif unix_path is None:
            raise ValueError("the control API needs a TCP port or a Unix socket path")
        self.host = host
        self.port = port
        self.unix_path = str(unix_path) if unix_path is not None else None
        self.request_timeout = request_timeout
        self.keep_alive_timeout = keep_alive_timeout
        self.max_connections = max_connections
        self.rate_limiter = RateLimiter(requests_per_minute, clock)
        self._engine, self._clock, self._command_timeout = engine, clock, command_timeout
        self._api_key = api_key.encode("utf-8") if port is not None and api_key else None
        self._max_body_bytes, self._stream_interval = max_body_bytes, stream_interval
        self._closing = threading.Event()  # set by stop(): streams say goodbye
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopping = False

    def __repr__(self) -> str:
        return f"ApiServer(host={self.host!r}, port={self.port}, unix_path={self.unix_path!r})"

    @property
    def url(self) -> str:
        """``http://host:port`` of the bound TCP listener."""
        if self._thread is None or self.port is None:
            raise RuntimeError("the control API is not listening on TCP")
        return self._tcp_address()

    def _tcp_address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _where(self) -> str:
        """Where it listens, for the log: the TCP address and the socket path."""
        where = [self._tcp_address()] if self.port is not None else []
        if self.unix_path is not None:
            where.append(f"unix:{self.unix_path}")
        return " and ".join(where)

    def _sockets(self) -> list[socket.socket]:
        sockets: list[socket.socket] = []
        if self.port is not None:
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            tcp = socket.create_server((self.host, self.port), family=family, backlog=128)
            self.port = tcp.getsockname()[1]
            sockets.append(tcp)
            if not is_loopback(self.host):
                warning = f"the control API listens on {self.host}:{self.port}, beyond loopback (allow_remote = true)"
                log.warning(warning)
                print(f"tmtool: warning: {warning}", file=sys.stderr, flush=True)
        if self.unix_path is not None:
            sockets.append(_unix_listener(Path(self.unix_path)))
        return sockets

    def start(self, wait: bool = True, on_failure: Callable[[str], None] | None = None) -> None:
        """Bind the listeners now (an address in use, a socket path that is not a socket: refused
        here, raised), then build the application and serve on the server thread.

        ``wait``: return once it serves (a failure to start is raised).  Otherwise return as soon
        as the listeners are bound: building the application (FastAPI and its models, about a
        second of interpreter time) then happens off the caller's path, connections made
        meanwhile wait in the listen backlog, and a failure to start is logged and handed to
        ``on_failure``.  ``Runtime.start`` does this so monitoring starts without waiting for it."""
        if self._thread is not None:
            raise RuntimeError("the control API is already started")
        sockets = self._sockets()
        self._closing.clear()
        self._stopping = False
        started = threading.Event()
        failure: list[BaseException] = []

        async def serve(server: uvicorn.Server) -> None:
            serving = asyncio.ensure_future(server.serve(sockets=sockets))
            while not server.started and not serving.done():
                await asyncio.sleep(0.01)
            started.set()
            if server.started:
                log.info("control API listening on %s", self._where())
            await serving

        def run() -> None:
            try:
                import uvicorn

                server = uvicorn.Server(self._uvicorn_config())
                with self._lock:
                    if self._stopping:  # stopped while the application was being built
                        return
                    self._server = server
                asyncio.run(serve(server))
                if not server.started and not self._stopping:
                    raise RuntimeError("the server ended before it started")
            except BaseException as exc:  # noqa: BLE001 - handed to start(), or to on_failure
                failure.append(exc)
                if not wait:
                    message = f"the control API did not start: {type(exc).__name__}: {exc}"
                    log.error(message)
                    if on_failure is not None:
                        on_failure(message)
            finally:
                started.set()
                for sock in sockets:
                    sock.close()

        if not wait:
            log.info("control API bound on %s; starting", self._where())
        self._thread = threading.Thread(target=run, name="tmtool-api", daemon=True)
        self._thread.start()
        if wait:
            started.wait()
            if failure or self._server is None or not self._server.started:
                self._server = self._thread = None
                raise RuntimeError(f"the control API did not start: {failure[0] if failure else 'unknown reason'}")

    def _uvicorn_config(self) -> uvicorn.Config:
        """The server's configuration, with the application built (on the server's thread: see the module)."""
        import uvicorn

        from tmtool.api.app import ApiSettings, build_app
        from tmtool.api.verbs import VerbContext

        context = VerbContext(engine=self._engine, clock=self._clock, command_timeout=self._command_timeout)
        settings = ApiSettings(
            api_key=self._api_key,
            rate_limiter=self.rate_limiter,
            max_body_bytes=self._max_body_bytes,
            body_timeout=self.request_timeout,
            unix_path=self.unix_path,
            stream_interval=self._stream_interval,
            closing=self._closing,
        )
        return uvicorn.Config(
            build_app(context, settings),
            log_config=None,
            access_log=False,
            lifespan="off",
            loop="asyncio",
            http=_protocol_with_header_deadline(self.request_timeout),
            ws="websockets-sansio",
            limit_concurrency=self.max_connections,
            timeout_keep_alive=max(1, int(self.keep_alive_timeout)),
            timeout_graceful_shutdown=2,
            server_header=False,
            date_header=False,
        )

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close open connections, and wait for the server thread (also when it is
        still building the application: it then never serves)."""
        with self._lock:
            self._stopping = True
            server, thread = self._server, self._thread
        if thread is None:
            return
        self._closing.set()
        if server is not None:
            server.should_exit = True
        thread.join(timeout)  # a thread still building sees _stopping before it would keep a server
        self._server = self._thread = None
        if self.unix_path is not None:
            try:
                os.unlink(self.unix_path)
            except FileNotFoundError:
                pass
        log.info("control API stopped")


def _unix_listener(path: Path) -> socket.socket:
    """A listening Unix socket at ``path``, mode 0600 from the moment it exists; a stale socket file is replaced."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise RuntimeError(f"{path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()  # nobody listens: left behind by a process that died
        else:
            raise RuntimeError(f"another tmtool engine already serves {path}")
        finally:
            probe.close()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    previous = os.umask(0o177)
    try:
        listener.bind(str(path))
    finally:
        os.umask(previous)
    os.chmod(path, 0o600)
    listener.listen(128)
    return listener
