"""The ``tmtool`` command.

    tmtool                      the TUI (on the demo simulator when no OpenAlgo is configured)
    tmtool run [--no-ui]        monitor against the configured OpenAlgo
    tmtool demo [--no-ui]       monitor demo trades on the embedded simulator
    tmtool serve [--demo]       the engine headless, its control API on a Unix socket (for attach)
    tmtool attach               the TUI against an engine that runs elsewhere (serve, or a hung-up desk)
    tmtool sim                  run the OpenAlgo-compatible simulator alone
    tmtool db backup|restore|check

Textual is imported only on the UI path, so ``tmtool run --no-ui`` never loads it.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from tmtool import __version__


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="PATH", help="config file (default: $TMTOOL_CONFIG, ./tmtool.toml, user config dir)")
    parser.add_argument("--db", metavar="PATH", help="database file (overrides the config's database.path)")


def _monitor_options(parser: argparse.ArgumentParser, ui: bool = True) -> None:
    _common(parser)
    if ui:
        parser.add_argument("--no-ui", action="store_true", help="run headless: log to stderr and the log file")
    parser.add_argument("--duration", type=float, metavar="SECONDS", help="shut down cleanly after this many seconds")
    parser.add_argument("--api-port", type=int, metavar="PORT", help="serve the control API on this loopback port")
    parser.add_argument("--api-key", metavar="KEY", help="control API key (prefer TMTOOL_API_KEY in the environment)")
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING or ERROR")
    parser.add_argument(
        "--adopt-positions", action="store_true",
        help="at start-up, manage every open position no trade covers yet (strategy 'manual')",
    )
    parser.add_argument(
        "--new-database", action="store_true",
        help="accept a missing, empty or different database where one was used before (start afresh)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tmtool", description="Trade-management desk for OpenAlgo.")
    parser.add_argument("--version", action="version", version=f"tmtool {__version__}")
    _monitor_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="monitor trades against the configured OpenAlgo")
    _monitor_options(run)

    demo = sub.add_parser("demo", help="monitor demo trades on the embedded simulator")
    _monitor_options(demo)
    demo.add_argument("--seed", type=int, default=7, help="simulator seed (default 7)")
    demo.add_argument("--no-demo-trades", action="store_true", help="start with no demo trades")

    serve = sub.add_parser("serve", help="run the engine headless with its control API on a Unix socket")
    _monitor_options(serve, ui=False)
    serve.add_argument("--demo", action="store_true", help="on the embedded simulator (no real orders)")
    serve.add_argument("--seed", type=int, default=7, help="simulator seed with --demo (default 7)")
    serve.add_argument("--no-demo-trades", action="store_true", help="with --demo: start with no demo trades")
    serve.add_argument("--socket", metavar="PATH", help="the Unix socket (default: one per database in the runtime dir)")

    attach = sub.add_parser("attach", help="open the TUI against a running engine (tmtool serve)")
    _common(attach)
    attach.add_argument("--demo", action="store_true", help="the engine of `tmtool serve --demo` (its demo database)")
    attach.add_argument("--socket", metavar="PATH", help="the engine's Unix socket (default: the database's)")

    sub.add_parser("sim", help="run the OpenAlgo-compatible simulator (see tmtool sim --help)", add_help=False)

    db = sub.add_parser("db", help="database maintenance (see tmtool db --help)", add_help=False)
    _db_arguments(db)

    doctor = sub.add_parser(
        "doctor", help="check the config, OpenAlgo, the database and the alert channels; one pass/fail line each"
    )
    _common(doctor)
    doctor.add_argument(
        "--symbol", default="NSE:SBIN", metavar="EXCHANGE:SYMBOL", help="the symbol to quote and take one tick of (default NSE:SBIN)"
    )

    replay = sub.add_parser("replay", help="run the day's trades again over its recorded ticks, as run or with other settings")
    _common(replay)
    from tmtool.replay_cli import add_arguments

    add_arguments(replay)
    return parser


def _db_arguments(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("action", choices=("backup", "restore", "check"))
    parser.add_argument(
        "target", nargs="?", help="backup: destination file or folder; restore: the backup to restore (default: the newest valid one)"
    )


def build_db_parser() -> argparse.ArgumentParser:
    """``tmtool db``: parsed on its own, with options anywhere (``db backup --db X FILE``)."""
    parser = argparse.ArgumentParser(prog="tmtool db", description="Database maintenance: backup, restore, check.")
    _db_arguments(parser)
    return parser


_OPTIONS_WITH_VALUES = frozenset(
    {"--config", "--db", "--duration", "--api-port", "--api-key", "--log-level", "--seed", "--socket"}
)


def _command_index(argv: list[str]) -> int | None:
    """Where the sub-command stands in ``argv`` (after any top-level options and their values)."""
    skip_value = False
    for index, token in enumerate(argv):
        if skip_value:
            skip_value = False
        elif token in _OPTIONS_WITH_VALUES:
            skip_value = True
        elif not token.startswith("-"):
            return index
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "sim":
        from tmtool.sim.cli import sim_main

        return sim_main(argv[1:])

    parser = build_parser()
    command_at = _command_index(argv)
    if command_at is not None and argv[command_at] == "db":
        # argparse cannot take an option between two optional positionals of a sub-command
        # ("db backup --db X FILE"), so the db command is parsed on its own, intermixed.
        args = parser.parse_args(argv[:command_at])
        db_args = build_db_parser().parse_intermixed_args(argv[command_at + 1 :])
        args.command, args.action, args.target = "db", db_args.action, db_args.target
        args.config = db_args.config or args.config
        args.db = db_args.db or args.db
    else:
        args = parser.parse_args(argv)

    if args.command == "doctor":
        from tmtool.doctor import run_doctor

        return run_doctor(args.config, db_path=args.db, symbol=args.symbol, out=sys.stdout)

    from tmtool.config import ConfigError, load_config

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"tmtool: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"tmtool: cannot read the config: {exc}", file=sys.stderr)
        return 2
    for warning in config.warnings:
        print(f"tmtool: warning: {warning}", file=sys.stderr)

    if args.command == "db":
        from tmtool.storage.maintenance import db_command

        db_path = Path(args.db) if args.db else Path(config.database.path)
        return db_command(args.action, db_path, Path(args.target) if args.target else None)

    if args.command == "attach":
        return _attach(args, config)
    if args.command == "serve":
        return _monitor(args, config, demo=args.demo, headless=True)
    if args.command == "replay":
        from tmtool.replay_cli import replay_command

        return replay_command(args, config)

    demo = args.command == "demo" or (args.command is None and not config.openalgo.configured)
    headless = bool(args.no_ui)
    return _monitor(args, config, demo=demo, headless=headless)


def _monitor(args: argparse.Namespace, config, *, demo: bool, headless: bool) -> int:
    from tmtool.logs import setup_logging
    from tmtool.runtime import StartupError, build_runtime

    setup_logging(config, headless=headless, level=args.log_level)
    log = logging.getLogger("tmtool")
    try:
        runtime = build_runtime(
            config,
            db_path=Path(args.db) if args.db else None,
            demo=demo,
            seed=getattr(args, "seed", 7),
            api_port=args.api_port,
            api_key=args.api_key,
            new_database=args.new_database,
            engine_socket=Path(args.socket) if getattr(args, "socket", None) else True,
        )
        runtime.adopt_on_start = args.adopt_positions
        runtime.settle_heap_after_start = True  # tmtool's own process: see runtime.settle_heap
    except StartupError as exc:
        print(f"tmtool: {exc}", file=sys.stderr)
        if exc.engine_socket is not None and _engine_answers(exc.engine_socket):
            if not headless and _ask_to_attach():
                return _attach_to(exc.engine_socket, config)
            print(f"tmtool: that engine can be attached to: tmtool attach --socket {exc.engine_socket}", file=sys.stderr)
        return 2

    if headless:
        return _run_headless(runtime, args, demo=demo, log=log)
    return _run_tui(runtime, args, demo=demo)


def _engine_answers(socket_path: Path) -> bool:
    import socket

    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2.0)
    try:
        probe.connect(str(socket_path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


def _ask_to_attach() -> bool:
    """Ask on the terminal whether to attach to the engine that already runs (no terminal: no)."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return False
    try:
        answer = input("tmtool: an engine already runs on this database. Attach to it? [Y/n] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("", "y", "yes")


def _attach(args: argparse.Namespace, config) -> int:
    from tmtool.api.paths import socket_path_for

    if args.socket:
        socket_path = Path(args.socket)
    else:
        db_path = Path(args.db) if args.db else Path(config.database.path)
        if args.demo and not args.db:
            db_path = db_path.with_name("demo.db")
        socket_path = socket_path_for(db_path)
    return _attach_to(socket_path, config)


def _attach_to(socket_path: Path, config) -> int:
    """The TUI against the engine on ``socket_path``; leaving it (quit, Ctrl+C, hang-up) leaves the engine running."""
    from tmtool.api.client import EngineUnreachable, RemoteEngine
    from tmtool.clock import SystemClock
    from tmtool.logs import setup_logging
    from tmtool.screens.app import TmtoolApp

    setup_logging(config, headless=False)
    engine = RemoteEngine(socket_path)
    try:
        engine.connect()
    except EngineUnreachable as exc:
        print(f"tmtool: {exc} (start one with `tmtool serve`)", file=sys.stderr)
        return 2
    app = TmtoolApp(
        engine,
        config_path=config.source_path,
        clock=SystemClock(),
        simulated=engine.snapshot().system.simulated,
        lifecycle=None,  # the engine's life is not ours
        engine_in_process=False,
        # the engine's recordings, where this machine's config says they are (History replays a trade from them)
        recordings=config.recording.folder_for(Path(config.database.path)) if config.recording.enabled else None,
        account=config.account,
    )
    signal.signal(signal.SIGHUP, lambda _signum, _frame: _leave(app))
    try:
        app.run()
    finally:
        engine.close()
    _say(f"tmtool: detached; the engine keeps running (tmtool attach --socket {socket_path})")
    return 0


def _leave(app) -> None:
    """Exit a Textual app from a signal handler (which runs on the app's own thread)."""
    threading.Thread(target=lambda: app.call_from_thread(app.exit), daemon=True).start()


def _run_tui(runtime, args, *, demo: bool) -> int:
    from tmtool.screens.app import TmtoolApp

    runtime.demo_trades_on_start = demo and not getattr(args, "no_demo_trades", False)
    bell = True
    if runtime.config.alerts_table:
        from tmtool.alerts.config import AlertsConfig

        bell = AlertsConfig.from_table(runtime.config.alerts_table).terminal_bell
    app = TmtoolApp(
        runtime,
        config_path=runtime.config.source_path,
        clock=runtime.clock,
        simulated=runtime.simulated,
        bell=bell,
        lifecycle=runtime,
        market_holidays=runtime.config.market_holidays,
        recordings=runtime.recorder.folder if runtime.recorder is not None else None,
        account=runtime.config.account,
    )
    hung_up = threading.Event()
    log = logging.getLogger("tmtool")

    def _on_hangup(_signum, _frame) -> None:
        # The terminal is gone (an SSH drop): close the UI, keep the engine.
        if not hung_up.is_set():
            hung_up.set()
            _leave(app)

    signal.signal(signal.SIGHUP, _on_hangup)
    timer = None
    if args.duration:
        timer = threading.Timer(args.duration, lambda: app.call_from_thread(app.exit))
        timer.daemon = True
        timer.start()
    try:
        app.run()
    finally:
        if timer is not None:
            timer.cancel()
        if hung_up.is_set() or _terminal_gone():
            # The UI may also have ended on the terminal's read error before the SIGHUP was handled.
            _continue_headless(runtime, args, log)
        summary = app.stop_engine()
        runtime.stop()  # idempotent: stops what the engine's stop did not (API, store, simulator)
    if summary:
        _say(shutdown_line(summary))
    return _unwritten_exit_code(runtime)


def _terminal_gone() -> bool:
    """True when standard input is a terminal that has hung up (its ioctls then fail with EIO)."""
    import termios

    try:
        fd = sys.stdin.fileno()
    except (OSError, ValueError):
        return False
    if not os.isatty(fd):
        return False
    try:
        termios.tcgetattr(fd)
    except (termios.error, OSError):
        return True
    return False


def _continue_headless(runtime, args, log: logging.Logger) -> None:
    """After a hang-up: the engine keeps monitoring without a UI until SIGINT or SIGTERM (or --duration)."""
    stop = threading.Event()

    def _on_signal(signum, _frame):
        log.info("event=signal signal=%s action=shutdown", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    socket_path = runtime.api.unix_path if runtime.api is not None else None
    log.warning(
        "event=hangup action=continue_headless detail=%r",
        "the terminal hung up; the engine keeps monitoring without a UI"
        + (f"; attach with: tmtool attach --socket {socket_path}" if socket_path else "")
        + "; stop it with SIGTERM",
    )
    stop.wait(args.duration) if args.duration else _wait_forever(stop)


def _say(line: str, stream=None) -> None:
    """Print, unless the terminal is gone (after a hang-up)."""
    try:
        print(line, file=stream or sys.stdout, flush=True)
    except OSError:
        pass


def shutdown_line(summary: str) -> str:
    """What the terminal shows after tmtool stopped: plainly stopped, and what it leaves unwatched."""
    left = summary.removeprefix("monitoring ")
    return f"tmtool stopped — nothing is monitored now (at shutdown: {left})"


def _unwritten_exit_code(runtime) -> int:
    """0 when every change reached the database; otherwise say how many did not, and 1."""
    unwritten = runtime.unwritten_changes
    if not unwritten:
        return 0
    error = runtime.store.status().last_error
    _say(
        f"tmtool: {unwritten} change(s) could not be written to the database {runtime.store.path} before "
        f"shutdown ({error or 'unknown error'}); they are lost — check the positions at the broker",
        sys.stderr,
    )
    return 1


def _run_headless(runtime, args, *, demo: bool, log: logging.Logger) -> int:
    from tmtool.logs import CONSOLE_LOGGER

    stop = threading.Event()

    def _on_signal(signum, _frame):
        log.info("event=signal signal=%s action=shutdown", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)

    try:
        runtime.start()
    except Exception as exc:  # start-up failure: say why, leave nothing running
        log.error("event=startup_failed error=%s", exc)
        runtime.stop()
        print(f"tmtool: start-up failed: {exc}", file=sys.stderr)
        return 1
    console = logging.getLogger(CONSOLE_LOGGER)  # written by the terminal's own writer thread: never blocks here
    for line in runtime.banner():
        console.info(line)
    if demo and not getattr(args, "no_demo_trades", False):
        runtime.place_demo_trades()

    stop.wait(args.duration) if args.duration else _wait_forever(stop)
    summary = runtime.stop()
    print(shutdown_line(summary), flush=True)
    return _unwritten_exit_code(runtime)


def _wait_forever(stop: threading.Event) -> None:
    while not stop.wait(3600):
        pass


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
