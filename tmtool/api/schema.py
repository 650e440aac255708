"""A small declarative validator for the control API's JSON bodies.

Each verb declares its body as a tuple of ``Field``s.  ``validate`` checks a
decoded JSON object against it (types, required fields, allowed values, ranges,
lengths, patterns, nested objects and arrays; unknown fields are refused) and
returns a plain dict of the accepted values, or raises ``ValidationError``
naming the first offending field and the reason.  ``json_schema`` turns the
same declarations into OpenAPI 3.0 schema objects, so the published schema and
the checks cannot drift apart.

Error messages never echo the value that was sent (it may be a secret).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

STRING, INTEGER, NUMBER, BOOLEAN, ARRAY, OBJECT, DATE = (
    "string",
    "integer",
    "number",
    "boolean",
    "array",
    "object",
    "date",
)
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


class ValidationError(ValueError):
    """A request body broke its schema: ``field`` (dotted path) and ``reason``."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Field:
    """One body field.

    ``kind`` is one of string, integer, number, boolean, array, object, date
    (a "YYYY-MM-DD" string).  Numbers are finite; ``minimum``/``maximum`` are
    inclusive unless ``exclusive_minimum``.  ``nullable`` allows an explicit
    null (meaning "clear" where a verb says so).  ``items`` describes array
    elements, ``fields`` the members of an object.
    """

    name: str
    kind: str
    description: str = ""
    required: bool = False
    nullable: bool = False
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    items: "Field | None" = None
    min_items: int | None = None
    max_items: int | None = None
    fields: "tuple[Field, ...] | None" = None
    default: Any = None


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _check_string(field: Field, value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(path, "must be a string")
    if field.choices is not None and value not in field.choices:
        raise ValidationError(path, f"must be one of {', '.join(field.choices)}")
    if field.min_length is not None and len(value) < field.min_length:
        raise ValidationError(path, f"must be at least {field.min_length} characters long")
    if field.max_length is not None and len(value) > field.max_length:
        raise ValidationError(path, f"must be at most {field.max_length} characters long")
    if field.pattern is not None and not re.fullmatch(field.pattern, value):
        raise ValidationError(path, f"must match the pattern {field.pattern}")
    return value


def _check_date(field: Field, value: Any, path: str) -> date:
    if not isinstance(value, str) or not re.fullmatch(DATE_PATTERN, value):
        raise ValidationError(path, "must be a date written YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationError(path, "is not a real calendar date") from None


def _check_range(field: Field, value: int | float, path: str) -> None:
    if field.minimum is not None:
        if field.exclusive_minimum and value <= field.minimum:
            raise ValidationError(path, f"must be greater than {field.minimum:g}")
        if not field.exclusive_minimum and value < field.minimum:
            raise ValidationError(path, f"must be at least {field.minimum:g}")
    if field.maximum is not None and value > field.maximum:
        raise ValidationError(path, f"must be at most {field.maximum:g}")


def _check_integer(field: Field, value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(path, "must be a whole number")
    _check_range(field, value, path)
    return value


def _check_number(field: Field, value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(path, "must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationError(path, "must be a finite number")
    _check_range(field, value, path)  # exact for huge ints, before any float conversion
    return float(value)


def _check_array(field: Field, value: Any, path: str) -> list:
    if not isinstance(value, list):
        raise ValidationError(path, "must be an array")
    if field.min_items is not None and len(value) < field.min_items:
        raise ValidationError(path, f"must hold at least {field.min_items} items")
    if field.max_items is not None and len(value) > field.max_items:
        raise ValidationError(path, f"must hold at most {field.max_items} items")
    assert field.items is not None
    return [check_value(field.items, item, f"{path}[{index}]") for index, item in enumerate(value)]


def check_value(field: Field, value: Any, path: str) -> Any:
    """Check one value against its field; returns the accepted (converted) value."""
    if value is None:
        if field.nullable:
            return None
        raise ValidationError(path, "must not be null")
    if field.kind == STRING:
        return _check_string(field, value, path)
    if field.kind == DATE:
        return _check_date(field, value, path)
    if field.kind == INTEGER:
        return _check_integer(field, value, path)
    if field.kind == NUMBER:
        return _check_number(field, value, path)
    if field.kind == BOOLEAN:
        if not isinstance(value, bool):
            raise ValidationError(path, "must be true or false")
        return value
    if field.kind == ARRAY:
        return _check_array(field, value, path)
    if field.kind == OBJECT:
        assert field.fields is not None
        return validate(field.fields, value, path)
    raise ValueError(f"unknown field kind {field.kind!r}")


def validate(fields: tuple[Field, ...], body: Any, path: str = "") -> dict[str, Any]:
    """Validate a JSON object against ``fields``; unknown keys are refused.

    Optional fields that are absent are left out of the result (so a verb can
    tell "not given" from an explicit null), except those with a ``default``.
    """
    if not isinstance(body, dict):
        raise ValidationError(path, "must be a JSON object")
    known = {f.name: f for f in fields}
    for key in body:
        if key not in known:
            raise ValidationError(_join(path, str(key)[:64]), "unknown field")
    accepted: dict[str, Any] = {}
    for field in fields:
        where = _join(path, field.name)
        if field.name in body:
            accepted[field.name] = check_value(field, body[field.name], where)
        elif field.required:
            raise ValidationError(where, "is required")
        elif field.default is not None:
            accepted[field.name] = field.default
    return accepted


# --------------------------------------------------------------------------- OpenAPI


def json_schema(field: Field) -> dict[str, Any]:
    """The OpenAPI 3.0 schema object of one field."""
    schema: dict[str, Any] = {}
    if field.kind == DATE:
        schema.update(type="string", format="date", pattern=DATE_PATTERN)
    else:
        schema["type"] = field.kind
    if field.description:
        schema["description"] = field.description
    if field.nullable:
        schema["nullable"] = True
    if field.choices is not None:
        schema["enum"] = list(field.choices)
    if field.minimum is not None:
        schema["minimum"] = field.minimum
        if field.exclusive_minimum:
            schema["exclusiveMinimum"] = True
    if field.maximum is not None:
        schema["maximum"] = field.maximum
    if field.min_length is not None:
        schema["minLength"] = field.min_length
    if field.max_length is not None:
        schema["maxLength"] = field.max_length
    if field.pattern is not None:
        schema["pattern"] = field.pattern
    if field.kind == ARRAY and field.items is not None:
        schema["items"] = json_schema(field.items)
        if field.min_items is not None:
            schema["minItems"] = field.min_items
        if field.max_items is not None:
            schema["maxItems"] = field.max_items
    if field.kind == OBJECT and field.fields is not None:
        schema.update(object_schema(field.fields))
    if field.default is not None:
        schema["default"] = field.default
    return schema


def object_schema(fields: tuple[Field, ...]) -> dict[str, Any]:
    """The OpenAPI 3.0 schema of an object made of ``fields`` (no extra keys)."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {f.name: json_schema(f) for f in fields},
        "additionalProperties": False,
    }
    required = [f.name for f in fields if f.required]
    if required:
        schema["required"] = required
    return schema
