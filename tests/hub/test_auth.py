"""Client JWTs (DESIGN.md, "Identities and credentials"): what a connect is refused with, and auth:refresh.

Algorithms are pinned by configuration, never taken from the token; ``exp`` is required; ``aud``
and ``iss`` are checked when configured.  A refused connect reaches the python-socketio client as
``connect_error`` with ``{"message", "data": {"code", "message"}}``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
import socketio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import RSAAlgorithm

from tests.support.nodes import Node
from tests.support.sockets import ChatClient, connect_refusal
from tests.support.tokens import JWT_SECRET, token_for

Connect = Callable[..., Awaitable[ChatClient]]

# -- helpers ------------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(obj: dict[str, Any]) -> str:
    return _b64url(json.dumps(obj, separators=(",", ":")).encode())


def _claims(user_id: str = "alice", ttl: int = 3600, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": user_id, "iat": now, "exp": now + ttl, **extra}


def _hs256_by_hand(payload: dict[str, Any], secret: bytes) -> str:
    """An HS256 token signed with any bytes as the HMAC secret (PyJWT refuses PEM keys as secrets)."""
    signing_input = f"{_segment({'alg': 'HS256', 'typ': 'JWT'})}.{_segment(payload)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(signature)}"


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _public_pem(private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _write(path: Path, data: bytes | str) -> str:
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return str(path)


async def _refused_code(url: str, token: str | None) -> str:
    return str((await connect_refusal(url, token))["data"]["code"])


async def _accepted(url: str, token: str, user_id: str = "alice") -> None:
    client = ChatClient(url, token)
    try:
        await client.open()
        assert client.events["ready"][0]["user_id"] == user_id
    finally:
        await client.close()


# -- refusals at connect --------------------------------------------------------------------------


async def test_missing_token_is_auth_required(hub_url: str) -> None:
    assert await _refused_code(hub_url, None) == "auth_required"


async def test_expired_token_is_token_expired(hub_url: str) -> None:
    assert await _refused_code(hub_url, token_for("alice", ttl=-60)) == "token_expired"


async def test_tampered_payload_is_token_invalid(hub_url: str) -> None:
    header, _, signature = token_for("alice").split(".")
    forged = f"{header}.{_segment(_claims('mallory'))}.{signature}"
    assert await _refused_code(hub_url, forged) == "token_invalid"


async def test_token_signed_with_another_secret_is_token_invalid(hub_url: str) -> None:
    other = jwt.encode(_claims(), "another-secret-0123456789abcdef-0123", algorithm="HS256")
    assert await _refused_code(hub_url, other) == "token_invalid"


async def test_missing_exp_is_token_invalid(hub_url: str) -> None:
    no_exp = jwt.encode({"sub": "alice", "iat": int(time.time())}, JWT_SECRET, algorithm="HS256")
    assert await _refused_code(hub_url, no_exp) == "token_invalid"


async def test_missing_sub_is_token_invalid(hub_url: str) -> None:
    no_sub = jwt.encode({"exp": int(time.time()) + 600}, JWT_SECRET, algorithm="HS256")
    assert await _refused_code(hub_url, no_sub) == "token_invalid"


async def test_token_may_come_as_an_authorization_header(hub_url: str) -> None:
    client = socketio.AsyncClient(reconnection=False)
    ready: list[Any] = []
    client.on("ready", ready.append)
    headers = {"Authorization": f"Bearer {token_for('alice')}"}
    try:
        await client.connect(hub_url, headers=headers, transports=["websocket"], wait_timeout=5)
        async with asyncio.timeout(5):
            while not ready:
                await asyncio.sleep(0.02)
    finally:
        await client.disconnect()
    assert ready[0]["user_id"] == "alice"


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
@pytest.mark.parametrize("signature", ["", "c2lnbmF0dXJl"])
async def test_unsigned_alg_none_token_is_token_invalid(hub_url: str, alg: str, signature: str) -> None:
    unsigned = f"{_segment({'alg': alg, 'typ': 'JWT'})}.{_segment(_claims())}.{signature}"
    assert await _refused_code(hub_url, unsigned) == "token_invalid"


async def test_audience_is_checked_when_configured(start_node: Node) -> None:
    url = await start_node(HERALD_JWT_AUDIENCE="herald-app")
    assert await _refused_code(url, token_for("alice", aud="other-app")) == "token_invalid"
    assert await _refused_code(url, token_for("alice")) == "token_invalid"  # no aud at all
    await _accepted(url, token_for("alice", aud="herald-app"))


async def test_issuer_is_checked_when_configured(start_node: Node) -> None:
    url = await start_node(HERALD_JWT_ISSUER="https://auth.example.com")
    assert await _refused_code(url, token_for("alice", iss="https://evil.example.com")) == "token_invalid"
    await _accepted(url, token_for("alice", iss="https://auth.example.com"))


# -- asymmetric keys and algorithm confusion ------------------------------------------------------


async def test_rs256_only_node_refuses_hs256_signed_with_the_public_pem(
    start_node: Node, env: dict[str, str], tmp_path: Path
) -> None:
    key = _rsa_key()
    pem = _public_pem(key)
    env.pop("HERALD_JWT_SECRET")  # an RS256-only deployment has no shared secret at all
    url = await start_node(
        HERALD_JWT_ALGORITHMS="RS256", HERALD_JWT_PUBLIC_KEY_FILE=_write(tmp_path / "public.pem", pem)
    )
    confused = _hs256_by_hand(_claims(), pem)
    assert await _refused_code(url, confused) == "token_invalid"
    await _accepted(url, jwt.encode(_claims(), key, algorithm="RS256"))


async def test_hs256_and_rs256_node_refuses_hs256_signed_with_the_public_pem(start_node: Node, tmp_path: Path) -> None:
    key = _rsa_key()
    pem = _public_pem(key)
    url = await start_node(
        HERALD_JWT_ALGORITHMS="HS256,RS256", HERALD_JWT_PUBLIC_KEY_FILE=_write(tmp_path / "public.pem", pem)
    )
    assert await _refused_code(url, _hs256_by_hand(_claims(), pem)) == "token_invalid"
    assert await _refused_code(url, _hs256_by_hand(_claims(), pem.strip())) == "token_invalid"
    await _accepted(url, jwt.encode(_claims(), key, algorithm="RS256"))
    await _accepted(url, token_for("alice"))  # the shared secret still works for HS256


async def test_es256_public_key(start_node: Node, env: dict[str, str], tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    env.pop("HERALD_JWT_SECRET")
    url = await start_node(
        HERALD_JWT_ALGORITHMS="ES256", HERALD_JWT_PUBLIC_KEY_FILE=_write(tmp_path / "ec.pem", _public_pem(key))
    )
    await _accepted(url, jwt.encode(_claims("erin"), key, algorithm="ES256"), "erin")
    other = ec.generate_private_key(ec.SECP256R1())
    assert await _refused_code(url, jwt.encode(_claims(), other, algorithm="ES256")) == "token_invalid"
    assert await _refused_code(url, token_for("alice")) == "token_invalid"  # HS256 is not configured


async def test_jwks_file_selects_the_key_by_kid(start_node: Node, env: dict[str, str], tmp_path: Path) -> None:
    keys = {"k1": _rsa_key(), "k2": _rsa_key()}
    jwks = {
        "keys": [
            {**RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "use": "sig", "alg": "RS256"}
            for kid, key in keys.items()
        ]
    }
    env.pop("HERALD_JWT_SECRET")
    url = await start_node(
        HERALD_JWT_ALGORITHMS="RS256", HERALD_JWT_JWKS_FILE=_write(tmp_path / "jwks.json", json.dumps(jwks))
    )
    for kid in ("k1", "k2"):
        token = jwt.encode(_claims(f"user-{kid}"), keys[kid], algorithm="RS256", headers={"kid": kid})
        await _accepted(url, token, f"user-{kid}")
    wrong_key = jwt.encode(_claims(), keys["k1"], algorithm="RS256", headers={"kid": "k2"})
    assert await _refused_code(url, wrong_key) == "token_invalid"
    unknown = jwt.encode(_claims(), _rsa_key(), algorithm="RS256", headers={"kid": "k9"})
    assert await _refused_code(url, unknown) == "token_invalid"


# -- REST ----------------------------------------------------------------------------------------


async def test_rest_expired_bearer_is_401_token_expired(hub_url: str) -> None:
    headers = {"Authorization": f"Bearer {token_for('alice', ttl=-60)}"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{hub_url}/api/v1/users/alice/rooms", headers=headers) as resp,
    ):
        assert resp.status == 401
        body = await resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == "token_expired"


# -- auth:refresh --------------------------------------------------------------------------------

SHORT_TTL = 2  # seconds; exp is a whole second, so the token expires 1 to 2 s after minting


async def test_refreshed_connection_outlives_the_first_token(connect: Connect) -> None:
    first_exp = int(time.time()) + SHORT_TTL
    alice = await connect("alice", token=token_for("alice", ttl=SHORT_TTL))
    ack = await alice.call_ok("auth:refresh", {"token": token_for("alice", ttl=600)})
    assert isinstance(ack["expires_at"], str) and ack["expires_at"]
    await asyncio.sleep(max(0.0, first_exp - time.time()) + 1.5)
    assert alice.sio.connected
    assert not alice.disconnected.is_set()
    assert "closing" not in alice.events
    assert (await alice.call_ok("sync", {"rooms": {}}))["rooms"] == {}


async def test_unrefreshed_connection_is_closed_with_token_expired(connect: Connect) -> None:
    alice = await connect("alice", token=token_for("alice", ttl=SHORT_TTL))
    [closing] = await alice.wait_for("closing", timeout=SHORT_TTL + 3)
    assert closing["code"] == "token_expired"
    assert isinstance(closing["message"], str) and closing["message"]
    async with asyncio.timeout(3):
        await alice.disconnected.wait()
    assert not alice.sio.connected


async def test_refresh_with_another_users_token_is_forbidden(connect: Connect) -> None:
    alice = await connect("alice", token=token_for("alice", ttl=SHORT_TTL))
    ack = await alice.call("auth:refresh", {"token": token_for("bob", ttl=600)})
    assert ack["ok"] is False
    assert set(ack["error"]) == {"code", "message"}
    assert ack["error"]["code"] == "forbidden"
    # The refusal did not extend the connection: it still closes at the first token's exp.
    [closing] = await alice.wait_for("closing", timeout=SHORT_TTL + 3)
    assert closing["code"] == "token_expired"


async def test_refresh_with_an_expired_token_is_refused(connect: Connect) -> None:
    alice = await connect("alice")
    ack = await alice.call("auth:refresh", {"token": token_for("alice", ttl=-60)})
    assert ack["ok"] is False
    assert ack["error"]["code"] == "token_expired"
    assert alice.sio.connected
