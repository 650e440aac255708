"""The pure core: what a trade, a strategy and an order are, and every decision about them.

No I/O, no clock reads, no threads (an import contract in pyproject.toml holds
it to that).  The live engine, replay, the control API and the tests all apply
the same functions: models and enums, commands, the per-trade rules
(stop/target/trailing/breakeven/partials), portfolio and account limits,
sizing, validation, tick sanity, the exchange calendar, reconciliation
arithmetic and analytics.
"""
