"""The ``[alerts]`` section of the config: routes, quiet hours and delivery channels.

The file's tables are declared as pydantic models (``AlertsTable`` and one
per channel, on ``tmtool.config``'s value types and error messages) and turned
into the frozen objects below: an unknown key or a bad value raises
``ConfigError`` naming the dotted key, the value and what is allowed.  Secrets
(the Telegram bot token, the SMTP password) are read from environment
variables the config names, and are held in ``Secret`` so they never show in a
repr, a str or a log line.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Mapping
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from tmtool.config import ConfigSection, Flag, Number, Text, Whole, one_of, refusal, validate_table
from tmtool.domain.calendar import to_ist
from tmtool.domain.models import Alert, AlertCategory, AlertPriority
from tmtool.engine.settings import TRAIL_ALERT_MODES, engine_default

LEVEL_CHANGE_MODES = TRAIL_ALERT_MODES
CHANNEL_NAMES = ("webhook", "telegram", "email", "command")
DEFAULT_TELEGRAM_API = "https://api.telegram.org"

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CLOCK_TIME = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class Secret:
    """A secret string that hides itself from repr, str and formatting."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str = "") -> None:
        self._value = value
        self.source = source  # where it came from, e.g. "$TMTOOL_TELEGRAM_TOKEN"

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret(from {self.source})" if self.source else "Secret(***)"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


# --------------------------------------------------------------------------- preferences


@dataclass(frozen=True, slots=True)
class Route:
    """Which alerts a channel receives: these categories, at this priority or above."""

    categories: frozenset[AlertCategory] = frozenset(AlertCategory)
    min_priority: AlertPriority = AlertPriority.WARNING

    def accepts(self, alert: Alert) -> bool:
        return alert.category in self.categories and alert.priority.rank >= self.min_priority.rank


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily Asia/Kolkata window in which alerts are not sent off the desk.

    ``start`` may be later than ``end`` (22:00-07:00 spans midnight).  With
    ``allow_critical`` CRITICAL alerts still go out.  The desk itself (TUI,
    alert history) shows every alert regardless.
    """

    start: time
    end: time
    allow_critical: bool = True

    def active_at(self, ts: float) -> bool:
        now = to_ist(ts).time().replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= now < self.end
        return now >= self.start or now < self.end

    def holds_back(self, alert: Alert, ts: float) -> bool:
        if self.allow_critical and alert.priority is AlertPriority.CRITICAL:
            return False
        return self.active_at(ts)


# --------------------------------------------------------------------------- channels


@dataclass(frozen=True, slots=True, repr=False)
class WebhookConfig:
    """A JSON POST of every routed alert to ``url``."""

    url: str
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float = 5.0
    route: Route = Route()

    @property
    def display_url(self) -> str:
        """The URL without its path: webhook paths often embed a token."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}/..." if parts.path not in ("", "/") or parts.query else self.url

    def secrets(self) -> tuple[str, ...]:
        """Strings that must never be logged: header values and the URL's path and query."""
        parts = urlsplit(self.url)
        tail = parts.path + (f"?{parts.query}" if parts.query else "")
        found = [value for _, value in self.headers if value]
        if len(tail) > 1:
            found.append(tail)
        return tuple(found)

    def __repr__(self) -> str:
        names = [name for name, _ in self.headers]
        return f"WebhookConfig(url={self.display_url!r}, headers={names!r}, timeout={self.timeout!r}, route={self.route!r})"


@dataclass(frozen=True, slots=True)
class TelegramConfig:
    """``POST {api_base}/bot<token>/sendMessage``; token and chat id come from the environment."""

    bot_token: Secret
    chat_id: str
    api_base: str = DEFAULT_TELEGRAM_API
    timeout: float = 5.0
    route: Route = Route()


@dataclass(frozen=True, slots=True)
class EmailConfig:
    """SMTP delivery; STARTTLS on by default, login when ``username`` is set."""

    host: str
    sender: str
    recipients: tuple[str, ...]
    port: int = 587
    starttls: bool = True
    username: str = ""
    password: Secret | None = None
    ca_file: str = ""  # extra CA bundle to trust (a private relay); empty = system CAs
    timeout: float = 10.0
    route: Route = Route()


@dataclass(frozen=True, slots=True)
class CommandConfig:
    """A local command run per alert, the alert in ``TMTOOL_ALERT_*`` environment variables.

    A string runs through ``/bin/sh -c``; a list runs as argv without a shell.
    The alert's text is never put on the command line.
    """

    command: str | tuple[str, ...]
    timeout: float = 10.0
    route: Route = Route()


