"""Alerts: raising, folding repeats, acknowledging.  Owned by the engine thread.

A repeat of an unacknowledged alert with the same ``key`` within
``fold_window`` seconds of its last occurrence folds into it (same id, count
+ 1, ``last_ts`` and text updated, priority never lowered), so a flapping feed
raises one alert with a count instead of a flood.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace
from typing import Iterable, Sequence

from tmtool.domain.models import Alert, AlertCategory, AlertPriority


class AlertBook:
    def __init__(self, next_id: int = 1, fold_window: float = 300.0, keep: int = 200) -> None:
        if fold_window < 0:
            raise ValueError(f"fold_window must be >= 0 seconds, got {fold_window!r}")
        self._next_id = max(1, int(next_id))
        self._fold_window = fold_window
        self._keep = keep
        self._alerts: OrderedDict[int, Alert] = OrderedDict()  # oldest first
        self._by_key: dict[str, int] = {}

    @property
    def next_id(self) -> int:
        return self._next_id

    def restore(self, alerts: Iterable[Alert]) -> None:
        """Take back alerts loaded from the store (any order) so repeats keep folding."""
        for alert in sorted(alerts, key=lambda a: a.id):
            self._remember(alert)
            self._next_id = max(self._next_id, alert.id + 1)

    def raise_alert(
        self,
        ts: float,
        category: AlertCategory,
        priority: AlertPriority,
        text: str,
        key: str = "",
        trade_id: int | None = None,
        strategy: str | None = None,
    ) -> Alert:
        if key:
            previous_id = self._by_key.get(key)
            previous = self._alerts.get(previous_id) if previous_id is not None else None
            if (
                previous is not None
                and not previous.acknowledged
                and ts - (previous.last_ts or previous.ts) <= self._fold_window
            ):
                folded = replace(
                    previous,
                    count=previous.count + 1,
                    last_ts=ts,
                    text=text,
                    priority=priority if priority.rank > previous.priority.rank else previous.priority,
                )
                self._alerts[folded.id] = folded
                self._alerts.move_to_end(folded.id)
                return folded
        alert = Alert(
            id=self._next_id,
            ts=ts,
            category=category,
            priority=priority,
            text=text,
            key=key,
            trade_id=trade_id,
            strategy=strategy,
            last_ts=ts,
        )
        self._next_id += 1
        self._remember(alert)
        return alert

    def acknowledge(self, ids: Sequence[int] = (), dismiss: bool = False) -> list[Alert]:
        """Acknowledge alerts by id (all when ``ids`` is empty); dismissed ones leave the recent list.

        Returns the alerts that changed (to persist).  Unknown ids are ignored.
        """
        targets = list(self._alerts) if not ids else [i for i in ids if i in self._alerts]
        changed: list[Alert] = []
        for alert_id in targets:
            alert = self._alerts[alert_id]
            if not alert.acknowledged:
                alert = replace(alert, acknowledged=True)
                changed.append(alert)
            if dismiss:
                del self._alerts[alert_id]
                if alert.key and self._by_key.get(alert.key) == alert_id:
                    del self._by_key[alert.key]
            else:
                self._alerts[alert_id] = alert
        return changed

    def recent(self, limit: int = 50) -> tuple[Alert, ...]:
        """The most recently raised or folded alerts, newest first."""
        out: list[Alert] = []
        for alert in reversed(self._alerts.values()):
            out.append(alert)
            if len(out) >= limit:
                break
        return tuple(out)

    def unacknowledged(self) -> int:
        return sum(1 for a in self._alerts.values() if not a.acknowledged)

    def _remember(self, alert: Alert) -> None:
        self._alerts[alert.id] = alert
        self._alerts.move_to_end(alert.id)
        if alert.key:
            self._by_key[alert.key] = alert.id
        while len(self._alerts) > self._keep:
            old_id, old = self._alerts.popitem(last=False)
            if old.key and self._by_key.get(old.key) == old_id:
                del self._by_key[old.key]
