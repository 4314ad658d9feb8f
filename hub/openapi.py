"""The one OpenAPI 3.1 document of /api/v1, built once and served at /api/v1/openapi.json.

Every REST module declares its own part at its end, with the helpers of :mod:`hub.rest.spec`:
``PATHS`` (path items by canonical path) and ``SCHEMAS`` (component schemas by name).  To add a
module's routes, give it ``PATHS`` and ``SCHEMAS`` and list them in :data:`SOURCES`.  The shared
parts live here: the ``Error`` schema, one ``ErrorNNN`` response per status of
:data:`hub.errors.STATUS_BY_CODE` (its code restricted to the codes of that status), and the bearer
security scheme.  ``tests/hub/test_openapi.py`` checks the app's routes and the document's paths
are the same set and validates real responses against it.
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

from aiohttp import web

from hub.errors import STATUS_BY_CODE
from hub.rest import (
    campaigns,
    dev,
    devices,
    messages,
    moderation,
    notifications,
    privacy,
    rooms,
    segments,
    spec,
    users,
)

routes = web.RouteTableDef()

OPENAPI_PATH = "/api/v1/openapi.json"

SCHEMAS: dict[str, spec.Schema] = {
    "Error": spec.strict_object(
        {
            "error": spec.strict_object(
                {
                    "code": {"enum": sorted(STATUS_BY_CODE)},
                    "message": {"type": "string"},
                    "fields": {
                        "type": "object",
                        "additionalProperties": {"type": "string"},
                        "description": "what is wrong with each named field",
                    },
                },
                ["code", "message"],
            )
        },
        ["error"],
    ),
}

PATHS: dict[str, dict[str, Any]] = {
    OPENAPI_PATH: {
        "get": spec.operation(
            "openapi",
            "This document",
            "meta",
            {
                "200": spec.json_response(
                    "the OpenAPI 3.1 document",
                    {
                        "type": "object",
                        "required": ["openapi", "info", "paths"],
                        "properties": {"openapi": {"const": "3.1.0"}},
                    },
                )
            },
            public=True,
        ),
    },
}

#: (PATHS, SCHEMAS) of every module with routes under /api/v1.
SOURCES: tuple[tuple[dict[str, dict[str, Any]], dict[str, spec.Schema]], ...] = (
    (PATHS, SCHEMAS),
    (rooms.PATHS, rooms.SCHEMAS),
    (messages.PATHS, messages.SCHEMAS),
    (moderation.PATHS, moderation.SCHEMAS),
    (users.PATHS, users.SCHEMAS),
    (devices.PATHS, devices.SCHEMAS),
    (notifications.PATHS, notifications.SCHEMAS),
    (dev.PATHS, dev.SCHEMAS),
    (privacy.PATHS, privacy.SCHEMAS),
    (segments.PATHS, segments.SCHEMAS),
    (campaigns.PATHS, campaigns.SCHEMAS),
)

_REASONS = {
    400: "the request breaks the schema (fields names the culprits when it can)",
    401: "no credential, or a bad or expired one",
    403: "the credential may not do this",
    404: "no such thing",
    409: "conflict with the current state",
    413: "too large",
    422: "well formed, but the hub cannot act on it",
    429: "too many requests; retry after Retry-After seconds",
    500: "internal error",
    503: "a dependency is down; try again shortly",
}


def _error_response(status: int) -> dict[str, Any]:
    codes = spec.error_codes(status)
    schema = {
        "allOf": [
            spec.ref("Error"),
            {"properties": {"error": {"properties": {"code": {"enum": codes}}}}},
        ]
    }
    response = spec.json_response(_REASONS.get(status, f"one of {', '.join(codes)}"), schema)
    if status == 429:
        response["headers"] = {
            "Retry-After": {"description": "seconds to wait", "schema": {"type": "integer", "minimum": 1}}
        }
    return response


def build(sources: tuple[tuple[dict[str, dict[str, Any]], dict[str, spec.Schema]], ...] = SOURCES) -> dict[str, Any]:
    """Merge the modules' parts into one document; a path, method or schema declared twice is an error."""
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, spec.Schema] = {}
    for module_paths, module_schemas in sources:
        for name, schema in module_schemas.items():
            if name in schemas:
                raise ValueError(f"schema {name} is declared twice")
            schemas[name] = copy.deepcopy(schema)
        for path, item in module_paths.items():
            merged = paths.setdefault(path, {})
            for key, value in item.items():
                if key in merged:
                    raise ValueError(f"{key} {path} is declared twice")
                merged[key] = copy.deepcopy(value)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Herald hub",
            "version": "1",
            "description": "Realtime chat and push hub. Errors are {error: {code, message, fields?}}.",
        },
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "tags": [
            {"name": "rooms", "description": "rooms, members and messages"},
            {"name": "users", "description": "a user's rooms and sessions"},
            {"name": "meta", "description": "this document"},
        ],
        "security": [{"bearer": []}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Authorization: Bearer <client JWT> for a user, or <API key hk_...> for a service",
                }
            },
            "schemas": dict(sorted(schemas.items())),
            "responses": {f"Error{status}": _error_response(status) for status in sorted(set(STATUS_BY_CODE.values()))},
        },
    }


@functools.cache
def _document_bytes() -> bytes:
    return json.dumps(build(), separators=(",", ":")).encode()


def document() -> dict[str, Any]:
    """The document (a fresh copy; the served bytes are built once)."""
    loaded: dict[str, Any] = json.loads(_document_bytes())
    return loaded


@routes.get(OPENAPI_PATH)
async def openapi_handler(request: web.Request) -> web.Response:
    return web.Response(body=_document_bytes(), content_type="application/json")
