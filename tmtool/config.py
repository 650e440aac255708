"""tmtool configuration (TOML): the models of every section, and loading.

The file's shape is declared once, as frozen pydantic models with ``extra="forbid"``
(one per section; ``[[strategies]]`` tables become domain ``Strategy`` objects).
The keys that reach the engine take their defaults and bounds from
``tmtool.engine.settings``, so the engine and the file cannot disagree.
See config.example.toml for every key.

``load_config(path, env)`` finds the file (``--config`` > env ``TMTOOL_CONFIG``
> ``./tmtool.toml`` > the user config dir > built-in defaults), parses it with
``tomllib`` and validates it: an unknown key or a bad value raises
``ConfigError`` naming the dotted key, the value and what is allowed.  Secrets
(API keys) are read from the file or from the environment variable it names and
never appear in a repr or an error.  ``Config.warnings`` holds what is worth
telling the user but is not an error (the command line prints it at start).

Writing strategies back into the file is ``tmtool.config_file``'s job.
"""

import dataclasses
import os
import stat
import tomllib
from dataclasses import dataclass, field
from datetime import date, time
from enum import Enum
from pathlib import Path
from types import MappingProxyType, NoneType, UnionType
from typing import Annotated, Any, Literal, Mapping, Union, get_args, get_origin

import platformdirs
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from tmtool.domain.models import (
    EXCHANGES,
    MANUAL_STRATEGY,
    AccountLimits,
    Amount,
    AmountMode,
    Distance,
    DistanceMode,
    ExitOrderSettings,
    Instrument,
    PartialTarget,
    PortfolioRisk,
    PriceType,
    Product,
    Sizing,
    SizingMode,
    Strategy,
    TradeRisk,
    TrailingSettings,
)
from tmtool.domain.validation import validate_strategy, validate_symbol
from tmtool.engine.settings import (
    DEFAULT_FREEZE_QUANTITIES,
    ConfirmTicks,
    MarginPercent,
    PositiveCount,
    PositiveSeconds,
    SnapshotRate,
    TickBandPercent,
    TimeZoneName,
    engine_default,
)

APP_NAME = "tmtool"
CONFIG_FILE_NAME = "tmtool.toml"
CONFIG_ENV = "TMTOOL_CONFIG"
FREEZE_EXCHANGES = frozenset({"NFO", "BFO"})  # where the symbol-prefix freeze quantities apply
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
# Keys whose values are never echoed in an error: keys, and URLs and headers that often carry a token.
_SECRET_KEYS = frozenset({"api_key", "url", "headers"})


class ConfigError(ValueError):
    """A config key is missing, unknown or invalid.  ``key`` is the dotted path."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"config key '{key}': {message}")
        self.key = key
        self.reason = message


# --------------------------------------------------------------------------- value types
# TOML values are typed: a text is never taken for a number, nor a number for a boolean.


def refusal(reason: str) -> PydanticCustomError:
    return PydanticCustomError("config", "{reason}", {"reason": reason})


def _non_blank(value: object) -> object:
    if not isinstance(value, str) or not value.strip():
        raise refusal("must be a non-empty text")
    return value


def one_of(*options: str, upper_case: bool = True) -> Any:
    """One of ``options``; upper-case options are matched case-insensitively."""

    def check(value: object) -> str:
        if isinstance(value, str) and (value.upper() if upper_case else value) in options:
            return value.upper() if upper_case else value
        raise refusal(f"must be one of {', '.join(options)}")

    return Annotated[Literal[options], BeforeValidator(check)]


def _url(*schemes: str) -> Any:
    """A URL starting with one of ``schemes`` (stored without a trailing slash)."""

    def check(value: object) -> str:
        if (
            not isinstance(value, str)
            or not value.startswith(schemes)
            or len(value) <= len(value.split("//")[0]) + 2
            or " " in value
        ):
            raise refusal(f"must be a URL starting with {' or '.join(schemes)}")
        return value.rstrip("/")

    return Annotated[str, BeforeValidator(check)]


def _time_of_day(value: object) -> object:
    if value is None or isinstance(value, time):
        return value
    if isinstance(value, str):
        try:
            return time.fromisoformat(value)
        except ValueError:
            pass
    raise refusal('must be a time of day like "15:15" (Asia/Kolkata)')


def _symbol_prefix(prefix: str) -> str:
    if validate_symbol(prefix) is not None:
        raise refusal("must be a symbol prefix in upper case without spaces")
    return prefix


def _instrument_key(key: str) -> str:
    exchange, _, symbol = key.partition(":")
    if exchange not in EXCHANGES or validate_symbol(symbol) is not None:
        raise refusal('must be EXCHANGE:SYMBOL, e.g. "NSE:RELIANCE", on a tradable exchange')
    return key


Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
PositiveNumber = Annotated[Number, Field(gt=0)]
Whole = Annotated[int, Field(strict=True)]
Flag = Annotated[bool, Field(strict=True)]
Text = Annotated[str, BeforeValidator(_non_blank)]
SecretText = Text  # never echoed in an error or a repr (see _SECRET_KEYS and repr=False)
HttpUrl = _url("http://", "https://")
WebSocketUrl = _url("ws://", "wss://")
TimeOfDay = Annotated[time | None, BeforeValidator(_time_of_day)]


class ConfigSection(BaseModel):
    """A table of the config file: frozen, and an unknown key is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _default_of(model: type[BaseModel], name: str) -> Any:
    return model.model_fields[name].get_default(call_default_factory=True)


