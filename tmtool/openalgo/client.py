"""OpenAlgo REST client: implements ``tmtool.engine.ports.Broker`` over httpx.

Every call is a ``POST`` with a JSON body carrying ``apikey`` and only the keys
the server's schema knows (OpenAlgo refuses unknown keys with 400).  Replies are
parsed into the typed records of ``tmtool.engine.ports``; numbers are accepted
as numbers or as strings, because brokers differ.

Failures raise ``BrokerError`` with a ``kind`` the caller decides on:

=====================  ==========================================================
kind                   meaning
=====================  ==========================================================
validation             400: the request was refused as invalid (or checked here)
auth                   403: the API key is wrong or the broker session expired
not_found              404: e.g. an order id not in today's order book
rate_limited           429: too many requests (``retry_after`` in seconds)
server                 5xx: the server or the broker failed
timeout                no reply in time after the request went out
connection             the request surely never reached the server
connection_after_send  the connection dropped after the request went out
rejected               the broker refused an order
semi_auto              403: the server is in semi-auto mode and refuses the call
                       (modifyorder, cancelorder: a human acts in the Action Center)
protocol               the reply could not be understood
=====================  ==========================================================

Reads are retried with backoff (timeouts, connection failures, 5xx, 429 with
``retry_after`` honoured up to a cap).  Order calls (place, modify, cancel) are
never retried here:
an order request that may have reached the server raises an error whose
``ambiguous`` property is True, and the engine's exit protocol looks the order
up before it sends anything again.

The API key never appears in a log line, an exception message or a repr.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import httpx
import orjson

from tmtool.clock import Clock, SystemClock
from tmtool.domain.broker import (
    BrokerError,
    Fill,
    Funds,
    OrderAck,
    OrderInfo,
    Position,
    Quote,
    SymbolInfo,
)

log = logging.getLogger(__name__)

ACTIONS = frozenset({"BUY", "SELL"})
PRODUCTS = frozenset({"MIS", "CNC", "NRML"})
PRICE_TYPES = frozenset({"MARKET", "LIMIT", "SL", "SL-M"})

# What a 403 says when semi-auto mode (not the key or the session) refuses the call.
_SEMI_AUTO_TEXT = "not allowed in semi-auto mode"

# Smart-order "nothing to do" texts that some broker modules return as HTTP 500.
_NO_POSITION_TEXTS = ("no openposition found", "no open position found")

_AUTH_HELP = (
    "OpenAlgo refused the API key: either the key is wrong or the broker session behind it "
    "has expired (it does daily). Log in to OpenAlgo (and your broker) again, check the key, and retry."
)


@dataclass(frozen=True, slots=True)
class SmartOrderResult:
    """Outcome of ``place_smart_order``.

    ``order_id`` is set when the server placed an order.  ``no_action`` is True
    when the server says nothing needed doing.  ``unconfirmed`` is True when that
    "nothing to do" came as an HTTP 500 (angel-style and upstox brokers answer a
    flat position that way): it most likely means no order, but a 500 can also
    be a real failure, so confirm with ``open_position`` before relying on it.
    ``mode`` is "live", "analyze" or "semi_auto" (queued for approval, no order
    id; ``pending_order_id`` names the queue entry).
    """

    order_id: str | None
    no_action: bool
    message: str = ""
    mode: str = "live"
    pending_order_id: str | None = None
    unconfirmed: bool = False

    @property
    def awaiting_approval(self) -> bool:
        return self.mode == "semi_auto"


@dataclass(frozen=True, slots=True)
class AnalyzerStatus:
    """Whether the OpenAlgo server runs in analyzer (paper) mode."""

    analyze_mode: bool
    mode: str
    total_logs: int = 0


class _AmbiguousOrderError(BrokerError):
    """An order request reached the server but its reply could not be read.

    Kind stays "protocol"; ``ambiguous`` is True because the order may exist.
    """

    @property
    def ambiguous(self) -> bool:
        return True


class OpenAlgoClient:
    """A pooled, thread-safe OpenAlgo REST client (``Broker``).

    ``base_url`` is the server root (``http://127.0.0.1:5000``) or the API root
    (``.../api/v1``).  ``timeout`` bounds every call (connect, write, read);
    ``read_retries`` is how many times a read is retried after a transient
    failure.  ``max_retry_wait`` caps any wait between retries, including a
    server's ``retry_after`` (OpenAlgo always says 60 for a one-second window).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        timeout: float = 5.0,
        read_retries: int = 2,
        clock: Clock | None = None,
        *,
        retry_backoff: float = 0.1,
        max_retry_wait: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not api_key:
            raise ValueError("api_key is empty: set the OpenAlgo API key")
        if timeout <= 0 or not math.isfinite(timeout):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if read_retries < 0:
            raise ValueError(f"read_retries must be >= 0, got {read_retries!r}")
        self.base_url = _api_root(base_url)
        self._api_key = api_key
        self.timeout = timeout
        self.read_retries = read_retries
        self.retry_backoff = retry_backoff
        self.max_retry_wait = max_retry_wait
        self._clock = clock or SystemClock()
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=8),
        )

    def __repr__(self) -> str:
        return f"OpenAlgoClient(base_url={self.base_url!r}, api_key='***')"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "OpenAlgoClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ reads

    def ping(self) -> str:
        """Check the key and the broker session; returns the broker's name (or "pong")."""
        data = self._read("ping", {}).get("data")
        if not isinstance(data, dict):
            return "pong"
        return str(data.get("broker") or data.get("message") or "pong")

    def order_status(self, order_id: str, strategy: str) -> OrderInfo:
        reply = self._read("orderstatus", {"strategy": _text(strategy, "strategy"), "orderid": _text(order_id, "order_id")})
        return _order_info(_dict(reply.get("data"), "data"))

    def order_book(self) -> list[OrderInfo]:
        """Today's orders.  The rows sit under ``data.orders`` (next to ``statistics``)."""
        data = self._read("orderbook", {}).get("data")
        rows = data.get("orders") if isinstance(data, dict) else data
        if rows is None:
            rows = []
        return [_order_info(_dict(row, "order row")) for row in _list(rows, "data.orders")]

    def trade_book(self) -> list[Fill]:
        rows = self._read("tradebook", {}).get("data") or []
        return [_fill(_dict(row, "trade row")) for row in _list(rows, "data")]

    def position_book(self, include_closed: bool = True) -> list[Position]:
        """Net positions.  Rows with quantity 0 are positions closed today (their
        ``pnl`` is realised); ``include_closed=False`` leaves them out."""
        rows = self._read("positionbook", {}).get("data") or []
        positions = [_position(_dict(row, "position row")) for row in _list(rows, "data")]
        if not include_closed:
            positions = [p for p in positions if p.quantity != 0]
        return positions

    def open_position(self, *, strategy: str, symbol: str, exchange: str, product: str) -> int:
        """Signed net quantity for (symbol, exchange, product); 0 when the server has no row."""
        payload = {
            "strategy": _text(strategy, "strategy"),
            "symbol": _text(symbol, "symbol"),
            "exchange": _upper(exchange, "exchange"),
            "product": _choice(product, PRODUCTS, "product"),
        }
        reply = self._read("openposition", payload)
        if "quantity" not in reply:
            raise BrokerError("protocol", "openposition reply has no 'quantity'")
        return _int(reply["quantity"], "quantity")

    def quotes(self, symbol: str, exchange: str) -> Quote:
        payload = {"symbol": _text(symbol, "symbol"), "exchange": _upper(exchange, "exchange")}
        data = _dict(self._read("quotes", payload).get("data"), "data")
        return _quote(symbol, exchange, data)

    def multi_quotes(self, instruments: list[tuple[str, str]]) -> dict[tuple[str, str], Quote]:
        """Quotes for (symbol, exchange) pairs, keyed by (exchange, symbol).

        Unknown symbols are left out (also when none is known: the server's 400
        listing ``invalid_symbols`` yields an empty dict).
        """
        if not instruments:
            return {}
        items = [{"symbol": _text(s, "symbol"), "exchange": _upper(e, "exchange")} for s, e in instruments]
        try:
            reply = self._read("multiquotes", {"symbols": items})
        except _NoValidSymbols:
            return {}
        quotes: dict[tuple[str, str], Quote] = {}
        for row in _list(reply.get("results") or [], "results"):
            row = _dict(row, "results row")
            if "error" in row or not isinstance(row.get("data"), dict):
                continue
            symbol, exchange = str(row.get("symbol", "")), str(row.get("exchange", ""))
            quotes[(exchange, symbol)] = _quote(symbol, exchange, row["data"])
        return quotes

    def history(
        self, symbol: str, exchange: str, start_date: str, end_date: str, interval: str = "1m"
    ) -> list[tuple[float, float, float, float, float]]:
        """Candles ``(timestamp, open, high, low, close)`` oldest first; dates are ``YYYY-MM-DD`` (inclusive)."""
        payload = {
            "symbol": _text(symbol, "symbol"), "exchange": _upper(exchange, "exchange"),
            "interval": interval, "start_date": start_date, "end_date": end_date,
        }
        rows = _list(self._read("history", payload).get("data") or [], "data")
        candles = []
        for row in rows:
            row = _dict(row, "data row")
            candles.append((
                _float(row.get("timestamp"), "timestamp"), _float(row.get("open"), "open"), _float(row.get("high"), "high"),
                _float(row.get("low"), "low"), _float(row.get("close"), "close"),
            ))
        candles.sort()
        return candles

    def funds(self) -> Funds:
        data = _dict(self._read("funds", {}).get("data"), "data")
        return Funds(
            available_cash=_float(data.get("availablecash", 0), "availablecash"),
            collateral=_float(data.get("collateral", 0), "collateral"),
            m2m_realized=_float(data.get("m2mrealized", 0), "m2mrealized"),
            m2m_unrealized=_float(data.get("m2munrealized", 0), "m2munrealized"),
            utilised=_float(data.get("utiliseddebits", 0), "utiliseddebits"),
        )

    def margin_required(
        self, *, symbol: str, exchange: str, action: str, quantity: int, product: str,
        price_type: str = "MARKET", price: float = 0.0,
    ) -> float:
        """The margin one order would block, from the ``margin`` calculator (its fields are strings).

        Raises BrokerError "unsupported" (501: the broker has no calculator) or "not_found" (404:
        a server older than the endpoint); the caller then estimates.
        """
        leg = {
            "symbol": _text(symbol, "symbol"),
            "exchange": _upper(exchange, "exchange"),
            "action": _choice(action, ACTIONS, "action"),
            "quantity": str(_quantity(quantity, allow_zero=False)),
            "product": _choice(product, PRODUCTS, "product"),
            "pricetype": _choice(price_type, PRICE_TYPES, "price_type"),
            "price": f"{_price(price, 'price'):g}",
        }
        data = _dict(self._read("margin", {"positions": [leg]}).get("data"), "data")
        required = _float(data.get("total_margin_required"), "total_margin_required")
        if required < 0:
            raise BrokerError("protocol", f"OpenAlgo margin: negative margin {required!r}")
        return required

    def symbol_info(self, symbol: str, exchange: str) -> SymbolInfo:
        payload = {"symbol": _text(symbol, "symbol"), "exchange": _upper(exchange, "exchange")}
        data = _dict(self._read("symbol", payload).get("data"), "data")
        freeze = next((data[k] for k in ("freeze_qty", "freeze_quantity", "freezeqty") if data.get(k)), None)
        return SymbolInfo(
            symbol=str(data.get("symbol", symbol)),
            exchange=str(data.get("exchange", exchange)),
            tick_size=_float(data.get("tick_size", 0.05), "tick_size"),
            lot_size=max(1, _int(data.get("lotsize", 1), "lotsize")),
            freeze_quantity=_int(freeze, "freeze_qty") if freeze is not None else None,
            name=str(data.get("name") or ""),
            instrument_type=str(data.get("instrumenttype") or ""),
        )

    def analyzer_status(self) -> AnalyzerStatus:
        data = _dict(self._read("analyzer", {}).get("data"), "data")
        analyze = data.get("analyze_mode")
        if isinstance(analyze, str):
            analyze = analyze.strip().lower() == "true"
        return AnalyzerStatus(
            analyze_mode=bool(analyze),
            mode=str(data.get("mode") or ("analyze" if analyze else "live")),
            total_logs=_int(data.get("total_logs", 0), "total_logs"),
        )

    # ------------------------------------------------------------------ orders

    def place_order(
        self,
        *,
        strategy: str,
        symbol: str,
        exchange: str,
        action: str,
        quantity: int,
        product: str,
        price_type: str = "MARKET",
        price: float = 0.0,
        trigger_price: float = 0.0,
    ) -> OrderAck:
        """Place one order.  Never retried here.

        Returns ``OrderAck``: ``mode`` "analyze" in analyzer mode; "semi_auto"
        when the order was queued for approval (``order_id`` None,
        ``pending_order_id`` set: treat as not sent).  Raises ``BrokerError``;
        when ``error.ambiguous`` the order may exist: look it up before resending.
        """
        payload = _order_payload(strategy, symbol, exchange, action, product, price_type, price, trigger_price)
        payload["quantity"] = _quantity(quantity, allow_zero=False)
        reply = self._send_order("placeorder", payload)
        mode = str(reply.get("mode") or "live")
        if mode == "semi_auto":
            return OrderAck(None, mode=mode, message=_message(reply), pending_order_id=_opt_id(reply.get("pending_order_id")))
        order_id = _opt_id(reply.get("orderid"))
        if order_id is None:
            raise _AmbiguousOrderError("protocol", f"placeorder answered success without an order id: {_message(reply)!r}")
        return OrderAck(order_id, mode=mode, message=_message(reply))

    def place_smart_order(
        self,
        *,
        strategy: str,
        symbol: str,
        exchange: str,
        action: str,
        quantity: int,
        position_size: int,
        product: str,
        price_type: str = "MARKET",
        price: float = 0.0,
        trigger_price: float = 0.0,
    ) -> SmartOrderResult:
        """Move the net position of (symbol, exchange, product) to ``position_size``.

        Dangers (openalgo-api.md §2) — read before using this for an exit:

        * ``position_size`` is the absolute target for the whole account's net
          position in that symbol/exchange/product, across every strategy and
          any manual position: ``position_size=0`` flattens all of them.
        * When already flat and ``position_size`` is 0, a ``quantity`` > 0
          OPENS a new position in ``action``'s direction.  ``quantity`` has no
          default here and is always sent; pass 0 for exits.
        * ``action`` is ignored except in that flat/flat case: the direction
          comes from the sign of target minus current position (a change may
          cross zero and reverse the position).
        * Re-sending the same target is not idempotent while an earlier order
          is still unfilled (the position book shows only fills).
        * "Nothing to do" is a 200 "Positions Already Matched..." on some
          brokers and an HTTP 500 "No OpenPosition Found..." / "No open
          position found..." on others.  That 500 is returned here as
          ``SmartOrderResult(no_action=True, unconfirmed=True)``: confirm with
          ``open_position`` before trusting it.  Any other 5xx raises an
          ambiguous ``BrokerError``.

        Never retried here.
        """
        payload = _order_payload(strategy, symbol, exchange, action, product, price_type, price, trigger_price)
        payload["quantity"] = _quantity(quantity, allow_zero=True)
        if isinstance(position_size, bool) or not isinstance(position_size, int):
            raise BrokerError("validation", f"position_size must be a whole number, got {position_size!r}")
        payload["position_size"] = position_size
        try:
            reply = self._send_order("placesmartorder", payload)
        except BrokerError as error:
            if error.status_code is not None and error.status_code >= 500 and _is_no_position_text(error.message):
                return SmartOrderResult(None, no_action=True, message=error.message, unconfirmed=True)
            raise
        mode = str(reply.get("mode") or "live")
        message = _message(reply)
        if mode == "semi_auto":
            return SmartOrderResult(
                None, no_action=False, message=message, mode=mode, pending_order_id=_opt_id(reply.get("pending_order_id"))
            )
        order_id = _opt_id(reply.get("orderid"))
        return SmartOrderResult(order_id, no_action=order_id is None, message=message, mode=mode)

    def modify_order(
        self,
        *,
        order_id: str,
        strategy: str,
        symbol: str,
        exchange: str,
        action: str,
        product: str,
        price_type: str,
        price: float,
        quantity: int,
        trigger_price: float = 0.0,
        disclosed_quantity: int = 0,
    ) -> OrderAck:
        """Change a working order.  Never retried here.

        ``modifyorder`` needs the whole order, not just what changes: pass every
        field as the order should stand afterwards.  ``quantity`` is the order's
        new total quantity (filled part included), as brokers take it.

        Raises ``BrokerError``: "semi_auto" when the server is in semi-auto mode
        (it refuses every modification), "validation" for a refused request (an
        order that is no longer open, a price off the tick size), "not_found"
        for an unknown order id; when ``error.ambiguous`` the change may have
        been applied: read the order's status before deciding anything.
        """
        payload = _order_payload(strategy, symbol, exchange, action, product, price_type, price, trigger_price)
        payload["orderid"] = _text(order_id, "order_id")
        payload["quantity"] = _quantity(quantity, allow_zero=False)
        payload["disclosed_quantity"] = _quantity(disclosed_quantity, allow_zero=True, name="disclosed_quantity")
        reply = self._send_order("modifyorder", payload)
        return OrderAck(_opt_id(reply.get("orderid")) or payload["orderid"], mode=str(reply.get("mode") or "live"),
                        message=_message(reply))

    def cancel_order(self, order_id: str, strategy: str) -> OrderAck:
        """Ask the broker to cancel a working order.  Never retried here.

        A success means the broker took the request; the order is cancelled once
        its status (``order_status`` or an order update) says so — it may have
        filled first.  Raises ``BrokerError``: "semi_auto" when the server is in
        semi-auto mode, "validation" when the order is no longer open,
        "not_found" for an unknown order id; ambiguous errors as for orders.
        """
        payload = {"strategy": _text(strategy, "strategy"), "orderid": _text(order_id, "order_id")}
        reply = self._send_order("cancelorder", payload)
        return OrderAck(_opt_id(reply.get("orderid")) or payload["orderid"], mode=str(reply.get("mode") or "live"),
                        message=_message(reply))

    # ------------------------------------------------------------------ transport

    def _read(self, endpoint: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST a read; retry transient failures with backoff."""
        attempt = 0
        while True:
            try:
                return self._call(endpoint, payload, order=False)
            except BrokerError as error:
                if attempt >= self.read_retries or not _retryable(error):
                    raise
                wait = self._retry_wait(error, attempt)
                log.warning(
                    "OpenAlgo %s failed (%s: %s); retry %d of %d in %.2fs",
                    endpoint, error.kind, error.message, attempt + 1, self.read_retries, wait,
                )
                self._sleep(wait)
                attempt += 1

    def _send_order(self, endpoint: str, payload: dict[str, Any]) -> dict[str, Any]:
        return self._call(endpoint, payload, order=True)

    def _retry_wait(self, error: BrokerError, attempt: int) -> float:
        if error.kind == "rate_limited" and error.retry_after is not None:
            return min(max(error.retry_after, 0.0), self.max_retry_wait)
        return min(self.retry_backoff * (2**attempt), self.max_retry_wait)

    def _call(self, endpoint: str, payload: dict[str, Any], *, order: bool) -> dict[str, Any]:
        body = orjson.dumps({"apikey": self._api_key, **payload})
        started = self._clock.monotonic()
        try:
            response = self._http.post(endpoint, content=body)
        except httpx.ConnectTimeout:
            raise BrokerError("connection", f"OpenAlgo {endpoint}: could not connect within {self.timeout}s") from None
        except httpx.PoolTimeout:
            raise BrokerError("connection", f"OpenAlgo {endpoint}: no free connection within {self.timeout}s") from None
        except httpx.ConnectError as exc:
            raise BrokerError("connection", f"OpenAlgo {endpoint}: cannot connect ({self._redact(str(exc))})") from None
        except httpx.TimeoutException:
            raise BrokerError("timeout", f"OpenAlgo {endpoint}: no reply within {self.timeout}s") from None
        except httpx.TransportError as exc:
            raise BrokerError(
                "connection_after_send",
                f"OpenAlgo {endpoint}: connection lost after the request was sent ({self._redact(str(exc)) or type(exc).__name__})",
            ) from None
        elapsed = self._clock.monotonic() - started
        log.debug("OpenAlgo %s -> %d in %.1f ms", endpoint, response.status_code, elapsed * 1000)
        return self._reply(endpoint, response, order=order)

    def _reply(self, endpoint: str, response: httpx.Response, *, order: bool) -> dict[str, Any]:
        code = response.status_code
        try:
            reply = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            reply = None
        if not isinstance(reply, dict):
            if code < 300:
                kind_cls = _AmbiguousOrderError if order else BrokerError
                raise kind_cls("protocol", f"OpenAlgo {endpoint}: reply is not a JSON object (HTTP {code})", code)
            reply = {}
        message = self._redact(_message(reply)) or response.reason_phrase or f"HTTP {code}"
        if code < 300:
            if str(reply.get("status", "")).lower() == "success":
                return reply
            if order:
                raise BrokerError("rejected", f"OpenAlgo {endpoint}: order rejected: {message}", code)
            raise BrokerError("protocol", f"OpenAlgo {endpoint}: unexpected reply status {reply.get('status')!r}: {message}", code)
        if code == 400:
            if endpoint == "multiquotes" and "invalid_symbols" in reply:
                raise _NoValidSymbols("validation", message, code)
            raise BrokerError("validation", f"OpenAlgo {endpoint}: request refused: {message}", code)
        if code == 403:
            if _SEMI_AUTO_TEXT in message.lower():
                raise BrokerError("semi_auto", f"OpenAlgo {endpoint}: refused in semi-auto mode: {message}", code)
            raise BrokerError("auth", f"{_AUTH_HELP} (server said: {message})", code)
        if code == 404:
            raise BrokerError("not_found", f"OpenAlgo {endpoint}: {message}", code)
        if code == 429:
            retry_after = _opt_float(reply.get("retry_after")) or _opt_float(response.headers.get("retry-after"))
            raise BrokerError("rate_limited", f"OpenAlgo {endpoint}: rate limit: {message}", code, retry_after)
        if code == 501 and not order:
            raise BrokerError("unsupported", f"OpenAlgo {endpoint}: not supported here: {message}", code)
        if code >= 500:
            raise BrokerError("server", f"OpenAlgo {endpoint}: server error {code}: {message}", code)
        if order:
            raise BrokerError("rejected", f"OpenAlgo {endpoint}: order rejected ({code}): {message}", code)
        raise BrokerError("protocol", f"OpenAlgo {endpoint}: unexpected HTTP {code}: {message}", code)

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if text else text


class _NoValidSymbols(BrokerError):
    """multiquotes: none of the requested symbols is known."""


# ---------------------------------------------------------------------- helpers


def _api_root(base_url: str) -> str:
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
    root = base_url.rstrip("/")
    if not root.endswith("/api/v1"):
        root += "/api/v1"
    return root + "/"


def _retryable(error: BrokerError) -> bool:
    return error.kind in ("timeout", "connection", "connection_after_send", "server", "rate_limited")


def _is_no_position_text(message: str) -> bool:
    lowered = message.lower()
    return any(text in lowered for text in _NO_POSITION_TEXTS)


def _message(reply: dict) -> str:
    message = reply.get("message", "")
    return message if isinstance(message, str) else str(message)


def _text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BrokerError("validation", f"{name} must be a non-empty string, got {value!r}")
    return value.strip()


def _upper(value: object, name: str) -> str:
    return _text(value, name).upper()


def _choice(value: object, allowed: frozenset[str], name: str) -> str:
    text = _upper(value, name)
    if text not in allowed:
        raise BrokerError("validation", f"{name} must be one of {sorted(allowed)}, got {value!r}")
    return text


def _quantity(quantity: object, *, allow_zero: bool, name: str = "quantity") -> int:
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0 or (quantity == 0 and not allow_zero):
        least = "0" if allow_zero else "1"
        raise BrokerError("validation", f"{name} must be a whole number >= {least}, got {quantity!r}")
    return quantity


def _price(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise BrokerError("validation", f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _order_payload(
    strategy: str, symbol: str, exchange: str, action: str, product: str, price_type: str, price: float, trigger_price: float
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "strategy": _text(strategy, "strategy"),
        "symbol": _text(symbol, "symbol"),
        "exchange": _upper(exchange, "exchange"),
        "action": _choice(action, ACTIONS, "action"),
        "product": _choice(product, PRODUCTS, "product"),
        "pricetype": _choice(price_type, PRICE_TYPES, "price_type"),
        "price": _price(price, "price"),
        "trigger_price": _price(trigger_price, "trigger_price"),
    }
    if payload["pricetype"] in ("LIMIT", "SL") and payload["price"] <= 0:
        raise BrokerError("validation", f"a {payload['pricetype']} order needs a price > 0")
    if payload["pricetype"] in ("SL", "SL-M") and payload["trigger_price"] <= 0:
        raise BrokerError("validation", f"a {payload['pricetype']} order needs a trigger_price > 0")
    return payload


def _float(value: object, name: str) -> float:
    """A number from a number or a numeric string (brokers send either)."""
    if value is None or value == "":
        return 0.0
    try:
        number = float(str(value))
    except ValueError:
        raise BrokerError("protocol", f"field {name!r} is not a number: {value!r}") from None
    if not math.isfinite(number):
        raise BrokerError("protocol", f"field {name!r} is not a finite number: {value!r}")
    return number


def _int(value: object, name: str) -> int:
    return int(_float(value, name))


def _opt_float(value: object) -> float | None:
    try:
        return float(str(value)) if value is not None else None
    except ValueError:
        return None


def _opt_id(value: object) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def _dict(value: object, what: str) -> dict:
    if not isinstance(value, dict):
        raise BrokerError("protocol", f"reply field {what!r} is not an object: {type(value).__name__}")
    return value


def _list(value: object, what: str) -> list:
    if not isinstance(value, list):
        raise BrokerError("protocol", f"reply field {what!r} is not a list: {type(value).__name__}")
    return value


def _order_info(row: dict) -> OrderInfo:
    order_id = _opt_id(row.get("orderid"))
    if order_id is None:
        raise BrokerError("protocol", "order row has no 'orderid'")
    filled = row.get("filled_quantity")
    return OrderInfo(
        order_id=order_id,
        symbol=str(row.get("symbol", "")),
        exchange=str(row.get("exchange", "")),
        action=str(row.get("action", "")).upper(),
        quantity=_int(row.get("quantity", 0), "quantity"),
        status=str(row.get("order_status", "")).strip().lower(),
        average_price=_float(row.get("average_price", 0), "average_price"),
        filled_quantity=_int(filled, "filled_quantity") if filled not in (None, "") else None,
        price=_float(row.get("price", 0), "price"),
        price_type=str(row.get("pricetype") or row.get("price_type") or "MARKET").upper(),
        product=str(row.get("product", "")),
        timestamp=str(row.get("timestamp", "")),
        rejection_reason=str(row.get("rejection_reason") or ""),
        strategy=str(row.get("strategy") or ""),
    )


def _fill(row: dict) -> Fill:
    return Fill(
        order_id=str(row.get("orderid", "")),
        symbol=str(row.get("symbol", "")),
        exchange=str(row.get("exchange", "")),
        product=str(row.get("product", "")),
        action=str(row.get("action", "")).upper(),
        quantity=_int(row.get("quantity", 0), "quantity"),
        average_price=_float(row.get("average_price", 0), "average_price"),
        timestamp=str(row.get("timestamp", "")),
        strategy=str(row.get("strategy") or ""),
    )


def _position(row: dict) -> Position:
    return Position(
        symbol=str(row.get("symbol", "")),
        exchange=str(row.get("exchange", "")),
        product=str(row.get("product", "")),
        quantity=_int(row.get("quantity", 0), "quantity"),
        average_price=_float(row.get("average_price", 0), "average_price"),
        ltp=_float(row.get("ltp", 0), "ltp"),
        pnl=_float(row.get("pnl", 0), "pnl"),
    )


def _quote(symbol: str, exchange: str, data: dict) -> Quote:
    return Quote(
        symbol=symbol,
        exchange=exchange,
        ltp=_float(data.get("ltp", 0), "ltp"),
        bid=_float(data.get("bid", 0), "bid"),
        ask=_float(data.get("ask", 0), "ask"),
        open=_float(data.get("open", 0), "open"),
        high=_float(data.get("high", 0), "high"),
        low=_float(data.get("low", 0), "low"),
        prev_close=_float(data.get("prev_close", 0), "prev_close"),
        volume=_int(data.get("volume", 0), "volume"),
    )
