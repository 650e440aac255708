"""tmtool configuration (TOML).  See config.example.toml for every key.

``load_config(path, env)`` finds the file (``--config`` > env ``TMTOOL_CONFIG``
> ``./tmtool.toml`` > the user config dir > built-in defaults), parses it with
``tomllib`` and validates it strictly into frozen dataclasses: an unknown key or
a bad value raises ``ConfigError`` naming the dotted key, the value and what is
allowed.  Secrets (API keys) are read from the file or from the environment
variable it names and never appear in a repr.

``save_strategy`` / ``remove_strategy`` rewrite one ``[[strategies]]`` table and
keep every other setting of the file (comments are not kept: the file is
re-written from its parsed content).  Writes are atomic (temp file + rename)
and keep the file's mode; a new file is created with mode 0600.
"""

from __future__ import annotations

import math
import os
import stat
import tempfile
import tomllib
from dataclasses import dataclass, field, replace
from datetime import time
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import platformdirs
import tomli_w

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

APP_NAME = "tmtool"
CONFIG_FILE_NAME = "tmtool.toml"
CONFIG_ENV = "TMTOOL_CONFIG"
DEFAULT_FREEZE_QUANTITIES = MappingProxyType({"NIFTY": 1800, "BANKNIFTY": 900, "FINNIFTY": 1800, "SENSEX": 1000})
FREEZE_EXCHANGES = frozenset({"NFO", "BFO"})  # where the symbol-prefix freeze quantities apply
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MAX_SNAPSHOT_HZ = 10.0
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class ConfigError(ValueError):
    """A config key is missing, unknown or invalid.  ``key`` is the dotted path."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"config key '{key}': {message}")
        self.key = key
        self.reason = message


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class OpenAlgoConfig:
    host: str = "http://127.0.0.1:5000"  # REST base URL
    ws_url: str = "ws://127.0.0.1:8765"
    api_key: str | None = field(default=None, repr=False)
    api_key_env: str = "OPENALGO_API_KEY"
    timeout_seconds: float = 10.0

    @property
    def configured(self) -> bool:
        """False when no API key is known: the app then runs on the demo simulator."""
        return bool(self.api_key)


@dataclass(frozen=True)
class DatabaseConfig:
    path: Path
    backup_dir: Path
    backups_to_keep: int = 7


@dataclass(frozen=True)
class ApiConfig:
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 5080
    api_key: str | None = field(default=None, repr=False)
    api_key_env: str = "TMTOOL_API_KEY"
    requests_per_minute: int = 120

    @property
    def configured(self) -> bool:
        return bool(self.api_key)


@dataclass(frozen=True)
class FeedConfig:
    stale_after_seconds: float = 5.0
    poll_after_seconds: float = 1.0  # WebSocket down longer than this: poll every symbol's quote over REST
    poll_interval_seconds: float = 1.0
    poll_silent_after_seconds: float = 2.5  # a symbol without a WebSocket tick this long is polled, socket up or not
    poll_near_level_after_seconds: float = 2.0  # ... for a symbol the engine marks near a stop or target
    reconnect_max_backoff_seconds: float = 30.0
    tick_band_percent: float = 10.0
    confirm_ticks: int = 2


@dataclass(frozen=True)
class InstrumentOverride:
    tick_size: float | None = None
    lot_size: int | None = None
    freeze_quantity: int | None = None


@dataclass(frozen=True)
class EngineConfig:
    snapshot_hz: float = 10.0
    reconcile_interval_seconds: float = 30.0
    exit_max_attempts: int = 5
    exit_retry_backoff_seconds: float = 1.0
    order_status_poll_seconds: float = 0.5
    # symbol prefix -> freeze quantity (F&O exchanges only)
    freeze_quantities: Mapping[str, int] = field(default_factory=lambda: DEFAULT_FREEZE_QUANTITIES)
    # (exchange, symbol) -> tick/lot/freeze overrides
    instruments: Mapping[tuple[str, str], InstrumentOverride] = field(default_factory=lambda: MappingProxyType({}))

    def freeze_quantity(self, exchange: str, symbol: str) -> int | None:
        """The freeze quantity for an F&O symbol by its longest matching prefix (None elsewhere)."""
        override = self.instruments.get((exchange, symbol))
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
        override = self.instruments.get(instrument.key)
        tick_size = instrument.tick_size
        lot_size = instrument.lot_size
        if override is not None:
            tick_size = override.tick_size if override.tick_size is not None else tick_size
            lot_size = override.lot_size if override.lot_size is not None else lot_size
        freeze = (override.freeze_quantity if override is not None else None) or instrument.freeze_quantity
        if freeze is None:
            freeze = self.freeze_quantity(instrument.exchange, instrument.symbol)
        return Instrument(instrument.symbol, instrument.exchange, tick_size, lot_size, freeze)


@dataclass(frozen=True)
class LogConfig:
    file: Path
    level: str = "INFO"
    max_bytes: int = 5_000_000
    backups: int = 5


@dataclass(frozen=True)
class Config:
    openalgo: OpenAlgoConfig
    database: DatabaseConfig
    api: ApiConfig
    feed: FeedConfig
    engine: EngineConfig
    account: AccountLimits
    log: LogConfig
    strategies: tuple[Strategy, ...]
    alerts_table: dict = field(default_factory=dict)  # raw [alerts]; parsed by tmtool.alerts.config
    source_path: Path | None = None  # the file read, None when running on defaults
    warnings: tuple[str, ...] = ()  # things worth telling the user that are not errors

    def strategy(self, name: str) -> Strategy | None:
        for strategy in self.strategies:
            if strategy.name == name:
                return strategy
        return None


# --------------------------------------------------------------------------- reading tables

_MISSING = object()


def _dotted(parent: str, name: str) -> str:
    if not name.replace("_", "").isalnum():
        name = f'"{name}"'
    return f"{parent}.{name}" if parent else name


def _describe(value: object) -> str:
    return repr(value) if not isinstance(value, dict) else "a table"


class _Table:
    """One TOML table being read: remembers which keys were used to refuse the rest."""

    def __init__(self, data: object, key: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(key, f"{_describe(data)} is not allowed: must be a table")
        self.data = data
        self.key = key
        self.used: set[str] = set()

    def child_key(self, name: str) -> str:
        return _dotted(self.key, name)

    def get(self, name: str, default: Any = _MISSING) -> Any:
        self.used.add(name)
        if name in self.data:
            return self.data[name]
        if default is _MISSING:
            raise ConfigError(self.child_key(name), "is required")
        return default

    def table(self, name: str) -> "_Table":
        return _Table(self.get(name, {}), self.child_key(name))

    def text(self, name: str, default: Any = _MISSING, allow_empty: bool = False) -> Any:
        value = self.get(name, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, str) or (not allow_empty and not value.strip()):
            raise ConfigError(self.child_key(name), f"{_describe(value)} is not allowed: must be a non-empty text")
        return value

    def number(
        self, name: str, default: Any = _MISSING, minimum: float | None = None, above: float | None = None,
        maximum: float | None = None,
    ) -> Any:
        value = self.get(name, default)
        if value is default and default is not _MISSING:
            return value
        return _check_number(value, self.child_key(name), minimum, above, maximum)

    def integer(self, name: str, default: Any = _MISSING, minimum: int | None = None, maximum: int | None = None) -> Any:
        value = self.get(name, default)
        if value is default and default is not _MISSING:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(self.child_key(name), f"{_describe(value)} is not allowed: must be a whole number")
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            allowed = _range_text(minimum, None, maximum)
            raise ConfigError(self.child_key(name), f"{value!r} is not allowed: must be {allowed}")
        return value

    def boolean(self, name: str, default: Any = _MISSING) -> Any:
        value = self.get(name, default)
        if not isinstance(value, bool):
            raise ConfigError(self.child_key(name), f"{_describe(value)} is not allowed: must be true or false")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: Any = _MISSING) -> Any:
        value = self.get(name, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, str) or value.upper() not in choices:
            raise ConfigError(self.child_key(name), f"{_describe(value)} is not allowed: must be one of {', '.join(choices)}")
        return value.upper()

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            allowed = ", ".join(sorted(self.used)) or "none"
            raise ConfigError(self.child_key(unknown[0]), f"unknown key (allowed here: {allowed})")


def _range_text(minimum: float | None, above: float | None, maximum: float | None) -> str:
    parts = []
    if above is not None:
        parts.append(f"greater than {above:g}")
    if minimum is not None:
        parts.append(f"at least {minimum:g}")
    if maximum is not None:
        parts.append(f"at most {maximum:g}")
    return "a number " + " and ".join(parts) if parts else "a number"


def _check_number(
    value: object, key: str, minimum: float | None = None, above: float | None = None, maximum: float | None = None
) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(key, f"{_describe(value)} is not allowed: must be a finite number")
    if (
        (minimum is not None and value < minimum)
        or (above is not None and value <= above)
        or (maximum is not None and value > maximum)
    ):
        raise ConfigError(key, f"{value!r} is not allowed: must be {_range_text(minimum, above, maximum)}")
    return float(value)


# --------------------------------------------------------------------------- strategies


def _distance(parent: _Table, name: str) -> Distance | None:
    raw = parent.get(name, None)
    return None if raw is None else _distance_value(raw, parent.child_key(name))


def _distance_value(raw: object, key: str) -> Distance:
    """A distance: a bare number of points, or ``{value = 1.0, mode = "PERCENT"}``."""
    if not isinstance(raw, dict):
        return Distance(_check_number(raw, key, above=0))
    table = _Table(raw, key)
    mode = DistanceMode(table.choice("mode", tuple(DistanceMode.__members__), "POINTS"))
    maximum = 99.999 if mode is DistanceMode.PERCENT else None
    value = table.number("value", above=0, maximum=maximum)
    table.finish()
    return Distance(value, mode)


def _amount(parent: _Table, name: str) -> Amount | None:
    raw = parent.get(name, None)
    if raw is None:
        return None
    key = parent.child_key(name)
    if not isinstance(raw, dict):
        return Amount(_check_number(raw, key, above=0))
    table = _Table(raw, key)
    mode = AmountMode(table.choice("mode", tuple(AmountMode.__members__), "AMOUNT"))
    value = table.number("value", above=0)
    table.finish()
    return Amount(value, mode)


def _trailing(parent: _Table) -> TrailingSettings | None:
    if parent.get("trailing", None) is None:
        return None
    table = parent.table("trailing")
    settings = TrailingSettings(
        distance=_distance_value(table.get("distance"), table.child_key("distance")),
        activation=_distance(table, "activation"),
        step_trigger=_distance(table, "step_trigger"),
        step_move=_distance(table, "step_move"),
    )
    table.finish()
    return settings


def _partials(parent: _Table) -> tuple[PartialTarget, ...]:
    raw = parent.get("partial_targets", [])
    key = parent.child_key("partial_targets")
    if not isinstance(raw, list):
        raise ConfigError(key, f"{_describe(raw)} is not allowed: must be an array of {{distance, fraction}} tables")
    partials = []
    for index, item in enumerate(raw):
        table = _Table(item, f"{key}[{index}]")
        distance = _distance_value(table.get("distance"), table.child_key("distance"))
        fraction = table.number("fraction", above=0)
        if fraction >= 1:
            raise ConfigError(table.child_key("fraction"), f"{fraction!r} is not allowed: must be between 0 and 1")
        table.finish()
        partials.append(PartialTarget(distance, fraction))
    return tuple(partials)


def _square_off(table: _Table) -> time | None:
    raw = table.get("square_off_time", None)
    key = table.child_key("square_off_time")
    if raw is None or isinstance(raw, time):
        return raw
    if isinstance(raw, str):
        try:
            return time.fromisoformat(raw)
        except ValueError:
            pass
    raise ConfigError(key, f"{_describe(raw)} is not allowed: must be a time of day like \"15:15\" (Asia/Kolkata)")


def strategy_from_table(raw: Mapping[str, Any], key: str = "strategy") -> Strategy:
    """A ``Strategy`` from its TOML table (see config.example.toml); raises ConfigError."""
    table = _Table(dict(raw), key)
    name = table.text("name")
    risk = TradeRisk(
        stop_loss=_distance(table, "stop_loss"),
        target=_distance(table, "target"),
        trailing=_trailing(table),
        breakeven_after=_distance(table, "breakeven_after"),
        partial_targets=_partials(table),
    )
    portfolio_table = table.table("portfolio")
    portfolio = PortfolioRisk(
        stop_loss=_amount(portfolio_table, "stop_loss"),
        target=_amount(portfolio_table, "target"),
        trailing_activation=_amount(portfolio_table, "trailing_activation"),
        trailing_distance=_amount(portfolio_table, "trailing_distance"),
        daily_loss_limit=_amount(portfolio_table, "daily_loss_limit"),
    )
    portfolio_table.finish()
    sizing_table = table.table("sizing")
    sizing = Sizing(
        mode=SizingMode(sizing_table.choice("mode", tuple(SizingMode.__members__), Sizing().mode.value)),
        value=sizing_table.number("value", Sizing().value, above=0),
    )
    sizing_table.finish()
    exit_table = table.table("exit_order")
    defaults = ExitOrderSettings()
    exit_order = ExitOrderSettings(
        price_type=PriceType(exit_table.choice("price_type", tuple(PriceType.__members__), defaults.price_type.value)),
        protection_percent=exit_table.number("protection_percent", defaults.protection_percent, minimum=0, maximum=19.99),
        reprice_after_seconds=exit_table.number("reprice_after_seconds", defaults.reprice_after_seconds, above=0),
        max_reprices=exit_table.integer("max_reprices", defaults.max_reprices, minimum=0),
    )
    exit_table.finish()
    exchange = table.choice("exchange", tuple(sorted(EXCHANGES)), "NSE")
    strategy = Strategy(
        name=name,
        trade_risk=risk,
        portfolio=portfolio,
        allocated_funds=table.number("allocated_funds", 0.0, minimum=0),
        sizing=sizing,
        max_open_positions=table.integer("max_open_positions", None, minimum=1),
        max_trades_per_day=table.integer("max_trades_per_day", None, minimum=1),
        square_off_time=_square_off(table),
        exit_order=exit_order,
        product=Product(table.choice("product", tuple(Product.__members__), "MIS")),
        exchange=exchange,
        adopt_fills=table.boolean("adopt_fills", False),
    )
    table.finish()
    denial = validate_strategy(strategy)
    if denial is not None:
        raise ConfigError(key, denial.message)
    return strategy


def _distance_table(distance: Distance) -> dict[str, Any]:
    return {"value": distance.value, "mode": distance.mode.value}


def _amount_table(amount: Amount) -> dict[str, Any]:
    return {"value": amount.value, "mode": amount.mode.value}


def strategy_to_table(strategy: Strategy) -> dict[str, Any]:
    """The TOML table of a strategy (unset options left out); inverse of ``strategy_from_table``."""
    table: dict[str, Any] = {
        "name": strategy.name,
        "product": strategy.product.value,
        "exchange": strategy.exchange,
        "allocated_funds": strategy.allocated_funds,
        "adopt_fills": strategy.adopt_fills,
    }
    if strategy.max_open_positions is not None:
        table["max_open_positions"] = strategy.max_open_positions
    if strategy.max_trades_per_day is not None:
        table["max_trades_per_day"] = strategy.max_trades_per_day
    if strategy.square_off_time is not None:
        fmt = "%H:%M:%S" if strategy.square_off_time.second else "%H:%M"
        table["square_off_time"] = strategy.square_off_time.strftime(fmt)
    risk = strategy.trade_risk
    for name in ("stop_loss", "target", "breakeven_after"):
        value = getattr(risk, name)
        if value is not None:
            table[name] = _distance_table(value)
    if risk.trailing is not None:
        trailing: dict[str, Any] = {"distance": _distance_table(risk.trailing.distance)}
        for name in ("activation", "step_trigger", "step_move"):
            value = getattr(risk.trailing, name)
            if value is not None:
                trailing[name] = _distance_table(value)
        table["trailing"] = trailing
    if risk.partial_targets:
        table["partial_targets"] = [
            {"distance": _distance_table(p.distance), "fraction": p.fraction} for p in risk.partial_targets
        ]
    portfolio = {
        name: _amount_table(getattr(strategy.portfolio, name))
        for name in ("stop_loss", "target", "trailing_activation", "trailing_distance", "daily_loss_limit")
        if getattr(strategy.portfolio, name) is not None
    }
    if portfolio:
        table["portfolio"] = portfolio
    table["sizing"] = {"mode": strategy.sizing.mode.value, "value": strategy.sizing.value}
    exit_order = strategy.exit_order
    table["exit_order"] = {
        "price_type": exit_order.price_type.value,
        "protection_percent": exit_order.protection_percent,
        "reprice_after_seconds": exit_order.reprice_after_seconds,
        "max_reprices": exit_order.max_reprices,
    }
    return table


# --------------------------------------------------------------------------- sections


def _secret(table: _Table, env: Mapping[str, str], default_env: str) -> tuple[str | None, str]:
    """(key, env var name): the key from the file if given, else from the named environment variable."""
    api_key = table.get("api_key", None)
    if api_key is not None and (not isinstance(api_key, str) or not api_key.strip()):
        # The value itself is a secret: never echo it.
        raise ConfigError(table.child_key("api_key"), "is not allowed: must be a non-empty text (value not shown)")
    env_name = table.text("api_key_env", default_env)
    if api_key is None:
        api_key = env.get(env_name) or None
        if api_key is not None:
            api_key = api_key.strip() or None
    return api_key, env_name


def _url(table: _Table, name: str, default: str, schemes: tuple[str, ...]) -> str:
    value = table.text(name, default)
    if not value.startswith(schemes) or len(value) <= len(value.split("//")[0]) + 2 or " " in value:
        raise ConfigError(table.child_key(name), f"{value!r} is not allowed: must be a URL starting with {' or '.join(schemes)}")
    return value.rstrip("/")


def _path(table: _Table, name: str, default: Path, base: Path) -> Path:
    raw = table.text(name, None)
    if raw is None:
        return default
    path = Path(raw).expanduser()
    return path if path.is_absolute() else base / path


def _openalgo(table: _Table, env: Mapping[str, str]) -> OpenAlgoConfig:
    api_key, env_name = _secret(table, env, "OPENALGO_API_KEY")
    config = OpenAlgoConfig(
        host=_url(table, "host", OpenAlgoConfig.host, ("http://", "https://")),
        ws_url=_url(table, "ws_url", OpenAlgoConfig.ws_url, ("ws://", "wss://")),
        api_key=api_key,
        api_key_env=env_name,
        timeout_seconds=table.number("timeout_seconds", OpenAlgoConfig.timeout_seconds, above=0, maximum=300),
    )
    table.finish()
    return config


def _database(table: _Table, base: Path) -> DatabaseConfig:
    data_dir = platformdirs.user_data_path(APP_NAME)
    config = DatabaseConfig(
        path=_path(table, "path", data_dir / "tmtool.db", base),
        backup_dir=_path(table, "backup_dir", data_dir / "backups", base),
        backups_to_keep=table.integer("backups_to_keep", DatabaseConfig.backups_to_keep, minimum=0),
    )
    table.finish()
    return config


def _api(table: _Table, env: Mapping[str, str]) -> ApiConfig:
    api_key, env_name = _secret(table, env, "TMTOOL_API_KEY")
    config = ApiConfig(
        enabled=table.boolean("enabled", ApiConfig.enabled),
        host=table.text("host", ApiConfig.host),
        port=table.integer("port", ApiConfig.port, minimum=1, maximum=65535),
        api_key=api_key,
        api_key_env=env_name,
        requests_per_minute=table.integer("requests_per_minute", ApiConfig.requests_per_minute, minimum=1),
    )
    table.finish()
    if config.enabled and not config.configured:
        raise ConfigError(
            table.child_key("api_key"),
            f"the control API is enabled but has no key: set api.api_key or the environment variable {env_name}",
        )
    return config


def _feed(table: _Table) -> FeedConfig:
    d = FeedConfig()
    config = FeedConfig(
        stale_after_seconds=table.number("stale_after_seconds", d.stale_after_seconds, above=0),
        poll_after_seconds=table.number("poll_after_seconds", d.poll_after_seconds, minimum=0),
        poll_interval_seconds=table.number("poll_interval_seconds", d.poll_interval_seconds, above=0),
        poll_silent_after_seconds=table.number("poll_silent_after_seconds", d.poll_silent_after_seconds, above=0),
        poll_near_level_after_seconds=table.number(
            "poll_near_level_after_seconds", d.poll_near_level_after_seconds, above=0
        ),
        reconnect_max_backoff_seconds=table.number(
            "reconnect_max_backoff_seconds", d.reconnect_max_backoff_seconds, above=0
        ),
        tick_band_percent=table.number("tick_band_percent", d.tick_band_percent, above=0, maximum=100),
        confirm_ticks=table.integer("confirm_ticks", d.confirm_ticks, minimum=0, maximum=100),
    )
    table.finish()
    return config


def _engine(table: _Table) -> EngineConfig:
    d = EngineConfig()
    freeze_table = table.table("freeze_quantities")
    freeze = dict(DEFAULT_FREEZE_QUANTITIES)
    for prefix in list(freeze_table.data):
        key = freeze_table.child_key(prefix)
        if validate_symbol(prefix) is not None:
            raise ConfigError(key, "is not allowed: a symbol prefix must be upper case without spaces")
        freeze[prefix] = freeze_table.integer(prefix, minimum=1)
    instruments_table = table.table("instruments")
    instruments: dict[tuple[str, str], InstrumentOverride] = {}
    for name in list(instruments_table.data):
        key = instruments_table.child_key(name)
        exchange, _, symbol = name.partition(":")
        if exchange not in EXCHANGES or validate_symbol(symbol) is not None:
            raise ConfigError(key, "is not allowed: must be EXCHANGE:SYMBOL, e.g. \"NSE:RELIANCE\", on a tradable exchange")
        item = instruments_table.table(name)
        tick = item.number("tick_size", None, above=0)
        instruments[(exchange, symbol)] = InstrumentOverride(
            tick_size=tick,
            lot_size=item.integer("lot_size", None, minimum=1),
            freeze_quantity=item.integer("freeze_quantity", None, minimum=1),
        )
        item.finish()
    config = EngineConfig(
        snapshot_hz=table.number("snapshot_hz", d.snapshot_hz, above=0, maximum=MAX_SNAPSHOT_HZ),
        reconcile_interval_seconds=table.number("reconcile_interval_seconds", d.reconcile_interval_seconds, above=0),
        exit_max_attempts=table.integer("exit_max_attempts", d.exit_max_attempts, minimum=1),
        exit_retry_backoff_seconds=table.number("exit_retry_backoff_seconds", d.exit_retry_backoff_seconds, minimum=0),
        order_status_poll_seconds=table.number("order_status_poll_seconds", d.order_status_poll_seconds, above=0),
        freeze_quantities=MappingProxyType(freeze),
        instruments=MappingProxyType(instruments),
    )
    table.finish()
    return config


def _account(table: _Table) -> AccountLimits:
    limits = AccountLimits(
        daily_loss_limit=table.number("daily_loss_limit", None, above=0),
        daily_profit_target=table.number("daily_profit_target", None, above=0),
    )
    table.finish()
    return limits


def _log(table: _Table, base: Path) -> LogConfig:
    config = LogConfig(
        file=_path(table, "file", platformdirs.user_log_path(APP_NAME) / "tmtool.log", base),
        level=table.choice("level", LOG_LEVELS, LogConfig.level),
        max_bytes=table.integer("max_bytes", LogConfig.max_bytes, minimum=1024),
        backups=table.integer("backups", LogConfig.backups, minimum=0),
    )
    table.finish()
    return config


def _strategies(raw: object) -> tuple[Strategy, ...]:
    if not isinstance(raw, list):
        raise ConfigError("strategies", f"{_describe(raw)} is not allowed: must be an array of tables ([[strategies]])")
    strategies: list[Strategy] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        key = f"strategies[{index}]"
        if not isinstance(item, dict):
            raise ConfigError(key, f"{_describe(item)} is not allowed: each strategy must be a table")
        strategy = strategy_from_table(item, key)
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
    root = _Table(dict(data), "")
    alerts = root.get("alerts", {})
    if not isinstance(alerts, dict):
        raise ConfigError("alerts", f"{_describe(alerts)} is not allowed: must be a table")
    config = Config(
        openalgo=_openalgo(root.table("openalgo"), env),
        database=_database(root.table("database"), base),
        api=_api(root.table("api"), env),
        feed=_feed(root.table("feed")),
        engine=_engine(root.table("engine")),
        account=_account(root.table("account")),
        log=_log(root.table("log"), base),
        strategies=_strategies(root.get("strategies", [])),
        alerts_table=dict(alerts),
        source_path=source_path,
    )
    root.finish()
    warnings = _api_warnings(config.api) + _file_warnings(data, source_path)
    return replace(config, warnings=warnings) if warnings else config


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


def _read_toml(path: Path) -> dict[str, Any]:
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
    return parse_config(_read_toml(source), env, source, source.resolve().parent)


# --------------------------------------------------------------------------- writing back


def save_strategy(path: str | Path, strategy: Strategy) -> None:
    """Write ``strategy`` into the config file (replacing its table, or appending one)."""
    denial = validate_strategy(strategy)
    if denial is not None:
        raise ConfigError(f"strategies.{strategy.name}", denial.message)
    target = Path(path).expanduser()
    data = _read_toml(target) if target.exists() else {}
    strategies = _strategy_list(data)
    table = strategy_to_table(strategy)
    for index, item in enumerate(strategies):
        if isinstance(item, dict) and item.get("name") == strategy.name:
            strategies[index] = table
            break
    else:
        strategies.append(table)
    data["strategies"] = strategies
    _write_atomically(target, data)


def remove_strategy(path: str | Path, name: str) -> bool:
    """Remove the strategy ``name`` from the config file; False when it was not there."""
    target = Path(path).expanduser()
    if not target.exists():
        return False
    data = _read_toml(target)
    strategies = _strategy_list(data)
    kept = [item for item in strategies if not (isinstance(item, dict) and item.get("name") == name)]
    if len(kept) == len(strategies):
        return False
    if kept:
        data["strategies"] = kept
    else:
        data.pop("strategies", None)
    _write_atomically(target, data)
    return True


def _strategy_list(data: dict[str, Any]) -> list[Any]:
    strategies = data.get("strategies", [])
    if not isinstance(strategies, list):
        raise ConfigError("strategies", "is not an array of tables ([[strategies]]); not rewriting the file")
    return list(strategies)


def _write_atomically(path: Path, data: Mapping[str, Any]) -> None:
    """Write TOML via a temp file in the same folder + rename; keep the file's mode (new files 0600)."""
    target = path.resolve()
    content = tomli_w.dumps(dict(data)).encode("utf-8")
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = 0o600
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, mode)
        os.replace(temp_name, target)
    except BaseException:
        try:
            os.unlink(temp_name)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(target.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
