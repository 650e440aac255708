"""Real loopback receivers for the alert channels: HTTP (webhook, Telegram) and SMTP."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tmtool.domain.models import Alert, AlertCategory, AlertPriority

# 2026-01-01 09:30 IST: inside market hours, outside any quiet window used here.
MORNING = 1_767_240_000.0


def make_alert(
    alert_id: int = 1,
    priority: str = "CRITICAL",
    category: str = "TRADE",
    text: str = "",
    *,
    count: int = 1,
    ts: float = MORNING,
    trade_id: int | None = 12,
    strategy: str | None = "momentum",
    key: str = "",
    last_ts: float | None = None,
) -> Alert:
    return Alert(
        id=alert_id,
        ts=ts,
        category=AlertCategory(category),
        priority=AlertPriority(priority),
        text=text or f"alert {alert_id}",
        key=key,
        trade_id=trade_id,
        strategy=strategy,
        count=count,
        last_ts=ts if last_ts is None else last_ts,
    )


# --------------------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    """A loopback HTTP server that records every POST and answers ``status`` with ``reply``.

    With ``hold`` set it records the request and then keeps the client waiting
    until ``release`` is set (a receiver slower than the client's timeout).
    """

    server: ThreadingHTTPServer
    status: int = 200
    reply: Callable[[ReceivedRequest], dict] = lambda request: {"ok": True}
    hold: bool = False
    release: threading.Event = field(default_factory=threading.Event)
    requests: list[ReceivedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def received(self) -> list[ReceivedRequest]:
        with self.lock:
            return list(self.requests)


def _start_receiver() -> HttpReceiver:
    receiver: HttpReceiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's naming
            length = int(self.headers.get("Content-Length", "0"))
            request = ReceivedRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length))
            with receiver.lock:
                receiver.requests.append(request)
            if receiver.hold:
                receiver.release.wait(30)
            body = json.dumps(receiver.reply(request)).encode()
            try:
                self.send_response(receiver.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass  # the client gave up waiting (the slow-receiver case)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver = HttpReceiver(server)
    threading.Thread(target=server.serve_forever, args=(0.05,), name="test-http-receiver", daemon=True).start()
    return receiver


@pytest.fixture
def http_receiver() -> Iterator[Callable[[], HttpReceiver]]:
    """A factory of loopback HTTP receivers, all shut down at the end of the test."""
    started: list[HttpReceiver] = []

    def start() -> HttpReceiver:
        receiver = _start_receiver()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.release.set()
        receiver.server.shutdown()
        receiver.server.server_close()


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A loopback URL whose port is bound but not listening: connections are refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


# --------------------------------------------------------------------------- SMTP


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    recipients: list[str]
    content: bytes
    over_tls: bool
    login: bytes | None


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[ReceivedMail] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
        self.messages.append(
            ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), envelope.content, session.ssl is not None, login)
        )
        return "250 OK"


class LoopbackSMTP(Controller):
    """aiosmtpd's threaded server on an ephemeral port (the base class expects a fixed one)."""

    def _trigger_server(self) -> None:
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


SMTP_USER = "desk"
SMTP_PASSWORD = "smtp-pa55-word-not-for-logs"


def _authenticate(server, session, envelope, mechanism, auth_data) -> AuthResult:
    if isinstance(auth_data, LoginPassword) and auth_data == (SMTP_USER.encode(), SMTP_PASSWORD.encode()):
        return AuthResult(success=True, auth_data=auth_data)
    return AuthResult(success=False, handled=False)  # the server answers 535


@pytest.fixture(scope="session")
def tls_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not available to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def plain_smtp() -> Iterator[tuple[LoopbackSMTP, Mailbox]]:
    """An SMTP server without TLS or auth."""
    mailbox = Mailbox()
    controller = LoopbackSMTP(mailbox, hostname="127.0.0.1", port=0, server_hostname="localhost")
    controller.start()
    yield controller, mailbox
    controller.stop()


@pytest.fixture
def starttls_smtp(tls_certificate: tuple[Path, Path]) -> Iterator[tuple[LoopbackSMTP, Mailbox]]:
    """An SMTP server that requires STARTTLS and accepts one login (after TLS only)."""
    cert, key = tls_certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    mailbox = Mailbox()
    controller = LoopbackSMTP(
        mailbox,
        hostname="127.0.0.1",
        port=0,
        server_hostname="localhost",
        tls_context=context,
        require_starttls=True,
        authenticator=_authenticate,
        auth_require_tls=True,
    )
    controller.start()
    yield controller, mailbox
    controller.stop()
