"""tmtool: a trade-management desk for OpenAlgo."""

__version__ = "0.1.0"
