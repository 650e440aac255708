"""The README's key table is the app's bindings: every bound key is documented where it works,
and every documented key is bound there."""

from __future__ import annotations

import re
from pathlib import Path

from textual.binding import Binding

from tmtool.screens.alert_history import AlertHistoryScreen
from tmtool.screens.app import TmtoolApp
from tmtool.screens.at_risk import MoneyAtRiskScreen
from tmtool.screens.orders_positions import OrdersPositionsScreen
from tmtool.screens.trade_story import TradeStoryScreen
from tmtool.screens.dashboard import DashboardScreen
from tmtool.screens.history import HistoryScreen
from tmtool.screens.strategies import StrategiesScreen
from tmtool.screens.widgets.alerts_panel import AlertsPanel
from tmtool.screens.widgets.trades_table import TradesTable

README = Path(__file__).resolve().parents[2] / "README.md"
WHERE = {
    "everywhere": TmtoolApp,
    "dashboard": DashboardScreen,
    "trades table": TradesTable,
    "alerts panel": AlertsPanel,
    "strategies": StrategiesScreen,
    "history": HistoryScreen,
    "alert log": AlertHistoryScreen,
    "money at risk": MoneyAtRiskScreen,
    "trade story": TradeStoryScreen,
    "orders and positions": OrdersPositionsScreen,
}
NAMED_KEYS = {"question_mark": "?", "slash": "/", "escape": "Esc", "space": "space"}


def key_label(key: str) -> str:
    """How the README writes a Textual key name: ``ctrl+x`` -> ``Ctrl+X``, ``f9`` -> ``F9``."""
    if key in NAMED_KEYS:
        return NAMED_KEYS[key]
    if key.startswith("ctrl+"):
        return "Ctrl+" + key.removeprefix("ctrl+").upper()
    if re.fullmatch(r"f\d+", key):
        return key.upper()
    return key


def bound(owner: type) -> set[str]:
    bindings: list[Binding] = owner.BINDINGS  # type: ignore[attr-defined]
    # A screen's footer entry for an app-wide key ("app.panic") is documented under "everywhere".
    return {key_label(b.key) for b in bindings if not b.action.startswith("app.")}


def documented() -> dict[str, set[str]]:
    text = README.read_text(encoding="utf-8")
    table = text.split("<!-- keys: start -->")[1].split("<!-- keys: end -->")[0]
    keys: dict[str, set[str]] = {where: set() for where in WHERE}
    for line in table.strip().splitlines()[2:]:
        where, key, action = (cell.strip() for cell in line.strip("|").split("|"))
        assert where in WHERE, f"unknown place {where!r} in the README key table"
        assert action, f"{key} has no action"
        keys[where].add(key.strip("`"))
    return keys


def test_the_readme_key_table_matches_the_bindings():
    table = documented()
    for where, owner in WHERE.items():
        assert table[where] == bound(owner), where


def test_the_readme_says_what_e_o_and_a_really_do():
    text = README.read_text(encoding="utf-8")
    assert "opens a strategy picker" in text
    assert "open, all and closed" in text
    assert "moves the focus to the alerts panel first" in text
