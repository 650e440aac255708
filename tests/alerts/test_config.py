"""Parsing the [alerts] section: defaults, every key, and clear errors for bad input."""

from __future__ import annotations

import tomllib
from datetime import datetime, time

import pytest

from tmtool.alerts.config import AlertsConfig, CommandConfig, QuietHours, Route, Secret
from tmtool.config import ConfigError
from tmtool.domain.calendar import IST
from tmtool.domain.models import AlertCategory, AlertPriority

from tests.alerts.conftest import make_alert

TOKEN = "987654321:AAH-secret-bot-token"
ENVIRON = {"TMTOOL_TELEGRAM_TOKEN": TOKEN, "TMTOOL_TELEGRAM_CHAT": "-100123", "TMTOOL_SMTP_PASSWORD": "hunter2-smtp"}

FULL = """
terminal_bell = false
level_changes = "every"
queue_size = 50
fold_window = 120
retries = 3
retry_backoff = 0.5

[quiet_hours]
start = "22:00"
end = "07:00"
allow_critical = false

[webhook]
url = "https://hooks.example.com/services/T000/B000/XXXXSECRETPATH"
headers = { Authorization = "Bearer webhook-header-secret" }
timeout = 3
categories = ["TRADE", "PORTFOLIO"]
min_priority = "INFO"

[telegram]
bot_token_env = "TMTOOL_TELEGRAM_TOKEN"
chat_id_env = "TMTOOL_TELEGRAM_CHAT"
api_base = "http://127.0.0.1:8081/"
min_priority = "CRITICAL"

[email]
host = "smtp.example.com"
username = "desk@example.com"
password_env = "TMTOOL_SMTP_PASSWORD"
from = "desk@example.com"
to = ["me@example.com", "partner@example.com"]

[command]
command = ["notify-send", "tmtool"]
timeout = 2.5
enabled = true
"""


def parse(table: dict, environ: dict[str, str] | None = None) -> AlertsConfig:
    return AlertsConfig.from_table(table, environ=ENVIRON if environ is None else environ)


def test_an_empty_section_gives_the_defaults_and_no_channels():
    config = parse({})
    assert config == AlertsConfig()
    assert config.channels == {}
    assert config.terminal_bell is True and config.level_changes == "first" and config.quiet_hours is None


def test_every_key_of_a_full_section_is_parsed():
    config = parse(tomllib.loads(FULL))
    assert (config.terminal_bell, config.level_changes, config.queue_size) == (False, "every", 50)
    assert (config.fold_window, config.retries, config.retry_backoff) == (120.0, 3, 0.5)
    assert config.quiet_hours == QuietHours(time(22, 0), time(7, 0), allow_critical=False)
    assert list(config.channels) == ["webhook", "telegram", "email", "command"]

    webhook = config.webhook
    assert webhook.headers == (("Authorization", "Bearer webhook-header-secret"),)
    assert webhook.timeout == 3.0
    assert webhook.route == Route(frozenset({AlertCategory.TRADE, AlertCategory.PORTFOLIO}), AlertPriority.INFO)

    telegram = config.telegram
    assert telegram.bot_token.reveal() == TOKEN and telegram.chat_id == "-100123"
    assert telegram.api_base == "http://127.0.0.1:8081"
    assert telegram.route.min_priority is AlertPriority.CRITICAL

    email = config.email
    assert (email.host, email.port, email.starttls) == ("smtp.example.com", 587, True)
    assert email.password.reveal() == "hunter2-smtp"
    assert email.recipients == ("me@example.com", "partner@example.com")
    assert email.route == Route()  # all categories, WARNING and above

    assert config.command == CommandConfig(command=("notify-send", "tmtool"), timeout=2.5)
    assert config.secret_env_names == {"TMTOOL_TELEGRAM_TOKEN", "TMTOOL_TELEGRAM_CHAT", "TMTOOL_SMTP_PASSWORD"}


def test_secrets_never_show_in_repr_or_str():
    config = parse(tomllib.loads(FULL))
    for text in (repr(config), str(config), repr(config.webhook), repr(config.telegram), repr(config.email)):
        for secret in (TOKEN, "hunter2-smtp", "webhook-header-secret", "XXXXSECRETPATH"):
            assert secret not in text
    assert "$TMTOOL_TELEGRAM_TOKEN" in repr(config.telegram)  # says where it came from
    assert "hooks.example.com" in repr(config.webhook)
    assert f"{Secret('x', source='$X')}" == "Secret(from $X)"


