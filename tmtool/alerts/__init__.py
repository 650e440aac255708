"""Alert delivery off the desk: webhook, Telegram, e-mail and a local command.

The engine hands every new or folded alert to ``AlertDispatcher.publish``
(an ``AlertSink``); the dispatcher routes, holds back in quiet hours, limits
repeats and delivers on its own threads.
"""

from tmtool.alerts.config import AlertsConfig, QuietHours, Route, Secret
from tmtool.alerts.dispatcher import AlertDispatcher, ChannelStats, DispatcherStats
from tmtool.alerts.formatting import format_alert

__all__ = [
    "AlertDispatcher",
    "AlertsConfig",
    "ChannelStats",
    "DispatcherStats",
    "QuietHours",
    "Route",
    "Secret",
    "format_alert",
]
