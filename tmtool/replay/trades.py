"""The day's trades as they ran, rebuilt from the database's trade rows and audit events.

For each closed trade, ``live_trade`` recovers:

* the trade at its activation: the entry fill's price, quantity and time, and
  the levels set at the fill (the ``LEVEL levels`` event the engine writes at
  activation), with partial levels not yet done and watermarks at the entry;
* what the rules decided live: partial exits (``PARTIAL``) and the exit
  decision (``EXIT_INTENT``) with its reason, tick price and level;
* what came from outside the rules, replayed at its time: manual level changes
  (``LEVEL`` with reason ``manual``), pauses and resumes (``STATUS paused``:
  a paused trade's levels are not acted on, as live) and exits the rules did
  not decide (manual, panic, square-off time, lockout, closed outside tmtool, ...).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Iterable

from tmtool.domain.models import ExitReason, Trade, TradeEvent, TradeStatus

RULE_REASONS = frozenset({
    ExitReason.STOP_LOSS, ExitReason.TARGET, ExitReason.PARTIAL_TARGET, ExitReason.TRAILING_SL,
    ExitReason.PORTFOLIO_SL, ExitReason.PORTFOLIO_TARGET, ExitReason.PORTFOLIO_TRAILING,
    ExitReason.DAILY_LOSS_LIMIT, ExitReason.ACCOUNT_LOSS_LIMIT, ExitReason.ACCOUNT_TARGET,
})
LEVEL_REASONS = frozenset({ExitReason.STOP_LOSS, ExitReason.TARGET, ExitReason.PARTIAL_TARGET, ExitReason.TRAILING_SL})
END_OF_DATA = "END_OF_DATA"  # a replayed trade still open after the last tick, marked at the last price


@dataclass(frozen=True)
class ExitDecision:
    """One exit the rules (or the outside) decided: ``quantity`` at ``tick_price``, because of ``reason``.

    ``level`` is the stop/target/partial level crossed (None for portfolio,
    account and outside exits); ``fill_price`` is the tick price with slippage
    (replay) or None (live decisions: fills come later).
    """

    trade_id: int
    ts: float
    reason: str
    tick_price: float | None
    level: float | None
    quantity: int
    fill_price: float | None = None

    def key(self) -> tuple:
        """What two runs must agree on for the same decision: trade, tick, reason, level."""
        return (self.trade_id, self.ts, self.reason, self.tick_price, None if self.level is None else round(self.level, 6))


@dataclass(frozen=True)
class OutsideEvent:
    """Something the rules did not decide, replayed at ``ts``: a manual level change, a pause or
    resume, or an outside exit."""

    ts: float
    kind: str  # "LEVEL", "PAUSE" (value 1.0 paused, 0.0 resumed) or "EXIT"
    field: str = ""  # LEVEL: stop_loss, target or trailing_stop
    value: float | None = None
    reason: str = ""  # EXIT: the live reason


@dataclass(frozen=True)
class LiveTrade:
    start: Trade  # at activation
    opened_at: float
    live_exits: tuple[ExitDecision, ...]
    outside: tuple[OutsideEvent, ...]
    live_pnl: float
    closed_at: float | None
    levels: tuple[tuple[float, str, float | None], ...] = ()  # (ts, field, level) as they stood live, from the fill on


def _number(text: str) -> float | None:
    text = text.strip()
    if not text or text == "None":
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _activation_levels(text: str) -> dict[str, float | None]:
    """``stop=X target=Y trail=Z`` (the activation event) → its numbers."""
    out: dict[str, float | None] = {}
    for part in text.split():
        name, _, value = part.partition("=")
        out[name] = _number(value)
    return out


def live_trades(trades: Iterable[Trade], events_of: Callable[[int], Iterable[TradeEvent]]) -> list[LiveTrade]:
    """``trades`` as they ran (``events_of``: a trade id's audit log), leaving out those that never
    held a position."""
    return [live for trade in trades if (live := live_trade(trade, events_of(trade.id))) is not None]


def live_trade(trade: Trade, events: Iterable[TradeEvent]) -> LiveTrade | None:
    """The trade as it ran; None for a trade that never held a position (cancelled, never filled)."""
    if trade.opened_at is None or trade.entry_quantity <= 0 or trade.entry_price <= 0:
        return None
    events = sorted(events, key=lambda e: e.ts)
    stop, target, trail = trade.stop_loss, trade.target, trade.trailing_stop
    first_old: dict[str, float | None] = {}
    live: list[ExitDecision] = []
    outside: list[OutsideEvent] = []
    activation_seen = False
    levels: list[tuple[float, str, float | None]] = []
    for event in events:
        if event.kind == "LEVEL" and event.field == "levels" and not activation_seen:
            activation_seen = True
            at_fill = _activation_levels(event.new)
            stop, target, trail = at_fill.get("stop"), at_fill.get("target"), at_fill.get("trail")
            levels += [(event.ts, "stop_loss", stop), (event.ts, "target", target), (event.ts, "trailing_stop", trail)]
        elif event.kind in ("TRAIL", "BREAKEVEN"):
            first_old.setdefault(event.field, _number(event.old))
            levels.append((event.ts, event.field, _number(event.new)))
        elif event.kind == "LEVEL" and event.reason == "manual" and event.field in ("stop_loss", "target", "trailing_stop"):
            first_old.setdefault(event.field, _number(event.old))
            outside.append(OutsideEvent(event.ts, "LEVEL", event.field, _number(event.new)))
            levels.append((event.ts, event.field, _number(event.new)))
        elif event.kind == "STATUS" and event.field == "paused":
            outside.append(OutsideEvent(event.ts, "PAUSE", "paused", 1.0 if event.new == "True" else 0.0))
        elif event.kind == "PARTIAL":
            indexes = [int(i) for i in event.new.split(",") if i.strip().isdigit()]
            chosen = [trade.partial_levels[i] for i in indexes if i < len(trade.partial_levels)]
            quantity = sum(level.quantity for level in chosen)
            level = (max if trade.side.sign > 0 else min)(level.price for level in chosen) if chosen else None
            live.append(ExitDecision(trade.id, event.ts, event.reason or ExitReason.PARTIAL_TARGET.value, event.price, level, quantity))
        elif event.kind == "EXIT_INTENT":
            reason = event.new or event.reason
            try:
                known = ExitReason(reason)
            except ValueError:
                known = None
            exited_before = sum(d.quantity for d in live)
            quantity = max(0, trade.entry_quantity - exited_before)
            if known in RULE_REASONS:
                level = trade.exit_trigger_price if known in LEVEL_REASONS else None
                live.append(ExitDecision(trade.id, event.ts, reason, event.price, level, quantity))
            else:
                outside.append(OutsideEvent(event.ts, "EXIT", reason=reason))
    if not activation_seen:  # adopted or pre-dating the activation event: the first values the events moved
        stop = first_old.get("stop_loss", stop)
        target = first_old.get("target", target)
        trail = first_old.get("trailing_stop", trail)
    if trade.status is TradeStatus.CLOSED_EXTERNALLY and not any(o.kind == "EXIT" for o in outside) and trade.closed_at:
        outside.append(OutsideEvent(trade.closed_at, "EXIT", reason=ExitReason.CLOSED_EXTERNALLY.value))
    entry = trade.entry_price
    start = dataclasses.replace(
        trade,
        status=TradeStatus.ACTIVE,
        quantity=trade.entry_quantity,
        stop_loss=stop,
        target=target,
        trailing_stop=trail,
        breakeven_done=False,
        partial_levels=tuple(dataclasses.replace(level, done=False) for level in trade.partial_levels),
        high_watermark=entry,
        low_watermark=entry,
        last_price=entry,
        exit_order_ids=(),
        exit_reason=None,
        exit_trigger_price=None,
        exit_price=None,
        exited_quantity=0,
        realised_pnl=0.0,
        paused=False,
        degraded=False,
        closed_at=None,
    )
    return LiveTrade(start, trade.opened_at, tuple(live), tuple(outside), trade.realised_pnl, trade.closed_at, tuple(levels))
