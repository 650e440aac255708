"""The control API's OpenAPI 3.0 document, generated from the verbs' declared schemas."""

from __future__ import annotations

from typing import Any

from tmtool import __version__
from tmtool.api.schema import STRING, Field, object_schema
from tmtool.api.verbs import VERBS, Verb

API_PREFIX = "/api/v1/"
APIKEY = Field("apikey", STRING, "the control API key", required=True, min_length=1, max_length=256)

_STATUS_TEXT = {
    400: "invalid request (the message names the field and the reason)",
    403: "missing or wrong API key",
    404: "unknown trade",
    409: "refused by the engine in the current state (see `code`)",
    413: "body too large",
    415: "body is not JSON",
    429: "rate limit reached (see Retry-After)",
    502: "OpenAlgo failed while the engine carried the command out",
    503: "the engine is not accepting commands",
    504: "the engine did not answer in time; the command may still be applied",
}

_SUCCESS = {
    "type": "object",
    "required": ["status", "data"],
    "properties": {"status": {"type": "string", "enum": ["success"]}, "data": {}},
}
_ERROR = {
    "type": "object",
    "required": ["status", "message"],
    "properties": {
        "status": {"type": "string", "enum": ["error"]},
        "message": {"type": "string"},
        "code": {"type": "string"},
        "retry_after": {"type": "integer"},
    },
}


def body_fields(verb: Verb) -> tuple[Field, ...]:
    """The full body schema of a verb: ``apikey`` first where a key is needed."""
    return (APIKEY, *verb.fields) if verb.needs_key else verb.fields


def _responses(statuses: tuple[int, ...]) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {"description": "success", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Success"}}}}
    }
    for status in (*statuses, 413, 415):
        responses[str(status)] = {
            "description": _STATUS_TEXT[status],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    return responses


def _operation(verb: Verb) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": verb.name,
        "summary": verb.summary,
        "requestBody": {
            "required": verb.needs_key,
            "content": {"application/json": {"schema": object_schema(body_fields(verb))}},
        },
        "responses": _responses(verb.statuses),
    }
    if verb.description:
        operation["description"] = verb.description
    return operation


def openapi_document() -> dict[str, Any]:
    paths: dict[str, Any] = {f"{API_PREFIX}{name}": {"post": _operation(verb)} for name, verb in VERBS.items()}
    paths[f"{API_PREFIX}health"]["get"] = {
        "operationId": "health_get",
        "summary": VERBS["health"].summary,
        "responses": _responses((429,)),
    }
    paths[f"{API_PREFIX}openapi.json"] = {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "responses": {"200": {"description": "the OpenAPI document", "content": {"application/json": {"schema": {"type": "object"}}}}},
        }
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "tmtool control API",
            "version": __version__,
            "description": (
                "Every verb is `POST /api/v1/<verb>` with a JSON body; every verb but health needs `apikey` in "
                "the body. Replies are `{\"status\": \"success\", \"data\": ...}` or "
                "`{\"status\": \"error\", \"message\": ...}`. Unknown fields are refused."
            ),
        },
        "paths": paths,
        "components": {"schemas": {"Success": _SUCCESS, "Error": _ERROR}},
    }