# --------------------------------------------------------------------------- sections


class _ServiceWithKey(ConfigSection):
    """A section holding an API key: from the file, else from the environment variable it names."""

    @model_validator(mode="before")
    @classmethod
    def _key_from_environment(cls, data: Any, info: ValidationInfo) -> Any:
        env = (info.context or {}).get("env")
        if env is None or not isinstance(data, dict) or data.get("api_key") is not None:
            return data
        name = data.get("api_key_env", _default_of(cls, "api_key_env"))
        value = env.get(name, "").strip() if isinstance(name, str) else ""
        return {**data, "api_key": value} if value else data

    @property
    def configured(self) -> bool:
        """False when no API key is known."""
        return bool(getattr(self, "api_key", None))


class OpenAlgoConfig(_ServiceWithKey):
    """``[openalgo]``: the OpenAlgo server.  Without a key the app runs on the demo simulator."""

    host: HttpUrl = "http://127.0.0.1:5000"  # REST base URL
    ws_url: WebSocketUrl = "ws://127.0.0.1:8765"
    api_key: SecretText | None = Field(default=None, repr=False)
    api_key_env: Text = "OPENALGO_API_KEY"
    timeout_seconds: Annotated[PositiveNumber, Field(le=300)] = 10.0


def _path_from_config_folder(value: object, info: ValidationInfo) -> Path:
    """A path given in the file: ``~`` expanded, relative to the config file's folder."""
    _non_blank(value)
    path = Path(str(value)).expanduser()
    base = (info.context or {}).get("base_dir") or Path.cwd()
    return path if path.is_absolute() else base / path


class DatabaseConfig(ConfigSection):
    """``[database]``: where state and backups live."""

    path: Path = Field(default_factory=lambda: platformdirs.user_data_path(APP_NAME) / "tmtool.db")
    backup_dir: Path = Field(default_factory=lambda: platformdirs.user_data_path(APP_NAME) / "backups")
    backups_to_keep: Annotated[Whole, Field(ge=0)] = 7

    _paths = field_validator("path", "backup_dir", mode="before")(_path_from_config_folder)


class RecordingConfig(ConfigSection):
    """``[recording]``: every tick the engine evaluates, kept per trading day for ``tmtool replay``."""

    enabled: Flag = True
    retention_days: Annotated[Whole, Field(ge=1)] = 30
    # Default: a folder beside the database named after it ("tmtool-ticks" for tmtool.db).
    folder: Path | None = None

    _paths = field_validator("folder", mode="before")(_path_from_config_folder)

    def folder_for(self, database: Path) -> Path:
        """Where the ticks of ``database``'s sessions are kept."""
        if self.folder is not None:
            return self.folder
        return Path(database).with_name(f"{Path(database).stem}-ticks")


