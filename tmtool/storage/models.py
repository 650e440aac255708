"""peewee models of the tmtool database, and the conversion of engine records to rows.

The models are deliberately not bound to a database: every query names the
database it runs on (``query.execute(db)``), so several stores (and the
maintenance commands) can use different files in one process without
re-binding shared classes.

Scalar fields of a record map to one column each; nested settings (trailing
settings, breakeven distance, partial levels, exit order ids, a strategy's
settings) are JSON text written by :mod:`tmtool.storage.codec`.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from datetime import date, time
from enum import Enum
from functools import lru_cache
from typing import Any, Callable, Iterator

from peewee import (
    SQL,
    BooleanField,
    CompositeKey,
    FloatField,
    IntegerField,
    Model,
    TextField,
)

from tmtool.domain.models import (
    Alert,
    OrderRecord,
    PortfolioState,
    Strategy,
    Trade,
    TradeEvent,
)
from tmtool.storage import codec


class BaseModel(Model):
    class Meta:
        database = None
        legacy_table_names = False


class StrategyRow(BaseModel):
    """One strategy; ``settings`` holds every field of ``models.Strategy`` as JSON."""

    name = TextField(primary_key=True)
    settings = TextField()
    saved_at = FloatField()

    class Meta:
        table_name = "strategy"


class TradeRow(BaseModel):
    """Every field of ``models.Trade``."""

    id = IntegerField(primary_key=True)
    strategy = TextField()
    symbol = TextField()
    exchange = TextField()
    product = TextField()
    side = TextField()
    quantity = IntegerField()
    entry_price = FloatField()
    status = TextField()
    entry_quantity = IntegerField()
    requested_quantity = IntegerField()
    stop_loss = FloatField(null=True)
    target = FloatField(null=True)
    trailing = TextField(null=True)  # JSON TrailingSettings
    trailing_stop = FloatField(null=True)
    breakeven_after = TextField(null=True)  # JSON Distance
    breakeven_done = BooleanField()
    partial_levels = TextField()  # JSON list of PartialLevel
    high_watermark = FloatField()
    low_watermark = FloatField()
    last_price = FloatField()
    tick_size = FloatField()
    lot_size = IntegerField()
    entry_order_id = TextField(null=True)
    entry_price_type = TextField()
    entry_limit_price = FloatField(null=True)
    exit_order_ids = TextField()  # JSON list of str
    exit_reason = TextField(null=True)
    exit_trigger_price = FloatField(null=True)
    exit_price = FloatField(null=True)
    exited_quantity = IntegerField()
    realised_pnl = FloatField()
    paused = BooleanField()
    degraded = BooleanField()
    created_at = FloatField()
    opened_at = FloatField(null=True)
    closed_at = FloatField(null=True)
    updated_at = FloatField()
    note = TextField()
    order_fills = TextField()  # JSON list of OrderFill

    class Meta:
        table_name = "trade"
        indexes = (
            (("status",), False),  # the engine's open trades
            (("closed_at",), False),  # history by period
            (("strategy", "closed_at"), False),  # history by strategy and period
        )


class PortfolioStateRow(BaseModel):
    """Every field of ``models.PortfolioState``, one row per strategy and trading day."""

    strategy = TextField()
    trading_day = TextField()  # ISO date, Asia/Kolkata calendar
    realised_pnl = FloatField()
    peak_pnl = FloatField()
    trough_pnl = FloatField()
    trailing_armed = BooleanField()
    trailing_lock = FloatField(null=True)
    halted = BooleanField()
    halt_reason = TextField()
    trades_today = IntegerField()
    updated_at = FloatField()

    class Meta:
        table_name = "portfolio_state"
        primary_key = CompositeKey("strategy", "trading_day")


class OrderRow(BaseModel):
    """The order ledger: every field of ``models.OrderRecord``, keyed by tmtool's ``key``."""

    key = TextField(primary_key=True)
    trade_id = IntegerField()
    purpose = TextField()
    action = TextField()
    quantity = IntegerField()
    state = TextField()
    reason = TextField(null=True)
    price_type = TextField()
    price = FloatField()
    order_id = TextField(null=True)
    filled_quantity = IntegerField()
    average_price = FloatField()
    attempt = IntegerField()
    message = TextField()
    created_at = FloatField()
    updated_at = FloatField()
    net_before = IntegerField(null=True)
    fills_before = TextField(null=True)  # JSON list of [ledger key, filled quantity]
    lag_fills = TextField()  # JSON list of signed quantities

    class Meta:
        table_name = "order_ledger"
        indexes = (
            (("state",), False),  # orders not final, at start-up
            (("trade_id",), False),
        )