ChannelConfig = WebhookConfig | TelegramConfig | EmailConfig | CommandConfig


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    """Everything about alerts beyond the desk itself.

    ``terminal_bell`` (the TUI rings on CRITICAL) and ``level_changes`` (how
    trailing-stop moves are raised: "every", "first" or "none") are read by the
    TUI and the engine; the rest drives ``AlertDispatcher``.
    """

    terminal_bell: bool = True
    level_changes: str = engine_default("trail_alerts")  # the engine's own default
    quiet_hours: QuietHours | None = None
    queue_size: int = 500
    fold_window: float = 300.0
    retries: int = 2
    retry_backoff: float = 2.0
    webhook: WebhookConfig | None = None
    telegram: TelegramConfig | None = None
    email: EmailConfig | None = None
    command: CommandConfig | None = None
    secret_env_names: frozenset[str] = field(default=frozenset(), repr=False)

    @property
    def channels(self) -> dict[str, ChannelConfig]:
        """The enabled channels by name, in a fixed order."""
        found = {name: getattr(self, name) for name in CHANNEL_NAMES}
        return {name: value for name, value in found.items() if value is not None}

    @classmethod
    def from_table(
        cls, table: Mapping[str, Any], where: str = "alerts", environ: Mapping[str, str] | None = None
    ) -> "AlertsConfig":
        """Parse the ``[alerts]`` table.  ``environ`` defaults to ``os.environ``."""
        environ = os.environ if environ is None else environ
        return validate_table(AlertsTable, table, {"environ": environ}, where).alerts(environ)


# --------------------------------------------------------------------------- the file's tables


def _default(config: type, name: str) -> Any:
    """The default of a field of one of the frozen objects above (the one place it is declared)."""
    return next(f.default for f in dataclasses.fields(config) if f.name == name)


def _env_name(value: object, info: ValidationInfo) -> str:
    """The name of an environment variable that is set (its value is read when the table is turned into objects)."""
    if not isinstance(value, str) or not _ENV_NAME.fullmatch(value):
        raise refusal("must be an environment variable name (letters, digits, underscore)")
    if not (info.context or {}).get("environ", os.environ).get(value, "").strip():
        raise refusal(f"environment variable {value} is not set or empty")
    return value


def _clock_time(value: object) -> time:
    match = _CLOCK_TIME.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise refusal('must be a 24-hour HH:MM time (Asia/Kolkata), e.g. "22:00"')
    return time(int(match.group(1)), int(match.group(2)))


def _http_url(value: object) -> str:
    parts = urlsplit(value.strip()) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise refusal("must be an http:// or https:// URL with a host")
    return value.strip()


def _header_name(name: str) -> str:
    if not _HEADER_NAME.fullmatch(name):
        raise refusal("must be a valid HTTP header name")
    return name


def _one_line(value: object) -> object:
    if not isinstance(value, str) or "\n" in value or "\r" in value:
        raise refusal("must be a one-line text")
    return value


def _address(value: object) -> str:
    if not isinstance(value, str) or value.count("@") != 1 or any(c in value for c in " \r\n,;<>"):
        raise refusal("must be a plain e-mail address (name@example.com)")
    return value


def _readable_file(value: str) -> str:
    if value and not Path(value).expanduser().is_file():
        raise refusal("must name a readable file")
    return str(Path(value).expanduser()) if value else ""


def _one_or_more(value: object) -> object:
    return [value] if isinstance(value, str) else value


def _command(value: object) -> str | tuple[str, ...]:
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, list) and value and all(isinstance(arg, str) for arg in value) and value[0].strip():
        return tuple(value)
    raise refusal("must be a non-empty shell command text, or a non-empty list of strings (argv) whose first is the program")


EnvName = Annotated[str, BeforeValidator(_env_name)]
ClockTime = Annotated[time, BeforeValidator(_clock_time)]
HttpUrl = Annotated[str, BeforeValidator(_http_url)]
Seconds = Annotated[Number, Field(gt=0, le=86_400)]
Address = Annotated[str, BeforeValidator(_address)]


class QuietHoursTable(ConfigSection):
    start: ClockTime
    end: ClockTime
    allow_critical: Flag = _default(QuietHours, "allow_critical")

    @field_validator("end")
    @classmethod
    def _not_empty(cls, end: time, info: ValidationInfo) -> time:
        if end == info.data.get("start"):
            raise refusal("must differ from start: the window would be empty")
        return end

    def quiet_hours(self) -> QuietHours:
        return QuietHours(self.start, self.end, self.allow_critical)


class _ChannelTable(ConfigSection):
    """The keys every channel takes: ``enabled = false`` leaves it out without checking the rest."""

    enabled: Flag = True
    categories: Annotated[list[one_of(*AlertCategory.__members__)], Field(min_length=1)] = list(
        AlertCategory.__members__
    )
    min_priority: one_of(*AlertPriority.__members__) = _default(Route, "min_priority").value

    def route(self) -> Route:
        return Route(frozenset(AlertCategory(c) for c in self.categories), AlertPriority(self.min_priority))