class ApiConfig(_ServiceWithKey):
    """``[api]``: the control API (off unless enabled; enabled needs a key)."""

    enabled: Flag = False
    host: Text = "127.0.0.1"
    allow_remote: Flag = False  # a host beyond loopback is refused unless this says it is meant
    port: Annotated[Whole, Field(ge=1, le=65535)] = 5080
    api_key: SecretText | None = Field(default=None, repr=False)
    api_key_env: Text = "TMTOOL_API_KEY"
    requests_per_minute: Annotated[Whole, Field(ge=1)] = 120


class FeedConfig(ConfigSection):
    """``[feed]``: market data health and the tick sanity band."""

    stale_after_seconds: PositiveNumber = 5.0
    poll_after_seconds: Annotated[Number, Field(ge=0)] = 1.0  # WebSocket down longer: poll every symbol's quote over REST
    poll_interval_seconds: PositiveNumber = 1.0
    poll_silent_after_seconds: PositiveNumber = 2.5  # a symbol without a WebSocket tick this long is polled, socket up or not
    poll_near_level_after_seconds: PositiveNumber = 2.0  # ... for a symbol the engine marks near a stop or target
    reconnect_max_backoff_seconds: PositiveNumber = 30.0
    tick_band_percent: TickBandPercent = engine_default("tick_band_percent")
    confirm_ticks: ConfirmTicks = engine_default("tick_confirm")


class InstrumentOverride(ConfigSection):
    """``[engine.instruments."EXCHANGE:SYMBOL"]``: what to use instead of what OpenAlgo reports."""

    tick_size: PositiveNumber | None = None
    lot_size: Annotated[Whole, Field(ge=1)] | None = None
    freeze_quantity: Annotated[Whole, Field(ge=1)] | None = None


def _with_default_freeze_quantities(configured: dict[str, int]) -> Mapping[str, int]:
    return MappingProxyType({**DEFAULT_FREEZE_QUANTITIES, **configured})


class EngineConfig(ConfigSection):
    """``[engine]``: how the engine runs (defaults are the engine's own)."""

    snapshot_hz: SnapshotRate = engine_default("snapshot_hz")
    reconcile_interval_seconds: PositiveSeconds = engine_default("reconcile_interval")
    exit_max_attempts: PositiveCount = engine_default("exit_max_attempts")
    exit_retry_backoff_seconds: PositiveSeconds = engine_default("exit_retry_backoff")
    order_status_poll_seconds: PositiveSeconds = engine_default("order_status_poll")
    absence_grace_seconds: PositiveSeconds = engine_default("absence_grace")
    unknown_alert_after_seconds: PositiveSeconds = engine_default("unknown_alert_after")
    broker_time_zone: TimeZoneName = engine_default("broker_time_zone")
    # share of an F&O position's notional counted as its margin when OpenAlgo has no margin calculator
    fno_margin_percent: MarginPercent = engine_default("fno_margin_percent")
    # symbol prefix -> freeze quantity (F&O exchanges only); merged over the built-in ones
    freeze_quantities: Annotated[
        dict[Annotated[str, AfterValidator(_symbol_prefix)], PositiveCount],
        AfterValidator(_with_default_freeze_quantities),
    ] = Field(default_factory=lambda: DEFAULT_FREEZE_QUANTITIES)
    # "EXCHANGE:SYMBOL" -> tick/lot/freeze overrides
    instruments: Annotated[
        dict[Annotated[str, AfterValidator(_instrument_key)], InstrumentOverride], AfterValidator(MappingProxyType)
    ] = Field(default_factory=lambda: MappingProxyType({}))

    def freeze_quantity(self, exchange: str, symbol: str) -> int | None:
        """The freeze quantity for an F&O symbol by its longest matching prefix (None elsewhere)."""
        override = self.instruments.get(f"{exchange}:{symbol}")
        if override is not None and override.freeze_quantity is not None:
            return override.freeze_quantity
        if exchange not in FREEZE_EXCHANGES:
            return None
        best = None
        for prefix, quantity in self.freeze_quantities.items():
            if symbol.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
                best = (prefix, quantity)
        return best[1] if best else None

    def apply(self, instrument: Instrument) -> Instrument:
        """``instrument`` with this config's tick/lot/freeze overrides applied."""
        override = self.instruments.get(f"{instrument.exchange}:{instrument.symbol}")
        tick_size = instrument.tick_size
        lot_size = instrument.lot_size
        if override is not None:
            tick_size = override.tick_size if override.tick_size is not None else tick_size
            lot_size = override.lot_size if override.lot_size is not None else lot_size
        freeze = (override.freeze_quantity if override is not None else None) or instrument.freeze_quantity
        if freeze is None:
            freeze = self.freeze_quantity(instrument.exchange, instrument.symbol)
        return Instrument(instrument.symbol, instrument.exchange, tick_size, lot_size, freeze)


