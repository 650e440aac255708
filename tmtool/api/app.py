"""The control API as a FastAPI application: routes, request guards, error envelopes, the stream.

Every verb is ``POST /api/v1/<verb>`` with its body model (``tmtool.api.bodies``):
FastAPI validates the body with that model and publishes the same model in
``/api/v1/openapi.json``.  Replies are ``{"status": "success", "data": ...}`` or
``{"status": "error", "message": ...}`` with the documented HTTP codes.

Order of checks for a request: the head deadline (``tmtool.api.server``), then
the body guard (``BodyGuard``, pure ASGI: chunked → 411, bad Content-Length →
400, too large → 413, body not received before the deadline → 408, not JSON →
415/400), then authentication, then the rate limit (429), then the missing or
wrong key (403), then the body model (400), then the verb.  Authentication
comes before the rate limit: a request with the key (or on the Unix socket,
whose file permissions are the access control) is counted against that
identity, one without against its address, so a flood of wrong keys is limited
on its own and cannot lock the real client out.

``/api/v1/stream`` is a WebSocket that sends the engine's snapshot (with its
recent alerts) each time it changes: what ``tmtool attach`` draws from.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from fastapi import Depends, FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tmtool import __version__
from tmtool.api import bodies
from tmtool.api.ratelimit import RateLimiter, retry_after_header
from tmtool.api.serialize import snapshot_json
from tmtool.api.verbs import VERBS, ApiError, ValidationError, Verb, VerbContext

log = logging.getLogger("tmtool.api")

API_PREFIX = "/api/v1/"
STREAM_PATH = API_PREFIX + "stream"
KEY_HEADER = "x-api-key"

_STATUS_TEXT = {
    400: "invalid request (the message names the field and the reason)",
    403: "missing or wrong API key",
    404: "unknown trade",
    408: "the body did not arrive in time",
    409: "refused by the engine in the current state (see `code`)",
    411: "chunked bodies are not accepted",
    413: "body too large",
    415: "body is not JSON",
    429: "rate limit reached (see Retry-After)",
    502: "OpenAlgo failed while the engine carried the command out",
    503: "the engine is not accepting commands",
    504: "the engine did not answer in time; the command may still be applied",
}


@dataclass(frozen=True)
class ApiSettings:
    """What the application needs besides the engine: the key, limits and the Unix socket's path."""

    api_key: bytes | None  # None: no TCP listener, so no key
    rate_limiter: RateLimiter
    max_body_bytes: int
    body_timeout: float
    unix_path: str | None
    stream_interval: float = 0.125
    closing: threading.Event = field(default_factory=threading.Event)  # set by stop(): streams say goodbye


