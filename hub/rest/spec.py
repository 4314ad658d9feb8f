"""Building blocks for the OpenAPI 3.1 document of /api/v1 (assembled by :mod:`hub.openapi`).

Each REST module ends with two plain dicts built from these helpers:

- ``SCHEMAS``: component schemas by name (referenced with :func:`ref`);
- ``PATHS``: OpenAPI path items by canonical aiohttp path (``/api/v1/rooms/{room_id}``).

Schemas are strict: fixed shapes say ``additionalProperties: false`` (see :func:`strict_object`);
only free-form user data (room metadata, message meta) is an open object.  Request bodies are
:class:`config.bodies.Body` declarations: their component is ``BODY.schema()``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from config.bodies import ID, OPEN_OBJECT, TIMESTAMP, Schema, nullable, ref, strict_object
from hub.errors import STATUS_BY_CODE

__all__ = ["ID", "OPEN_OBJECT", "TIMESTAMP", "Schema", "nullable", "ref", "strict_object"]

JSON = "application/json"

#: A user id as it appears in responses: a client JWT's ``sub`` is any 1 to 128 characters.
USER_ID: Schema = {"type": "string", "minLength": 1, "maxLength": 128}
COUNT: Schema = {"type": "integer", "minimum": 0}

#: Statuses every authenticated operation may answer besides its own (internal error, dependency down).
ALWAYS = (500, 503)


def json_body(schema: Schema, description: str = "", *, required: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {"required": required, "content": {JSON: {"schema": schema}}}
    if description:
        body["description"] = description
    return body


def json_response(description: str, schema: Schema) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def no_content(description: str) -> dict[str, Any]:
    return {"description": description}


def error_codes(status: int) -> list[str]:
    return sorted(code for code, mapped in STATUS_BY_CODE.items() if mapped == status)


def errors(*statuses: int) -> dict[str, Any]:
    """Error responses for these statuses (plus 500 and 503), as references to the shared ones."""
    wanted = sorted({*statuses, *ALWAYS})
    for status in wanted:
        if not error_codes(status):
            raise ValueError(f"no error code maps to HTTP {status}")
    return {str(status): {"$ref": f"#/components/responses/Error{status}"} for status in wanted}


def path_param(name: str, schema: Schema, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


def query_param(name: str, schema: Schema, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def operation(
    operation_id: str,
    summary: str,
    tag: str,
    responses: dict[str, Any],
    *,
    body: dict[str, Any] | None = None,
    parameters: Iterable[dict[str, Any]] = (),
    description: str = "",
    public: bool = False,
) -> dict[str, Any]:
    """One operation; ``public`` ones need no credential (the document's default is the bearer scheme)."""
    op: dict[str, Any] = {"operationId": operation_id, "summary": summary, "tags": [tag], "responses": responses}
    if description:
        op["description"] = description
    params = list(parameters)
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = body
    if public:
        op["security"] = []
    return op