class AccountConfig(ConfigSection):
    """``[account]``: account-wide limits in rupees of today's P&L (leave out = off)."""

    daily_loss_limit: PositiveNumber | None = None
    daily_profit_target: PositiveNumber | None = None

    def limits(self) -> AccountLimits:
        return AccountLimits(self.daily_loss_limit, self.daily_profit_target)


class MarketConfig(ConfigSection):
    """``[market]``: the exchange holidays the status bar shows as HOLIDAY (dates, Asia/Kolkata)."""

    holidays: list[date] = []


class LogConfig(ConfigSection):
    """``[log]``: the rotating log file."""

    file: Path = Field(default_factory=lambda: platformdirs.user_log_path(APP_NAME) / "tmtool.log")
    level: one_of(*LOG_LEVELS) = "INFO"
    max_bytes: Annotated[Whole, Field(ge=1024)] = 5_000_000
    backups: Annotated[Whole, Field(ge=0)] = 5

    _paths = field_validator("file", mode="before")(_path_from_config_folder)


# --------------------------------------------------------------------------- strategies

_STRATEGY = Strategy(name=MANUAL_STRATEGY)  # the domain's defaults for a strategy
_MAX_PERCENT_DISTANCE = 99.999


def _bare_number_is_value(data: Any) -> Any:
    """A bare number stands for ``{value = number}`` (the default mode)."""
    return data if isinstance(data, dict) else {"value": data}


class DistanceConfig(ConfigSection):
    """A per-trade distance: a bare number of points, or ``{value = 1.0, mode = "PERCENT"}``."""

    mode: one_of(*DistanceMode.__members__) = DistanceMode.POINTS.value
    value: PositiveNumber

    _bare = model_validator(mode="before")(_bare_number_is_value)

    @field_validator("value")
    @classmethod
    def _percent_below_100(cls, value: float, info: ValidationInfo) -> float:
        if info.data.get("mode") == DistanceMode.PERCENT.value and value > _MAX_PERCENT_DISTANCE:
            raise refusal(f"must be at most {_MAX_PERCENT_DISTANCE:g} for mode PERCENT")
        return value

    def distance(self) -> Distance:
        return Distance(self.value, DistanceMode(self.mode))


class AmountConfig(ConfigSection):
    """A portfolio amount: bare rupees, or ``{value = 5, mode = "PERCENT"}`` of allocated funds."""

    mode: one_of(*AmountMode.__members__) = AmountMode.AMOUNT.value
    value: PositiveNumber

    _bare = model_validator(mode="before")(_bare_number_is_value)

    def amount(self) -> Amount:
        return Amount(self.value, AmountMode(self.mode))


def _distance(config: DistanceConfig | None) -> Distance | None:
    return None if config is None else config.distance()


def _amount(config: AmountConfig | None) -> Amount | None:
    return None if config is None else config.amount()


class TrailingConfig(ConfigSection):
    distance: DistanceConfig
    activation: DistanceConfig | None = None
    step_trigger: DistanceConfig | None = None
    step_move: DistanceConfig | None = None

    def settings(self) -> TrailingSettings:
        return TrailingSettings(
            self.distance.distance(), _distance(self.activation), _distance(self.step_trigger), _distance(self.step_move)
        )


class PartialTargetConfig(ConfigSection):
    distance: DistanceConfig
    fraction: Annotated[Number, Field(gt=0, lt=1)]

    def target(self) -> PartialTarget:
        return PartialTarget(self.distance.distance(), self.fraction)


class PortfolioConfig(ConfigSection):
    stop_loss: AmountConfig | None = None
    target: AmountConfig | None = None
    trailing_activation: AmountConfig | None = None
    trailing_distance: AmountConfig | None = None
    daily_loss_limit: AmountConfig | None = None

    def risk(self) -> PortfolioRisk:
        return PortfolioRisk(
            _amount(self.stop_loss), _amount(self.target), _amount(self.trailing_activation),
            _amount(self.trailing_distance), _amount(self.daily_loss_limit),
        )