class _Refused(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.headers, self.extra = status, message, headers or {}, extra


def _envelope(status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse(
        {"status": "error", "message": message, **{k: v for k, v in extra.items() if v}},
        status_code=status,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def _on_unix_socket(scope: dict[str, Any], settings: ApiSettings) -> bool:
    server = scope.get("server")
    return settings.unix_path is not None and bool(server) and server[1] is None and server[0] == settings.unix_path


def key_matches(settings: ApiSettings, given: object) -> bool:
    """Constant-time comparison of a request's key with ours."""
    if settings.api_key is None or not isinstance(given, str):
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), settings.api_key)


# --------------------------------------------------------------------------- the body guard (pure ASGI)


class _BadJson(ValueError):
    pass


def _refuse_constant(name: str) -> float:
    raise _BadJson(f"{name} is not allowed in JSON")


def _check_json(raw: bytes) -> None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _BadJson("body is not UTF-8") from None
    try:
        decoded = json.loads(text, parse_constant=_refuse_constant)
    except _BadJson:
        raise
    except (ValueError, RecursionError):
        raise _BadJson("body is not valid JSON") from None
    if not isinstance(decoded, dict):
        raise _BadJson("body must be a JSON object")


class BodyGuard:
    """Reads and checks an HTTP request's body before the framework sees it; logs each request without secrets."""

    def __init__(self, app: Callable, settings: ApiSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        answered: list[int] = []

        async def send_logged(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answered.append(message["status"])
            await send(message)

        try:
            body = await self._read_body(scope, receive)
        except _Refused as refused:
            response = _envelope(refused.status, refused.message, {"Connection": "close", **refused.headers})
            await response(scope, receive, send_logged)
        else:
            replayed = False

            async def replay() -> dict[str, Any]:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send_logged)
        status = answered[0] if answered else 0
        client = (scope.get("client") or ("unix", 0))[0]
        level = logging.DEBUG if 200 <= status < 300 else logging.INFO
        log.log(level, "%s %s %s -> %s", client, scope.get("method", "-"), scope.get("path", "")[:200], status)

    async def _read_body(self, scope: dict[str, Any], receive: Callable) -> bytes:
        headers = {name.lower(): value for name, value in scope.get("headers", ())}
        if b"transfer-encoding" in headers:
            raise _Refused(411, "send the body with a Content-Length (no chunked encoding)")
        length_text = headers.get(b"content-length", b"0").strip()
        if not length_text.isdigit():
            raise _Refused(400, "Content-Length must be a whole number")
        limit = self.settings.max_body_bytes
        if int(length_text) > limit:
            raise _Refused(413, f"body larger than {limit} bytes")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.body_timeout
        chunks: list[bytes] = []
        size = 0
        more = int(length_text) > 0
        while more:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                raise _Refused(408, f"the body did not arrive within {self.settings.body_timeout:g} s") from None
            if message["type"] == "http.disconnect":
                raise _Refused(400, "the client went away")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _Refused(413, f"body larger than {limit} bytes")
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if body and scope.get("method") == "POST":
            content_type = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
            if content_type != "application/json":
                raise _Refused(415, "send the body as JSON with Content-Type: application/json")
            try:
                _check_json(body)
            except _BadJson as exc:
                raise _Refused(400, str(exc)) from None
        return body


# --------------------------------------------------------------------------- the application


def build_app(context: VerbContext, settings: ApiSettings) -> Callable:
    """The ASGI application: FastAPI behind the body guard."""
    app = FastAPI(
        title="tmtool control API",
        version=__version__,
        description=(
            "Every verb is `POST /api/v1/<verb>` with a JSON body; over TCP every verb but health needs "
            "`apikey` in the body (on the Unix socket no key is needed). Replies are "
            '`{"status": "success", "data": ...}` or `{"status": "error", "message": ...}`. '
            "Unknown fields are refused."
        ),
        openapi_url=API_PREFIX + "openapi.json",
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,
    )

    def check_key_and_rate(verb: Verb) -> Callable[[Request], Awaitable[None]]:
        async def guard(request: Request) -> None:
            body = await request.body() if request.method == "POST" else b""
            given = json.loads(body).get("apikey") if body else None
            if _on_unix_socket(request.scope, settings):
                identity = "unix"
            elif key_matches(settings, given):
                identity = "key"
            else:  # no key or a wrong one: counted against the address, never against the key's budget
                identity = f"address:{request.client.host if request.client else 'unknown'}"
            wait = settings.rate_limiter.acquire(identity)
            if wait is not None:
                seconds = retry_after_header(wait)
                raise _Refused(429, "rate limit exceeded, slow down", {"Retry-After": seconds}, retry_after=int(seconds))
            if verb.needs_key and identity.startswith("address:"):
                raise _Refused(403, "invalid API key")

        return guard

    def endpoint(verb: Verb) -> Callable:
        def run(body: Any) -> JSONResponse:
            try:
                data = verb.handler(context, bodies.present(body))
            except ValidationError as exc:
                return _envelope(400, str(exc))
            except ApiError as exc:
                return _envelope(exc.status, exc.message, code=exc.code)
            except Exception:
                log.exception("control API verb %s failed", verb.name)
                return _envelope(500, "internal error; see the tmtool log")
            return JSONResponse({"status": "success", "data": data}, headers={"Cache-Control": "no-store"})

        def handle(body: Any = None) -> JSONResponse:
            return run(body)

        # FastAPI reads the body model from the annotation: required where a key is, optional for health.
        handle.__annotations__ = {"body": verb.body if verb.needs_key else verb.body | None, "return": JSONResponse}
        if verb.needs_key:
            handle.__defaults__ = None
        return handle

    for verb in VERBS.values():
        responses: dict[int | str, Any] = {
            200: {"model": bodies.SuccessReply, "description": "success"},
            **{status: {"model": bodies.ErrorReply, "description": _STATUS_TEXT[status]} for status in (*verb.statuses, 408, 411, 413, 415)},
        }
        for path, published in ((API_PREFIX + verb.name, True), (API_PREFIX + verb.name + "/", False)):
            app.add_api_route(
                path,
                endpoint(verb),
                methods=["POST"],
                operation_id=verb.name if published else None,
                summary=verb.summary,
                description=(verb.body.__doc__ or "").strip() if verb.body.__doc__ and published else None,
                dependencies=[Depends(check_key_and_rate(verb))],
                responses=responses,
                include_in_schema=published,
            )

    health = VERBS["health"]
    health_guard = check_key_and_rate(health)

    @app.get(API_PREFIX + "health", operation_id="health_get", summary=health.summary,
             responses={200: {"model": bodies.SuccessReply}, 429: {"model": bodies.ErrorReply, "description": _STATUS_TEXT[429]}})
    async def health_get(request: Request) -> JSONResponse:
        await health_guard(request)
        data = await asyncio.to_thread(health.handler, context, {})
        return JSONResponse({"status": "success", "data": data}, headers={"Cache-Control": "no-store"})

    @app.websocket(STREAM_PATH)
    async def stream(websocket: WebSocket) -> None:
        if not _on_unix_socket(websocket.scope, settings) and not key_matches(settings, websocket.headers.get(KEY_HEADER)):
            await websocket.close(code=1008, reason="invalid API key")
            return
        await websocket.accept()
        last = None
        try:
            while not settings.closing.is_set():
                snapshot = context.engine.snapshot()
                if snapshot is not last:
                    last = snapshot
                    await websocket.send_text(await asyncio.to_thread(snapshot_json, snapshot))
                await asyncio.sleep(settings.stream_interval)
            await websocket.close(code=1001, reason="the engine's API is stopping")
        except (WebSocketDisconnect, OSError):
            return
        except Exception:
            log.exception("the snapshot stream failed")
            await websocket.close(code=1011)

    @app.exception_handler(_Refused)
    async def refused(_request: Request, exc: _Refused) -> JSONResponse:
        return _envelope(exc.status, exc.message, exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _envelope(400, bodies.describe_error(list(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 405:
            return _envelope(405, f"method {request.method} is not allowed")
        if exc.status_code == 404:
            unknown = request.url.path.startswith(API_PREFIX)
            return _envelope(404, "unknown verb" if unknown else "not found")
        return _envelope(exc.status_code, str(exc.detail))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            for operations in document.get("paths", {}).values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            schemas = document.get("components", {}).get("schemas", {})
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return BodyGuard(app, settings)
