"""Settings of the live engine: the one declaration of their defaults and bounds.

``EngineSettings`` is a frozen pydantic dataclass, validated on construction
(a bad value raises ``pydantic.ValidationError``, a ``ValueError`` naming the
setting).  The config file's ``[engine]`` and ``[feed]`` keys that reach the
engine (``tmtool.config``) take their defaults from here and share the
constrained types below, so the engine and the config file cannot disagree.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Annotated, Any, Literal, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, ConfigDict, Field, InstanceOf, StrictBool, model_validator
from pydantic.dataclasses import dataclass

from tmtool.domain.models import DEFAULT_TICK_SIZE, AccountLimits, Instrument

DEFAULT_FREEZE_QUANTITIES: Mapping[str, int] = MappingProxyType(
    {"NIFTY": 1800, "BANKNIFTY": 900, "FINNIFTY": 1800, "SENSEX": 1000}
)
MAX_SNAPSHOT_HZ = 10.0
TRAIL_ALERT_MODES = ("every", "first", "none")

# Constrained values (strict: a TOML text or a boolean is never taken for a number).
PositiveSeconds = Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)]
PositiveCount = Annotated[int, Field(strict=True, ge=1)]
SnapshotRate = Annotated[float, Field(strict=True, gt=0, le=MAX_SNAPSHOT_HZ, allow_inf_nan=False)]
TickBandPercent = Annotated[float, Field(strict=True, gt=0, le=100, allow_inf_nan=False)]
ConfirmTicks = Annotated[int, Field(strict=True, ge=0, le=100)]
TrailAlertMode = Literal["every", "first", "none"]
DEFAULT_BROKER_TIME_ZONE = "Asia/Kolkata"


def _time_zone_name(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as 'Asia/Kolkata' or 'UTC')") from None
    return name


TimeZoneName = Annotated[str, Field(strict=True, min_length=1), AfterValidator(_time_zone_name)]
MarginPercent = Annotated[float, Field(strict=True, gt=0, le=100, allow_inf_nan=False)]


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class EngineSettings:
    """How the engine runs.

    Times are seconds.  ``freeze_quantities`` maps an underlying's name (the
    leading letters of an F&O symbol, e.g. ``NIFTY`` for ``NIFTY30DEC26FUT``) to
    the exchange freeze quantity; an exit larger than it is split.
    ``instruments`` overrides what the broker says about an instrument, keyed
    ``"EXCHANGE:SYMBOL"``.  ``fno_margin_percent`` is the share of an F&O
    position's notional its funds check counts when the server has no margin
    calculator (and for open F&O trades; a bought option counts in full).  ``trail_alerts`` says which trailing ratchets raise
    an alert: "every" one, the "first" of each trade, or "none".
    """

    snapshot_hz: SnapshotRate = 10.0
    reconcile_interval: PositiveSeconds = 30.0
    exit_max_attempts: PositiveCount = 5  # sends of one exit before the trade is EXIT_FAILED
    exit_retry_backoff: PositiveSeconds = 1.0  # first retry delay; doubles per attempt
    order_status_poll: PositiveSeconds = 0.5  # while an order of ours is not final
    order_update_backstop: PositiveSeconds = 5.0  # status poll period when the order-update stream is live
    # An order whose reply was lost counts as never placed only after the order book and the
    # position agreed it is absent for this long (it must cover the order book's lag).
    absence_grace: PositiveSeconds = 10.0
    unknown_alert_after: PositiveSeconds = 60.0  # an order unknown this long raises a CRITICAL alert
    broker_time_zone: TimeZoneName = DEFAULT_BROKER_TIME_ZONE  # the zone of the broker's naive timestamps
    durable_timeout: PositiveSeconds = 0.5  # how long an exit waits for its intent to be durable before it goes anyway
    freeze_quantities: dict[str, PositiveCount] = dataclasses.field(
        default_factory=lambda: dict(DEFAULT_FREEZE_QUANTITIES)
    )
    instruments: dict[str, InstanceOf[Instrument]] = dataclasses.field(default_factory=dict)
    default_tick_size: Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)] = DEFAULT_TICK_SIZE
    fno_margin_percent: MarginPercent = 20.0
    stale_alerts: StrictBool = True  # alert on stale symbols during their exchange's trading hours
    tick_band_percent: TickBandPercent = 10.0  # a tick this far from the last accepted price needs confirming
    tick_confirm: ConfirmTicks = 2  # consecutive ticks that confirm a jump beyond the band
    trail_alerts: TrailAlertMode = "first"
    account: InstanceOf[AccountLimits] = AccountLimits()
    simulated: StrictBool = False
    executor_workers: PositiveCount = 8
    max_orders_per_second: PositiveCount = 10  # order requests sent per one-second window (OpenAlgo's default limit)
    settle_wait: PositiveSeconds = 5.0  # longest an exit waits for other exits on its symbol to settle before reading the position
    ltp_persist_interval: PositiveSeconds = 5.0
    store_check_interval: PositiveSeconds = 1.0
    recent_alerts: PositiveCount = 50
    pnl_sample_interval: PositiveSeconds = 30.0
    auth_probe_backoff: Annotated[tuple[PositiveSeconds, ...], Field(min_length=1)] = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
    adopt_fills_interval: PositiveSeconds = 5.0  # tradebook polling while a strategy adopts fills or is locked out

    @model_validator(mode="after")
    def _instruments_keyed_by_exchange_and_symbol(self) -> "EngineSettings":
        for key, instrument in self.instruments.items():
            if key != f"{instrument.exchange}:{instrument.symbol}":
                raise ValueError(f"engine setting 'instruments.{key}' must be an Instrument keyed EXCHANGE:SYMBOL")
        return self

    @property
    def broker_zone(self) -> ZoneInfo:
        """The zone the broker's naive order-book timestamps are read in."""
        return ZoneInfo(self.broker_time_zone)

    def freeze_quantity_for(self, symbol: str) -> int | None:
        """The freeze quantity configured for an F&O symbol's underlying, or None."""
        underlying = _leading_letters(symbol)
        return self.freeze_quantities.get(underlying)


def engine_default(name: str) -> Any:
    """The default of one engine setting (for the config file's keys that set it)."""
    field = EngineSettings.__pydantic_fields__[name]
    return field.get_default(call_default_factory=True)


def _leading_letters(symbol: str) -> str:
    end = 0
    while end < len(symbol) and symbol[end].isalpha():
        end += 1
    return symbol[:end].upper()
