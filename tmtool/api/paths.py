"""Where an engine's Unix socket lives: one per database, in the user's runtime directory.

The runtime directory is platformdirs' ``user_runtime_dir`` (``$XDG_RUNTIME_DIR/tmtool``,
usually ``/run/user/<uid>/tmtool``), or ``$TMTOOL_RUNTIME_DIR`` when set.  The
socket's name is derived from the database's resolved path, so ``tmtool attach``
finds the engine that runs on the same database as the config says, and two
engines on two databases never share a socket.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import platformdirs

RUNTIME_DIR_ENV = "TMTOOL_RUNTIME_DIR"


def runtime_dir() -> Path:
    given = os.environ.get(RUNTIME_DIR_ENV, "").strip()
    return Path(given) if given else platformdirs.user_runtime_path("tmtool")


def socket_path_for(db_path: str | Path) -> Path:
    """The engine socket of the database at ``db_path``."""
    digest = hashlib.sha256(str(Path(db_path).expanduser().resolve()).encode()).hexdigest()[:16]
    return runtime_dir() / f"engine-{digest}.sock"