class WebhookTable(_ChannelTable):
    url: HttpUrl
    headers: dict[Annotated[str, AfterValidator(_header_name)], Annotated[str, BeforeValidator(_one_line)]] = {}
    timeout: Seconds = _default(WebhookConfig, "timeout")

    def channel(self, environ: Mapping[str, str]) -> WebhookConfig:
        return WebhookConfig(self.url, tuple(self.headers.items()), self.timeout, self.route())


class TelegramTable(_ChannelTable):
    bot_token_env: EnvName
    chat_id_env: EnvName
    api_base: HttpUrl = _default(TelegramConfig, "api_base")
    timeout: Seconds = _default(TelegramConfig, "timeout")

    def channel(self, environ: Mapping[str, str]) -> TelegramConfig:
        return TelegramConfig(
            bot_token=Secret(environ[self.bot_token_env], source=f"${self.bot_token_env}"),
            chat_id=environ[self.chat_id_env].strip(),
            api_base=self.api_base.rstrip("/"),
            timeout=self.timeout,
            route=self.route(),
        )


class EmailTable(_ChannelTable):
    host: Text
    port: Annotated[Whole, Field(ge=1, le=65535)] | None = None  # None: 587 with STARTTLS, else 25
    starttls: Flag = _default(EmailConfig, "starttls")
    username: Annotated[str, Field(strict=True)] = ""
    password_env: EnvName | None = Field(default=None, validate_default=True)
    sender: Address = Field(alias="from")
    to: Annotated[list[Address], BeforeValidator(_one_or_more), Field(min_length=1)]
    ca_file: Annotated[str, Field(strict=True), AfterValidator(_readable_file)] = ""  # extra CA bundle to trust
    timeout: Seconds = _default(EmailConfig, "timeout")

    @field_validator("password_env")
    @classmethod
    def _with_username(cls, password_env: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("username", "").strip() and password_env is None:
            raise refusal("is required when username is set: name the environment variable holding the password")
        if password_env is not None and not info.data.get("username", "").strip():
            raise refusal("a password needs a username; set username too")
        return password_env

    def channel(self, environ: Mapping[str, str]) -> EmailConfig:
        password = self.password_env
        return EmailConfig(
            host=self.host.strip(),
            sender=self.sender.strip(),
            recipients=tuple(self.to),
            port=self.port if self.port is not None else (587 if self.starttls else 25),
            starttls=self.starttls,
            username=self.username.strip(),
            password=Secret(environ[password], source=f"${password}") if password else None,
            ca_file=self.ca_file,
            timeout=self.timeout,
            route=self.route(),
        )


class CommandTable(_ChannelTable):
    command: Annotated[str | tuple[str, ...], BeforeValidator(_command)]
    timeout: Seconds = _default(CommandConfig, "timeout")

    def channel(self, environ: Mapping[str, str]) -> CommandConfig:
        return CommandConfig(self.command, self.timeout, self.route())


class AlertsTable(ConfigSection):
    """The ``[alerts]`` table."""

    terminal_bell: Flag = _default(AlertsConfig, "terminal_bell")
    level_changes: one_of(*LEVEL_CHANGE_MODES, upper_case=False) = _default(AlertsConfig, "level_changes")
    quiet_hours: QuietHoursTable | None = None
    queue_size: Annotated[Whole, Field(ge=1, le=100_000)] = _default(AlertsConfig, "queue_size")
    fold_window: Annotated[Number, Field(ge=0, le=86_400)] = _default(AlertsConfig, "fold_window")
    retries: Annotated[Whole, Field(ge=0, le=10)] = _default(AlertsConfig, "retries")
    retry_backoff: Seconds = _default(AlertsConfig, "retry_backoff")
    webhook: WebhookTable | None = None
    telegram: TelegramTable | None = None
    email: EmailTable | None = None
    command: CommandTable | None = None

    @model_validator(mode="before")
    @classmethod
    def _leave_out_disabled_channels(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        return {
            name: None if name in CHANNEL_NAMES and isinstance(value, dict) and value.get("enabled") is False else value
            for name, value in data.items()
        }

    def alerts(self, environ: Mapping[str, str]) -> AlertsConfig:
        channels = {name: getattr(self, name) for name in CHANNEL_NAMES if getattr(self, name) is not None}
        secret_names = {
            name
            for table in channels.values()
            for name in (getattr(table, "bot_token_env", None), getattr(table, "chat_id_env", None),
                         getattr(table, "password_env", None))
            if name
        }
        return AlertsConfig(
            terminal_bell=self.terminal_bell,
            level_changes=self.level_changes,
            quiet_hours=None if self.quiet_hours is None else self.quiet_hours.quiet_hours(),
            queue_size=self.queue_size,
            fold_window=float(self.fold_window),
            retries=self.retries,
            retry_backoff=float(self.retry_backoff),
            secret_env_names=frozenset(secret_names),
            **{name: table.channel(environ) for name, table in channels.items()},
        )
