"""The control API: an OpenAlgo-style HTTP API for scripts and strategies (see ``ApiServer``)."""

from tmtool.api.server import ApiServer

__all__ = ["ApiServer"]
