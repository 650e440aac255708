"""An ``EngineHandle`` for an engine in another process, reached over its control API's Unix socket.

``tmtool attach`` hands a ``RemoteEngine`` to the same TUI the in-process desk
uses.  Snapshots (with their recent alerts) arrive over the ``/api/v1/stream``
WebSocket and are kept as the latest one; commands are sent as the API's verbs
(``createtrade``, ``updatetrade``, ``exittrade``, ...) and their replies become
``Accepted`` or ``Denied``; history, events, alerts and instruments are read
with the read verbs.  Closing the client (``close``) closes only its own
connections: the engine never hears of it.
"""

from __future__ import annotations

import logging
import socket
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import httpx
import websocket
from pydantic import TypeAdapter

from tmtool.api.serialize import snapshot_from_json
from tmtool.domain.calendar import IST
from tmtool.domain.commands import (
    UNSET,
    AcknowledgeAlerts,
    Accepted,
    Command,
    CreateTrade,
    DeleteStrategy,
    Denied,
    ExitAll,
    ExitTrade,
    ExitTrades,
    ModifyTrade,
    PauseTrade,
    Rearm,
    Result,
    ResumeTrade,
    SaveStrategy,
)
from tmtool.config import strategy_to_table
from tmtool.domain.models import Alert, Distance, Instrument, PartialTarget, Side, Trade, TradeEvent, TrailingSettings
from tmtool.engine.snapshot import EngineSnapshot

log = logging.getLogger("tmtool.attach")

STREAM_URL = "ws://tmtool/api/v1/stream"
HISTORY_LIMIT = 10_000


class EngineUnreachable(RuntimeError):
    """No engine answers on the socket."""


@lru_cache(maxsize=None)
def _adapter(kind: Any) -> TypeAdapter:
    return TypeAdapter(kind)


def _distance(distance: Distance) -> dict[str, Any]:
    return {"distance": distance.value, "mode": distance.mode.value}


def _trailing(trailing: TrailingSettings) -> dict[str, Any]:
    mode = trailing.distance.mode
    body: dict[str, Any] = {"distance": trailing.distance.value, "mode": mode.value}
    for name in ("activation", "step_trigger", "step_move"):
        value = getattr(trailing, name)
        if value is not None:
            if value.mode is not mode:
                raise ValueError("the API takes one mode for every distance of a trailing stop")
            body[name] = value.value
    return body


def _partials(targets: tuple[PartialTarget, ...]) -> list[dict[str, Any]]:
    return [{**_distance(target.distance), "fraction": target.fraction} for target in targets]


def command_as_verb(command: Command) -> tuple[str, dict[str, Any]]:
    """The verb and body that carry ``command`` (``ValueError`` for a command no verb carries)."""
    if isinstance(command, CreateTrade):
        body: dict[str, Any] = {
            "strategy": command.strategy,
            "symbol": command.symbol,
            "exchange": command.exchange,
            "action": "BUY" if command.side is Side.LONG else "SELL",
            "pricetype": command.price_type.value,
        }
        optional = {
            "product": command.product.value if command.product is not None else None,
            "quantity": command.quantity,
            "price": command.limit_price,
            "orderid": command.order_id,
            "entry_price": command.entry_price,
            "stop_loss": command.stop_loss,
            "target": command.target,
            "trailing": _trailing(command.trailing) if command.trailing is not None else None,
            "partial_targets": _partials(command.partial_targets) if command.partial_targets is not None else None,
            "note": command.note or None,
        }
        body.update({name: value for name, value in optional.items() if value is not None})
        if command.order_id is not None or command.entry_price is not None:
            body.pop("pricetype")
        if command.breakeven_after is not UNSET:
            given = command.breakeven_after
            body["breakeven_after"] = None if given is None else _distance(given)  # type: ignore[arg-type]
        return "createtrade", body
    if isinstance(command, ModifyTrade):
        body = {"trade_id": command.trade_id}
        for name in ("stop_loss", "target"):
            value = getattr(command, name)
            if value is not UNSET:
                body[name] = value
        if command.trailing is not UNSET:
            body["trailing"] = None if command.trailing is None else _trailing(command.trailing)  # type: ignore[arg-type]
        if command.partial_targets is not UNSET:
            body["partial_targets"] = _partials(command.partial_targets)  # type: ignore[arg-type]
        if command.breakeven_after is not UNSET:
            given = command.breakeven_after
            body["breakeven_after"] = None if given is None else _distance(given)  # type: ignore[arg-type]
        return "updatetrade", body
    if isinstance(command, ExitTrade):
        return "exittrade", {"trade_id": command.trade_id}
    if isinstance(command, ExitAll):
        body = {} if command.strategy is None else {"strategy": command.strategy}
        if command.panic:
            body["panic"] = True
        return "exitall", body
    if isinstance(command, Rearm):
        return "rearm", {}
    if isinstance(command, PauseTrade):
        return "pausetrade", {"trade_id": command.trade_id}
    if isinstance(command, ResumeTrade):
        return "resumetrade", {"trade_id": command.trade_id}
    if isinstance(command, SaveStrategy):
        return "savestrategy", {"strategy": strategy_to_table(command.strategy)}
    if isinstance(command, DeleteStrategy):
        body = {"name": command.name, "open_trades": command.open_trades}
        if command.move_to is not None:
            body["move_to"] = command.move_to
        return "deletestrategy", body
    if isinstance(command, AcknowledgeAlerts):
        body = {"ids": list(command.alert_ids)} if command.alert_ids else {"all": True}
        if command.dismiss:
            body["dismiss"] = True
        return "acknowledgealerts", body
    raise ValueError(f"{type(command).__name__} is not available to an attached desk; use the desk that runs the engine")


