"""Request validation that answers the way OpenAlgo's request schemas do.

The server validates each body with a schema that rejects unknown keys and
reports errors as a dict of field → list of messages; the REST layer sends the
dict's Python ``repr`` as the error message string (openalgo-api.md §0).  The
field kinds and messages here reproduce that behaviour for the endpoints the
simulator serves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tmtool.sim.symbols import VALID_EXCHANGES

MISSING_MESSAGE = "Missing data for required field."
UNKNOWN_MESSAGE = "Unknown field."

_TRUE = {"t", "T", "true", "True", "TRUE", "on", "On", "ON", "y", "Y", "yes", "Yes", "YES", "1", 1, True}
_FALSE = {"f", "F", "false", "False", "FALSE", "off", "Off", "OFF", "n", "N", "no", "No", "NO", "0", 0, False}


class SchemaError(Exception):
    """Validation failed; ``messages`` is the field → messages dict."""

    def __init__(self, messages: dict) -> None:
        super().__init__(str(messages))
        self.messages = messages


@dataclass(frozen=True)
class Field:
    kind: str  # "str" | "float" | "int" | "bool" | "list"
    required: bool = False
    default: Any = None
    one_of: tuple[str, ...] | None = None
    minimum: float | None = None
    exclusive_minimum: bool = False
    range_error: str | None = None
    length: tuple[int, int] | None = None
    min_items: int | None = None
    item_schema: "Schema | None" = None

    def load(self, value: Any) -> Any:
        """The deserialised value, or ``ValueError`` with the message(s) to report."""
        loaded = _LOADERS[self.kind](self, value)
        if self.one_of is not None and loaded not in self.one_of:
            raise ValueError(f"Must be one of: {', '.join(self.one_of)}.")
        if self.length is not None and not self.length[0] <= len(loaded) <= self.length[1]:
            raise ValueError(f"Length must be between {self.length[0]} and {self.length[1]}.")
        if self.minimum is not None:
            too_small = loaded <= self.minimum if self.exclusive_minimum else loaded < self.minimum
            if too_small:
                raise ValueError(self.range_error or f"Must be greater than or equal to {self.minimum}.")
        return loaded


def _load_str(field: Field, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("Not a valid string.")
    return value


def _load_float(field: Field, value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("Not a valid number.")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError("Not a valid number.") from None
    if not math.isfinite(number):
        raise ValueError("Special numeric values (nan or infinity) are not permitted.")
    return number


def _load_int(field: Field, value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("Not a valid integer.")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("Not a valid integer.")
        return int(value)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError("Not a valid integer.") from None


def _load_bool(field: Field, value: Any) -> bool:
    try:
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
    except TypeError:  # unhashable
        pass
    raise ValueError("Not a valid boolean.")


def _load_list(field: Field, value: Any) -> list:
    if not isinstance(value, list):
        raise ValueError("Not a valid list.")
    if field.min_items is not None and len(value) < field.min_items:
        raise ValueError(f"Shorter than minimum length {field.min_items}.")
    if field.item_schema is None:
        return value
    loaded, errors = [], {}
    for index, item in enumerate(value):
        try:
            loaded.append(field.item_schema.load(item))
        except SchemaError as error:
            errors[index] = error.messages
    if errors:
        raise _NestedErrors(errors)
    return loaded


class _NestedErrors(ValueError):
    def __init__(self, messages: dict) -> None:
        super().__init__(str(messages))
        self.messages = messages


_LOADERS = {"str": _load_str, "float": _load_float, "int": _load_int, "bool": _load_bool, "list": _load_list}


class Schema:
    """Named fields; unknown keys are errors; missing optional fields take their default."""

    def __init__(self, **fields: Field) -> None:
        self.fields = fields

    def load(self, data: Any) -> dict:
        if not isinstance(data, dict):
            raise SchemaError({"_schema": ["Invalid input type."]})
        result: dict[str, Any] = {}
        errors: dict[str, Any] = {}
        for name, field in self.fields.items():
            if name not in data:
                if field.required:
                    errors[name] = [MISSING_MESSAGE]
                elif field.default is not None:
                    result[name] = field.default
                continue
            try:
                result[name] = field.load(data[name])
            except _NestedErrors as error:
                errors[name] = error.messages
            except ValueError as error:
                errors[name] = [str(error)]
        for name in data:
            if name not in self.fields:
                errors[name] = [UNKNOWN_MESSAGE]
        if errors:
            raise SchemaError(errors)
        return result


def coerce_whole_quantity(data: dict, key: str = "quantity") -> dict:
    """OpenAlgo's post-load step: non-crypto quantities must be whole numbers."""
    if data.get("exchange") != "CRYPTO" and key in data:
        quantity = data[key]
        if quantity != int(quantity):
            raise SchemaError({key: [f"Fractional quantity ({quantity}) is not allowed for non-crypto exchanges."]})
        data[key] = int(quantity)
    return data


# ---- the schemas -----------------------------------------------------------------------------

