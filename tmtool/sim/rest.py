"""OpenAlgo's REST API (``POST /api/v1/<endpoint>``) served from the simulated broker.

Shapes, types, status codes and error strings follow openalgo-api.md §0–§4 and §6:
schema errors are 400 with the error dict's repr as the message, a wrong key or
an expired session is 403 ``Invalid openalgo apikey``, unknown order ids 404,
rate limits 429 with ``retry_after: 60``, non-JSON bodies 500.  The books
(orderbook, orderstatus, tradebook, positionbook, openposition) are read through
the book's ``visible_*`` views, so the lag faults apply to them, and their naive
timestamps are written in the zone the ``server_time_zone`` fault sets (IST).

Also serves a small admin API under ``/sim/v1/`` (same key, never rate limited
or faulted) so faults can be injected from outside the process:

- ``POST /sim/v1/fault``  ``{"apikey", "fault": "<Faults method>", "args": {...}}``
- ``POST /sim/v1/state``  ``{"apikey", "analyzer_mode"?, "semi_auto"?, "session_expired"?, "order_updates_enabled"?}``
- ``POST /sim/v1/price``  ``{"apikey", "exchange", "symbol", "price"}``
"""

from __future__ import annotations

import collections
import json
import logging
import math
import select
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from tmtool.sim import schema
from tmtool.sim.book import MARGIN_RATE, OrderError, OrderRequest, SimOrder
from tmtool.sim.host import SimulatorHost
from tmtool.sim.schema import SchemaError

log = logging.getLogger(__name__)

Reply = tuple[int, dict]

INVALID_KEY = "Invalid openalgo apikey"
UNEXPECTED = "An unexpected error occurred in the API endpoint"
RATE_LIMITED = {"status": "error", "message": "Rate limit exceeded. Please slow down your requests.", "retry_after": 60}
MATCHED = "Positions Already Matched. No Action needed."
NO_OPEN_POSITION = "No OpenPosition Found. Not placing Exit order."
#: How long a ``rest_timeout`` fault holds a reply if the client never gives up.
MAX_HOLD_SECONDS = 600.0
ADMIN_FAULTS = frozenset({
    "drop_ws", "stall_ws", "refuse_ws", "silence_symbol", "resume_symbol", "rest_delay", "rest_fail",
    "rest_timeout", "rest_drop", "reject_orders", "partial_fill", "hold_fills", "delay_fills", "lag_order_book",
    "lag_positions", "server_time_zone", "gap_price", "close_position_externally", "clear",
})
ADMIN_STATE = ("analyzer_mode", "semi_auto", "session_expired", "order_updates_enabled")


@dataclass(frozen=True)
class RateLimits:
    """Requests allowed per endpoint and client address in a moving window (default one second)."""

    order: int = 10  # placeorder, modifyorder, cancelorder
    smart_order: int = 10  # placesmartorder
    api: int = 50  # everything else
    window_seconds: float = 1.0


class _MovingWindow:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hits: dict[tuple[str, str], collections.deque] = {}

    def allow(self, endpoint: str, client: str, limit: int, window: float) -> bool:
        now = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault((endpoint, client), collections.deque())
            while hits and now - hits[0] >= window:
                hits.popleft()
            if len(hits) >= limit:
                return False
            hits.append(now)
            return True


IST = ZoneInfo("Asia/Kolkata")  # history dates are Indian trading days


def _error(message: Any, **extra: Any) -> dict:
    return {"status": "error", "message": message, **extra}


def _live_time(ts: float, zone: tzinfo) -> str:
    return datetime.fromtimestamp(ts, zone).strftime("%d-%b-%Y %H:%M:%S")


def _sandbox_time(ts: float, zone: tzinfo) -> str:
    return datetime.fromtimestamp(ts, zone).strftime("%Y-%m-%d %H:%M:%S")


def _symbol_not_found(symbol: str, exchange: str) -> str:
    return (f"Symbol '{symbol}' not found for exchange '{exchange}'. "
            "Please verify the symbol name and ensure master contracts are downloaded.")


