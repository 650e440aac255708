"""The declarative validator and the OpenAPI document generated from the same declarations."""

from __future__ import annotations

from datetime import date

import pytest

from tmtool.api.openapi import body_fields, openapi_document
from tmtool.api.schema import (
    ARRAY,
    DATE,
    INTEGER,
    NUMBER,
    OBJECT,
    STRING,
    Field,
    ValidationError,
    object_schema,
    validate,
)
from tmtool.api.verbs import VERBS

ORDER = (
    Field("symbol", STRING, required=True, max_length=8, pattern="^[A-Z]+$"),
    Field("side", STRING, choices=("LONG", "SHORT"), default="LONG"),
    Field("quantity", INTEGER, minimum=1, maximum=100),
    Field("price", NUMBER, minimum=0, exclusive_minimum=True, maximum=1e6, nullable=True),
    Field("day", DATE),
    Field(
        "legs", ARRAY, max_items=2,
        items=Field("leg", OBJECT, fields=(Field("fraction", NUMBER, required=True, minimum=0, maximum=1),)),
    ),
)


def refusal(body: object) -> tuple[str, str]:
    with pytest.raises(ValidationError) as caught:
        validate(ORDER, body)
    return caught.value.field, caught.value.reason


def test_accepts_a_valid_body_and_fills_defaults():
    accepted = validate(ORDER, {"symbol": "SBIN", "quantity": 5, "price": 10, "day": "2026-01-02", "legs": [{"fraction": 0.5}]})
    assert accepted == {
        "symbol": "SBIN", "side": "LONG", "quantity": 5, "price": 10.0, "day": date(2026, 1, 2), "legs": [{"fraction": 0.5}],
    }
    assert isinstance(accepted["price"], float)
    assert validate(ORDER, {"symbol": "SBIN", "price": None})["price"] is None  # nullable: an explicit clear


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ([], "", "must be a JSON object"),
        ({}, "symbol", "is required"),
        ({"symbol": "SBIN", "colour": "red"}, "colour", "unknown field"),
        ({"symbol": 5}, "symbol", "must be a string"),
        ({"symbol": "sbin"}, "symbol", "must match the pattern ^[A-Z]+$"),
        ({"symbol": "SBIN\n"}, "symbol", "must match the pattern ^[A-Z]+$"),
        ({"symbol": "ABCDEFGHIJ"}, "symbol", "must be at most 8 characters long"),
        ({"symbol": "SBIN", "side": "FLAT"}, "side", "must be one of LONG, SHORT"),
        ({"symbol": "SBIN", "side": None}, "side", "must not be null"),
        ({"symbol": "SBIN", "quantity": True}, "quantity", "must be a whole number"),
        ({"symbol": "SBIN", "quantity": 1.5}, "quantity", "must be a whole number"),
        ({"symbol": "SBIN", "quantity": 0}, "quantity", "must be at least 1"),
        ({"symbol": "SBIN", "quantity": 10**400}, "quantity", "must be at most 100"),
        ({"symbol": "SBIN", "price": 0}, "price", "must be greater than 0"),
        ({"symbol": "SBIN", "price": -1.5}, "price", "must be greater than 0"),
        ({"symbol": "SBIN", "price": float("nan")}, "price", "must be a finite number"),
        ({"symbol": "SBIN", "price": float("inf")}, "price", "must be a finite number"),
        ({"symbol": "SBIN", "price": "10"}, "price", "must be a number"),
        ({"symbol": "SBIN", "day": "2026-02-30"}, "day", "is not a real calendar date"),
        ({"symbol": "SBIN", "day": "02/01/2026"}, "day", "must be a date written YYYY-MM-DD"),
        ({"symbol": "SBIN", "legs": {}}, "legs", "must be an array"),
        ({"symbol": "SBIN", "legs": [{"fraction": 0.1}] * 3}, "legs", "must hold at most 2 items"),
        ({"symbol": "SBIN", "legs": [{"fraction": 0.1}, {"fraction": 2}]}, "legs[1].fraction", "must be at most 1"),
        ({"symbol": "SBIN", "legs": [{"fraction": 0.1, "x": 1}]}, "legs[0].x", "unknown field"),
    ],
)
def test_refusals_name_the_field_and_the_reason(body, field, reason):
    assert refusal(body) == (field, reason)


def test_a_refusal_never_echoes_the_value():
    with pytest.raises(ValidationError) as caught:
        validate((Field("apikey", STRING, max_length=4),), {"apikey": "s3cret-value"})
    assert "s3cret" not in str(caught.value)


def test_published_schema_is_generated_from_the_verb_declarations():
    document = openapi_document()
    assert document["openapi"].startswith("3.0")
    for name, verb in VERBS.items():
        operation = document["paths"][f"/api/v1/{name}"]["post"]
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        assert schema == object_schema(body_fields(verb))
        assert schema["additionalProperties"] is False
        assert ("apikey" in schema.get("required", ())) is verb.needs_key
    trailing = document["paths"]["/api/v1/createtrade"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert trailing["properties"]["trailing"]["required"] == ["distance"]
    assert trailing["properties"]["stop_loss"] == {
        "type": "number", "description": "absolute stop price", "minimum": 0, "exclusiveMinimum": True, "maximum": 10_000_000.0,
    }