_APIKEY_STRICT = Field("str", required=True, length=(1, 256))
_APIKEY = Field("str", required=True)
_EXCHANGE = Field("str", required=True, one_of=VALID_EXCHANGES)
_ACTION = Field("str", required=True, one_of=("BUY", "SELL", "buy", "sell"))
_PRICETYPES = ("MARKET", "LIMIT", "SL", "SL-M")
_PRODUCTS = ("MIS", "NRML", "CNC")
_PRICE = dict(minimum=0, range_error="Price must be a non-negative number.")
_TRIGGER = dict(minimum=0, range_error="Trigger price must be a non-negative number.")
_DISCLOSED = dict(minimum=0, range_error="Disclosed quantity must be a non-negative integer.")

ORDER = Schema(
    apikey=_APIKEY_STRICT, strategy=Field("str", required=True), exchange=_EXCHANGE,
    symbol=Field("str", required=True), action=_ACTION,
    quantity=Field("float", required=True, minimum=0, exclusive_minimum=True,
                   range_error="Quantity must be a positive number."),
    pricetype=Field("str", default="MARKET", one_of=_PRICETYPES),
    product=Field("str", default="MIS", one_of=_PRODUCTS),
    price=Field("float", default=0.0, **_PRICE),
    trigger_price=Field("float", default=0.0, **_TRIGGER),
    disclosed_quantity=Field("int", default=0, **_DISCLOSED),
)
SMART_ORDER = Schema(
    apikey=_APIKEY_STRICT, strategy=Field("str", required=True), exchange=_EXCHANGE,
    symbol=Field("str", required=True), action=_ACTION,
    quantity=Field("float", required=True, minimum=0, range_error="Quantity must be a non-negative number."),
    position_size=Field("float", required=True),
    pricetype=Field("str", default="MARKET", one_of=_PRICETYPES),
    product=Field("str", default="MIS", one_of=_PRODUCTS),
    price=Field("float", default=0.0, **_PRICE),
    trigger_price=Field("float", default=0.0, **_TRIGGER),
    disclosed_quantity=Field("int", default=0, **_DISCLOSED),
)
MODIFY_ORDER = Schema(
    apikey=_APIKEY_STRICT, strategy=Field("str", required=True), exchange=_EXCHANGE,
    symbol=Field("str", required=True), orderid=Field("str", required=True), action=_ACTION,
    product=Field("str", required=True, one_of=_PRODUCTS),
    pricetype=Field("str", required=True, one_of=_PRICETYPES),
    price=Field("float", required=True, **_PRICE),
    quantity=Field("float", required=True, minimum=0, exclusive_minimum=True,
                   range_error="Quantity must be a positive number."),
    disclosed_quantity=Field("int", required=True, **_DISCLOSED),
    trigger_price=Field("float", required=True, **_TRIGGER),
)
CANCEL_ORDER = Schema(apikey=_APIKEY_STRICT, strategy=Field("str", required=True), orderid=Field("str", required=True))
STRATEGY_ONLY = Schema(apikey=_APIKEY_STRICT, strategy=Field("str", required=True))
APIKEY_ONLY = Schema(apikey=_APIKEY)
ORDER_STATUS = Schema(apikey=_APIKEY, strategy=Field("str", required=True), orderid=Field("str", required=True))
OPEN_POSITION = Schema(
    apikey=_APIKEY, strategy=Field("str", required=True), symbol=Field("str", required=True),
    exchange=Field("str", required=True), product=Field("str", required=True, one_of=_PRODUCTS),
)
SYMBOL_QUERY = Schema(apikey=_APIKEY_STRICT, symbol=Field("str", required=True), exchange=_EXCHANGE)
MULTI_QUOTES = Schema(
    apikey=_APIKEY_STRICT,
    symbols=Field("list", required=True, min_items=1,
                  item_schema=Schema(symbol=Field("str", required=True), exchange=_EXCHANGE)),
)
HISTORY = Schema(
    apikey=_APIKEY_STRICT, symbol=Field("str", required=True), exchange=_EXCHANGE,
    interval=Field("str", required=True), start_date=Field("str", required=True), end_date=Field("str", required=True),
    source=Field("str", default="api", one_of=("api", "db")),
)
ANALYZER_TOGGLE = Schema(apikey=_APIKEY, mode=Field("bool", required=True))
MARGIN_LEG = Schema(
    symbol=Field("str", required=True, length=(1, 50)), exchange=_EXCHANGE, action=_ACTION,
    quantity=Field("str", required=True), product=Field("str", required=True, one_of=_PRODUCTS),
    pricetype=Field("str", required=True, one_of=_PRICETYPES),
    price=Field("str", default="0"), trigger_price=Field("str", default="0"),
)
MARGIN = Schema(apikey=_APIKEY_STRICT, positions=Field("list", required=True, min_items=1, item_schema=MARGIN_LEG))
MARGIN_MAX_POSITIONS = 50