class Api:
    """The endpoint implementations; each takes the parsed JSON body and returns (status, body)."""

    def __init__(self, sim: SimulatorHost) -> None:
        self._sim = sim
        self._pending_ids = 0
        self.pending_approvals: list[dict] = []
        self.analyzer_logs = 0
        self.endpoints: dict[str, tuple[str, Callable[[Any], Reply]]] = {
            "ping": ("api", self.ping),
            "placeorder": ("order", self.placeorder),
            "placesmartorder": ("smart_order", self.placesmartorder),
            "modifyorder": ("order", self.modifyorder),
            "cancelorder": ("order", self.cancelorder),
            "cancelallorder": ("api", self.cancelallorder),
            "closeposition": ("api", self.closeposition),
            "orderstatus": ("api", self.orderstatus),
            "openposition": ("api", self.openposition),
            "orderbook": ("api", self.orderbook),
            "tradebook": ("api", self.tradebook),
            "positionbook": ("api", self.positionbook),
            "holdings": ("api", self.holdings),
            "funds": ("api", self.funds),
            "margin": ("api", self.margin),
            "quotes": ("api", self.quotes),
            "multiquotes": ("api", self.multiquotes),
            "depth": ("api", self.depth),
            "symbol": ("api", self.symbol),
            "history": ("api", self.history),
            "analyzer": ("api", self.analyzer),
            "analyzer/toggle": ("api", self.analyzer_toggle),
        }

    # ---- shared steps ----------------------------------------------------------------------

    @property
    def _analyze(self) -> bool:
        return self._sim.analyzer_mode

    def _with_mode(self, body: dict) -> dict:
        if self._analyze:
            body["mode"] = "analyze"
        return body

    def _load(self, which: schema.Schema, body: Any, *, whole_quantity: bool = False) -> dict:
        data = which.load(body)
        if whole_quantity:
            schema.coerce_whole_quantity(data)
        if "action" in data:
            data["action"] = data["action"].upper()
        return data

    def _unauthorised(self, data: dict) -> Reply | None:
        if self._sim._key_matches(data.get("apikey", "")) and not self._sim.session_expired:
            return None
        return 403, _error(INVALID_KEY)

    def _semi_auto_blocked(self, operation: str, what: str) -> Reply | None:
        if self._sim.semi_auto and not self._analyze:
            return 403, _error(f"{operation} operation is not allowed in Semi-Auto mode. "
                               f"Please switch to Auto mode to {what}.")
        return None

    def _queue_for_approval(self, endpoint: str, data: dict) -> Reply | None:
        if not self._sim.semi_auto or self._analyze:
            return None
        with self._sim._state_lock:
            self._pending_ids += 1
            pending_id = self._pending_ids
            request = {k: v for k, v in data.items() if k != "apikey"}
            self.pending_approvals.append({"pending_order_id": pending_id, "endpoint": endpoint, "request": request})
        return 200, {"status": "success", "message": "Order queued for approval in Action Center",
                     "mode": "semi_auto", "pending_order_id": pending_id}

    def _tradable_error(self, symbol: str, exchange: str, quantities: tuple[int, ...]) -> Reply | None:
        """400 for an unknown or data-only instrument or a quantity off the lot size."""
        instrument = self._sim._market.instrument(exchange, symbol)
        if instrument is None:
            return 400, self._with_mode(_error(_symbol_not_found(symbol, exchange)))
        if not instrument.tradable:
            return 400, self._with_mode(_error(f"Symbol '{symbol}' on exchange '{exchange}' is an index and cannot be traded."))
        for quantity in quantities:
            if quantity % instrument.lot_size:
                return 400, self._with_mode(_error(
                    f"Quantity {quantity} is not a multiple of the lot size {instrument.lot_size} for {symbol}."))
        return None

    def _price_error(self, data: dict) -> Reply | None:
        """400 when a LIMIT/SL price or a trigger is missing or off the instrument's tick size."""
        pricetype = data.get("pricetype", "MARKET")
        tick = self._sim._market.instrument(data["exchange"], data["symbol"]).tick_size
        for key, label, needed_by in (("price", "Price", ("LIMIT", "SL")),
                                      ("trigger_price", "Trigger price", ("SL", "SL-M"))):
            if pricetype not in needed_by:
                continue
            value = data.get(key, 0.0)
            if value <= 0:
                return 400, self._with_mode(_error(f"{label} is required for {pricetype} orders."))
            if abs(value / tick - round(value / tick)) > 1e-6:
                return 400, self._with_mode(_error(
                    f"{label} {value} is not a multiple of the tick size {tick} for {data['symbol']}."))
        return None

    @staticmethod
    def _request(data: dict, **overrides: Any) -> OrderRequest:
        fields = {
            "symbol": data["symbol"], "exchange": data["exchange"], "action": data["action"],
            "quantity": int(data["quantity"]), "pricetype": data.get("pricetype", "MARKET"),
            "product": data.get("product", "MIS"), "price": float(data.get("price", 0.0)),
            "trigger_price": float(data.get("trigger_price", 0.0)), "strategy": data.get("strategy", ""),
        }
        fields.update(overrides)
        return OrderRequest(**fields)

    def _place(self, request: OrderRequest) -> SimOrder:
        """Place under the state lock and note when the request arrived (for latency figures)."""
        order = self._sim._book.place(request, "analyze" if self._analyze else "live")
        self._sim._note_order_event(order.orderid)
        if self._analyze:
            self.analyzer_logs += 1
        return order

    # ---- orders ----------------------------------------------------------------------------

    def ping(self, body: Any) -> Reply:
        try:
            data = schema.APIKEY_ONLY.load(body)
        except SchemaError as error:
            return 400, _error(error.messages)
        return self._unauthorised(data) or (200, {"status": "success",
                                                  "data": {"message": "pong", "broker": self._sim.broker_profile}})

    def placeorder(self, body: Any) -> Reply:
        data = self._load(schema.ORDER, body, whole_quantity=True)
        refused = self._unauthorised(data) or self._queue_for_approval("placeorder", data)
        if refused:
            return refused
        problem = self._tradable_error(data["symbol"], data["exchange"], (data["quantity"],)) or self._price_error(data)
        if problem:
            return problem
        with self._sim._state_lock:
            order = self._place(self._request(data))
        return 200, self._with_mode({"status": "success", "orderid": order.orderid})

    def placesmartorder(self, body: Any) -> Reply:
        data = self._load(schema.SMART_ORDER, body, whole_quantity=True)
        target = data["position_size"]
        if data["exchange"] != "CRYPTO" and target != int(target):
            raise SchemaError({"position_size": [f"Fractional position size ({target}) is not allowed for non-crypto exchanges."]})
        refused = self._unauthorised(data) or self._queue_for_approval("placesmartorder", data)
        if refused:
            return refused
        target, quantity = int(target), data["quantity"]
        problem = self._tradable_error(data["symbol"], data["exchange"], ())
        if problem:
            return problem
        if not self._analyze and (problem := self._price_error(data)):
            return problem
        with self._sim._state_lock:
            current = self._sim._book.visible_net_quantity(data["symbol"], data["exchange"], data.get("product", "MIS"))
            if target == current and (target != 0 or quantity == 0):
                return self._smart_nothing_to_do(quantity)
            if target == current:  # flat and flat with q > 0: a fresh trade in the request's direction
                action, order_quantity = data["action"], quantity
            else:
                action = "BUY" if target > current else "SELL"
                order_quantity = abs(target - current)
            problem = self._tradable_error(data["symbol"], data["exchange"], (order_quantity,))
            if problem:  # only the order actually sent must be whole lots; an ignored quantity is not checked
                return problem
            overrides = {"action": action, "quantity": order_quantity}
            if self._analyze:
                overrides.update(pricetype="MARKET", price=0.0, trigger_price=0.0)
            order = self._place(self._request(data, **overrides))
        return 200, self._with_mode({"status": "success", "orderid": order.orderid})

    def _smart_nothing_to_do(self, quantity: int) -> Reply:
        if self._analyze:
            return 200, self._with_mode({"status": "success", "message": MATCHED if quantity > 0 else NO_OPEN_POSITION})
        if quantity > 0 or self._sim.broker_profile == "zerodha":
            return 200, {"status": "success", "message": MATCHED}
        return 500, _error(NO_OPEN_POSITION)

    def modifyorder(self, body: Any) -> Reply:
        data = self._load(schema.MODIFY_ORDER, body, whole_quantity=True)
        refused = (self._unauthorised(data)
                   or self._semi_auto_blocked("Modify order", "modify orders")
                   or self._tradable_error(data["symbol"], data["exchange"], (data["quantity"],))
                   or self._price_error(data))
        if refused:
            return refused
        with self._sim._state_lock:
            order = self._sim._book.modify(data["orderid"], self._request(data))
        return 200, self._with_mode({"status": "success", "orderid": order.orderid})

    def cancelorder(self, body: Any) -> Reply:
        data = self._load(schema.CANCEL_ORDER, body)
        refused = self._unauthorised(data) or self._semi_auto_blocked("Cancel order", "cancel orders")
        if refused:
            return refused
        with self._sim._state_lock:
            order = self._sim._book.cancel(data["orderid"])
        return 200, self._with_mode({"status": "success", "orderid": order.orderid})

    def cancelallorder(self, body: Any) -> Reply:
        data = self._load(schema.STRATEGY_ONLY, body)
        refused = self._unauthorised(data) or self._semi_auto_blocked("Cancel all orders", "cancel orders")
        if refused:
            return refused
        with self._sim._state_lock:
            cancelled = self._sim._book.cancel_all()
        return 200, self._with_mode({
            "status": "success", "message": f"Canceled {len(cancelled)} orders. Failed to cancel 0 orders.",
            "canceled_orders": cancelled, "failed_cancellations": [],
        })

    def closeposition(self, body: Any) -> Reply:
        data = self._load(schema.STRATEGY_ONLY, body)
        refused = self._unauthorised(data) or self._semi_auto_blocked("Close position", "close positions")
        if refused:
            return refused
        with self._sim._state_lock:
            closed = 0
            for position in self._sim._book.visible_positions():
                if position.quantity == 0:
                    continue
                self._place(OrderRequest(
                    position.symbol, position.exchange, "SELL" if position.quantity > 0 else "BUY",
                    abs(position.quantity), "MARKET", position.product, strategy=data["strategy"]))
                closed += 1
        if not self._analyze:
            return 200, {"status": "success", "message": "All Open Positions Squared Off"}
        if closed == 0:
            return 200, self._with_mode({"status": "success", "message": "No open positions to close"})
        return 200, self._with_mode({"status": "success", "message": f"Closed {closed} positions",
                                     "closed_positions": closed, "failed_closures": 0})

    # ---- order information -----------------------------------------------------------------

    def _order_row(self, order: SimOrder, *, status_view: bool) -> dict:
        r = order.request
        if self._analyze:
            return {
                "orderid": order.orderid, "symbol": r.symbol, "exchange": r.exchange, "action": r.action,
                "quantity": r.quantity, "price": r.price, "trigger_price": r.trigger_price,
                ("price_type" if status_view else "pricetype"): r.pricetype, "product": r.product,
                "order_status": order.status, "average_price": round(order.average_price, 2),
                "filled_quantity": order.filled_quantity, "pending_quantity": order.pending_quantity,
                "rejection_reason": order.rejection_reason, "strategy": r.strategy,
                "timestamp": _sandbox_time(order.created_at, self._sim.faults.time_zone),
            }
        row = {
            "orderid": order.orderid, "symbol": r.symbol, "exchange": r.exchange, "action": r.action,
            "quantity": str(r.quantity), "price": r.price, "trigger_price": r.trigger_price,
            "pricetype": r.pricetype, "product": r.product, "order_status": order.status,
            "timestamp": _live_time(order.created_at, self._sim.faults.time_zone),
        }
        if status_view:
            row["average_price"] = round(order.average_price, 2) if order.status == "complete" else 0.0
        return row

    def orderstatus(self, body: Any) -> Reply:
        data = self._load(schema.ORDER_STATUS, body)
        refused = self._unauthorised(data)
        if refused:
            return refused
        with self._sim._state_lock:
            row = self._order_row(self._sim._book.visible_order(data["orderid"]), status_view=True)
        return 200, self._with_mode({"status": "success", "data": row})

    def openposition(self, body: Any) -> Reply:
        data = self._load(schema.OPEN_POSITION, body)
        refused = self._unauthorised(data)
        if refused:
            return refused
        with self._sim._state_lock:
            quantity = self._sim._book.visible_net_quantity(data["symbol"], data["exchange"], data["product"])
        return 200, self._with_mode({"status": "success", "quantity": quantity})

    def orderbook(self, body: Any) -> Reply:
        data = self._load(schema.APIKEY_ONLY, body)
        refused = self._unauthorised(data)
        if refused:
            return refused
        with self._sim._state_lock:
            orders = self._sim._book.visible_orders()
            rows = [self._order_row(order, status_view=False) for order in orders]
        statistics = {
            "total_buy_orders": sum(o.request.action == "BUY" for o in orders),
            "total_sell_orders": sum(o.request.action == "SELL" for o in orders),
            "total_completed_orders": sum(o.status == "complete" for o in orders),
            "total_open_orders": sum(o.working for o in orders),
            "total_rejected_orders": sum(o.status == "rejected" for o in orders),
        }
        return 200, self._with_mode({"status": "success", "data": {"orders": rows, "statistics": statistics}})

    def tradebook(self, body: Any) -> Reply:
        data = self._load(schema.APIKEY_ONLY, body)
        refused = self._unauthorised(data)
        if refused:
            return refused
        with self._sim._state_lock:
            stamp = _sandbox_time if self._analyze else _live_time
            zone = self._sim.faults.time_zone
            rows = [{
                "orderid": t.orderid, "symbol": t.symbol, "exchange": t.exchange, "product": t.product,
                "action": t.action, "quantity": t.quantity, "average_price": t.price,
                "trade_value": round(t.quantity * t.price, 2), "timestamp": stamp(t.ts, zone),
            } for t in self._sim._book.visible_trades()]
        return 200, self._with_mode({"status": "success", "data": rows})

    def positionbook(self, body: Any) -> Reply:
        data = self._load(schema.APIKEY_ONLY, body)
        refused = self._unauthorised(data)
        if refused:
            return refused
        zerodha_style = self._sim.broker_profile == "zerodha" and not self._analyze
        rows = []
        with self._sim._state_lock:
            for p in self._sim._book.visible_positions():
                ltp = self._sim._book.ltp(p)
                average = round(p.average_price, 2)
                rows.append({
                    "symbol": p.symbol, "exchange": p.exchange, "product": p.product, "quantity": p.quantity,
                    "average_price": f"{average:.2f}" if zerodha_style else average, "ltp": ltp,
                    "pnl": round(p.realised_pnl + p.unrealised_pnl(ltp), 2),
                })
        return 200, self._with_mode({"status": "success", "data": rows})

    def holdings(self, body: Any) -> Reply:
        data = self._load(schema.APIKEY_ONLY, body)
        refused = self._unauthorised(data)
        if refused:
            return refused
        statistics = {"totalholdingvalue": 0.0, "totalinvvalue": 0.0, "totalprofitandloss": 0.0,
                      "totalpnlpercentage": 0.0}
        return 200, self._with_mode({"status": "success", "data": {"holdings": [], "statistics": statistics}})

    def funds(self, body: Any) -> Reply:
        data = self._load(schema.APIKEY_ONLY, body)
        refused = self._unauthorised(data)
        if refused:
            return refused
        with self._sim._state_lock:
            funds = self._sim._book.funds()
        if not self._analyze:
            funds = {key: f"{value:.2f}" for key, value in funds.items()}
        return 200, self._with_mode({"status": "success", "data": funds})

    def margin(self, body: Any) -> Reply:
        """The margin calculator: a basket's margin at the book's rate per product (of the order's
        price, or the last price for MARKET legs); 501 when the broker profile has no calculator."""
        data = self._load(schema.MARGIN, body)
        refused = self._unauthorised(data)
        if refused:
            return refused
        legs = data["positions"]
        if len(legs) > schema.MARGIN_MAX_POSITIONS:
            return 400, _error(f"Positions must be between 1 and {schema.MARGIN_MAX_POSITIONS}.")
        if not self._sim.margin_calculator:
            return 501, _error(f"Margin calculator is not supported for broker {self._sim.broker_profile}")
        total = 0.0
        for leg in legs:
            try:
                quantity, price = float(leg["quantity"]), float(leg["price"])
            except ValueError:
                return 400, _error("Quantity and price must be numbers.")
            if not (math.isfinite(quantity) and quantity > 0 and math.isfinite(price) and price >= 0):
                return 400, _error("Quantity must be positive and price non-negative.")
            problem = self._tradable_error(leg["symbol"], leg["exchange"], ())
            if problem:
                return problem
            if leg["pricetype"] == "MARKET" or price == 0:
                price = self._sim._market.quote(leg["exchange"], leg["symbol"]).ltp
            total += quantity * price * MARGIN_RATE[leg["product"]]
        total = round(total, 2)
        return 200, {"status": "success", "data": {"total_margin_required": total, "span_margin": total, "exposure_margin": 0.0}}

    # ---- market data -----------------------------------------------------------------------

    def _quote_data(self, exchange: str, symbol: str) -> dict:
        quote = self._sim._market.quote(exchange, symbol)
        data = {"open": quote.open, "high": quote.high, "low": quote.low, "ltp": quote.ltp, "ask": quote.ask,
                "bid": quote.bid, "prev_close": quote.prev_close, "volume": quote.volume}
        if quote.instrument.is_derivative:
            data["oi"] = quote.oi
        return data

    def _market_request(self, body: Any) -> tuple[dict | None, Reply | None]:
        data = self._load(schema.SYMBOL_QUERY, body)
        refused = self._unauthorised(data)
        if refused:
            return None, refused
        if self._sim._market.instrument(data["exchange"], data["symbol"]) is None:
            return None, (400, _error(_symbol_not_found(data["symbol"], data["exchange"])))
        return data, None

    def quotes(self, body: Any) -> Reply:
        data, refused = self._market_request(body)
        if refused:
            return refused
        with self._sim._state_lock:
            return 200, {"status": "success", "data": self._quote_data(data["exchange"], data["symbol"])}

    def multiquotes(self, body: Any) -> Reply:
        data = self._load(schema.MULTI_QUOTES, body)
        refused = self._unauthorised(data)
        if refused:
            return refused
        invalid, valid = [], []
        with self._sim._state_lock:
            for item in data["symbols"]:
                symbol, exchange = item["symbol"], item["exchange"]
                if self._sim._market.instrument(exchange, symbol) is None:
                    invalid.append({"symbol": symbol, "exchange": exchange,
                                    "error": _symbol_not_found(symbol, exchange)})
                else:
                    quote = self._quote_data(exchange, symbol)
                    quote.setdefault("oi", 0)
                    valid.append({"symbol": symbol, "exchange": exchange, "data": quote})
        if not valid:
            return 400, _error("All symbols are invalid. Please verify the symbols and exchanges.",
                               invalid_symbols=invalid)
        return 200, {"status": "success", "results": invalid + valid}

    def depth(self, body: Any) -> Reply:
        data, refused = self._market_request(body)
        if refused:
            return refused
        with self._sim._state_lock:
            quote = self._sim._market.quote(data["exchange"], data["symbol"])
            bids, asks = quote.depth()
            return 200, {"status": "success", "data": {
                "open": quote.open, "high": quote.high, "low": quote.low, "ltp": quote.ltp,
                "ltq": quote.last_quantity, "prev_close": quote.prev_close, "volume": quote.volume,
                "oi": quote.oi, "totalbuyqty": sum(b["quantity"] for b in bids),
                "totalsellqty": sum(a["quantity"] for a in asks),
                "asks": [{"price": a["price"], "quantity": a["quantity"]} for a in asks],
                "bids": [{"price": b["price"], "quantity": b["quantity"]} for b in bids],
            }}

    def history(self, body: Any) -> Reply:
        """1-minute candles of what traded at the simulator (OpenAlgo's ``history``; only ``1m`` is served)."""
        data = self._load(schema.HISTORY, body)
        refused = self._unauthorised(data)
        if refused:
            return refused
        if self._sim._market.instrument(data["exchange"], data["symbol"]) is None:
            return 400, _error(_symbol_not_found(data["symbol"], data["exchange"]))
        if data["interval"] != "1m":
            return 400, _error(f"Interval '{data['interval']}' is not supported. The simulator serves 1m candles.")
        try:
            start = datetime.strptime(data["start_date"], "%Y-%m-%d").replace(tzinfo=IST)
            end = datetime.strptime(data["end_date"], "%Y-%m-%d").replace(tzinfo=IST) + timedelta(days=1)
        except ValueError:
            return 400, _error("start_date and end_date must be YYYY-MM-DD.")
        with self._sim._state_lock:
            candles = self._sim._market.candles(data["exchange"], data["symbol"], start.timestamp(), end.timestamp())
        rows = [
            {"timestamp": int(c[0]), "open": c[1], "high": c[2], "low": c[3], "close": c[4], "volume": int(c[5]), "oi": 0}
            for c in candles
        ]
        return 200, {"status": "success", "data": rows}

    def symbol(self, body: Any) -> Reply:
        data, refused = self._market_request(body)
        if refused:
            return refused
        instrument = self._sim._market.instrument(data["exchange"], data["symbol"])
        info = {
            "symbol": instrument.symbol, "brsymbol": instrument.symbol, "exchange": instrument.exchange,
            "brexchange": instrument.exchange, "token": instrument.token, "name": instrument.name,
            "instrumenttype": instrument.instrument_type, "expiry": instrument.expiry,
            "strike": instrument.strike, "lotsize": instrument.lot_size, "tick_size": instrument.tick_size,
        }
        if instrument.freeze_qty is not None:
            info["freeze_qty"] = instrument.freeze_qty
        return 200, {"status": "success", "data": info}

    # ---- analyzer --------------------------------------------------------------------------

    def _analyzer_data(self) -> dict:
        return {"mode": "analyze" if self._analyze else "live", "analyze_mode": self._analyze,
                "total_logs": self.analyzer_logs}

    def analyzer(self, body: Any) -> Reply:
        data = self._load(schema.APIKEY_ONLY, body)
        return self._unauthorised(data) or (200, {"status": "success", "data": self._analyzer_data()})

    def analyzer_toggle(self, body: Any) -> Reply:
        data = self._load(schema.ANALYZER_TOGGLE, body)
        refused = self._unauthorised(data)
        if refused:
            return refused
        if self._sim.semi_auto:
            return 403, _error(
                "Operation analyzer/toggle is not allowed in Semi-Auto mode. This operation can only be "
                "performed by the client via the UI.")
        self._sim.analyzer_mode = data["mode"]
        reply = self._analyzer_data()
        reply["message"] = f"Analyzer mode switched to {reply['mode']}"
        return 200, {"status": "success", "data": reply}

    # ---- dispatch --------------------------------------------------------------------------

    def call(self, endpoint: str, body: Any) -> Reply:
        """Run one endpoint, mapping validation and order errors to OpenAlgo's replies."""
        try:
            return self.endpoints[endpoint][1](body)
        except SchemaError as error:
            return 400, _error(str(error.messages))
        except OrderError as error:
            return error.status, self._with_mode(_error(error.message))
        except Exception:
            log.exception("simulator endpoint %s failed", endpoint)
            return 500, _error(UNEXPECTED)

    # ---- admin -----------------------------------------------------------------------------

    def admin(self, action: str, body: Any) -> Reply:
        if not isinstance(body, dict) or not self._sim._key_matches(body.get("apikey", "")):
            return 403, _error(INVALID_KEY)
        try:
            if action == "fault":
                name, args = body.get("fault"), body.get("args", {})
                if name not in ADMIN_FAULTS or not isinstance(args, dict):
                    return 400, _error(f"unknown fault {name!r}; expected one of {', '.join(sorted(ADMIN_FAULTS))} "
                                       "with an 'args' object")
                getattr(self._sim.faults, name)(**args)
            elif action == "state":
                unknown = set(body) - {"apikey", *ADMIN_STATE}
                if unknown:
                    return 400, _error(f"unknown state keys: {', '.join(sorted(unknown))}")
                for key in ADMIN_STATE:
                    if key in body:
                        if not isinstance(body[key], bool):
                            return 400, _error(f"{key} must be true or false")
                        setattr(self._sim, key, body[key])
            elif action == "price":
                self._sim.set_price(body.get("exchange"), body.get("symbol"), body.get("price"), publish=True)
            else:
                return 404, _error("Not found", path=f"/sim/v1/{action}")
        except (TypeError, ValueError, KeyError) as error:
            return 400, _error(str(error))
        return 200, {"status": "success"}


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: "RestServer") -> None:
        self.app = app
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "OpenAlgoSim/1.0"
    timeout = 30  # idle keep-alive connections are closed after this
    disable_nagle_algorithm = True  # headers and body go out as separate writes

    def setup(self) -> None:
        super().setup()
        self.server.app._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.app._track(self.connection, False)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.server.app.handle(self, "POST")

    def do_GET(self) -> None:  # noqa: N802
        self.server.app.handle(self, "GET")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet: never log bodies
        return