@dataclass(frozen=True)
class _Reply:
    status: int
    body: dict[str, Any]


class RemoteEngine:
    """``EngineHandle`` over the control API's Unix socket; ``connect()`` before use, ``close()`` after."""

    def __init__(self, socket_path: str | Path, *, timeout: float = 10.0) -> None:
        self.socket_path = str(socket_path)
        self._timeout = timeout
        self._http = httpx.Client(
            transport=httpx.HTTPTransport(uds=self.socket_path), base_url="http://tmtool", timeout=timeout
        )
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="tmtool-attach")
        self._latest: EngineSnapshot | None = None
        self._first = threading.Event()
        self._closed = threading.Event()
        self._ws: websocket.WebSocket | None = None
        self._reader: threading.Thread | None = None
        self.connected = threading.Event()

    def __repr__(self) -> str:
        return f"RemoteEngine({self.socket_path!r})"

    # ------------------------------------------------------------------ life

    def connect(self) -> None:
        """Open the stream and wait for the first snapshot (``EngineUnreachable`` when none comes)."""
        try:
            self._open_stream()
        except OSError as exc:
            raise EngineUnreachable(f"no tmtool engine answers on {self.socket_path}: {exc}") from None
        self._reader = threading.Thread(target=self._read_stream, name="tmtool-attach-stream", daemon=True)
        self._reader.start()
        if not self._first.wait(self._timeout):
            self.close()
            raise EngineUnreachable(f"the engine on {self.socket_path} sent no snapshot within {self._timeout:g} s")

    def close(self) -> None:
        """Close this client's connections; the engine keeps running."""
        self._closed.set()
        ws = self._ws
        if ws is not None:
            try:
                ws.close(timeout=1)
            except Exception:  # noqa: BLE001 - closing a socket that may already be gone
                pass
        self._http.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _open_stream(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self._timeout)
        try:
            sock.connect(self.socket_path)
            ws = websocket.create_connection(STREAM_URL, socket=sock, timeout=self._timeout, enable_multithread=True)
        except Exception:
            sock.close()
            raise
        ws.settimeout(None)
        self._ws = ws
        self.connected.set()

    def _read_stream(self) -> None:
        while not self._closed.is_set():
            try:
                text = self._ws.recv() if self._ws is not None else ""
                if not text:
                    raise websocket.WebSocketConnectionClosedException("the stream closed")
                self._latest = snapshot_from_json(text)
                self._first.set()
            except Exception as exc:  # noqa: BLE001 - a lost engine: say so, retry until closed
                if self._closed.is_set():
                    return
                self.connected.clear()
                log.warning("event=stream_lost error=%s", exc)
                if self._closed.wait(1.0):
                    return
                try:
                    self._open_stream()
                    log.info("event=stream_restored")
                except Exception:  # noqa: BLE001 - still gone; the loop retries
                    pass

    # ------------------------------------------------------------------ the API

    def call(self, verb: str, body: dict[str, Any] | None = None) -> _Reply:
        response = self._http.post(f"/api/v1/{verb}", json=body or {})
        try:
            payload = response.json()
        except ValueError:
            payload = {"status": "error", "message": response.text[:200]}
        return _Reply(response.status_code, payload)

    def _data(self, verb: str, body: dict[str, Any] | None = None) -> Any:
        reply = self.call(verb, body)
        if reply.status != 200:
            message = reply.body.get("message", f"HTTP {reply.status}")
            if reply.status == 404:
                raise ValueError(message)
            raise RuntimeError(f"{verb}: {message}")
        return reply.body["data"]

    def _send(self, verb: str, body: dict[str, Any]) -> Result:
        try:
            reply = self.call(verb, body)
        except httpx.HTTPError as exc:
            return Denied("ENGINE_UNREACHABLE", f"the engine did not answer: {exc}")
        if reply.status == 200:
            data = reply.body.get("data") or {}
            return Accepted(
                message=data.get("message", ""),
                trade_id=data.get("trade_id"),
                trade_ids=tuple(data.get("trade_ids", ())),
            )
        return Denied(reply.body.get("code") or f"HTTP_{reply.status}", reply.body.get("message", ""))

    # ------------------------------------------------------------------ EngineHandle

    def submit(self, command: Command) -> Future[Result]:
        if self._closed.is_set():
            raise RuntimeError("the attached desk is closed")
        if isinstance(command, ExitTrades):
            return self._pool.submit(self._exit_each, command)
        try:
            verb, body = command_as_verb(command)
        except ValueError as exc:
            refused: Future[Result] = Future()
            refused.set_result(Denied("NOT_AVAILABLE_ATTACHED", str(exc)))
            return refused
        return self._pool.submit(self._send, verb, body)

    def _exit_each(self, command: ExitTrades) -> Result:
        exited, refusals = [], []
        for trade_id in command.trade_ids:
            result = self._send("exittrade", {"trade_id": trade_id})
            if isinstance(result, Accepted):
                exited.append(trade_id)
            else:
                refusals.append(f"{trade_id}: {result.message}")
        if refusals and not exited:
            return Denied("EXIT_REFUSED", "; ".join(refusals))
        message = f"exiting {len(exited)} trade(s)" + (f"; refused {'; '.join(refusals)}" if refusals else "")
        return Accepted(message=message, trade_ids=tuple(exited))

    def adopt_positions(self) -> Future[Result]:
        return self._pool.submit(self._send, "adoptpositions", {})

    def snapshot(self) -> EngineSnapshot:
        """The latest streamed snapshot; while the stream is lost it shows the engine as not running."""
        if self._latest is None:
            self._first.wait(self._timeout)
        latest = self._latest
        if latest is None:
            raise RuntimeError("no snapshot from the engine yet")
        if not self.connected.is_set() and latest.system.engine_running:
            return replace(latest, system=replace(latest.system, engine_running=False))
        return latest

    def closed_trades(self, start: float | None = None, end: float | None = None, strategy: str | None = None) -> list[Trade]:
        body: dict[str, Any] = {"limit": HISTORY_LIMIT}
        if start is not None:
            body["start_date"] = datetime.fromtimestamp(start, IST).date().isoformat()
        if end is not None:
            body["end_date"] = datetime.fromtimestamp(end, IST).date().isoformat()
        if strategy is not None:
            body["strategy"] = strategy
        trades = _adapter(list[Trade]).validate_python(self._data("tradehistory", body))
        return [
            t for t in trades
            if (start is None or (t.closed_at or 0) >= start) and (end is None or (t.closed_at or 0) < end)
        ]

    def trade_events(self, trade_id: int) -> list[TradeEvent]:
        return _adapter(list[TradeEvent]).validate_python(self._data("tradeevents", {"trade_id": trade_id}))

    def alert_history(
        self, since: float | None = None, category: str | None = None, priority: str | None = None, limit: int = 500
    ) -> list[Alert]:
        body: dict[str, Any] = {"limit": max(1, min(limit, 500))}
        if category is not None:
            body["category"] = category
        if priority is not None:
            body["priority"] = priority
        alerts = _adapter(list[Alert]).validate_python(self._data("alerts", body))
        return [a for a in alerts if since is None or a.ts >= since]

    def instrument(self, exchange: str, symbol: str) -> Instrument:
        return _adapter(Instrument).validate_python(self._data("instrument", {"exchange": exchange, "symbol": symbol}))
