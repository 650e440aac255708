"""Config loading (strict TOML into frozen dataclasses) and writing strategies back."""

from __future__ import annotations

import re
import stat
import tomllib
import types
import typing
from dataclasses import replace
from datetime import time
from pathlib import Path

import pytest
import tomlkit
from pydantic import BaseModel

from tmtool.alerts.config import CHANNEL_NAMES, AlertsConfig, AlertsTable
from tmtool.config import (
    ConfigError,
    ConfigFile,
    load_config,
    strategy_from_table,
    strategy_to_table,
)
from tmtool.config_file import remove_strategy, save_strategy
from tmtool.domain.models import (
    Amount,
    AmountMode,
    Distance,
    DistanceMode,
    ExitOrderSettings,
    Instrument,
    PartialTarget,
    PortfolioRisk,
    PriceType,
    Product,
    Sizing,
    SizingMode,
    Strategy,
    TradeRisk,
    TrailingSettings,
)

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"
SECRET = "s3cr3t-key-value"


def write(tmp_path: Path, text: str, name: str = "tmtool.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load(tmp_path: Path, text: str, env: dict | None = None):
    return load_config(write(tmp_path, text), env or {})


def error_for(tmp_path: Path, text: str, env: dict | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, env)
    return caught.value


# --------------------------------------------------------------------------- good files


def test_the_example_file_loads_with_every_section():
    config = load_config(EXAMPLE, {})
    assert config.source_path == EXAMPLE
    assert config.openalgo.host == "http://127.0.0.1:5000" and not config.openalgo.configured
    assert config.api.port == 5080 and config.api.host == "127.0.0.1" and not config.api.enabled
    assert config.feed.confirm_ticks == 2 and config.engine.snapshot_hz == 10.0
    assert config.engine.freeze_quantities["BANKNIFTY"] == 900
    assert config.log.level == "INFO" and config.database.path.name == "tmtool.db"
    momentum = config.strategy("momentum")
    assert momentum.trade_risk.stop_loss == Distance(1.0, DistanceMode.PERCENT)
    assert momentum.trade_risk.trailing.activation == Distance(1.0, DistanceMode.PERCENT)
    assert momentum.portfolio.daily_loss_limit == Amount(4, AmountMode.PERCENT)
    assert momentum.portfolio.stop_loss == Amount(5000)
    assert momentum.sizing == Sizing(SizingMode.RISK_BASED, 2000.0)
    assert momentum.square_off_time == time(15, 15)
    assert [s.name for s in config.strategies] == ["momentum", "manual"]


def test_every_engine_key_reaches_the_engine(tmp_path):
    from tmtool.runtime import engine_settings

    config = load(tmp_path, """
[engine]
reconcile_interval_seconds = 12.0
exit_max_attempts = 3
exit_retry_backoff_seconds = 2.0
order_status_poll_seconds = 0.25
absence_grace_seconds = 20.0
unknown_alert_after_seconds = 90.0
""")
    settings = engine_settings(config, simulated=False)
    assert (settings.reconcile_interval, settings.exit_max_attempts, settings.exit_retry_backoff) == (12.0, 3, 2.0)
    assert (settings.order_status_poll, settings.absence_grace, settings.unknown_alert_after) == (0.25, 20.0, 90.0)
    assert "unknown_alert_after_seconds" in str(error_for(tmp_path, "[engine]\nunknown_alert_after_seconds = -1\n"))


def test_no_file_anywhere_means_defaults(tmp_path):
    config = load_config(None, {}, cwd=tmp_path, user_config_dir=tmp_path / "none")
    assert config.source_path is None
    assert [s.name for s in config.strategies] == ["manual"]
    assert config.strategy("manual") == Strategy(name="manual")
    assert config.api.host == "127.0.0.1" and config.openalgo.ws_url == "ws://127.0.0.1:8765"


def test_lookup_order_is_argument_env_working_folder_user_folder(tmp_path):
    files = {}
    for name, level in (("arg", "DEBUG"), ("env", "WARNING"), ("cwd", "ERROR"), ("user", "CRITICAL")):
        folder = tmp_path / name
        folder.mkdir()
        files[name] = write(folder, f'[log]\nlevel = "{level}"\n')
    env = {"TMTOOL_CONFIG": str(files["env"])}
    kwargs = {"cwd": tmp_path / "cwd", "user_config_dir": tmp_path / "user"}
    assert load_config(files["arg"], env, **kwargs).log.level == "DEBUG"
    assert load_config(None, env, **kwargs).log.level == "WARNING"
    assert load_config(None, {}, **kwargs).source_path == files["cwd"]
    assert load_config(None, {}, cwd=tmp_path, user_config_dir=tmp_path / "user").log.level == "CRITICAL"


def test_a_named_file_that_is_missing_is_an_error(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.toml", {})
    assert caught.value.key == "--config"
    with pytest.raises(ConfigError) as caught:
        load_config(None, {"TMTOOL_CONFIG": str(tmp_path / "gone.toml")}, cwd=tmp_path)
    assert caught.value.key == "TMTOOL_CONFIG"


def test_relative_paths_are_taken_from_the_config_folder(tmp_path):
    config = load(tmp_path, '[database]\npath = "data/desk.db"\nbackup_dir = "/var/tmp/b"\n[log]\nfile = "x.log"\n')
    assert config.database.path == tmp_path / "data" / "desk.db"
    assert config.database.backup_dir == Path("/var/tmp/b")
    assert config.log.file == tmp_path / "x.log"


def test_freeze_quantities_merge_with_defaults_and_apply_to_fno_only(tmp_path):
    config = load(tmp_path, '[engine.freeze_quantities]\nMIDCPNIFTY = 2800\nNIFTY = 1700\n'
                            '[engine.instruments."NFO:BANKNIFTY24APR24FUT"]\nlot_size = 15\nfreeze_quantity = 600\n'
                            '[engine.instruments."NSE:RELIANCE"]\ntick_size = 0.1\n')
    engine = config.engine
    assert engine.freeze_quantity("NFO", "NIFTY28MAR2420800CE") == 1700
    assert engine.freeze_quantity("NFO", "MIDCPNIFTY28MAR2412000CE") == 2800
    assert engine.freeze_quantity("NFO", "BANKNIFTY28MAR2448000CE") == 900  # longest prefix, not NIFTY
    assert engine.freeze_quantity("NSE", "NIFTYBEES") is None  # an ETF on the cash market
    future = engine.apply(Instrument("BANKNIFTY24APR24FUT", "NFO", 0.05, 25))
    assert (future.lot_size, future.freeze_quantity) == (15, 600)
    assert engine.apply(Instrument("RELIANCE", "NSE")).tick_size == 0.1


def test_the_alerts_table_is_kept_raw(tmp_path):
    config = load(tmp_path, '[alerts]\nanything = "goes"\n[alerts.email]\nport = 25\n')
    assert config.alerts_table == {"anything": "goes", "email": {"port": 25}}


# --------------------------------------------------------------------------- secrets


def test_api_keys_come_from_the_named_environment_variables(tmp_path):
    config = load(tmp_path, '[openalgo]\napi_key_env = "MY_KEY"\n', {"MY_KEY": SECRET})
    assert config.openalgo.configured and config.openalgo.api_key == SECRET
    assert load(tmp_path, "", {"OPENALGO_API_KEY": SECRET}).openalgo.api_key == SECRET
    assert not load(tmp_path, "", {"OPENALGO_API_KEY": "  "}).openalgo.configured


def test_a_key_in_the_file_wins_and_never_shows_in_a_repr(tmp_path):
    config = load(tmp_path, f'[openalgo]\napi_key = "{SECRET}"\n[api]\nenabled = true\napi_key = "{SECRET}"\n',
                  {"OPENALGO_API_KEY": "other"})
    assert config.openalgo.api_key == SECRET and config.api.configured
    for text in (repr(config), str(config), repr(config.openalgo), repr(config.api)):
        assert SECRET not in text


def test_a_bad_key_value_is_not_echoed(tmp_path):
    error = error_for(tmp_path, '[openalgo]\napi_key = ""\n')
    assert error.key == "openalgo.api_key"
    error = error_for(tmp_path, "[openalgo]\napi_key = 12345678\n")
    assert "12345678" not in str(error)


def test_an_enabled_api_without_a_key_is_an_error(tmp_path):
    error = error_for(tmp_path, "[api]\nenabled = true\n")
    assert error.key == "api.api_key" and "TMTOOL_API_KEY" in error.reason
    assert load(tmp_path, "[api]\nenabled = true\n", {"TMTOOL_API_KEY": SECRET}).api.configured


def test_an_api_beyond_loopback_gets_a_warning(tmp_path):
    config = load(tmp_path, '[api]\nenabled = true\nhost = "0.0.0.0"\n', {"TMTOOL_API_KEY": SECRET})
    assert len(config.warnings) == 1 and "0.0.0.0" in config.warnings[0]
    assert load(tmp_path, '[api]\nenabled = true\n', {"TMTOOL_API_KEY": SECRET}).warnings == ()


def test_a_readable_file_holding_a_key_gets_a_warning(tmp_path):
    path = write(tmp_path, f'[openalgo]\napi_key = "{SECRET}"\n')
    path.chmod(0o644)
    warnings = load_config(path, {}).warnings
    assert len(warnings) == 1 and "chmod 600" in warnings[0] and SECRET not in warnings[0]
    path.chmod(0o600)
    assert load_config(path, {}).warnings == ()


# --------------------------------------------------------------------------- bad files


@pytest.mark.parametrize(
    "text, key",
    [
        ("colour = 1\n", "colour"),
        ("[openalgo]\nhots = 'x'\n", "openalgo.hots"),
        ("[feed]\nconfirm_tick = 2\n", "feed.confirm_tick"),
        ("[engine.instruments.'NSE:SBIN']\nlotsize = 1\n", 'engine.instruments."NSE:SBIN".lotsize'),
        ("[[strategies]]\nname = 'a'\nstoploss = 1\n", "strategies[0].stoploss"),
        ("[[strategies]]\nname = 'a'\ntrailing = {distance = 1, activate = 2}\n", "strategies[0].trailing.activate"),
        ("[[strategies]]\nname = 'a'\n[strategies.portfolio]\nstop = 1\n", "strategies[0].portfolio.stop"),
        ("[[strategies]]\nname = 'a'\nstop_loss = {value = 1, mod = 'POINTS'}\n", "strategies[0].stop_loss.mod"),
    ],
)
def test_unknown_keys_are_named(tmp_path, text, key):
    error = error_for(tmp_path, text)
    assert error.key == key and "unknown key" in error.reason


@pytest.mark.parametrize(
    "text, key, words",
    [
        ("[openalgo]\nhost = 'localhost:5000'\n", "openalgo.host", ["'localhost:5000'", "http://"]),
        ("[openalgo]\nws_url = 'http://x'\n", "openalgo.ws_url", ["ws://"]),
        ("[openalgo]\ntimeout_seconds = 0\n", "openalgo.timeout_seconds", ["0", "greater than 0"]),
        ("[openalgo]\ntimeout_seconds = 'ten'\n", "openalgo.timeout_seconds", ["'ten'", "number"]),
        ("[api]\nport = 70000\n", "api.port", ["70000", "at most 65535"]),
        ("[api]\nport = 50.5\n", "api.port", ["whole number"]),
        ("[api]\nenabled = 'yes'\n", "api.enabled", ["'yes'", "true or false"]),
        ("[feed]\ntick_band_percent = nan\n", "feed.tick_band_percent", ["finite"]),
        ("[feed]\nconfirm_ticks = -1\n", "feed.confirm_ticks", ["-1", "at least 0"]),
        ("[engine]\nsnapshot_hz = 30\n", "engine.snapshot_hz", ["30", "at most 10"]),
        ("[engine.freeze_quantities]\nNIFTY = 0\n", "engine.freeze_quantities.NIFTY", ["at least 1"]),
        ("[engine.instruments.'RELIANCE']\nlot_size = 1\n", 'engine.instruments.RELIANCE', ["EXCHANGE:SYMBOL"]),
        ("[account]\ndaily_loss_limit = -5\n", "account.daily_loss_limit", ["-5", "greater than 0"]),
        ("[log]\nlevel = 'LOUD'\n", "log.level", ["'LOUD'", "DEBUG, INFO"]),
        ("openalgo = 3\n", "openalgo", ["must be a table"]),
        ("strategies = 3\n", "strategies", ["array of tables"]),
        ("[[strategies]]\nproduct = 'MIS'\n", "strategies[0].name", ["required"]),
        ("[[strategies]]\nname = 'a'\nproduct = 'BO'\n", "strategies[0].product", ["'BO'", "MIS, CNC, NRML"]),
        ("[[strategies]]\nname = 'a'\nexchange = 'NSE_INDEX'\n", "strategies[0].exchange", ["NSE_INDEX"]),
        ("[[strategies]]\nname = 'a'\nstop_loss = -1\n", "strategies[0].stop_loss", ["-1", "greater than 0"]),
        ("[[strategies]]\nname = 'a'\ntarget = {value = 1, mode = 'PIPS'}\n", "strategies[0].target.mode",
         ["'PIPS'", "POINTS, PERCENT"]),
        ("[[strategies]]\nname = 'a'\nsquare_off_time = '3pm'\n", "strategies[0].square_off_time", ["'3pm'", "15:15"]),
        ("[[strategies]]\nname = 'a'\nmax_open_positions = 0\n", "strategies[0].max_open_positions", ["at least 1"]),
        ("[[strategies]]\nname = 'a'\npartial_targets = [{distance = 5, fraction = 1.5}]\n",
         "strategies[0].partial_targets[0].fraction", ["1.5", "between 0 and 1"]),
        ("[[strategies]]\nname = 'a'\npartial_targets = [{distance = 5, fraction = 0.6}, {distance = 9, fraction = 0.4}]\n",
         "strategies[0]", ["add up to 1"]),
        ("[[strategies]]\nname = 'a'\nsizing = {mode = 'PERCENT_ALLOCATION', value = 5}\n", "strategies[0]",
         ["allocated funds"]),
        ("[[strategies]]\nname = 'a'\n[[strategies]]\nname = 'a'\n", "strategies[1].name", ["another strategy"]),
        ("[[strategies]]\nname = 'a'\n[strategies.exit_order]\nprice_type = 'SL'\n", "strategies[0].exit_order.price_type",
         ["'SL'", "MARKET, LIMIT"]),
    ],
)
def test_bad_values_name_the_key_the_value_and_what_is_allowed(tmp_path, text, key, words):
    error = error_for(tmp_path, text)
    assert error.key == key, str(error)
    for word in words:
        assert word in str(error), str(error)


def test_invalid_toml_names_the_file_and_the_line(tmp_path):
    error = error_for(tmp_path, "[feed\nconfirm_ticks = 2\n")
    assert error.key.endswith("tmtool.toml") and "line 1" in error.reason


# --------------------------------------------------------------------------- writing back

FULL = Strategy(
    name="breakout",
    trade_risk=TradeRisk(
        stop_loss=Distance(12.5),
        target=Distance(2.0, DistanceMode.PERCENT),
        trailing=TrailingSettings(Distance(5), Distance(10), Distance(8), Distance(4)),
        breakeven_after=Distance(7),
        partial_targets=(PartialTarget(Distance(10), 0.25), PartialTarget(Distance(1, DistanceMode.PERCENT), 0.5)),
    ),
    portfolio=PortfolioRisk(Amount(3000), Amount(4, AmountMode.PERCENT), Amount(2000), Amount(500), Amount(2500)),
    allocated_funds=150_000.0,
    sizing=Sizing(SizingMode.PERCENT_ALLOCATION, 20.0),
    max_open_positions=3,
    max_trades_per_day=10,
    square_off_time=time(15, 10),
    exit_order=ExitOrderSettings(PriceType.LIMIT, 0.25, 2.0, 3),
    product=Product.NRML,
    exchange="NFO",
    adopt_fills=True,
)


def test_strategy_tables_round_trip():
    assert strategy_from_table(strategy_to_table(FULL)) == FULL
    assert strategy_from_table(strategy_to_table(Strategy(name="bare"))) == Strategy(name="bare")


USER_FILE = """# my settings
[openalgo]
host = "http://10.0.0.5:5000"

[feed]
confirm_ticks = 3

[alerts]
telegram = { chat = "123" }

[[strategies]]
name = "first"
stop_loss = 10

[[strategies]]
name = "breakout"
target = 5

[[strategies]]
name = "last"
"""


def test_save_replaces_one_strategy_and_keeps_everything_else(tmp_path):
    path = write(tmp_path, USER_FILE)
    before = tomllib.loads(path.read_text())
    save_strategy(path, FULL)
    after = tomllib.loads(path.read_text())
    assert {k: v for k, v in after.items() if k != "strategies"} == {
        k: v for k, v in before.items() if k != "strategies"
    }
    assert [s["name"] for s in after["strategies"]] == ["first", "breakout", "last"]
    assert after["strategies"][0] == before["strategies"][0]
    config = load_config(path, {})
    assert config.strategy("breakout") == FULL and config.feed.confirm_ticks == 3


def test_save_appends_a_new_strategy_and_remove_takes_it_out(tmp_path):
    path = write(tmp_path, USER_FILE)
    new = Strategy(name="scalper", sizing=Sizing(SizingMode.FIXED_QUANTITY, 50.0))
    save_strategy(path, new)
    assert [s.name for s in load_config(path, {}).strategies] == ["first", "breakout", "last", "scalper", "manual"]
    assert remove_strategy(path, "breakout") is True
    assert remove_strategy(path, "breakout") is False
    config = load_config(path, {})
    assert [s.name for s in config.strategies] == ["first", "last", "scalper", "manual"]
    assert config.openalgo.host == "http://10.0.0.5:5000" and config.alerts_table == {"telegram": {"chat": "123"}}


def test_written_files_are_private(tmp_path):
    fresh = tmp_path / "sub" / "tmtool.toml"
    save_strategy(fresh, FULL)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
    assert load_config(fresh, {}).strategy("breakout") == FULL
    shared = write(tmp_path, USER_FILE, "shared.toml")
    shared.chmod(0o644)  # the file may hold an API key: a write-back leaves it to its owner only
    save_strategy(shared, FULL)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o600
    shared.chmod(0o640)
    remove_strategy(shared, "first")
    assert stat.S_IMODE(shared.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def comment_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith("#")]


def inline_comments(text: str) -> list[str]:
    return [line.split(" #", 1)[1].strip() for line in text.splitlines() if not line.strip().startswith("#") and " #" in line]


def test_a_save_keeps_every_comment_and_the_layout_of_the_example_file(tmp_path):
    path = write(tmp_path, EXAMPLE.read_text())
    path.chmod(0o644)
    original = EXAMPLE.read_text()
    assert len(comment_lines(original)) >= 85
    save_strategy(path, FULL)  # a new strategy: appended, nothing else touched
    text = path.read_text()
    assert text.startswith(original.rstrip("\n"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    momentum = load_config(path, {}).strategy("momentum")
    edited = replace(momentum, allocated_funds=250_000.0, max_open_positions=None, trade_risk=replace(
        momentum.trade_risk, stop_loss=Distance(0.8, DistanceMode.PERCENT)))
    save_strategy(path, edited)  # an existing strategy: edited in place
    text = path.read_text()
    assert comment_lines(text) == comment_lines(original)
    assert [c for c in inline_comments(original) if c != "leave out for no limit"] == [
        c for c in inline_comments(text) if c != "leave out for no limit"
    ]
    assert "allocated_funds = 250000.0     # rupees this strategy may use" in text
    assert 'square_off_time = "15:15"      # exit everything' in text  # unchanged keys keep their spelling
    assert "\nstop_loss = 5000                                # exit all at a loss of 5000\n" in text
    config = load_config(path, {})
    assert config.strategy("momentum") == edited and config.strategy("breakout") == FULL
    assert remove_strategy(path, "breakout")
    assert comment_lines(path.read_text()) == comment_lines(original)


def test_saving_through_a_symlink_rewrites_the_target(tmp_path):
    real = write(tmp_path, USER_FILE, "real.toml")
    link = tmp_path / "link.toml"
    link.symlink_to(real)
    save_strategy(link, Strategy(name="via-link"))
    assert link.is_symlink()
    assert load_config(real, {}).strategy("via-link") is not None


def test_removing_the_last_strategy_drops_the_array(tmp_path):
    path = write(tmp_path, '[feed]\nconfirm_ticks = 1\n[[strategies]]\nname = "only"\n')
    assert remove_strategy(path, "only")
    assert tomllib.loads(path.read_text()) == {"feed": {"confirm_ticks": 1}}
    assert remove_strategy(tmp_path / "missing.toml", "x") is False


def test_an_invalid_strategy_or_a_broken_file_is_never_written(tmp_path):
    path = write(tmp_path, USER_FILE)
    original = path.read_bytes()
    bad = Strategy(name="bad", trade_risk=TradeRisk(partial_targets=(PartialTarget(Distance(5), 0.7),) * 2))
    with pytest.raises(ConfigError):
        save_strategy(path, bad)
    assert path.read_bytes() == original
    broken = write(tmp_path, "[feed\n", "broken.toml")
    with pytest.raises(ConfigError):
        save_strategy(broken, FULL)
    with pytest.raises(ConfigError):
        remove_strategy(broken, "x")
    assert broken.read_text() == "[feed\n"


def test_config_objects_are_frozen(tmp_path):
    config = load(tmp_path, "")
    with pytest.raises(AttributeError):
        config.feed = None  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.engine.freeze_quantities["NIFTY"] = 1  # type: ignore[index]


# --------------------------------------------------------------------------- the example documents every key

_COMMENTED_KEY = re.compile(r"#\s?((\[\[?[\w.\"]+(:[\w\"]+)?\]\]?)|([A-Za-z_][\w]*\s*=\s.*))$")


def uncommented_example() -> dict:
    """The example with its commented-out keys and tables switched on (each is a real, valid example)."""
    lines = []
    for line in EXAMPLE.read_text().splitlines():
        match = _COMMENTED_KEY.fullmatch(line.strip())
        lines.append(match.group(1) if match else line)
    return tomllib.loads("\n".join(lines))


def _model_of(annotation):
    """The pydantic model under ``X | None``, ``list[X]``, ``dict[str, X]`` and ``Annotated`` (or None)."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        elif origin in (list, dict):
            annotation = typing.get_args(annotation)[-1]
        else:
            return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def undocumented(model, tables: list, where: str) -> list[str]:
    """Keys of ``model`` that appear in none of ``tables`` (recursing into nested models)."""
    tables = [t for t in tables if isinstance(t, dict)]
    missing = []
    for field_name, info in model.model_fields.items():
        name = info.alias or field_name  # as written in the file ("from" for the e-mail sender)
        key = f"{where}.{name}" if where else name
        values = [t[name] for t in tables if name in t]
        if not values:
            missing.append(key)
            continue
        nested = _model_of(info.annotation)
        if nested is None:
            continue
        if typing.get_origin(_strip(info.annotation)) is list:
            values = [item for value in values for item in value]
        elif typing.get_origin(_strip(info.annotation)) is dict:
            values = [item for value in values for item in value.values()]
        if any(isinstance(v, dict) for v in values):  # a bare number may stand for {value = ...}
            missing += undocumented(nested, values, key)
    return missing


def _strip(annotation):
    while typing.get_origin(annotation) in (typing.Annotated, typing.Union, types.UnionType):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    return annotation


def test_the_example_documents_every_key_the_config_accepts():
    example = uncommented_example()
    assert undocumented(ConfigFile, [example], "") == []
    assert undocumented(AlertsTable, [example["alerts"]], "alerts") == []


def test_the_example_loads_as_shipped_and_with_every_example_switched_on(tmp_path):
    shipped = load_config(EXAMPLE, {})
    assert AlertsConfig.from_table(shipped.alerts_table, environ={}).channels == {}  # channels ship switched off
    path = tmp_path / "tmtool.toml"
    path.write_text(tomlkit.dumps(uncommented_example()))
    path.chmod(0o600)
    config = load_config(path, {})
    assert [s.name for s in config.strategies] == ["momentum", "manual", "scalper"]
    assert config.engine.instruments["NSE:RELIANCE"].lot_size == 1
    assert config.account.daily_loss_limit == 25000
    environ = {"TMTOOL_TELEGRAM_TOKEN": "t", "TMTOOL_TELEGRAM_CHAT_ID": "1", "TMTOOL_SMTP_PASSWORD": "p"}
    table = {**config.alerts_table, **{name: {**config.alerts_table[name], "enabled": True} for name in CHANNEL_NAMES}}
    table["email"].pop("ca_file")  # the example names a CA file this machine does not have
    alerts = AlertsConfig.from_table(table, environ=environ)
    assert list(alerts.channels) == list(CHANNEL_NAMES) and alerts.quiet_hours is not None