def test_a_disabled_channel_is_left_out_without_needing_its_secrets():
    config = parse({"telegram": {"enabled": False, "bot_token_env": "UNSET_VARIABLE", "chat_id_env": "ALSO_UNSET"}}, {})
    assert config.telegram is None and config.channels == {}


def test_email_defaults_to_port_25_when_starttls_is_off():
    config = parse({"email": {"host": "relay.local", "starttls": False, "from": "a@b.c", "to": "d@e.f"}})
    assert (config.email.port, config.email.starttls, config.email.recipients) == (25, False, ("d@e.f",))
    assert config.email.password is None


def test_a_shell_command_string_is_kept_as_a_string():
    config = parse({"command": {"command": 'notify-send tmtool "$TMTOOL_ALERT_MESSAGE"'}})
    assert config.command.command == 'notify-send tmtool "$TMTOOL_ALERT_MESSAGE"'


@pytest.mark.parametrize(
    ("table", "key", "fragment"),
    [
        ({"colour": "red"}, "alerts.colour", "unknown key"),
        ({"webhook": {"url": "https://x.example", "verify": False}}, "alerts.webhook.verify", "unknown key"),
        ({"quiet_hours": {"start": "22:00", "end": "07:00", "tz": "UTC"}}, "alerts.quiet_hours.tz", "unknown key"),
        ({"level_changes": "sometimes"}, "alerts.level_changes", "'sometimes' is not allowed: must be one of every, first, none"),
        ({"terminal_bell": "yes"}, "alerts.terminal_bell", "'yes' is not allowed: must be true or false"),
        ({"queue_size": 0}, "alerts.queue_size", "0 is not allowed: must be a whole number at least 1 and at most 100000"),
        ({"queue_size": True}, "alerts.queue_size", "True is not allowed: must be a whole number"),
        ({"retries": 11}, "alerts.retries", "11 is not allowed: must be a whole number at least 0 and at most 10"),
        ({"fold_window": float("nan")}, "alerts.fold_window", "nan is not allowed: must be a finite number at least 0 and at most 86400"),
        ({"retry_backoff": 0}, "alerts.retry_backoff", "greater than 0"),
        ({"quiet_hours": {"start": "25:00", "end": "07:00"}}, "alerts.quiet_hours.start", "'25:00' is not allowed: must be a 24-hour HH:MM time"),
        ({"quiet_hours": {"start": "22:00"}}, "alerts.quiet_hours.end", "is required"),
        ({"quiet_hours": {"start": "22:00", "end": "22:00"}}, "alerts.quiet_hours.end", "empty"),
        ({"quiet_hours": "22-07"}, "alerts.quiet_hours", "'22-07' is not allowed: must be a table"),
        ({"webhook": {"url": "ftp://x.example/hook"}}, "alerts.webhook.url", "http:// or https://"),
        ({"webhook": {}}, "alerts.webhook.url", "is required"),
        ({"webhook": {"url": "https://x.example", "timeout": -1}}, "alerts.webhook.timeout", "-1 is not allowed: must be a number greater than 0"),
        ({"webhook": {"url": "https://x.example", "timeout": float("inf")}}, "alerts.webhook.timeout", "inf"),
        ({"webhook": {"url": "https://x.example", "headers": {"X": "a\nb"}}}, "alerts.webhook.headers.X", "one-line"),
        ({"webhook": {"url": "https://x.example", "headers": {"Bad Name": "v"}}}, 'alerts.webhook.headers."Bad Name"', "header name"),
        ({"webhook": {"url": "https://x.example", "categories": ["TRADES"]}}, "alerts.webhook.categories[0]", "'TRADES' is not allowed: must be one of TRADE, PORTFOLIO, SYSTEM"),
        ({"webhook": {"url": "https://x.example", "categories": []}}, "alerts.webhook.categories", "non-empty list"),
        ({"webhook": {"url": "https://x.example", "min_priority": "URGENT"}}, "alerts.webhook.min_priority", "'URGENT' is not allowed: must be one of INFO, WARNING, CRITICAL"),
        ({"telegram": {"chat_id_env": "TMTOOL_TELEGRAM_CHAT"}}, "alerts.telegram.bot_token_env", "is required"),
        ({"telegram": {"bot_token_env": "NOT_SET_ANYWHERE", "chat_id_env": "TMTOOL_TELEGRAM_CHAT"}}, "alerts.telegram.bot_token_env", "environment variable NOT_SET_ANYWHERE is not set"),
        ({"telegram": {"bot_token_env": "has space", "chat_id_env": "TMTOOL_TELEGRAM_CHAT"}}, "alerts.telegram.bot_token_env", "'has space' is not allowed: must be an environment variable name"),
        ({"email": {"host": "h", "from": "a@b.c", "to": []}}, "alerts.email.to", "non-empty list"),
        ({"email": {"host": "h", "from": "a@b.c", "to": ["x@y.z, evil@y.z"]}}, "alerts.email.to[0]", "must be a plain e-mail address"),
        ({"email": {"host": "h", "from": "nobody", "to": "x@y.z"}}, "alerts.email.from", "'nobody' is not allowed: must be a plain e-mail address"),
        ({"email": {"host": "h", "from": "a@b.c", "to": "x@y.z", "username": "u"}}, "alerts.email.password_env", "is required when username is set"),
        ({"email": {"host": "h", "from": "a@b.c", "to": "x@y.z", "password_env": "TMTOOL_SMTP_PASSWORD"}}, "alerts.email.password_env", "needs a username"),
        ({"email": {"host": "h", "from": "a@b.c", "to": "x@y.z", "port": 70000}}, "alerts.email.port", "70000"),
        ({"email": {"host": "h", "from": "a@b.c", "to": "x@y.z", "ca_file": "/no/such/ca.pem"}}, "alerts.email.ca_file", "must name a readable file"),
        ({"command": {"command": ""}}, "alerts.command.command", "empty"),
        ({"command": {"command": []}}, "alerts.command.command", "non-empty list"),
        ({"command": {"command": ["notify", 3]}}, "alerts.command.command", "list of strings"),
        ({"command": {"command": "x", "enabled": 1}}, "alerts.command.enabled", "1 is not allowed: must be true or false"),
    ],
)
def test_bad_config_names_the_key_and_what_is_allowed(table, key, fragment):
    with pytest.raises(ConfigError) as caught:
        parse(table)
    assert caught.value.key == key
    assert fragment in str(caught.value)