class TradeEventRow(BaseModel):
    """The append-only audit log.  ``(trade_id, seq)`` is assigned before the event is queued,
    so replaying a batch whose commit outcome was unknown cannot duplicate an event."""

    id = IntegerField(primary_key=True)
    trade_id = IntegerField()
    seq = IntegerField(constraints=[SQL("DEFAULT 0")])
    ts = FloatField()
    kind = TextField()
    field = TextField()
    old = TextField()
    new = TextField()
    reason = TextField()
    price = FloatField(null=True)
    strategy = TextField()

    class Meta:
        table_name = "trade_event"
        indexes = ((("trade_id", "seq"), True),)


class AlertRow(BaseModel):
    """Every field of ``models.Alert``; rows are updated in place when alerts fold or are acknowledged."""

    id = IntegerField(primary_key=True)
    ts = FloatField()
    category = TextField()
    priority = TextField()
    text = TextField()
    key = TextField()
    trade_id = IntegerField(null=True)
    strategy = TextField(null=True)
    count = IntegerField()
    acknowledged = BooleanField()
    last_ts = FloatField()

    class Meta:
        table_name = "alert"
        indexes = ((("ts",), False),)


class MetaRow(BaseModel):
    """Facts about the database file itself; ``database_id`` is its identity (a UUID made with the file)."""

    key = TextField(primary_key=True)
    value = TextField()

    class Meta:
        table_name = "meta"


ALL_MODELS: tuple[type[BaseModel], ...] = (
    StrategyRow,
    TradeRow,
    PortfolioStateRow,
    OrderRow,
    TradeEventRow,
    AlertRow,
    MetaRow,
)

# Columns of a record that hold JSON text rather than a scalar.
_JSON_FIELDS = {
    Trade: frozenset({"trailing", "breakeven_after", "partial_levels", "exit_order_ids", "order_fills"}),
    OrderRecord: frozenset({"fills_before", "lag_fills"}),
}


# --------------------------------------------------------------------------- record <-> row


def record_to_row(record: Any) -> dict[str, Any]:
    """The column values of one record (Trade, PortfolioState, OrderRecord, Alert), by column name."""
    return dict(zip(record_columns(type(record)), record_values(record)))


def record_values(record: Any) -> tuple:
    """The column values of one record, in ``record_columns`` order (what a prepared INSERT binds).
    A value that cannot be stored (a NaN price, a wrong type) raises ``codec.CodecError`` naming it."""
    return _row_encoder(type(record))(record)


@lru_cache(maxsize=None)
def record_columns(cls: type) -> tuple[str, ...]:
    """The columns of a record type's table that its fields fill, in field order."""
    return tuple(codec.field_types(cls))


