"""How an alert reads off the desk: one short line for a phone, a JSON body, environment variables."""

from __future__ import annotations

from tmtool.domain.calendar import to_ist
from tmtool.domain.models import Alert

MAX_LINE = 400  # characters of the one-line message (a phone notification, an SMS-like chat)
MAX_SUBJECT = 140


def _one_line(text: str) -> str:
    return " ".join(text.replace("\x00", " ").split())


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def alert_time(alert: Alert) -> float:
    """When the alert last happened (the newest repeat of a folded alert)."""
    return alert.last_ts if alert.count > 1 and alert.last_ts else alert.ts


def format_head(alert: Alert) -> str:
    """``tmtool CRITICAL TRADE #12 momentum``: priority, category, trade and strategy."""
    parts = ["tmtool", alert.priority.value, alert.category.value]
    if alert.trade_id is not None:
        parts.append(f"#{alert.trade_id}")
    if alert.strategy:
        parts.append(_one_line(alert.strategy))
    return " ".join(parts)


def format_alert(alert: Alert) -> str:
    """One line: ``tmtool CRITICAL TRADE #12 momentum: <text> [x3, 14:05:09 IST]``."""
    clock = to_ist(alert_time(alert)).strftime("%H:%M:%S IST")
    tail = f" [x{alert.count}, last {clock}]" if alert.count > 1 else f" [{clock}]"
    head = f"{format_head(alert)}: "
    room = max(40, MAX_LINE - len(head) - len(tail))
    return head + _shorten(_one_line(alert.text), room) + tail


def format_subject(alert: Alert) -> str:
    """An e-mail subject: the head and the start of the text."""
    suffix = f" (x{alert.count})" if alert.count > 1 else ""
    return _shorten(f"{format_head(alert)}: {_one_line(alert.text)}", MAX_SUBJECT - len(suffix)) + suffix


def format_details(alert: Alert) -> str:
    """A multi-line body: the full text, then every field."""
    lines = [
        format_alert(alert),
        "",
        alert.text.replace("\x00", " "),
        "",
        f"alert id:  {alert.id}",
        f"time:      {to_ist(alert.ts).isoformat(timespec='seconds')}",
        f"priority:  {alert.priority.value}",
        f"category:  {alert.category.value}",
    ]
    if alert.trade_id is not None:
        lines.append(f"trade:     #{alert.trade_id}")
    if alert.strategy:
        lines.append(f"strategy:  {alert.strategy}")
    if alert.key:
        lines.append(f"key:       {alert.key}")
    if alert.count > 1:
        lines.append(f"repeats:   {alert.count}, last at {to_ist(alert_time(alert)).isoformat(timespec='seconds')}")
    return "\n".join(lines) + "\n"


def alert_payload(alert: Alert) -> dict[str, object]:
    """The JSON body a webhook receives."""
    return {
        "source": "tmtool",
        "id": alert.id,
        "ts": alert.ts,
        "time": to_ist(alert.ts).isoformat(timespec="seconds"),
        "last_ts": alert_time(alert),
        "category": alert.category.value,
        "priority": alert.priority.value,
        "text": alert.text,
        "key": alert.key,
        "trade_id": alert.trade_id,
        "strategy": alert.strategy,
        "count": alert.count,
        "acknowledged": alert.acknowledged,
        "message": format_alert(alert),
    }


def alert_environment(alert: Alert) -> dict[str, str]:
    """``TMTOOL_ALERT_*`` variables for the command channel (NUL bytes removed: the OS refuses them)."""
    values = {
        "ID": str(alert.id),
        "TS": f"{alert.ts:.3f}",
        "TIME": to_ist(alert.ts).isoformat(timespec="seconds"),
        "CATEGORY": alert.category.value,
        "PRIORITY": alert.priority.value,
        "TEXT": alert.text,
        "KEY": alert.key,
        "TRADE_ID": "" if alert.trade_id is None else str(alert.trade_id),
        "STRATEGY": alert.strategy or "",
        "COUNT": str(alert.count),
        "MESSAGE": format_alert(alert),
    }
    return {f"TMTOOL_ALERT_{name}": value.replace("\x00", " ") for name, value in values.items()}
