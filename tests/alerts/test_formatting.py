"""How an alert reads on a phone, in a webhook body and in a command's environment."""

from __future__ import annotations

from tmtool.alerts.formatting import (
    MAX_LINE,
    MAX_SUBJECT,
    alert_environment,
    alert_payload,
    format_alert,
    format_details,
    format_subject,
)

from tests.alerts.conftest import MORNING, make_alert


def test_the_line_shows_priority_category_trade_strategy_and_time():
    alert = make_alert(12, "CRITICAL", "TRADE", "EXIT_FAILED RELIANCE: exit rejected 3 times, position still open", trade_id=12)
    assert format_alert(alert) == (
        "tmtool CRITICAL TRADE #12 momentum: EXIT_FAILED RELIANCE: exit rejected 3 times, position still open [09:30:00 IST]"
    )


def test_a_system_alert_has_no_trade_or_strategy():
    alert = make_alert(3, "WARNING", "SYSTEM", "feed\nreconnecting", trade_id=None, strategy=None)
    assert format_alert(alert) == "tmtool WARNING SYSTEM: feed reconnecting [09:30:00 IST]"


def test_a_folded_alert_shows_its_count_and_last_time():
    alert = make_alert(5, "WARNING", count=4, last_ts=MORNING + 125)
    assert format_alert(alert).endswith("[x4, last 09:32:05 IST]")
    assert format_subject(alert).endswith("(x4)")


def test_long_text_is_shortened_to_fit_a_phone_and_a_subject():
    alert = make_alert(text="price gap " * 200)
    line = format_alert(alert)
    assert len(line) <= MAX_LINE and "…" in line and line.endswith("[09:30:00 IST]")
    assert len(format_subject(alert)) <= MAX_SUBJECT
    assert ("price gap " * 200).strip() in format_details(alert)  # the e-mail body keeps all of it


def test_payload_carries_every_field():
    payload = alert_payload(make_alert(9, "INFO", "PORTFOLIO", "target hit", key="PORTFOLIO_TARGET:momentum"))
    assert payload == {
        "source": "tmtool",
        "id": 9,
        "ts": MORNING,
        "time": "2026-01-01T09:30:00+05:30",
        "last_ts": MORNING,
        "category": "PORTFOLIO",
        "priority": "INFO",
        "text": "target hit",
        "key": "PORTFOLIO_TARGET:momentum",
        "trade_id": 12,
        "strategy": "momentum",
        "count": 1,
        "acknowledged": False,
        "message": "tmtool INFO PORTFOLIO #12 momentum: target hit [09:30:00 IST]",
    }


def test_environment_variables_are_strings_without_nul_bytes():
    env = alert_environment(make_alert(4, text="bad\x00byte", trade_id=None, strategy=None))
    assert env["TMTOOL_ALERT_TEXT"] == "bad byte"
    assert env["TMTOOL_ALERT_TRADE_ID"] == "" and env["TMTOOL_ALERT_STRATEGY"] == ""
    assert env["TMTOOL_ALERT_ID"] == "4" and env["TMTOOL_ALERT_COUNT"] == "1"
    assert set(env) == {
        f"TMTOOL_ALERT_{name}"
        for name in ("ID", "TS", "TIME", "CATEGORY", "PRIORITY", "TEXT", "KEY", "TRADE_ID", "STRATEGY", "COUNT", "MESSAGE")
    }
