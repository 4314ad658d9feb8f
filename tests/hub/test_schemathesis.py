"""Schemathesis against the app's own OpenAPI document (``/api/v1/openapi.json``).

A real web node runs in this test's loop; the schemathesis CLI (a separate process) generates
requests from the document, valid and invalid, sends them with an admin key, and checks each
answer: never a 5xx, every status, content type and body one the document lists, and no request
that breaks the schema accepted. Path parameters name resources made beforehand (a room, a user,
a device, a segment, a campaign, a notification), so the operations on one reach past ``404``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from tests.support.nodes import Node
from tests.support.rest import Rest

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
    ]
)
RUN_WITHIN = 300.0


async def test_schemathesis_finds_no_server_error_and_no_response_off_the_schema(
    start_node: Node, api_key: Callable[..., Awaitable[str]], tmp_path: Path
) -> None:
    # Generous rate limits: the fuzzer is one client sending as fast as it can.
    url = await start_node(HERALD_ADDRESS_RATE="100000", HERALD_KEY_RATE="100000")
    key = await api_key("admin")
    parameters = await seed(Rest(url, key))
    config = tmp_path / "schemathesis.toml"
    config.write_text("[parameters]\n" + "".join(f'"path.{k}" = {json.dumps(v)}\n' for k, v in parameters.items()))
    proc = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS),
        "--config-file",
        str(config),
        "run",
        f"{url}/api/v1/openapi.json",
        "--header",
        f"Authorization: Bearer {key}",
        "--checks",
        CHECKS,
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        "30",
        "--seed",
        "20261123",
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
    )
    async with asyncio.timeout(RUN_WITHIN):
        output, _ = await proc.communicate()
    text = output.decode(errors="replace")
    print(text)
    assert proc.returncode == 0, text[-20000:]


async def seed(admin: Rest) -> dict[str, str]:
    """One resource of each kind, through the API; their ids become the path parameters."""

    async def made(method: str, path: str, body: object) -> dict[str, str]:
        status, answer = await admin.request(method, path, body)
        assert status in (200, 201, 202), (method, path, status, answer)
        return dict(answer)

    await made("PUT", "/users/alice", {"attributes": {"plan": "pro"}, "tags": ["beta"], "timezone": "Europe/Paris"})
    room = await made("POST", "/rooms", {"kind": "public", "id": "lobby", "name": "Lobby", "owner": "alice"})
    await made("POST", "/rooms/lobby/messages", {"sender_id": "alice", "client_id": "c1", "text": "hello"})
    token = "a1" * 32
    body = {"token": token, "provider": "apns", "platform": "ios", "user_id": "alice", "app_id": "chat.herald.app"}
    await made("POST", "/devices", body)
    segment = await made(
        "POST", "/segments", {"name": "pro", "filter": {"field": "attributes.plan", "op": "eq", "value": "pro"}}
    )
    content = {"default": {"title": "Hello {{first_name|there}}", "body": "News"}}
    campaign = await made("POST", "/campaigns", {"name": "news", "segment_id": segment["id"], "content": content})
    notification = await made(
        "POST", "/notifications", {"to": {"user_ids": ["alice"]}, "notification": {"title": "Hi"}}
    )
    return {
        "user_id": "alice",
        "room_id": room["id"],
        "token": token,
        "segment_id": segment["id"],
        "campaign_id": campaign["id"],
        "notification_id": notification["id"],
    }