@lru_cache(maxsize=None)
def _row_encoder(cls: type) -> Callable[[Any], tuple]:
    """The encoder of one record type, generated from its fields.

    The store writer turns every queued change into a row.  With thousands of trades
    ratcheting, that was most of its time (a generic walk per column, and JSON text made
    afresh for settings that rarely change), and it took the time from the engine thread
    through the interpreter lock.  The generated code takes a value of exactly its declared
    type in line (a finite float, an int, a str, a bool, a member of the declared enum) and
    hands anything else to ``_encode_column``, the full checks, which convert it or refuse
    it.  JSON columns of values that cannot change are encoded once per value object
    (``_JsonTexts``): copies of a trade share those objects."""
    lines = ["def encode(r):"]
    constants: dict[str, Any] = {"slow": _encode_column}
    names = []
    json_fields = _JSON_FIELDS.get(cls, frozenset())
    for index, (name, hint) in enumerate(codec.field_types(cls).items()):
        value = f"v{index}"
        names.append(value)
        lines.append(f"    {value} = r.{name}")
        slow = f"{value} = slow({name!r}, {value}, r)"
        if name in json_fields:
            constants[f"json{index}"] = _JsonTexts(name, cacheable=_deeply_frozen(hint))
            lines.append(f"    {value} = json{index}.text({value}, r)")
            continue
        optional, base = _optional(hint)
        unless_none = f"{value} is not None and " if optional else ""
        if base is float:  # v - v is 0.0 for a finite float only
            lines.append(f"    if {unless_none}({value}.__class__ is not float or {value} - {value} != 0.0): {slow}")
        elif base is int or base is str:
            lines.append(f"    if {unless_none}{value}.__class__ is not {base.__name__}: {slow}")
        elif base is bool:
            lines.append(f"    if {unless_none}{value} is not True and {value} is not False: {slow}")
        elif isinstance(base, type) and issubclass(base, Enum):
            constants[f"enum{index}"] = base
            if optional:
                lines.append(f"    if {value} is None: pass")
                lines.append(f"    elif {value}.__class__ is enum{index}: {value} = {value}._value_")
            else:
                lines.append(f"    if {value}.__class__ is enum{index}: {value} = {value}._value_")
            lines.append(f"    else: {slow}")
        else:
            lines.append(f"    {slow}")
    lines.append(f"    return ({', '.join(names)},)")
    exec("\n".join(lines), constants)  # noqa: S102 - source built above from the dataclass's own fields
    return constants["encode"]


def _optional(hint: Any) -> tuple[bool, Any]:
    """``(True, X)`` for ``X | None``; ``(False, hint)`` for anything else."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if len(options) == 2 and type(None) in options:
            return True, next(option for option in options if option is not type(None))
    return False, hint


def _encode_column(name: str, value: Any, record: Any) -> Any:
    """A column value the generated fast path did not take: checked against the field's declared
    type and converted (an enum to its value, a date to ISO text), or refused naming the record
    and the field."""
    hint = codec.field_types(type(record))[name]
    if codec.checker(hint)(value):
        return _column_value(value, hint, name, record)
    raise codec.CodecError(
        f"{_where(record)}: {name} is {value!r}, a {type(value).__name__}; expected {codec.type_name(hint)}"
    )


class _JsonTexts:
    """A JSON column's text per value object, for values that cannot change (frozen dataclasses,
    tuples of them, scalars).  Keyed by identity and holding the value, so an id is not reused
    while its text is kept; emptied when it grows past ``_JSON_TEXTS_KEPT``; texts longer than
    ``_JSON_TEXT_KEPT_LENGTH`` are not kept."""

    __slots__ = ("name", "cacheable", "texts")

    def __init__(self, name: str, cacheable: bool) -> None:
        self.name = name
        self.cacheable = cacheable
        self.texts: dict[int, tuple[Any, str]] = {}

    def text(self, value: Any, record: Any) -> str:
        kept = self.texts.get(id(value))
        if kept is not None and kept[0] is value:
            return kept[1]
        text = codec.to_json(value, f"{_where(record)}: {self.name}")
        if self.cacheable and len(text) <= _JSON_TEXT_KEPT_LENGTH:
            texts = self.texts
            if len(texts) >= _JSON_TEXTS_KEPT:
                texts = self.texts = {}
            texts[id(value)] = (value, text)
        return text


_JSON_TEXTS_KEPT = 4096
# Longer texts are made afresh each time: an order's ``fills_before`` can name hundreds of orders,
# and 4,096 of those kept would be tens of megabytes for texts rarely written twice.
_JSON_TEXT_KEPT_LENGTH = 1024


def _deeply_frozen(hint: Any) -> bool:
    """Whether every value of the declared type is immutable all the way down."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType) or origin is tuple:
        return all(_deeply_frozen(option) for option in typing.get_args(hint) if option is not Ellipsis)
    if hint in (type(None), str, int, float, bool, date, time):
        return True
    if isinstance(hint, type) and issubclass(hint, Enum):
        return True
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        params = hint.__dataclass_params__  # type: ignore[attr-defined]
        return bool(params.frozen) and all(_deeply_frozen(field) for field in codec.field_types(hint).values())
    return False


