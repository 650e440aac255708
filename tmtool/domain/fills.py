"""Fill arithmetic (pure): prices of new fills, running averages, realised P&L.

Brokers report an order's cumulative filled quantity and average price; the
engine needs the price of just the new part (``new_fill_price``), folds fills into
a trade's average entry or exit price (``running_average``) and books the P&L of
each exit fill (``realised_pnl``).
"""

from __future__ import annotations

from tmtool.domain.models import Side


def new_fill_price(
    filled_before: int, average_before: float, filled_total: int, average_total: float, fallback: float
) -> tuple[float, float]:
    """``(price of the new fills, the order's new average)`` when an order's cumulative fill
    grows from ``filled_before`` at ``average_before`` to ``filled_total`` at ``average_total``.

    A report without an average (``average_total <= 0``) prices the new fills at
    ``fallback`` (the last price); the new average then folds them in.
    """
    delta = filled_total - filled_before
    if average_total > 0 and filled_before and average_before > 0:
        price = (average_total * filled_total - average_before * filled_before) / delta
    else:
        price = average_total if average_total > 0 else fallback
    new_average = average_total if average_total > 0 else (average_before * filled_before + price * delta) / filled_total
    return price, new_average


def running_average(average: float, quantity: int, price: float, added: int) -> float:
    """The average price of ``quantity`` at ``average`` plus ``added`` at ``price``."""
    return (average * quantity + price * added) / (quantity + added)


def realised_pnl(side: Side, entry_price: float, exit_price: float, quantity: int) -> float:
    """The P&L of closing ``quantity`` of a ``side`` position entered at ``entry_price``."""
    return (exit_price - entry_price) * quantity * side.sign
