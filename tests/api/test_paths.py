"""Where the engine socket goes: no warning on a machine without XDG_RUNTIME_DIR (a container, a plain SSH
login), one socket per database, and TMTOOL_RUNTIME_DIR obeyed."""

from __future__ import annotations

import warnings

from tmtool.api.paths import runtime_dir, socket_path_for


def test_no_runtime_dir_in_the_environment_gives_a_private_folder_and_no_warning(monkeypatch):
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.delenv("TMTOOL_RUNTIME_DIR", raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        folder = runtime_dir()
    assert caught == []  # it reached the terminal as a RuntimeDirWarning before every start
    assert folder.is_absolute()


def test_one_socket_per_database_under_the_given_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("TMTOOL_RUNTIME_DIR", str(tmp_path / "run"))
    first, second = socket_path_for(tmp_path / "a.db"), socket_path_for(tmp_path / "b.db")
    assert first.parent == second.parent == tmp_path / "run"
    assert first != second and first == socket_path_for(tmp_path / "x" / ".." / "a.db")
