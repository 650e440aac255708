"""Settings of the live engine (frozen; built from the config file by the wiring)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from tmtool.domain.models import AccountLimits, Instrument

DEFAULT_FREEZE_QUANTITIES: Mapping[str, int] = MappingProxyType(
    {"NIFTY": 1800, "BANKNIFTY": 900, "FINNIFTY": 1800, "SENSEX": 1000}
)

TRAIL_ALERT_MODES = ("every", "first", "none")


@dataclass(frozen=True)
class EngineSettings:
    """How the engine runs.

    Times are seconds.  ``freeze_quantities`` maps an underlying's name (the
    leading letters of an F&O symbol, e.g. ``NIFTY`` for ``NIFTY30DEC26FUT``) to
    the exchange freeze quantity; an exit larger than it is split.
    ``instruments`` overrides what the broker says about an instrument, keyed
    ``"EXCHANGE:SYMBOL"``.  ``trail_alerts`` says which trailing ratchets raise
    an alert: "every" one, the "first" of each trade, or "none".
    """

    snapshot_hz: float = 10.0
    reconcile_interval: float = 30.0
    exit_max_attempts: int = 3
    exit_retry_backoff: float = 0.5  # first retry delay; doubles per attempt
    order_status_poll: float = 0.5  # while an order of ours is not final
    order_update_backstop: float = 5.0  # status poll period when the order-update stream is live
    ambiguous_lookups: int = 2  # order-book lookups that must all miss before an order counts as absent
    durable_timeout: float = 0.5  # how long an exit waits for its intent to be durable before it goes anyway
    freeze_quantities: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_FREEZE_QUANTITIES))
    instruments: Mapping[str, Instrument] = field(default_factory=dict)
    default_tick_size: float = 0.05
    stale_alerts: bool = True  # alert on stale symbols during their exchange's trading hours
    tick_band_percent: float = 20.0  # a tick this far from the last accepted price needs confirming
    tick_confirm: int = 2  # consecutive ticks that confirm a jump beyond the band
    trail_alerts: str = "first"
    account: AccountLimits = AccountLimits()
    simulated: bool = False
    executor_workers: int = 8
    max_orders_per_second: int = 10  # order requests sent per one-second window (OpenAlgo's default limit)
    settle_wait: float = 5.0  # longest an exit waits for other exits on its symbol to settle before reading the position
    ltp_persist_interval: float = 5.0
    store_check_interval: float = 1.0
    recent_alerts: int = 50
    pnl_sample_interval: float = 30.0
    auth_probe_backoff: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
    adopt_fills_interval: float = 5.0  # tradebook polling while a strategy adopts fills or is locked out

    def __post_init__(self) -> None:
        positive = {
            "snapshot_hz": self.snapshot_hz,
            "reconcile_interval": self.reconcile_interval,
            "exit_retry_backoff": self.exit_retry_backoff,
            "order_status_poll": self.order_status_poll,
            "order_update_backstop": self.order_update_backstop,
            "durable_timeout": self.durable_timeout,
            "default_tick_size": self.default_tick_size,
            "tick_band_percent": self.tick_band_percent,
            "ltp_persist_interval": self.ltp_persist_interval,
            "store_check_interval": self.store_check_interval,
            "pnl_sample_interval": self.pnl_sample_interval,
            "adopt_fills_interval": self.adopt_fills_interval,
            "settle_wait": self.settle_wait,
        }
        for name, value in positive.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"engine setting '{name}' must be a positive number, got {value!r}")
        if self.snapshot_hz > 10:
            raise ValueError(f"engine setting 'snapshot_hz' must be at most 10, got {self.snapshot_hz!r}")
        for name in (
            "exit_max_attempts", "executor_workers", "recent_alerts", "ambiguous_lookups", "max_orders_per_second",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"engine setting '{name}' must be a whole number >= 1, got {value!r}")
        if isinstance(self.tick_confirm, bool) or not isinstance(self.tick_confirm, int) or self.tick_confirm < 0:
            raise ValueError(f"engine setting 'tick_confirm' must be a whole number >= 0, got {self.tick_confirm!r}")
        if self.trail_alerts not in TRAIL_ALERT_MODES:
            raise ValueError(f"engine setting 'trail_alerts' must be one of {TRAIL_ALERT_MODES}, got {self.trail_alerts!r}")
        for prefix, quantity in self.freeze_quantities.items():
            if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
                raise ValueError(f"engine setting 'freeze_quantities.{prefix}' must be a whole number >= 1")
        for key, instrument in self.instruments.items():
            if not isinstance(instrument, Instrument) or key != f"{instrument.exchange}:{instrument.symbol}":
                raise ValueError(f"engine setting 'instruments.{key}' must be an Instrument keyed EXCHANGE:SYMBOL")
        if not self.auth_probe_backoff or any(d <= 0 for d in self.auth_probe_backoff):
            raise ValueError("engine setting 'auth_probe_backoff' must be a non-empty list of positive delays")

    def freeze_quantity_for(self, symbol: str) -> int | None:
        """The freeze quantity configured for an F&O symbol's underlying, or None."""
        underlying = _leading_letters(symbol)
        return self.freeze_quantities.get(underlying)


def _leading_letters(symbol: str) -> str:
    end = 0
    while end < len(symbol) and symbol[end].isalpha():
        end += 1
    return symbol[:end].upper()
