"""Every error code is one ``Code`` member, mapped to one HTTP status, documented for clients in
docs/protocol.md and listed in the served OpenAPI document; nothing else is ever answered."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from config.errors import Code, HeraldError
from hub.errors import STATUS_BY_CODE, http_response
from hub.openapi import document

PROTOCOL = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
ROW = re.compile(r"^\| `([a-z_]+)` \| (\d{3})")


def documented() -> dict[str, int]:
    """The rows of docs/protocol.md's "Error codes" table: code → HTTP status."""
    text = PROTOCOL.read_text()
    section = text.split("## Error codes", 1)[1].split("\n## ", 1)[0]
    return {m[1]: int(m[2]) for line in section.splitlines() if (m := ROW.match(line))}


def test_every_code_is_documented_with_its_status_and_nothing_else_is() -> None:
    assert documented() == {code.value: status for code, status in STATUS_BY_CODE.items()}


def test_the_openapi_document_lists_exactly_the_codes() -> None:
    doc = document()
    assert doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"] == sorted(
        code.value for code in Code
    )
    for name, response in doc["components"]["responses"].items():
        status = int(name.removeprefix("Error"))
        codes = response["content"]["application/json"]["schema"]["allOf"][1]["properties"]["error"]["properties"]
        assert codes["code"]["enum"] == sorted(c.value for c, s in STATUS_BY_CODE.items() if s == status)


def test_a_code_that_is_not_a_code_fails_where_it_is_raised() -> None:
    with pytest.raises(ValueError, match="not_a_code"):
        HeraldError("not_a_code", "typo")  # type: ignore[arg-type]


async def test_a_domain_error_reaches_the_client_as_its_code_and_status() -> None:
    async def handler(request: web.Request) -> web.Response:
        return http_response(HeraldError(Code.CONFLICT, "taken", fields={"id": "taken"}))

    app = web.Application()
    app.router.add_get("/", handler)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/")
        assert response.status == 409
        assert await response.json() == {"error": {"code": "conflict", "message": "taken", "fields": {"id": "taken"}}}
