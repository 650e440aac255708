"""Read-only access to a database's trade history, safe beside a running engine.

``tmtool replay`` reads the day's closed trades, their audit events and the
strategies from here: a ``query_only`` connection that takes no instance lock
and writes nothing (WAL readers run beside the writer).
"""

from __future__ import annotations

from pathlib import Path

from tmtool.domain.models import OPEN_STATUSES, Strategy, Trade, TradeEvent
from tmtool.storage.database import connect
from tmtool.storage.errors import StorageError
from tmtool.storage.models import StrategyRow, TradeEventRow, TradeRow, raw_rows, row_to_event, row_to_strategy, select_records


class TradeHistory:
    def __init__(self, path: Path) -> None:
        if not Path(path).is_file():
            raise StorageError(f"no database at {path}")
        self.path = Path(path)
        self._db = connect(self.path, read_only=True)

    def trades_opened(self, start: float, end: float) -> list[Trade]:
        """Trades in a final status opened in [start, end), oldest first."""
        open_values = [status.value for status in OPEN_STATUSES]
        query = (
            TradeRow.select()
            .where(TradeRow.opened_at >= start, TradeRow.opened_at < end, TradeRow.status.not_in(open_values))
            .order_by(TradeRow.opened_at, TradeRow.id)
        )
        with self._db.connection_context():
            return select_records(self._db, Trade, query)

    def trade_events(self, trade_id: int) -> list[TradeEvent]:
        query = TradeEventRow.select().where(TradeEventRow.trade_id == trade_id).order_by(TradeEventRow.seq)
        with self._db.connection_context():
            return [row_to_event(row) for row in raw_rows(self._db, query)]

    def strategies(self) -> list[Strategy]:
        with self._db.connection_context():
            return [row_to_strategy(row) for row in raw_rows(self._db, StrategyRow.select().order_by(StrategyRow.name))]

    def close(self) -> None:
        self._db.close()
