"""The dispatcher end to end: real channels on loopback, real worker threads, a manual clock."""

from __future__ import annotations

import logging
import re
import shlex
import threading
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Iterator

import pytest

from tmtool.alerts import AlertDispatcher, AlertsConfig
from tmtool.domain.calendar import IST
from tmtool.clock import ManualClock

from tests.alerts.conftest import SMTP_PASSWORD, SMTP_USER, make_alert
from tests.util import wait_for

TOKEN = "555000:AAE-dispatcher-token-secret"
ENVIRON = {"TG_TOKEN": TOKEN, "TG_CHAT": "777", "SMTP_PW": SMTP_PASSWORD}
FAST = {"retries": 1, "retry_backoff": 0.01}


class FailureReports:
    """Collects ``report_failure`` calls (made on the dispatcher's worker threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[tuple[str, str]] = []

    def __call__(self, channel: str, message: str) -> None:
        with self._lock:
            self.calls.append((channel, message))

    def channels(self) -> list[str]:
        with self._lock:
            return [channel for channel, _ in self.calls]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def reports() -> FailureReports:
    return FailureReports()


@pytest.fixture
def dispatcher_for(clock, reports) -> Iterator:
    """Builds and starts a dispatcher from an [alerts] table; stops it after the test."""
    started: list[AlertDispatcher] = []

    def build(table: dict) -> AlertDispatcher:
        dispatcher = AlertDispatcher(AlertsConfig.from_table(table, environ=ENVIRON), clock=clock, report_failure=reports)
        dispatcher.start()
        started.append(dispatcher)
        return dispatcher

    yield build
    for dispatcher in started:
        assert dispatcher.stop(timeout=5.0)


def command_log(path: Path) -> dict:
    """A command channel that appends ``id count priority`` per alert to ``path``."""
    line = '"$TMTOOL_ALERT_ID $TMTOOL_ALERT_COUNT $TMTOOL_ALERT_PRIORITY"'
    return {"command": f"echo {line} >> {shlex.quote(str(path))}", "timeout": 5, "min_priority": "INFO"}


def logged(path: Path) -> list[tuple[int, int, str]]:
    if not path.exists():
        return []
    rows = [line.split() for line in path.read_text().splitlines()]
    return [(int(i), int(c), p) for i, c, p in rows]


def webhook_ids(receiver) -> list[int]:
    return [request.json()["id"] for request in receiver.received()]


def stats_of(dispatcher: AlertDispatcher, name: str):
    return next(channel for channel in dispatcher.stats().channels if channel.name == name)


# --------------------------------------------------------------------------- routing


def test_alerts_are_routed_by_category_and_priority(dispatcher_for, http_receiver, tmp_path):
    hook, telegram, log_file = http_receiver(), http_receiver(), tmp_path / "command.log"
    dispatcher = dispatcher_for(
        {
            "webhook": {"url": f"{hook.base_url}/hook", "categories": ["TRADE", "SYSTEM"], "min_priority": "INFO"},
            "telegram": {"bot_token_env": "TG_TOKEN", "chat_id_env": "TG_CHAT", "api_base": telegram.base_url,
                         "min_priority": "CRITICAL"},
            "command": {**command_log(log_file), "categories": ["PORTFOLIO", "SYSTEM"], "min_priority": "WARNING"},
        }
    )  # fmt: skip
    alerts = [
        make_alert(1, "INFO", "TRADE"),
        make_alert(2, "WARNING", "PORTFOLIO"),
        make_alert(3, "CRITICAL", "TRADE"),
        make_alert(4, "INFO", "PORTFOLIO"),
        make_alert(5, "CRITICAL", "PORTFOLIO"),
        make_alert(6, "WARNING", "SYSTEM"),
        make_alert(99, "CRITICAL", "SYSTEM"),  # goes everywhere: marks the end of each channel's queue
    ]
    for alert in alerts:
        dispatcher.publish(alert)

    wait_for(lambda: 99 in webhook_ids(hook), what="the marker on the webhook")
    wait_for(lambda: any("alert 99" in r.json()["text"] for r in telegram.received()), what="the marker on Telegram")
    wait_for(lambda: any(row[0] == 99 for row in logged(log_file)), what="the marker on the command")

    assert webhook_ids(hook) == [1, 3, 6, 99]
    assert [re.search(r"alert (\d+)", r.json()["text"]).group(1) for r in telegram.received()] == ["3", "5", "99"]
    assert [row[0] for row in logged(log_file)] == [2, 5, 6, 99]
    assert dispatcher.stats().published == 7


# --------------------------------------------------------------------------- quiet hours


def at_ist(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 1, 5, hour, minute, tzinfo=IST)


@pytest.mark.parametrize("allow_critical", [True, False])
def test_quiet_hours_hold_back_alerts_and_optionally_let_critical_through(
    dispatcher_for, http_receiver, clock, allow_critical
):
    hook = http_receiver()
    dispatcher = dispatcher_for(
        {
            "quiet_hours": {"start": "22:00", "end": "07:00", "allow_critical": allow_critical},
            "webhook": {"url": f"{hook.base_url}/hook", "min_priority": "INFO"},
        }
    )
    clock.set(at_ist(23, 30))
    dispatcher.publish(make_alert(1, "WARNING"))
    dispatcher.publish(make_alert(2, "CRITICAL"))
    clock.set(at_ist(7, 0))  # the window has ended: alerts go out again
    dispatcher.publish(make_alert(3, "INFO"))

    wait_for(lambda: 3 in webhook_ids(hook), what="the alert after quiet hours")
    assert webhook_ids(hook) == ([2, 3] if allow_critical else [3])
    assert dispatcher.stats().held_quiet == (1 if allow_critical else 2)


# --------------------------------------------------------------------------- folding


def test_a_flapping_alert_is_delivered_at_most_once_per_fold_window(dispatcher_for, http_receiver, clock):
    hook = http_receiver()
    dispatcher = dispatcher_for({"fold_window": 60, "webhook": {"url": f"{hook.base_url}/hook", "min_priority": "INFO"}})

    def received() -> list[tuple[int, int]]:
        return [(r.json()["id"], r.json()["count"]) for r in hook.received()]

    dispatcher.publish(make_alert(7, "WARNING", text="feed stale"))
    for count in (2, 3, 4):  # the engine folds repeats into alert 7 within the window
        clock.advance(10)
        dispatcher.publish(make_alert(7, "WARNING", text="feed stale", count=count))
    dispatcher.publish(make_alert(8, "WARNING", text="another alert"))  # same queue: marks what was sent
    wait_for(lambda: (8, 1) in received(), what="the marker")
    assert received() == [(7, 1), (8, 1)]
    assert dispatcher.stats().held_folded == 3

    clock.advance(31)  # 61 s since alert 7 went out: the newest held repeat goes out once
    wait_for(lambda: (7, 4) in received(), what="the held repeat at the end of the window")

    clock.advance(5)
    dispatcher.publish(make_alert(7, "WARNING", count=5))  # within the new window: held
    dispatcher.publish(make_alert(7, "CRITICAL", count=6))  # escalated: goes out at once
    clock.advance(120)
    dispatcher.publish(make_alert(7, "CRITICAL", count=7))  # window over: goes out at once
    wait_for(lambda: (7, 7) in received(), what="the repeat after the window")
    assert received() == [(7, 1), (8, 1), (7, 4), (7, 6), (7, 7)]


def test_acknowledged_alerts_are_not_sent_again(dispatcher_for, http_receiver):
    hook = http_receiver()
    dispatcher = dispatcher_for({"webhook": {"url": f"{hook.base_url}/hook", "min_priority": "INFO"}})
    dispatcher.publish(replace(make_alert(1, "CRITICAL"), acknowledged=True))
    dispatcher.publish(make_alert(2, "CRITICAL"))
    wait_for(lambda: 2 in webhook_ids(hook), what="the unacknowledged alert")
    assert webhook_ids(hook) == [2]


# --------------------------------------------------------------------------- back-pressure


def test_a_full_queue_drops_the_oldest_info_first_and_publish_never_waits(dispatcher_for, http_receiver):
    hook = http_receiver()
    hook.hold = True  # the receiver keeps the first request open until released
    dispatcher = dispatcher_for(
        {"queue_size": 3, "webhook": {"url": f"{hook.base_url}/hook", "min_priority": "INFO", "timeout": 30}}
    )
    dispatcher.publish(make_alert(1, "CRITICAL"))
    wait_for(lambda: webhook_ids(hook) == [1], what="the worker to be busy with alert 1")

    for alert_id, priority in [(2, "INFO"), (3, "WARNING"), (4, "INFO"), (5, "CRITICAL"), (6, "WARNING"), (7, "INFO")]:
        dispatcher.publish(make_alert(alert_id, priority))
    # 5 pushed out INFO 2, 6 pushed out INFO 4; INFO 7 ranked below everything queued.
    assert stats_of(dispatcher, "webhook").dropped == 3
    assert stats_of(dispatcher, "webhook").queued == 3

    hook.release.set()
    wait_for(lambda: stats_of(dispatcher, "webhook").delivered == 4, what="the queue to drain")
    assert webhook_ids(hook) == [1, 3, 5, 6]


# --------------------------------------------------------------------------- failures


def test_a_dead_and_a_slow_channel_do_not_stop_the_others_and_report_once(
    dispatcher_for, http_receiver, refused_url, tmp_path, reports
):
    slow = http_receiver()
    slow.hold = True
    log_file = tmp_path / "command.log"
    dispatcher = dispatcher_for(
        {
            **FAST,
            "webhook": {"url": f"{refused_url}/hook", "min_priority": "INFO", "timeout": 2},
            "telegram": {"bot_token_env": "TG_TOKEN", "chat_id_env": "TG_CHAT", "api_base": slow.base_url,
                         "timeout": 0.2, "min_priority": "INFO"},
            "command": command_log(log_file),
        }
    )  # fmt: skip
    for alert_id in (1, 2, 3):
        dispatcher.publish(make_alert(alert_id, "CRITICAL"))

    wait_for(lambda: [row[0] for row in logged(log_file)] == [1, 2, 3], what="every alert on the command channel")
    wait_for(lambda: stats_of(dispatcher, "webhook").failed == 3, what="the webhook to give up on all three")
    wait_for(lambda: stats_of(dispatcher, "telegram").failed == 3, what="Telegram to give up on all three")

    assert sorted(reports.channels()) == ["telegram", "webhook"]  # one report per outage, not per alert
    messages = dict(reports.calls)
    assert messages["webhook"].startswith("alerts to webhook are failing: cannot connect to 127.0.0.1:")
    assert messages["telegram"].startswith("alerts to telegram are failing: no answer from 127.0.0.1:")
    # First alert: 1 + retries attempts; later ones a single attempt while the outage lasts.
    wait_for(lambda: len(slow.received()) == 2 + 1 + 1, what="four requests at the slow receiver")
    assert stats_of(dispatcher, "command").delivered == 3 and not stats_of(dispatcher, "command").failing


def test_a_channel_reports_again_only_after_it_recovered_and_failed_anew(dispatcher_for, http_receiver, reports):
    hook = http_receiver()
    hook.status = 500
    dispatcher = dispatcher_for({"retries": 0, "retry_backoff": 0.01, "webhook": {"url": f"{hook.base_url}/hook", "min_priority": "INFO"}})

    def settle(delivered: int, failed: int) -> None:
        wait_for(
            lambda: (stats_of(dispatcher, "webhook").delivered, stats_of(dispatcher, "webhook").failed)
            == (delivered, failed),
            what=f"{delivered} delivered and {failed} failed",
        )

    dispatcher.publish(make_alert(1))
    dispatcher.publish(make_alert(2))
    settle(0, 2)
    assert reports.channels() == ["webhook"]
    assert "HTTP 500" in reports.calls[0][1]

    hook.status = 200
    dispatcher.publish(make_alert(3))
    settle(1, 2)
    assert not stats_of(dispatcher, "webhook").failing

    hook.status = 500
    dispatcher.publish(make_alert(4))
    settle(1, 3)
    assert reports.channels() == ["webhook", "webhook"]


def test_email_is_delivered_through_the_dispatcher_with_starttls(dispatcher_for, starttls_smtp, tls_certificate):
    controller, mailbox = starttls_smtp
    dispatcher = dispatcher_for(
        {
            "email": {"host": "127.0.0.1", "port": controller.port, "username": SMTP_USER, "password_env": "SMTP_PW",
                      "from": "desk@example.com", "to": "me@example.com", "ca_file": str(tls_certificate[0])},
        }
    )  # fmt: skip
    dispatcher.publish(make_alert(41, "CRITICAL", "PORTFOLIO", "momentum: portfolio stop hit, exiting 3 trades"))
    wait_for(lambda: mailbox.messages, what="the e-mail")
    assert b"portfolio stop hit" in mailbox.messages[0].content and mailbox.messages[0].over_tls


def test_stop_returns_false_when_a_channel_is_stuck_and_drops_its_queue(clock, http_receiver):
    hook = http_receiver()
    hook.hold = True
    table = {"webhook": {"url": f"{hook.base_url}/hook", "min_priority": "INFO", "timeout": 30}}
    dispatcher = AlertDispatcher(AlertsConfig.from_table(table, environ={}), clock=clock)
    dispatcher.start()
    dispatcher.publish(make_alert(1))
    dispatcher.publish(make_alert(2))
    wait_for(lambda: webhook_ids(hook) == [1], what="the worker to be stuck on alert 1")
    assert dispatcher.stop(timeout=0.1) is False
    hook.release.set()
    wait_for(lambda: stats_of(dispatcher, "webhook").dropped == 1, what="the queued alert to be dropped")
    dispatcher.publish(make_alert(3))  # after stop: ignored, never raises
    assert webhook_ids(hook) == [1]


# --------------------------------------------------------------------------- secrets


def test_secrets_never_reach_logs_reports_or_reprs(dispatcher_for, http_receiver, reports, caplog):
    caplog.set_level(logging.DEBUG)
    telegram = http_receiver()
    dispatcher = dispatcher_for(
        {
            **FAST,
            "telegram": {"bot_token_env": "TG_TOKEN", "chat_id_env": "TG_CHAT", "api_base": telegram.base_url},
        }
    )
    dispatcher.publish(make_alert(1, "CRITICAL"))
    wait_for(lambda: stats_of(dispatcher, "telegram").delivered == 1, what="a delivery")

    telegram.status = 401  # an error answer that echoes the request path, token and all
    telegram.reply = lambda request: {"ok": False, "description": f"Unauthorized: {request.path}"}
    dispatcher.publish(make_alert(2, "CRITICAL"))
    wait_for(lambda: reports.calls, what="the failure report")

    assert "/bot***/sendMessage" in caplog.text  # the HTTP library's request log line, redacted
    everything = "\n".join(
        [caplog.text, repr(reports.calls), repr(dispatcher), repr(dispatcher.stats()),
         repr(AlertsConfig.from_table({"telegram": {"bot_token_env": "TG_TOKEN", "chat_id_env": "TG_CHAT"}},
                                      environ=ENVIRON))]
    )  # fmt: skip
    assert TOKEN not in everything
    assert TOKEN.split(":")[1] not in everything
