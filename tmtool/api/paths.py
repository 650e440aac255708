"""Where an engine's Unix socket lives: one per database, in the user's runtime directory.

The runtime directory is platformdirs' ``user_runtime_dir`` (``$XDG_RUNTIME_DIR/tmtool``,
usually ``/run/user/<uid>/tmtool``), or ``$TMTOOL_RUNTIME_DIR`` when set.  The folder
is made 0700 and the socket 0600 (``tmtool.api.server``).  The
socket's name is derived from the database's resolved path, so ``tmtool attach``
finds the engine that runs on the same database as the config says, and two
engines on two databases never share a socket.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from pathlib import Path

import platformdirs

RUNTIME_DIR_ENV = "TMTOOL_RUNTIME_DIR"


def runtime_dir() -> Path:
    """``$TMTOOL_RUNTIME_DIR``, else the user's runtime directory, else a private folder in the temp dir
    (a machine without ``/run/user/<uid>``, e.g. a container)."""
    given = os.environ.get(RUNTIME_DIR_ENV, "").strip()
    if given:
        return Path(given)
    with warnings.catch_warnings():  # without XDG_RUNTIME_DIR platformdirs warns before its own fallback
        warnings.simplefilter("ignore")
        path = platformdirs.user_runtime_path("tmtool")
    if path.is_dir() or (path.parent.is_dir() and os.access(path.parent, os.W_OK)):
        return path
    return Path(tempfile.gettempdir()) / f"tmtool-{os.getuid()}"


def socket_path_for(db_path: str | Path) -> Path:
    """The engine socket of the database at ``db_path``."""
    digest = hashlib.sha256(str(Path(db_path).expanduser().resolve()).encode()).hexdigest()[:16]
    return runtime_dir() / f"engine-{digest}.sock"