def test_a_bad_webhook_url_is_not_echoed_back():
    with pytest.raises(ConfigError) as caught:
        parse({"webhook": {"url": "hooks.example.com/T000/SECRETPATH"}})
    assert "SECRETPATH" not in str(caught.value)


def test_the_section_name_given_is_used_in_error_keys():
    with pytest.raises(ConfigError) as caught:
        AlertsConfig.from_table({"bogus": 1}, where="profiles.live.alerts", environ={})
    assert caught.value.key == "profiles.live.alerts.bogus"


def ist(hour: int, minute: int) -> float:
    return datetime(2026, 1, 5, hour, minute, tzinfo=IST).timestamp()


@pytest.mark.parametrize(
    ("hour", "minute", "active"),
    [(21, 59, False), (22, 0, True), (23, 30, True), (0, 0, True), (6, 59, True), (7, 0, False), (12, 0, False)],
)
def test_quiet_hours_spanning_midnight(hour, minute, active):
    assert QuietHours(time(22, 0), time(7, 0)).active_at(ist(hour, minute)) is active


@pytest.mark.parametrize(("hour", "minute", "active"), [(11, 59, False), (12, 0, True), (13, 29, True), (13, 30, False)])
def test_quiet_hours_within_one_day(hour, minute, active):
    assert QuietHours(time(12, 0), time(13, 30)).active_at(ist(hour, minute)) is active


def test_quiet_hours_let_critical_through_only_when_allowed():
    night = ist(23, 0)
    critical, warning = make_alert(priority="CRITICAL"), make_alert(priority="WARNING")
    lenient = QuietHours(time(22, 0), time(7, 0), allow_critical=True)
    strict = QuietHours(time(22, 0), time(7, 0), allow_critical=False)
    assert not lenient.holds_back(critical, night) and lenient.holds_back(warning, night)
    assert strict.holds_back(critical, night)


def test_a_route_takes_its_categories_at_or_above_its_priority():
    route = Route(frozenset({AlertCategory.TRADE}), AlertPriority.WARNING)
    assert route.accepts(make_alert(priority="WARNING", category="TRADE"))
    assert route.accepts(make_alert(priority="CRITICAL", category="TRADE"))
    assert not route.accepts(make_alert(priority="INFO", category="TRADE"))
    assert not route.accepts(make_alert(priority="CRITICAL", category="SYSTEM"))
