"""``tmtool doctor``: check the set-up end to end and say, one line each, what passes and how to fix what fails.

Checks, in order: the config file; OpenAlgo (ping, funds, a quote, one tick over
the WebSocket); the database (integrity, identity, backups, disk space); the
notification channels (each one's address reachable, or its program present).
Nothing is changed and no order or alert is sent.  The exit code is 0 when every
check passes, 1 otherwise (2 when the config itself cannot be read).
"""

from __future__ import annotations

import shlex
import shutil
import socket
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TextIO
from urllib.parse import urlsplit

import orjson
import websocket

from tmtool.config import Config, ConfigError, load_config
from tmtool.openalgo.client import OpenAlgoClient
from tmtool.openalgo.feed import ControlFrame, MalformedFrame, PriceFrame, parse_frame
from tmtool.storage.backup import integrity_problems, list_backups, read_only_uri
from tmtool.storage.identity import database_id_of, read_identity_file
from tmtool.storage.maintenance import check_database

DEFAULT_SYMBOL = "NSE:SBIN"
MIN_FREE_BYTES = 200 * 1024 * 1024  # below this the database and its backups may not fit
BACKUP_MAX_AGE = 2 * 24 * 3600  # a newest backup older than this is worth a warning
TICK_TIMEOUT = 10.0
NETWORK_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    passed: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = "PASS" if self.passed else "FAIL"
        text = f"{mark}  {self.name}: {self.detail}"
        if not self.passed and self.fix:
            text += f" — fix: {self.fix}"
        return text


def run_doctor(
    config_path: str | None,
    *,
    db_path: str | None = None,
    symbol: str = DEFAULT_SYMBOL,
    out: TextIO,
    now: Callable[[], float] = time.time,
) -> int:
    """Print one line per check to ``out``; 0 when all pass, 1 when any fails, 2 when the config is unreadable."""
    try:
        config = load_config(config_path)
    except (ConfigError, OSError) as exc:
        print(Check("config", False, str(exc), "correct the key it names (config.example.toml documents each)").line(), file=out)
        return 2
    checks: list[Check] = [_config_check(config)]
    exchange, _, name = symbol.partition(":")
    if not name:
        exchange, name = "NSE", symbol
    checks += openalgo_checks(config, exchange.upper(), name.upper())
    checks += database_checks(Path(db_path) if db_path else Path(config.database.path), Path(config.database.backup_dir), now())
    checks += channel_checks(config)
    for check in checks:
        print(check.line(), file=out, flush=True)
    failed = sum(1 for check in checks if not check.passed)
    print(f"{len(checks) - failed} passed, {failed} failed", file=out, flush=True)
    return 1 if failed else 0


def _config_check(config: Config) -> Check:
    where = str(config.source_path) if config.source_path else "no file (built-in defaults)"
    detail = f"{where}; {len(config.strategies)} strateg{'y' if len(config.strategies) == 1 else 'ies'}"
    if config.warnings:
        return Check("config", False, f"{detail}; {'; '.join(config.warnings)}", "do what the warning says (config.example.toml documents each key)")
    return Check("config", True, detail)


# --------------------------------------------------------------------------- OpenAlgo