class SizingConfig(ConfigSection):
    mode: one_of(*SizingMode.__members__) = _STRATEGY.sizing.mode.value
    value: PositiveNumber = _STRATEGY.sizing.value

    def sizing(self) -> Sizing:
        return Sizing(SizingMode(self.mode), self.value)


class ExitOrderConfig(ConfigSection):
    price_type: one_of(*PriceType.__members__) = _STRATEGY.exit_order.price_type.value
    protection_percent: Annotated[Number, Field(ge=0, le=19.99)] = _STRATEGY.exit_order.protection_percent
    reprice_after_seconds: PositiveNumber = _STRATEGY.exit_order.reprice_after_seconds
    max_reprices: Annotated[Whole, Field(ge=0)] = _STRATEGY.exit_order.max_reprices

    def settings(self) -> ExitOrderSettings:
        return ExitOrderSettings(PriceType(self.price_type), self.protection_percent, self.reprice_after_seconds,
                                 self.max_reprices)


class StrategyConfig(ConfigSection):
    """One ``[[strategies]]`` table (see config.example.toml); defaults are the domain's."""

    name: Text
    product: one_of(*Product.__members__) = _STRATEGY.product.value
    exchange: one_of(*sorted(EXCHANGES)) = _STRATEGY.exchange
    allocated_funds: Annotated[Number, Field(ge=0)] = _STRATEGY.allocated_funds
    max_open_positions: Annotated[Whole, Field(ge=1)] | None = None
    max_trades_per_day: Annotated[Whole, Field(ge=1)] | None = None
    square_off_time: TimeOfDay = None
    adopt_fills: Flag = _STRATEGY.adopt_fills
    stop_loss: DistanceConfig | None = None
    target: DistanceConfig | None = None
    breakeven_after: DistanceConfig | None = None
    trailing: TrailingConfig | None = None
    partial_targets: list[PartialTargetConfig] = []
    portfolio: PortfolioConfig = PortfolioConfig()
    sizing: SizingConfig = SizingConfig()
    exit_order: ExitOrderConfig = ExitOrderConfig()

    def strategy(self) -> Strategy:
        return Strategy(
            name=self.name,
            trade_risk=TradeRisk(
                stop_loss=_distance(self.stop_loss),
                target=_distance(self.target),
                trailing=None if self.trailing is None else self.trailing.settings(),
                breakeven_after=_distance(self.breakeven_after),
                partial_targets=tuple(p.target() for p in self.partial_targets),
            ),
            portfolio=self.portfolio.risk(),
            allocated_funds=float(self.allocated_funds),
            sizing=self.sizing.sizing(),
            max_open_positions=self.max_open_positions,
            max_trades_per_day=self.max_trades_per_day,
            square_off_time=self.square_off_time,
            exit_order=self.exit_order.settings(),
            product=Product(self.product),
            exchange=self.exchange,
            adopt_fills=self.adopt_fills,
        )


class ConfigFile(ConfigSection):
    """The whole file.  ``[alerts]`` is kept as a raw table and parsed by ``tmtool.alerts.config``."""

    openalgo: OpenAlgoConfig = Field(default_factory=dict, validate_default=True)
    database: DatabaseConfig = Field(default_factory=dict, validate_default=True)
    api: ApiConfig = Field(default_factory=dict, validate_default=True)
    feed: FeedConfig = Field(default_factory=dict, validate_default=True)
    engine: EngineConfig = Field(default_factory=dict, validate_default=True)
    account: AccountConfig = Field(default_factory=dict, validate_default=True)
    log: LogConfig = Field(default_factory=dict, validate_default=True)
    market: MarketConfig = Field(default_factory=dict, validate_default=True)
    recording: RecordingConfig = Field(default_factory=dict, validate_default=True)
    alerts: dict[str, Any] = {}
    strategies: list[StrategyConfig] = []


