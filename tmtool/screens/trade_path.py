"""A trade's price path with its stop, target and trailing line and its exits, live against replayed.

``TradePathScreen`` draws a ``replay.path.TradePath`` with textual-plotext:
the price, the live levels (solid) and the replayed ones (dotted), live exits
(``x``) and replayed exits (``o``).  ``TradePathApp`` shows the screen on its
own, for ``tmtool replay --plot ID``.
"""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, Static
from textual_plotext import PlotextPlot

from tmtool.replay.path import TradePath, end_time, step_series

_LEVEL_NAMES = {"stop_loss": "stop", "target": "target", "trailing_stop": "trailing"}
_LEVEL_COLOURS = {"stop_loss": "red", "target": "green", "trailing_stop": "orange"}


def legend(path: TradePath) -> str:
    lines = []
    for who, exits in (("live", path.live_exits), ("replayed", path.replay_exits)):
        text = "; ".join(f"{reason} at {price:g} (+{at:.0f}s)" for at, price, reason in exits) or "none"
        lines.append(f"{who} exits: {text}")
    if path.approximate:
        lines.append("APPROXIMATE: 1-minute candles, not recorded ticks")
    return "\n".join(lines)


class TradePathScreen(Screen):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]

    def __init__(self, path: TradePath) -> None:
        super().__init__()
        self.path = path

    def compose(self) -> ComposeResult:
        yield Header()
        yield PlotextPlot(id="trade-path")
        yield Static(legend(self.path), id="trade-path-legend")
        yield Footer()

    def on_mount(self) -> None:
        path = self.path
        plt = self.query_one(PlotextPlot).plt
        plt.title(path.title + (" (APPROXIMATE)" if path.approximate else ""))
        plt.xlabel("seconds since entry")
        plt.plot(path.times, path.prices, label="price", color="white", marker="braille")
        end = end_time(path)
        for field, name in _LEVEL_NAMES.items():
            xs, ys = step_series(path.live_levels.get(field, []), end)
            if xs:
                plt.plot(xs, ys, label=f"live {name}", color=_LEVEL_COLOURS[field], marker="braille")
            xs, ys = step_series(path.replay_levels.get(field, []), end)
            if xs:
                plt.plot(xs, ys, label=f"replayed {name}", color=_LEVEL_COLOURS[field], marker="dot")
        if path.live_exits:
            plt.scatter([e[0] for e in path.live_exits], [e[1] for e in path.live_exits], label="live exit", marker="x", color="cyan")
        if path.replay_exits:
            plt.scatter([e[0] for e in path.replay_exits], [e[1] for e in path.replay_exits], label="replayed exit", marker="o", color="magenta")


class TradePathApp(App):
    """The trade-path screen on its own (``tmtool replay --plot ID``)."""

    TITLE = "tmtool replay"
    BINDINGS = [Binding("q", "quit", "Quit")]

    def __init__(self, path: TradePath) -> None:
        super().__init__()
        self._path = path

    def on_mount(self) -> None:
        self.push_screen(TradePathScreen(self._path))