def openalgo_checks(config: Config, exchange: str, symbol: str) -> list[Check]:
    openalgo = config.openalgo
    if not openalgo.configured:
        return [
            Check(
                "openalgo",
                False,
                "no API key: tmtool would run on its demo simulator",
                f"set {openalgo.api_key_env} (or [openalgo] api_key) to the key from OpenAlgo's API key page",
            )
        ]
    host = openalgo.host
    client = OpenAlgoClient(host, openalgo.api_key, timeout=min(openalgo.timeout_seconds, NETWORK_TIMEOUT), read_retries=0)
    checks: list[Check] = []
    try:
        try:
            broker = client.ping()
        except Exception as exc:  # every failure is reported, none stops the doctor
            checks.append(
                Check(
                    "openalgo ping",
                    False,
                    f"{host}: {exc}",
                    f"start OpenAlgo, or set [openalgo] host to where it listens; check the API key ({openalgo.api_key_env})",
                )
            )
            not_tried = "not tried: OpenAlgo did not answer the ping"
            return checks + [
                Check("openalgo funds", False, not_tried, "fix the ping first"),
                Check("openalgo quote", False, not_tried, "fix the ping first"),
                Check("openalgo websocket", False, not_tried, "fix the ping first"),
            ]
        checks.append(Check("openalgo ping", True, f"{host} answers (broker {broker})"))
        try:
            funds = client.funds()
            checks.append(Check("openalgo funds", True, f"available cash ₹{funds.available_cash:,.2f}"))
        except Exception as exc:
            checks.append(Check("openalgo funds", False, str(exc), "log in to the broker in OpenAlgo (the session may have expired)"))
        try:
            quote = client.quotes(symbol, exchange)
            checks.append(Check("openalgo quote", True, f"{exchange}:{symbol} LTP {quote.ltp:,.2f}"))
        except Exception as exc:
            checks.append(
                Check("openalgo quote", False, f"{exchange}:{symbol}: {exc}", "name a symbol the broker knows with --symbol EXCHANGE:SYMBOL")
            )
    finally:
        client.close()
    checks.append(websocket_check(openalgo.ws_url, openalgo.api_key, exchange, symbol))
    return checks


def websocket_check(ws_url: str, api_key: str, exchange: str, symbol: str, timeout: float = TICK_TIMEOUT) -> Check:
    """Connect, authenticate, subscribe to one symbol and wait for one price."""
    fix = "start OpenAlgo's WebSocket proxy, or set [openalgo] ws_url to where it listens"
    try:
        ws = websocket.create_connection(ws_url, timeout=NETWORK_TIMEOUT)
    except Exception as exc:
        return Check("openalgo websocket", False, f"{ws_url}: {exc}", fix)
    try:
        ws.send(orjson.dumps({"action": "authenticate", "api_key": api_key}).decode())
        ws.send(orjson.dumps({"action": "subscribe", "symbols": [{"exchange": exchange, "symbol": symbol}], "mode": 1}).decode())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ws.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                raw = ws.recv()
            except websocket.WebSocketTimeoutException:
                break
            try:
                frame = parse_frame(raw)
            except MalformedFrame:
                continue
            if isinstance(frame, PriceFrame):
                return Check("openalgo websocket", True, f"{ws_url}: a tick for {exchange}:{symbol} at {frame.price:,.2f}")
            if isinstance(frame, ControlFrame) and frame.status == "error":
                return Check("openalgo websocket", False, f"{ws_url}: {frame.message or frame.code}", "check the API key and the symbol")
        return Check(
            "openalgo websocket",
            False,
            f"{ws_url}: connected, but no tick for {exchange}:{symbol} within {timeout:.0f}s",
            "outside market hours a quiet symbol sends nothing: try again in the session, or name a busier one with --symbol",
        )
    except Exception as exc:
        return Check("openalgo websocket", False, f"{ws_url}: {exc}", fix)
    finally:
        ws.close()


# --------------------------------------------------------------------------- database


def database_checks(db_path: Path, backup_dir: Path, now: float) -> list[Check]:
    checks: list[Check] = []
    if not db_path.exists():
        checks.append(Check("database", True, f"{db_path} not created yet (the first tmtool run creates it)"))
    else:
        report = check_database(db_path)
        if report.healthy:
            trades = report.row_counts.get("trade", 0)
            checks.append(Check("database integrity", True, f"{db_path}: schema {report.schema_version}, {trades} trade(s)"))
        else:
            checks.append(
                Check(
                    "database integrity",
                    False,
                    f"{db_path}: {'; '.join(report.problems[:3])}",
                    "stop tmtool and run `tmtool db restore` (the newest valid backup)",
                )
            )
        checks.append(_identity_check(db_path))
        checks.append(_backup_check(db_path, backup_dir, now))
    checks.append(_disk_check(db_path))
    return checks


