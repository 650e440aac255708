"""Writing strategies back into the config file: ``save_strategy`` / ``remove_strategy`` edit one
``[[strategies]]`` table in place with tomlkit, so the user's comments and layout survive.  Writes
are atomic (temp file + rename) and leave the file readable by its owner only (0600): it may
hold an API key.  Reading and validating the file is ``tmtool.config``'s job."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import tomlkit
import tomlkit.exceptions
from tomlkit.items import AoT, Array, InlineTable, Table

from tmtool.config import ConfigError, read_toml, strategy_to_table
from tmtool.domain.models import AmountMode, DistanceMode, Strategy
from tmtool.domain.validation import validate_strategy

PRIVATE_FILE_MODE = 0o600


def save_strategy(path: str | Path, strategy: Strategy) -> None:
    """Write ``strategy`` into the config file: edit its table in place, or append one.

    Keys whose value is unchanged are left as they are, with their comments; so
    is everything outside that one table.
    """
    denial = validate_strategy(strategy)
    if denial is not None:
        raise ConfigError(f"strategies.{strategy.name}", denial.message)
    target = Path(path).expanduser()
    document = _read_document(target) if target.exists() else tomlkit.document()
    table = strategy_to_table(strategy)
    strategies = _strategy_tables(document)
    if strategies is None:
        tables = tomlkit.aot()
        tables.append(_new_table(table))
        document["strategies"] = tables
    else:
        existing = next((item for item in strategies if isinstance(item, dict) and item.get("name") == strategy.name), None)
        if existing is not None:
            _update_table(existing, table)
        elif isinstance(strategies, Array):
            strategies.append(_inline(table))
        else:
            strategies.append(_new_table(table))
    _write_privately(target, tomlkit.dumps(document))


def remove_strategy(path: str | Path, name: str) -> bool:
    """Remove the strategy ``name`` from the config file; False when it was not there."""
    target = Path(path).expanduser()
    if not target.exists():
        return False
    document = _read_document(target)
    strategies = _strategy_tables(document)
    index = next(
        (i for i, item in enumerate(strategies or ()) if isinstance(item, dict) and item.get("name") == name), None
    )
    if strategies is None or index is None:
        return False
    del strategies[index]
    if len(strategies) == 0:
        del document["strategies"]
    _write_privately(target, tomlkit.dumps(document))
    return True


def _read_document(path: Path) -> tomlkit.TOMLDocument:
    read_toml(path)  # the same checks and messages as loading
    try:
        return tomlkit.parse(path.read_text(encoding="utf-8"))
    except tomlkit.exceptions.ParseError as exc:
        raise ConfigError(str(path), f"is not valid TOML: {exc}") from None


def _strategy_tables(document: tomlkit.TOMLDocument) -> AoT | Array | None:
    strategies = document.get("strategies")
    if strategies is None or isinstance(strategies, (AoT, Array)):
        return strategies
    raise ConfigError("strategies", "is not an array of tables ([[strategies]]); not rewriting the file")


def _inline(table: Mapping[str, Any]) -> InlineTable:
    inline = tomlkit.inline_table()
    for key, value in table.items():
        inline[key] = _toml_value(value)
    return inline


def _toml_value(value: Any) -> Any:
    """Nested tables written inline (``{ value = 1.0, mode = "PERCENT" }``), as the example file does."""
    if isinstance(value, Mapping):
        return _inline(value)
    if isinstance(value, list):
        array = tomlkit.array()
        array.extend(_toml_value(item) for item in value)
        return array
    return value


def _new_table(table: Mapping[str, Any]) -> Table:
    new = tomlkit.table()
    new.trivia.indent = "\n"  # a blank line before the [[strategies]] header
    for key, value in table.items():
        new[key] = _toml_value(value)
    return new


def _plain(value: Any) -> Any:
    return value.unwrap() if hasattr(value, "unwrap") else value


_DEFAULT_MODES = (DistanceMode.POINTS.value, AmountMode.AMOUNT.value)


def _in_the_files_style(old: Any, value: Any) -> Any:
    """``{value = 5000, mode = "AMOUNT"}`` as a bare ``5000`` where the file wrote a bare number."""
    bare_before = isinstance(old, (int, float)) and not isinstance(old, bool)
    if bare_before and isinstance(value, Mapping) and set(value) == {"value", "mode"} and value["mode"] in _DEFAULT_MODES:
        return value["value"]
    return value


def _update_table(existing: Any, table: Mapping[str, Any]) -> None:
    """Make ``existing`` hold ``table``, touching only the keys whose value changes."""
    for key in [key for key in existing if key not in table]:
        del existing[key]
    for key, value in table.items():
        if key in existing:
            value = _in_the_files_style(_plain(existing[key]), value)
            if _plain(existing[key]) == value:
                continue
        if key in existing and isinstance(value, Mapping) and isinstance(existing[key], (Table, InlineTable)):
            _update_table(existing[key], value)
        else:
            existing[key] = _toml_value(value)


def _write_privately(path: Path, text: str) -> None:
    """Write via a temp file in the same folder + rename, mode 0600 (the file may hold an API key)."""
    target = path.resolve()
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, target)
    except BaseException:
        try:
            os.unlink(temp_name)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(target.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
