"""Orders and positions: tmtool's orders that are not final (state, fills, why they were sent) and,
per net position, what the broker's positionbook last said against what tmtool's trades hold,
with every difference highlighted."""

from __future__ import annotations

from typing import cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from tmtool.engine.snapshot import EngineSnapshot, OrderView, PositionView
from tmtool.screens.formatting import Palette, format_price
from tmtool.screens.host import ScreenHost
from tmtool.screens.widgets.status_bar import StatusBar

POSITION_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("position", "Position", 22),
    ("broker", "Broker", 7),
    ("tmtool", "tmtool", 7),
    ("check", "Check", 16),
    ("exits", "Exiting", 7),
)
ORDER_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("trade", "Trade", 5),
    ("order", "Order", 18),
    ("state", "State", 8),
    ("filled", "Filled", 11),
    ("avg", "Avg", 9),
    ("why", "Why", 14),
    ("order_id", "OpenAlgo id", 14),
    ("message", "Message", 40),
)
FUNDS_NOTE = "Funds are read from OpenAlgo when a trade is entered, not polled: `tmtool doctor` shows them now."


def position_row(view: PositionView, palette: Palette) -> tuple:
    broker = "?" if view.broker_net is None else f"{view.broker_net:+d}"
    if view.broker_net is None:
        check = Text("not read yet", style=palette.muted)
    elif view.differs:
        check = Text(f"DIFFERS by {view.broker_net - view.tmtool_net:+d}", style=f"bold reverse {palette.warning}")
    else:
        check = Text("matches", style=palette.gain)
    return (
        f"{view.exchange}:{view.symbol} {view.product}",
        Text(broker, justify="right"),
        Text(f"{view.tmtool_net:+d}", justify="right"),
        check,
        Text(str(view.exits_in_flight or ""), justify="right"),
    )


def order_row(view: OrderView, palette: Palette) -> tuple:
    state_style = f"bold {palette.warning}" if view.state in ("UNKNOWN", "INTENT") else ""
    return (
        f"#{view.trade_id}",
        f"{view.purpose} {view.action} {view.quantity} {view.symbol}",
        Text(view.state, style=state_style),
        f"{view.filled_quantity}/{view.quantity}",
        format_price(view.average_price) if view.filled_quantity else "–",
        view.reason or ("entry" if view.purpose == "ENTRY" else ""),
        view.order_id or "–",
        view.message,
    )


class OrdersPositionsScreen(Screen):
    """Positions (broker against tmtool) on top, tmtool's live orders below."""

    BINDINGS = [Binding("escape", "back", "Back", id="orders_back")]

    def __init__(self) -> None:
        super().__init__(id="orders-positions")
        self._ready = False

    @property
    def tmtool(self) -> ScreenHost:
        return cast(ScreenHost, self.app)

    def compose(self) -> ComposeResult:
        yield StatusBar()
        yield Static("Positions: the broker's net against tmtool's trades", classes="screen-title")
        yield DataTable(id="positions-table", cursor_type="row")
        yield Static("Orders not final yet", classes="screen-title")
        yield DataTable(id="orders-table", cursor_type="row")
        yield Static(FUNDS_NOTE, id="funds-note", markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        positions, orders = self.query_one("#positions-table", DataTable), self.query_one("#orders-table", DataTable)
        for key, label, width in POSITION_COLUMNS:
            positions.add_column(label, width=width, key=key)
        for key, label, width in ORDER_COLUMNS:
            orders.add_column(label, width=width, key=key)
        positions.focus()
        self._ready = True
        if self.tmtool.latest is not None:
            self.apply_snapshot(self.tmtool.latest)

    def action_back(self) -> None:
        self.dismiss()

    def apply_snapshot(self, snapshot: EngineSnapshot) -> None:
        if not self._ready:
            return
        palette = self.tmtool.palette
        positions, orders = self.query_one("#positions-table", DataTable), self.query_one("#orders-table", DataTable)
        positions.clear()
        for view in snapshot.positions:
            positions.add_row(*position_row(view, palette), key=f"{view.exchange}:{view.symbol}:{view.product}")
        orders.clear()
        for view in snapshot.orders:
            orders.add_row(*order_row(view, palette), key=view.key)
        if not snapshot.orders:
            orders.add_row("", "none: every order is final", "", "", "", "", "", "", key="none")
