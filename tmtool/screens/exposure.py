"""Money at risk: per trade, per strategy and for the account, from the snapshot's trade views.

Pure: the views, the time and (when known) each trade's initial stop in, rows
out.  ``to_stop`` is what the account loses (negative) or still keeps
(positive) if the stop fills now, measured from the last price; ``to_target``
what it gains if the target fills; ``r_now`` the P&L per unit in multiples of
the initial risk per unit (entry to the first stop).
"""

from __future__ import annotations

from dataclasses import dataclass

from tmtool.engine.snapshot import TradeView


@dataclass(frozen=True, slots=True)
class TradeExposure:
    trade_id: int
    strategy: str
    symbol: str
    side: str
    quantity: int
    pnl: float
    to_stop: float | None  # ₹ from the last price to the effective stop (None: no stop)
    stop_pnl: float | None  # ₹ the trade ends with if the stop fills (None: no stop)
    to_target: float | None  # ₹ from the last price to the target (None: no target)
    r_now: float | None
    opened_at: float | None
    held_seconds: float | None


@dataclass(frozen=True, slots=True)
class ExposureTotals:
    name: str  # a strategy's name, or "account"
    trades: int
    pnl: float
    to_stop: float  # summed over trades with a stop
    to_target: float  # summed over trades with a target
    without_stop: int  # trades whose loss is bounded only by portfolio limits


def trade_exposure(view: TradeView, now: float, initial_stop: float | None = None) -> TradeExposure:
    sign = view.side.sign
    price = view.ltp if view.ltp > 0 else view.entry_price
    quantity = view.quantity
    stop = view.effective_stop
    to_stop = None if stop is None else round((stop - price) * sign * quantity, 2)
    stop_pnl = None if stop is None else round(view.realised_pnl + (stop - view.entry_price) * sign * quantity, 2)
    to_target = None if view.target is None else round((view.target - price) * sign * quantity, 2)
    first_stop = initial_stop if initial_stop is not None else view.stop_loss
    risk_per_unit = None if first_stop is None else abs(view.entry_price - first_stop)
    r_now = None
    if risk_per_unit:
        r_now = round((price - view.entry_price) * sign / risk_per_unit, 2)
    opened = view.opened_at or None
    return TradeExposure(
        trade_id=view.id,
        strategy=view.strategy,
        symbol=view.symbol,
        side=view.side.value,
        quantity=quantity,
        pnl=view.pnl,
        to_stop=to_stop,
        stop_pnl=stop_pnl,
        to_target=to_target,
        r_now=r_now,
        opened_at=opened,
        held_seconds=None if opened is None else max(0.0, now - opened),
    )


def open_exposures(views: tuple[TradeView, ...], now: float, initial_stops: dict[int, float] | None = None) -> list[TradeExposure]:
    """Every open trade's exposure, in trade id order."""
    stops = initial_stops or {}
    return [trade_exposure(view, now, stops.get(view.id)) for view in sorted(views, key=lambda v: v.id) if view.status.is_open]


def totals(name: str, exposures: list[TradeExposure]) -> ExposureTotals:
    return ExposureTotals(
        name=name,
        trades=len(exposures),
        pnl=round(sum(e.pnl for e in exposures), 2),
        to_stop=round(sum(e.to_stop for e in exposures if e.to_stop is not None), 2),
        to_target=round(sum(e.to_target for e in exposures if e.to_target is not None), 2),
        without_stop=sum(1 for e in exposures if e.to_stop is None),
    )


def by_strategy(exposures: list[TradeExposure]) -> list[ExposureTotals]:
    """One total per strategy (by name), then the account's."""
    names = sorted({e.strategy for e in exposures})
    rows = [totals(name, [e for e in exposures if e.strategy == name]) for name in names]
    rows.append(totals("account", exposures))
    return rows


def held_text(seconds: float | None) -> str:
    """``1h 05m``, ``12m``, ``45s``."""
    if seconds is None:
        return "–"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    days, minutes = divmod(minutes, 24 * 60)
    text = f"{minutes // 60}h {minutes % 60:02d}m"
    return f"{days}d {text}" if days else text