@dataclass(frozen=True)
class Config:
    """The validated configuration the app runs on."""

    openalgo: OpenAlgoConfig
    database: DatabaseConfig
    api: ApiConfig
    feed: FeedConfig
    engine: EngineConfig
    account: AccountLimits
    log: LogConfig
    strategies: tuple[Strategy, ...]
    alerts_table: dict = field(default_factory=dict)  # raw [alerts]; parsed by tmtool.alerts.config
    market_holidays: frozenset[date] = frozenset()  # [market] holidays
    source_path: Path | None = None  # the file read, None when running on defaults
    warnings: tuple[str, ...] = ()  # things worth telling the user that are not errors
    recording: RecordingConfig = field(default_factory=RecordingConfig)

    def strategy(self, name: str) -> Strategy | None:
        for strategy in self.strategies:
            if strategy.name == name:
                return strategy
        return None


# --------------------------------------------------------------------------- errors

_MISSING = object()
_NUMBER_ERRORS = frozenset({
    "int_type", "int_from_float", "int_parsing", "float_type", "float_parsing", "finite_number",
    "greater_than", "greater_than_equal", "less_than", "less_than_equal",
})


def _dotted(parent: str, name: str) -> str:
    if not name.replace("_", "").isalnum():
        name = f'"{name}"'
    return f"{parent}.{name}" if parent else name


def _dotted_key(prefix: str, loc: tuple[Any, ...]) -> str:
    key = prefix
    for part in loc:
        key = f"{key}[{part}]" if isinstance(part, int) else _dotted(key, str(part))
    return key


def _describe(value: object) -> str:
    return repr(value) if not isinstance(value, dict) else "a table"


def _raw_at(data: object, loc: tuple[Any, ...]) -> object:
    for part in loc:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return _MISSING
    return data


def _unwrap(annotation: Any) -> tuple[Any, list[Any]]:
    """The bare type under ``Annotated`` and ``X | None``, and the metadata met on the way."""
    metadata: list[Any] = []
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            metadata.extend(annotation.__metadata__)
            annotation = get_args(annotation)[0]
        elif origin in (Union, UnionType):
            annotation = next(arg for arg in get_args(annotation) if arg is not NoneType)
        else:
            return annotation, metadata


def _annotation_at(root: type[BaseModel], loc: tuple[Any, ...], dict_key: bool = False) -> Any:
    """The declared type at ``loc`` under ``root`` (None when the path leaves the models)."""
    annotation: Any = root
    for index, part in enumerate(loc):
        base, _ = _unwrap(annotation)
        origin = get_origin(base)
        if isinstance(base, type) and issubclass(base, BaseModel):
            info = next((f for name, f in base.model_fields.items() if part in (name, f.alias)), None)
            if info is None:
                return None
            annotation = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        elif origin is list and isinstance(part, int):
            annotation = get_args(base)[0]
        elif origin is dict:
            last = index == len(loc) - 1
            annotation = get_args(base)[0 if (last and dict_key) else 1]
        else:
            return None
    return annotation


def _bounds(metadata: list[Any]) -> dict[str, float]:
    bounds: dict[str, float] = {}
    for item in metadata:
        for constraint in item.metadata if isinstance(item, FieldInfo) else [item]:
            for name in ("gt", "ge", "lt", "le"):
                value = getattr(constraint, name, None)
                if value is not None:
                    bounds[name] = value
    return bounds


def _number_text(annotation: Any, finite: bool) -> str:
    base, metadata = _unwrap(annotation) if annotation is not None else (float, [])
    kind = "a whole number" if base is int else ("a finite number" if finite else "a number")
    bounds = _bounds(metadata)
    if "gt" in bounds and "lt" in bounds:
        return f"{kind} between {bounds['gt']:g} and {bounds['lt']:g}"
    words = {"gt": "greater than", "ge": "at least", "lt": "less than", "le": "at most"}
    parts = [f"{words[name]} {bounds[name]:g}" for name in ("gt", "ge", "lt", "le") if name in bounds]
    return " ".join([kind, " and ".join(parts)]) if parts else kind