def _identity_check(db_path: Path) -> Check:
    recorded = read_identity_file(db_path)
    try:
        if integrity_problems(db_path, quick=True):
            return Check("database identity", False, "not readable (see integrity)", "restore a backup first")
        conn = sqlite3.connect(read_only_uri(db_path), uri=True)
        try:
            inside = database_id_of(conn)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return Check("database identity", False, str(exc), "stop tmtool and run `tmtool db check`")
    if inside is None:
        return Check("database identity", False, f"{db_path} has no identity", "run tmtool once on it (it records one)")
    if recorded is not None and recorded != inside:
        return Check(
            "database identity",
            False,
            f"{db_path} is database {inside[:8]}…, but {db_path.name}.identity names {recorded[:8]}…",
            "the file was replaced: restore the right one with `tmtool db restore`, or start with --new-database on purpose",
        )
    return Check("database identity", True, f"database {inside[:8]}…{' (matches its .identity file)' if recorded else ''}")


def _backup_check(db_path: Path, backup_dir: Path, now: float) -> Check:
    try:
        backups = list_backups(db_path, backup_dir)
    except OSError as exc:
        return Check("database backups", False, f"{backup_dir}: {exc}", "make the backup folder readable")
    if not backups:
        return Check("database backups", False, f"none in {backup_dir}", "run `tmtool db backup` (and schedule it daily)")
    newest = max(backups, key=lambda path: path.stat().st_mtime)
    age = now - newest.stat().st_mtime
    detail = f"{len(backups)} in {backup_dir}; the newest {newest.name} is {age / 3600:.1f} h old"
    if age > BACKUP_MAX_AGE:
        return Check("database backups", False, detail, "run `tmtool db backup` (and schedule it daily)")
    return Check("database backups", True, detail)


def _disk_check(db_path: Path) -> Check:
    folder = db_path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    detail = f"{free / 1024**3:.1f} GiB free at {folder}"
    if free < MIN_FREE_BYTES:
        return Check("disk space", False, detail, "free some space: the database stops taking writes when the disk fills")
    return Check("disk space", True, detail)


# --------------------------------------------------------------------------- notification channels


def channel_checks(config: Config) -> list[Check]:
    if not config.alerts_table:
        return [Check("alert channels", True, "none configured (alerts stay on the desk)")]
    from tmtool.alerts.config import AlertsConfig

    try:
        alerts = AlertsConfig.from_table(config.alerts_table)
    except (ConfigError, ValueError) as exc:
        return [Check("alert channels", False, str(exc), "correct the [alerts] key it names")]
    if not alerts.channels:
        return [Check("alert channels", True, "none enabled (alerts stay on the desk)")]
    checks = []
    for name, channel in alerts.channels.items():
        if name == "command":
            checks.append(_command_check(channel.command))
        elif name == "email":
            checks.append(_reach(f"alerts {name}", channel.host, channel.port, "check [alerts.email] host and port"))
        else:
            url = channel.url if name == "webhook" else channel.api_base
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            shown = f"{parts.scheme}://{parts.hostname}:{port}"
            checks.append(_reach(f"alerts {name}", parts.hostname or "", port, f"check [alerts.{name}] (now {shown})", shown))
    return checks


def _reach(name: str, host: str, port: int, fix: str, shown: str | None = None) -> Check:
    where = shown or f"{host}:{port}"
    try:
        with socket.create_connection((host, port), timeout=NETWORK_TIMEOUT):
            pass
    except OSError as exc:
        return Check(name, False, f"{where} not reachable: {exc}", fix)
    return Check(name, True, f"{where} reachable (nothing sent)")


def _command_check(command: str | tuple[str, ...]) -> Check:
    program = shlex.split(command)[0] if isinstance(command, str) else command[0]
    found = shutil.which(program)
    if found is None:
        return Check("alerts command", False, f"{program} not found", "install it, or give its full path in [alerts.command] command")
    return Check("alerts command", True, f"{found} is there (not run)")