def raw_rows(db: Any, query: Any) -> Iterator[dict[str, Any]]:
    """A query's rows as column name -> stored value, through the raw cursor: peewee's own
    per-column conversion is skipped, because the record decoders check (and convert) every
    column's type themselves.  Start-up with 10,000 open trades spent a fifth of its load there."""
    cursor = db.execute(query)
    names = [column[0] for column in cursor.description]
    return (dict(zip(names, values)) for values in cursor)


def select_records(db: Any, cls: type, query: Any) -> list[Any]:
    """The records of type ``cls`` a query of its table selects."""
    return [row_to_record(cls, row) for row in raw_rows(db, query)]


def row_to_record(cls: type, row: dict[str, Any]) -> Any:
    """Rebuild a record of type ``cls`` from its column values."""
    return cls(**{name: decode(row[name], where) for name, where, decode in _column_decoders(cls)})


@lru_cache(maxsize=None)
def _column_decoders(cls: type) -> tuple[tuple[str, str, codec.Decoder], ...]:
    """Per column of ``cls``: its name, where a decoding error says it was, and its decoder (a JSON
    column's parses the text first).  Built once per type: start-up decodes every column of every
    open trade, so nothing here is worked out per value."""
    json_fields = _JSON_FIELDS.get(cls, frozenset())
    return tuple(
        (name, f"{cls.__name__} row {name}", _json_column_decoder(hint) if name in json_fields else codec.decoder(hint))
        for name, hint in codec.field_types(cls).items()
    )


def _json_column_decoder(hint: Any) -> codec.Decoder:
    """A JSON column's decoder.  Values that cannot change are shared: equal texts (thousands of
    open trades opened with one strategy's settings) decode to one object, parsed once, which
    the writer's ``_JsonTexts`` then encodes once."""
    decode = codec.json_decoder(hint)
    if not _deeply_frozen(hint):
        return decode
    shared: dict[str, Any] = {}

    def decode_shared(text: Any, where: str) -> Any:
        value = shared.get(text) if type(text) is str else None
        if value is None:
            value = decode(text, where)
            if type(text) is str:
                if len(shared) >= _JSON_TEXTS_KEPT:
                    shared.clear()
                shared[text] = value
        return value

    return decode_shared


def strategy_to_row(strategy: Strategy, saved_at: float) -> dict[str, Any]:
    return {
        "name": strategy.name,
        "settings": codec.to_json(strategy, f"strategy {strategy.name!r}"),
        "saved_at": saved_at,
    }


def row_to_strategy(row: dict[str, Any]) -> Strategy:
    strategy = codec.from_json(Strategy, row["settings"], f"strategy {row['name']!r}")
    if strategy.name != row["name"]:
        raise codec.CodecError(f"strategy row {row['name']!r} holds settings named {strategy.name!r}")
    return strategy


def event_to_row(event: TradeEvent, seq: int) -> dict[str, Any]:
    return dict(zip(EVENT_COLUMNS, event_values(event, seq)))


def event_values(event: TradeEvent, seq: int) -> tuple:
    """An audit event's column values, in ``EVENT_COLUMNS`` order."""
    return record_values(event) + (seq,)


def row_to_event(row: dict[str, Any]) -> TradeEvent:
    return row_to_record(TradeEvent, row)


EVENT_COLUMNS = record_columns(TradeEvent) + ("seq",)

RECORD_TABLES: dict[type, type[BaseModel]] = {
    Trade: TradeRow,
    PortfolioState: PortfolioStateRow,
    OrderRecord: OrderRow,
    TradeEvent: TradeEventRow,
    Alert: AlertRow,
}


def _column_value(value: Any, hint: Any, name: str, record: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        raise codec.CodecError(f"{_where(record)}: {name} is {value}; only finite numbers can be stored")
    return value


def _where(record: Any) -> str:
    """Names a record in an error message: its type and identity."""
    for attribute in ("id", "key", "trade_id", "strategy"):
        value = getattr(record, attribute, None)
        if value is not None:
            return f"{type(record).__name__} {attribute}={value!r}"
    return type(record).__name__