class RestServer:
    """The HTTP front: routing, rate limits, REST faults, then :class:`Api`."""

    def __init__(self, sim: SimulatorHost, host: str, port: int, rate_limits: RateLimits | None) -> None:
        self._sim = sim
        self.api = Api(sim)
        self._rate_limits = rate_limits
        self._window = _MovingWindow()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._server = _Server((host, port), self)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="sim-rest", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        return self._server.server_address[:2]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        with self._connections_lock:
            for connection in self._connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._server.server_close()  # joins the handler threads
        self._thread.join()

    def _track(self, connection: socket.socket, alive: bool) -> None:
        with self._connections_lock:
            if alive:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def _limit_for(self, group: str) -> int | None:
        if self._rate_limits is None:
            return None
        return getattr(self._rate_limits, group)

    def handle(self, handler: _Handler, method: str) -> None:
        arrived = time.monotonic()
        path = handler.path.split("?", 1)[0]
        body_bytes = self._read_body(handler)
        if path.startswith("/sim/v1/"):
            status, body = self.api.admin(path[len("/sim/v1/"):].strip("/"), self._parse(body_bytes))
            self._send(handler, status, body)
            return
        endpoint = path[len("/api/v1/"):].strip("/") if path.startswith("/api/v1/") else None
        if endpoint not in self.api.endpoints:
            self._send(handler, 404, _error("Not found", path=path))
            return
        if method != "POST":
            self._send(handler, 405, _error("The method is not allowed for the requested URL."))
            return
        group = self.api.endpoints[endpoint][0]
        limit = self._limit_for(group)
        if limit is not None and not self._window.allow(endpoint, handler.client_address[0], limit,
                                                        self._rate_limits.window_seconds):
            self._send(handler, 429, dict(RATE_LIMITED))
            return
        faults = self._sim.faults
        failure = faults.take_rest_failure(endpoint)
        if failure is not None:
            if failure.process:
                self._dispatch(endpoint, body_bytes, arrived)
            status = failure.status
            body = dict(RATE_LIMITED) if status == 429 else _error(f"Simulated HTTP {status} from the broker")
            self._send(handler, status, body)
            return
        delay = faults.take_rest_delay(endpoint)
        if delay and self._stopping.wait(delay):
            handler.close_connection = True
            return
        drop = faults.take_rest_drop(endpoint)
        if drop is not None:
            if drop.process:
                self._dispatch(endpoint, body_bytes, arrived)
            handler.close_connection = True  # the handler closes the socket without a reply
            return
        timeout = faults.take_rest_timeout(endpoint)
        if timeout is not None:
            if timeout.process:
                self._dispatch(endpoint, body_bytes, arrived)
            self._hold(handler)
            return
        status, body = self._dispatch(endpoint, body_bytes, arrived)
        self._send(handler, status, body)

    def _dispatch(self, endpoint: str, body_bytes: bytes, arrived: float) -> Reply:
        body = self._parse(body_bytes)
        if body is _NOT_JSON:
            return 500, _error(UNEXPECTED)
        self._sim._request_arrived(arrived)
        return self.api.call(endpoint, body)

    def _hold(self, handler: _Handler) -> None:
        """Answer nothing until the client hangs up (or the simulator stops), then close."""
        handler.close_connection = True
        connection = handler.connection
        deadline = time.monotonic() + MAX_HOLD_SECONDS
        while not self._stopping.is_set() and time.monotonic() < deadline:
            try:
                readable, _, _ = select.select([connection], [], [], 0.05)
                if readable and connection.recv(1, socket.MSG_PEEK) == b"":
                    return
            except OSError:
                return

    @staticmethod
    def _read_body(handler: _Handler) -> bytes:
        try:
            length = int(handler.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        return handler.rfile.read(length) if length > 0 else b""

    @staticmethod
    def _parse(body_bytes: bytes) -> Any:
        try:
            return json.loads(body_bytes)
        except (ValueError, UnicodeDecodeError):
            return _NOT_JSON

    @staticmethod
    def _send(handler: _Handler, status: int, body: dict) -> None:
        payload = json.dumps(body, sort_keys=True).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            if status == 429:
                handler.send_header("Retry-After", "60")
            handler.end_headers()
            handler.wfile.write(payload)
        except OSError:
            handler.close_connection = True


_NOT_JSON = object()
