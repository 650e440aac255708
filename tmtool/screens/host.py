"""What a screen may ask of the app it runs in.

The app (``tmtool.screens.app.TmtoolApp``) imports every screen to push it; the
screens reach back through ``ScreenHost`` only, so no screen imports the app
and the screens package has no import cycle.  ``TmtoolApp`` satisfies this
protocol structurally.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from tmtool.clock import Clock
from tmtool.domain.commands import Command, Result
from tmtool.domain.models import AccountLimits, Instrument
from tmtool.engine.ports import EngineHandle
from tmtool.engine.snapshot import EngineSnapshot
from tmtool.screens.formatting import Palette


class ScreenHost(Protocol):
    """The app as its screens see it: the engine handle, the latest snapshot, commands out, navigation."""

    engine: EngineHandle
    clock: Clock
    config_path: Path | None
    recordings: Path | None  # the engine's recorded ticks (None: not recorded)
    account_limits: AccountLimits
    latest: EngineSnapshot | None  # the snapshot on screen (None until the first one)
    palette: Palette

    async def send_command(self, command: Command, *, success: str | None = None) -> Result | None:
        """Submit ``command``, await the engine's answer and show it; None when there was none."""
        ...

    def run_command(self, command: Command, *, success: str | None = None) -> object:
        """``send_command`` in a worker, for actions that need no follow-up."""
        ...

    def instrument_lookup(self, exchange: str, symbol: str) -> Instrument:
        """The engine's instrument data (call from a thread worker: it may ask the broker)."""
        ...

    def open_strategies(self) -> None: ...

    def open_history(self) -> None: ...

    def open_alert_history(self) -> None: ...

    def open_money_at_risk(self) -> None: ...

    def open_trade_story(self, trade_id: int) -> None: ...

    def open_orders_positions(self) -> None: ...