def _config_error(error: Mapping[str, Any], data: object, root: type[BaseModel], prefix: str = "") -> ConfigError:
    """tmtool's message for one pydantic error: the dotted key, the value, and what is allowed."""
    dict_key = "[key]" in error["loc"]
    loc = declared = tuple(part for part in error["loc"] if part != "[key]")
    kind = error["type"]
    if loc and loc[-1] == "value" and _raw_at(data, loc[:-1]) is not _MISSING:
        if not isinstance(_raw_at(data, loc[:-1]), dict):  # a bare number standing for {value = ...}
            loc = loc[:-1]
    key = _dotted_key(prefix, loc)
    if kind == "missing":
        return ConfigError(key, "is required")
    if kind == "extra_forbidden":
        holder, _ = _unwrap(_annotation_at(root, loc[:-1]))
        allowed = ", ".join(sorted(table_keys(holder))) if isinstance(holder, type) else "none"
        return ConfigError(key, f"unknown key (allowed here: {allowed})")
    raw = loc[-1] if dict_key and loc else _raw_at(data, loc)
    value = error.get("input") if raw is _MISSING else raw
    annotation = _annotation_at(root, declared, dict_key)
    if kind == "config":
        allowed = error["ctx"]["reason"]
    elif kind in _NUMBER_ERRORS:
        allowed = "must be " + _number_text(annotation, finite=kind in ("finite_number", "float_type"))
    elif kind in ("bool_type", "bool_parsing"):
        allowed = "must be true or false"
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        allowed = "must be a table"
    elif kind == "list_type":
        item, _ = _unwrap(get_args(_unwrap(annotation)[0])[0]) if annotation is not None else (None, [])
        tables = isinstance(item, type) and issubclass(item, BaseModel)
        allowed = "must be an array of tables" + (" ([[strategies]])" if key == "strategies" else "") if tables \
            else "must be an array"
    elif kind == "string_type":
        allowed = "must be a non-empty text"
    elif kind == "too_short":
        allowed = "must be a non-empty list"
    else:
        allowed = error["msg"]
    if kind == "config" and raw is _MISSING:  # a key left out that another key makes necessary
        return ConfigError(key, allowed)
    if any(part in _SECRET_KEYS for part in loc):
        return ConfigError(key, f"is not allowed: {allowed} (value not shown)")
    return ConfigError(key, f"{_describe(value)} is not allowed: {allowed}")


def table_keys(model: type[BaseModel]) -> list[str]:
    """The keys a table of ``model`` accepts, as written in the file."""
    return [info.alias or name for name, info in model.model_fields.items()]


def validate_table(model: type[BaseModel], data: object, context: Mapping[str, Any], prefix: str = "") -> Any:
    """``data`` validated as ``model``; the first error raised as a ``ConfigError`` keyed under ``prefix``."""
    try:
        return model.model_validate(data, context=dict(context))
    except ValidationError as exc:
        raise _config_error(exc.errors()[0], data, model, prefix) from None


# --------------------------------------------------------------------------- building the Config


def strategy_from_table(raw: Mapping[str, Any], key: str = "strategy") -> Strategy:
    """A ``Strategy`` from its TOML table (see config.example.toml); raises ConfigError."""
    if not isinstance(raw, Mapping):
        raise ConfigError(key, f"{_describe(raw)} is not allowed: each strategy must be a table")
    return _strategy(validate_table(StrategyConfig, dict(raw), {}, key), key)


def _strategy(config: StrategyConfig, key: str) -> Strategy:
    strategy = config.strategy()
    denial = validate_strategy(strategy)
    if denial is not None:
        raise ConfigError(key, denial.message)
    return strategy


def _strategies(configs: list[StrategyConfig]) -> tuple[Strategy, ...]:
    strategies: list[Strategy] = []
    seen: set[str] = set()
    for index, item in enumerate(configs):
        key = f"strategies[{index}]"
        strategy = _strategy(item, key)
        if strategy.name in seen:
            raise ConfigError(f"{key}.name", f"{strategy.name!r} is not allowed: another strategy has this name")
        seen.add(strategy.name)
        strategies.append(strategy)
    if MANUAL_STRATEGY not in seen:
        strategies.append(Strategy(name=MANUAL_STRATEGY))
    return tuple(strategies)


