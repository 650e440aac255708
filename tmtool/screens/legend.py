"""What every badge and label on the desk means: the legend ``?`` shows under the keys.

Each entry is (badge as it appears, what it means).  A test renders the status
bar, the cards and the table in every state and checks each word shown is here.
"""

from __future__ import annotations

STATUS_BAR: tuple[tuple[str, str], ...] = (
    ("HALTED", "after a panic (F9): new entries are halted in every strategy until re-armed (F10)"),
    ("FEED LIVE 0.4s", "market data streaming; the age of the last tick"),
    ("FEED RECONNECTING", "the WebSocket dropped; reconnecting (stops still act on polled prices)"),
    ("FEED POLLING", "no WebSocket: prices are polled over REST, slower"),
    ("FEED DOWN", "no prices at all: stops and targets cannot act"),
    ("BROKER OK", "OpenAlgo answers and the broker session is valid"),
    ("BROKER ERROR", "OpenAlgo or the broker failed the last call; retrying"),
    ("BROKER SESSION-EXPIRED", "the broker login expired: log in again in OpenAlgo"),
    ("BROKER UNKNOWN", "not asked yet (just started)"),
    ("BROKER OK (ANALYZE)", "OpenAlgo is in analyze mode: orders are simulated, not sent"),
    ("BROKER OK (SEMI_AUTO)", "OpenAlgo wants each order approved in its UI"),
    ("DB OK", "every change is written to the database"),
    ("DB MEMORY-ONLY (n pending)", "the database refuses writes; changes wait in memory"),
    ("ENGINE OK", "the engine is running and managing trades"),
    ("ENGINE STARTING… / STOPPED", "not managing trades (yet, or any more)"),
    ("11:15:30 IST NSE OPEN", "the time in India and the NSE session"),
    ("PRE-OPEN", "09:00–09:15, the call auction: no continuous trading yet"),
    ("OPEN", "the regular session"),
    ("CLOSING", "the last 10 minutes before 15:30: square-offs are due"),
    ("CLOSED", "outside the session, or a weekend"),
    ("HOLIDAY", "a configured exchange holiday ([market] holidays)"),
    ("P&L", "the account's P&L today: booked (realised) plus open (unrealised)"),
    ("SIMULATOR", "the embedded simulator: no real orders are placed"),
)

CARDS: tuple[tuple[str, str], ...] = (
    ("P&L", "the strategy's P&L today"),
    ("booked", "realised: from exits already filled"),
    ("open", "unrealised: the open trades at their last price"),
    ("-5,000 ━━┊●── 10,000", "where P&L (●) stands between the portfolio stop (left) and target (right); ┊ marks zero"),
    ("lock", "the trailing lock: P&L falling back to it exits the strategy"),
    ("pos 3/5", "open positions against the strategy's maximum"),
    ("loss 0 / 6,000", "today's loss against the daily loss limit"),
    ("HALTED", "no new trades today (daily loss limit, portfolio stop, account limit, ...)"),
)

TABLE: tuple[tuple[str, str], ...] = (
    ("▲ ▼", "the last price rose / fell"),
    ("↑ ↓", "the stop, target or trail just moved up / down"),
    ("To stop", "points between the last price and the stop (red: crossed)"),
    ("●", "marked with space (for X: exit marked)"),
    ("PAUSED", "its levels do not act until resumed (p)"),
    ("STALE", "no fresh price for this symbol"),
    ("APPROVAL", "the order waits for approval in OpenAlgo"),
    ("ACTIVE", "open and managed: its stop, target and trail act"),
    ("PENDING", "the entry order is not filled yet"),
    ("EXITING", "an exit order is out"),
    ("EXIT FAIL", "the exit failed after every retry: act at the broker now"),
    ("EXTERNAL", "closed outside tmtool (found flat at the broker)"),
    ("CLOSED / CANCELLED", "exited (muted) / the entry never filled"),
    ("•", "an alert not yet acknowledged (a)"),
)

LEGEND: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("Status bar", STATUS_BAR),
    ("Strategy cards", CARDS),
    ("Trades table and alerts", TABLE),
)
