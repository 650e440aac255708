"""The control API: an OpenAlgo-style HTTP API for scripts and strategies (see ``ApiServer``).

``ApiServer`` is loaded on first use: importing this package (for ``tmtool.api.paths``, which
every start-up asks where the engine's socket would be) must not load FastAPI and pydantic,
0.3 s of start-up that a process without the API never needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tmtool.api.server import ApiServer

__all__ = ["ApiServer"]


def __getattr__(name: str) -> Any:
    if name == "ApiServer":
        from tmtool.api.server import ApiServer

        return ApiServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