def parse_config(
    data: Mapping[str, Any], env: Mapping[str, str] | None = None, source_path: Path | None = None,
    base_dir: Path | None = None,
) -> Config:
    """Validate parsed TOML into a ``Config``.  Relative paths are taken from ``base_dir``
    (the config file's folder; the working folder when None)."""
    env = os.environ if env is None else env
    base = base_dir if base_dir is not None else Path.cwd()
    file = validate_table(ConfigFile, dict(data), {"env": env, "base_dir": base})
    if file.api.enabled and not file.api.configured:
        raise ConfigError(
            "api.api_key",
            f"the control API is enabled but has no key: set api.api_key or the environment variable {file.api.api_key_env}",
        )
    return Config(
        openalgo=file.openalgo,
        database=file.database,
        api=file.api,
        feed=file.feed,
        engine=file.engine,
        account=file.account.limits(),
        log=file.log,
        strategies=_strategies(file.strategies),
        alerts_table=dict(file.alerts),
        market_holidays=frozenset(file.market.holidays),
        source_path=source_path,
        warnings=_api_warnings(file.api) + _file_warnings(data, source_path),
        recording=file.recording,
    )


def _api_warnings(api: ApiConfig) -> tuple[str, ...]:
    if api.enabled and api.host not in LOOPBACK_HOSTS:
        return (f"the control API listens on {api.host}, reachable from other machines; 127.0.0.1 keeps it local",)
    return ()


def _file_warnings(data: Mapping[str, Any], source_path: Path | None) -> tuple[str, ...]:
    if source_path is None:
        return ()
    holds_secret = any(
        isinstance(data.get(section), dict) and "api_key" in data[section] for section in ("openalgo", "api")
    )
    try:
        mode = stat.S_IMODE(source_path.stat().st_mode)
    except OSError:
        return ()
    if holds_secret and mode & 0o077:
        return (
            f"{source_path} holds an API key and is readable by other users (mode {mode:04o}); "
            f"run: chmod 600 {source_path}",
        )
    return ()


def _plain_data(value: Any) -> Any:
    """Domain values as TOML values: enums by name, times as "HH:MM", unset (None) options left out."""
    if isinstance(value, dict):
        return {key: _plain_data(item) for key, item in value.items() if item is not None}
    if isinstance(value, (list, tuple)):
        return [_plain_data(item) for item in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, time):
        return value.strftime("%H:%M:%S" if value.second else "%H:%M")
    return value


def strategy_to_table(strategy: Strategy) -> dict[str, Any]:
    """The TOML table of a strategy (unset options left out); inverse of ``strategy_from_table``.

    The domain's field names are the file's keys; the per-trade risk sits at the top of the table.
    """
    table = _plain_data(dataclasses.asdict(strategy))
    table.update(table.pop("trade_risk"))
    return {key: table[key] for key in table_keys(StrategyConfig) if table.get(key) not in (None, {}, [])}


# --------------------------------------------------------------------------- finding and loading


def find_config_path(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user_config_dir: Path | None = None,
) -> Path | None:
    """The config file to read: ``path`` > env TMTOOL_CONFIG > ./tmtool.toml > user config dir; None = defaults.

    A file named explicitly (argument or environment) must exist.
    """
    env = os.environ if env is None else env
    if path is not None:
        chosen = Path(path).expanduser()
        if not chosen.is_file():
            raise ConfigError("--config", f"file {str(chosen)!r} does not exist")
        return chosen
    named = env.get(CONFIG_ENV)
    if named:
        chosen = Path(named).expanduser()
        if not chosen.is_file():
            raise ConfigError(CONFIG_ENV, f"file {str(chosen)!r} named by the environment variable does not exist")
        return chosen
    local = (cwd if cwd is not None else Path.cwd()) / CONFIG_FILE_NAME
    if local.is_file():
        return local
    user_dir = user_config_dir if user_config_dir is not None else platformdirs.user_config_path(APP_NAME)
    user_file = user_dir / CONFIG_FILE_NAME
    if user_file.is_file():
        return user_file
    return None


def read_toml(path: Path) -> dict[str, Any]:
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise ConfigError(str(path), f"cannot be read: {exc.strerror or exc}") from None
    try:
        return tomllib.loads(content.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(str(path), "is not valid TOML: the file is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"is not valid TOML: {exc}") from None


def load_config(
    path: str | Path | None = None,
    env: Mapping[str, str] = os.environ,
    *,
    cwd: Path | None = None,
    user_config_dir: Path | None = None,
) -> Config:
    """Find, read and validate the configuration (see ``find_config_path``); raises ConfigError."""
    source = find_config_path(path, env, cwd, user_config_dir)
    if source is None:
        return parse_config({}, env, None, cwd)
    return parse_config(read_toml(source), env, source, source.resolve().parent)
