"""The ``[alerts]`` section of the config: routes, quiet hours and delivery channels.

Parsed strictly into frozen objects: an unknown key or a bad value raises
``ConfigError`` naming the dotted key, the value and what is allowed.  Secrets
(the Telegram bot token, the SMTP password) are read from environment
variables the config names, and are held in ``Secret`` so they never show in a
repr, a str or a log line.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

from tmtool.config import ConfigError
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
        return _Parser(os.environ if environ is None else environ).alerts(table, where)


# --------------------------------------------------------------------------- parsing

_COMMON_CHANNEL_KEYS = ("enabled", "categories", "min_priority", "timeout")
ALERTS_KEYS = (
    "terminal_bell", "level_changes", "quiet_hours", "queue_size", "fold_window", "retries", "retry_backoff",
) + CHANNEL_NAMES
QUIET_HOURS_KEYS = ("start", "end", "allow_critical")
CHANNEL_KEYS = {
    "webhook": _COMMON_CHANNEL_KEYS + ("url", "headers"),
    "telegram": _COMMON_CHANNEL_KEYS + ("bot_token_env", "chat_id_env", "api_base"),
    "email": _COMMON_CHANNEL_KEYS + ("host", "port", "starttls", "username", "password_env", "from", "to", "ca_file"),
    "command": _COMMON_CHANNEL_KEYS + ("command",),
}


class _Parser:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.secret_env_names: set[str] = set()

    def alerts(self, table: Mapping[str, Any], where: str) -> AlertsConfig:
        _expect_table(table, where)
        _reject_unknown(table, where, ALERTS_KEYS)
        defaults = AlertsConfig()
        level_changes = table.get("level_changes", defaults.level_changes)
        if level_changes not in LEVEL_CHANGE_MODES:
            raise ConfigError(
                f"{where}.level_changes", f"{level_changes!r} is not one of {', '.join(map(repr, LEVEL_CHANGE_MODES))}"
            )
        channels = {}
        for name in CHANNEL_NAMES:
            if name in table:
                channels[name] = self.channel(name, table[name], f"{where}.{name}")
        return AlertsConfig(
            terminal_bell=_bool(table, "terminal_bell", where, defaults.terminal_bell),
            level_changes=level_changes,
            quiet_hours=_quiet_hours(table["quiet_hours"], f"{where}.quiet_hours") if "quiet_hours" in table else None,
            queue_size=_int(table, "queue_size", where, defaults.queue_size, low=1, high=100_000),
            fold_window=_seconds(table, "fold_window", where, defaults.fold_window, allow_zero=True),
            retries=_int(table, "retries", where, defaults.retries, low=0, high=10),
            retry_backoff=_seconds(table, "retry_backoff", where, defaults.retry_backoff),
            secret_env_names=frozenset(self.secret_env_names),
            **channels,
        )

    def channel(self, name: str, table: Any, where: str) -> ChannelConfig | None:
        _expect_table(table, where)
        if not _bool(table, "enabled", where, True):
            return None
        build = {"webhook": self.webhook, "telegram": self.telegram, "email": self.email, "command": self.command}[name]
        return build(table, where)

    def webhook(self, table: Mapping[str, Any], where: str) -> WebhookConfig:
        _reject_unknown(table, where, CHANNEL_KEYS["webhook"])
        url = _http_url(table, "url", where, required=True)
        headers_table = table.get("headers", {})
        _expect_table(headers_table, f"{where}.headers")
        headers = []
        for header, value in headers_table.items():
            key = f"{where}.headers.{header}"
            if not _HEADER_NAME.fullmatch(header):
                raise ConfigError(key, f"{header!r} is not a valid HTTP header name")
            if not isinstance(value, str) or "\n" in value or "\r" in value:
                raise ConfigError(key, "expected a one-line string value")
            headers.append((header, value))
        return WebhookConfig(
            url=url, headers=tuple(headers), timeout=_seconds(table, "timeout", where, 5.0), route=_route(table, where)
        )

    def telegram(self, table: Mapping[str, Any], where: str) -> TelegramConfig:
        _reject_unknown(table, where, CHANNEL_KEYS["telegram"])
        token = self.env_secret(table, "bot_token_env", where, required=True)
        assert token is not None
        chat_id = self.env_secret(table, "chat_id_env", where, required=True)
        assert chat_id is not None
        return TelegramConfig(
            bot_token=token,
            chat_id=chat_id.reveal().strip(),
            api_base=_http_url(table, "api_base", where, default=DEFAULT_TELEGRAM_API).rstrip("/"),
            timeout=_seconds(table, "timeout", where, 5.0),
            route=_route(table, where),
        )

    def email(self, table: Mapping[str, Any], where: str) -> EmailConfig:
        _reject_unknown(table, where, CHANNEL_KEYS["email"])
        host = _text(table, "host", where, required=True)
        starttls = _bool(table, "starttls", where, True)
        username = _text(table, "username", where)
        password = self.env_secret(table, "password_env", where, required=bool(username))
        if password is not None and not username:
            raise ConfigError(f"{where}.password_env", "a password needs a username; set username too")
        recipients = table.get("to")
        if isinstance(recipients, str):
            recipients = [recipients]
        if not isinstance(recipients, list) or not recipients:
            raise ConfigError(f"{where}.to", "expected an address or a non-empty list of addresses")
        for address in recipients:
            _check_address(address, f"{where}.to")
        sender = _text(table, "from", where, required=True)
        _check_address(sender, f"{where}.from")
        ca_file = _text(table, "ca_file", where)
        if ca_file and not Path(ca_file).expanduser().is_file():
            raise ConfigError(f"{where}.ca_file", f"{ca_file!r} is not a readable file")
        return EmailConfig(
            host=host,
            sender=sender,
            recipients=tuple(recipients),
            port=_int(table, "port", where, 587 if starttls else 25, low=1, high=65535),
            starttls=starttls,
            username=username,
            password=password,
            ca_file=str(Path(ca_file).expanduser()) if ca_file else "",
            timeout=_seconds(table, "timeout", where, 10.0),
            route=_route(table, where),
        )

    def command(self, table: Mapping[str, Any], where: str) -> CommandConfig:
        _reject_unknown(table, where, CHANNEL_KEYS["command"])
        command = table.get("command")
        key = f"{where}.command"
        if isinstance(command, str):
            if not command.strip():
                raise ConfigError(key, "the command is empty")
            resolved: str | tuple[str, ...] = command
        elif isinstance(command, list) and command and all(isinstance(arg, str) for arg in command):
            if not command[0].strip():
                raise ConfigError(key, "the program (first element) is empty")
            resolved = tuple(command)
        else:
            raise ConfigError(key, "expected a shell command string or a non-empty list of strings (argv)")
        return CommandConfig(command=resolved, timeout=_seconds(table, "timeout", where, 10.0), route=_route(table, where))

    def env_secret(self, table: Mapping[str, Any], name: str, where: str, required: bool) -> Secret | None:
        key = f"{where}.{name}"
        if name not in table:
            if required:
                raise ConfigError(key, "missing: name the environment variable that holds the value")
            return None
        env_name = table[name]
        if not isinstance(env_name, str) or not _ENV_NAME.fullmatch(env_name):
            raise ConfigError(key, f"{env_name!r} is not an environment variable name (letters, digits, underscore)")
        value = self.environ.get(env_name, "")
        if not value.strip():
            raise ConfigError(key, f"environment variable {env_name} is not set or empty")
        self.secret_env_names.add(env_name)
        return Secret(value, source=f"${env_name}")


def _expect_table(value: Any, where: str) -> None:
    if not isinstance(value, Mapping):
        raise ConfigError(where, f"expected a table, got {type(value).__name__}")


def _reject_unknown(table: Mapping[str, Any], where: str, allowed: tuple[str, ...]) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{where}.{key}", f"unknown key; allowed here: {', '.join(sorted(allowed))}")


def _bool(table: Mapping[str, Any], name: str, where: str, default: bool) -> bool:
    value = table.get(name, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}.{name}", f"{value!r} is not true or false")
    return value


def _int(table: Mapping[str, Any], name: str, where: str, default: int, *, low: int, high: int) -> int:
    value = table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{where}.{name}", f"{value!r} is not a whole number from {low} to {high}")
    return value


def _seconds(table: Mapping[str, Any], name: str, where: str, default: float, allow_zero: bool = False) -> float:
    value = table.get(name, default)
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero) or value > 86_400:
        allowed = "zero or more" if allow_zero else "more than zero"
        raise ConfigError(f"{where}.{name}", f"{value!r} is not a number of seconds ({allowed}, at most 86400)")
    return float(value)


def _text(table: Mapping[str, Any], name: str, where: str, required: bool = False) -> str:
    if name not in table:
        if required:
            raise ConfigError(f"{where}.{name}", "missing")
        return ""
    value = table[name]
    if not isinstance(value, str) or (required and not value.strip()):
        raise ConfigError(f"{where}.{name}", f"{value!r} is not a non-empty string")
    return value.strip()


def _http_url(table: Mapping[str, Any], name: str, where: str, required: bool = False, default: str = "") -> str:
    if name not in table and not required:
        return default
    value = _text(table, name, where, required=True)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # Do not echo the value: webhook URLs often carry a token.
        raise ConfigError(f"{where}.{name}", "expected an http:// or https:// URL with a host")
    return value


def _check_address(address: Any, key: str) -> None:
    if not isinstance(address, str) or address.count("@") != 1 or any(c in address for c in " \r\n,;<>"):
        raise ConfigError(key, f"{address!r} is not a plain e-mail address (name@example.com)")


def _route(table: Mapping[str, Any], where: str) -> Route:
    defaults = Route()
    categories = table.get("categories", [c.value for c in AlertCategory])
    allowed_categories = ", ".join(c.value for c in AlertCategory)
    if not isinstance(categories, list) or not categories:
        raise ConfigError(f"{where}.categories", f"expected a non-empty list from {allowed_categories}")
    for category in categories:
        if category not in AlertCategory.__members__:
            raise ConfigError(f"{where}.categories", f"{category!r} is not one of {allowed_categories}")
    priority = table.get("min_priority", defaults.min_priority.value)
    if priority not in AlertPriority.__members__:
        allowed = ", ".join(p.value for p in AlertPriority)
        raise ConfigError(f"{where}.min_priority", f"{priority!r} is not one of {allowed}")
    return Route(categories=frozenset(AlertCategory(c) for c in categories), min_priority=AlertPriority(priority))


def _clock_time(value: Any, key: str) -> time:
    match = _CLOCK_TIME.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ConfigError(key, f"{value!r} is not a 24-hour HH:MM time (Asia/Kolkata), e.g. \"22:00\"")
    return time(int(match.group(1)), int(match.group(2)))


def _quiet_hours(table: Any, where: str) -> QuietHours:
    _expect_table(table, where)
    _reject_unknown(table, where, QUIET_HOURS_KEYS)
    for name in ("start", "end"):
        if name not in table:
            raise ConfigError(f"{where}.{name}", "missing: quiet hours need both start and end")
    start = _clock_time(table["start"], f"{where}.start")
    end = _clock_time(table["end"], f"{where}.end")
    if start == end:
        raise ConfigError(f"{where}.end", "equals start: the window would be empty")
    return QuietHours(start=start, end=end, allow_critical=_bool(table, "allow_critical", where, True))
