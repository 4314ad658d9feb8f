"""A fake APNs provider API: HTTP/2 over TLS, token (JWT) auth, scripted answers per device token.

Run it as a process for benchmarks (prints the bound port on stdout, then serves until SIGTERM):

    python -m tests.fakes.apns --port 0 --latency 0.02 --team-id TEAM123456 --key-id KEY1234567 \
        --public-key key.pub.pem --tls-dir /tmp/tls
"""

from __future__ import annotations

import argparse
import re
import ssl
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .core import FakeProvider, LogEntry, Reply, Request, Response, parse_json, serve_forever
from .tls import TestTLS, make_tls

if TYPE_CHECKING:
    from aioapns import APNs

#: Every APNs error reason with its HTTP status (PROTOCOLS.md and Apple's table).
REASONS: dict[str, int] = {
    "BadCollapseId": 400,
    "BadDeviceToken": 400,
    "BadExpirationDate": 400,
    "BadMessageId": 400,
    "BadPriority": 400,
    "BadTopic": 400,
    "DeviceTokenNotForTopic": 400,
    "DuplicateHeaders": 400,
    "IdleTimeout": 400,
    "InvalidPushType": 400,
    "MissingDeviceToken": 400,
    "MissingTopic": 400,
    "PayloadEmpty": 400,
    "TopicDisallowed": 400,
    "BadCertificate": 403,
    "BadCertificateEnvironment": 403,
    "ExpiredProviderToken": 403,
    "Forbidden": 403,
    "InvalidProviderToken": 403,
    "MissingProviderToken": 403,
    "BadPath": 404,
    "MethodNotAllowed": 405,
    "ExpiredToken": 410,
    "Unregistered": 410,
    "PayloadTooLarge": 413,
    "TooManyProviderTokenUpdates": 429,
    "TooManyRequests": 429,
    "InternalServerError": 500,
    "ServiceUnavailable": 503,
    "Shutdown": 503,
}

PUSH_TYPES = frozenset(
    [
        "alert",
        "background",
        "voip",
        "complication",
        "fileprovider",
        "mdm",
        "liveactivity",
        "location",
        "pushtotalk",
        "widgets",
        "controls",
    ]
)
_HEX = re.compile(r"[0-9a-fA-F]+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def apns_error(reason: str, *, timestamp_ms: int | None = None, retry_after: int | None = None) -> Reply:
    """Reply.error with the real status of `reason` (see REASONS)."""
    return Reply.error(REASONS[reason], reason, timestamp_ms=timestamp_ms, retry_after=retry_after)


@dataclass(frozen=True)
class AuthKey:
    """A provider signing key: `p8` is what Apple hands out (PKCS#8 PEM), `public_pem` its public half."""

    p8: str
    public_pem: str

    @classmethod
    def generate(cls) -> AuthKey:
        key = ec.generate_private_key(ec.SECP256R1())
        p8 = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        return cls(p8.decode(), pub.decode())


class FakeAPNs(FakeProvider):
    """POST /3/device/<hex token>; see the module doc and tests/test_fakes.py for use."""

    def __init__(
        self,
        team_id: str,
        key_id: str,
        public_key_pem: str | bytes,
        *,
        max_streams: int = 1000,
        latency: float = 0.0,
        tls: TestTLS | None = None,
        require_push_type: bool = True,
        token_max_age: float = 3600.0,
    ) -> None:
        super().__init__(max_streams=max_streams, latency=latency, tls=tls)
        self.team_id = team_id
        self.key_id = key_id
        pem = public_key_pem.encode() if isinstance(public_key_pem, str) else public_key_pem
        self._public_key = serialization.load_pem_public_key(pem)
        self.require_push_type = require_push_type
        self.token_max_age = token_max_age
        #: Distinct valid provider JWTs seen, in order (to check that clients do not churn tokens).
        self.provider_tokens: list[str] = []
        self._iat_by_jwt: dict[str, int] = {}

    async def handle(self, request: Request) -> Response:
        prefix, _, token = request.path.partition("/3/device/")
        apns_id = request.header("apns-id") or str(uuid.uuid4())
        entry = LogEntry(token, request.header_dict(), parse_json(request.body), apns_id=apns_id, http2=request.http2)
        self.log(entry)
        reason = self._check(request, prefix, token)
        if reason is not None:
            reply: Reply = apns_error(reason)
            await self.pace(None)
        else:
            reply = self.next_reply(token)
            await self.pace(reply)
        if not _UUID.fullmatch(apns_id):
            apns_id = entry.apns_id = str(uuid.uuid4())
        entry.status, entry.reason = reply.status, reply.reason
        return self._response(reply, apns_id)

    def _check(self, request: Request, prefix: str, token: str) -> str | None:
        """The reason the request is refused before the script is consulted, or None."""
        if request.method != "POST":
            return "MethodNotAllowed"
        if prefix or not request.path.startswith("/3/device/"):
            return "BadPath"
        if not token:
            return "MissingDeviceToken"
        names = [name for name, _ in request.headers]
        if len(names) != len(set(names)):
            return "DuplicateHeaders"
        if (auth := self._check_auth(request.header("authorization"))) is not None:
            return auth
        if not request.header("apns-topic"):
            return "MissingTopic"
        push_type = request.header("apns-push-type")
        if (push_type is None and self.require_push_type) or (push_type and push_type not in PUSH_TYPES):
            return "InvalidPushType"
        if request.header("apns-priority") not in (None, "10", "5", "1"):
            return "BadPriority"
        if not re.fullmatch(r"\d+", request.header("apns-expiration") or "0"):
            return "BadExpirationDate"
        if len((request.header("apns-collapse-id") or "").encode()) > 64:
            return "BadCollapseId"
        if (apns_id := request.header("apns-id")) is not None and not _UUID.fullmatch(apns_id):
            return "BadMessageId"
        if not request.body:
            return "PayloadEmpty"
        if len(request.body) > (5120 if push_type == "voip" else 4096):
            return "PayloadTooLarge"
        if not _HEX.fullmatch(token) or len(token) % 2:
            return "BadDeviceToken"
        return None

    def _check_auth(self, header: str | None) -> str | None:
        if not header:
            return "MissingProviderToken"
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return "InvalidProviderToken"
        iat = self._iat_by_jwt.get(token)
        if iat is None:
            try:
                if jwt.get_unverified_header(token).get("kid") != self.key_id:
                    return "InvalidProviderToken"
                claims: dict[str, Any] = jwt.decode(
                    token,
                    cast(ec.EllipticCurvePublicKey, self._public_key),
                    algorithms=["ES256"],
                    options={"require": ["iss", "iat"], "verify_exp": False},
                    leeway=60,
                )
            except jwt.PyJWTError:
                return "InvalidProviderToken"
            if claims["iss"] != self.team_id:
                return "InvalidProviderToken"
            iat = self._iat_by_jwt[token] = int(claims["iat"])
            self.provider_tokens.append(token)
        if time.time() - iat > self.token_max_age:
            return "ExpiredProviderToken"
        return None

    @staticmethod
    def _response(reply: Reply, apns_id: str) -> Response:
        headers = [("apns-id", apns_id)]
        if reply.retry_after is not None:
            headers.append(("retry-after", str(reply.retry_after)))
        if reply.status == 200:
            return Response(200, headers)
        body: dict[str, Any] = {"reason": reply.reason or ""}
        if reply.timestamp_ms is not None:
            body["timestamp"] = reply.timestamp_ms
        elif reply.reason == "Unregistered":
            body["timestamp"] = int(time.time() * 1000)
        return Response.json(reply.status, body, headers)


def apns_client(
    fake: FakeAPNs,
    *,
    key: str,
    topic: str,
    use_sandbox: bool = False,
    max_connections: int = 10,
    ssl_context: ssl.SSLContext | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    team_id: str | None = None,
    key_id: str | None = None,
    **kwargs: Any,
) -> APNs:
    """An `aioapns.APNs` talking to `fake` (call it inside the running loop).

    aioapns has no host/port option: its pool connects to ``pool.protocol_class.APNS_SERVER`` and
    ``.APNS_PORT`` (also used for SNI, certificate check and the ``host`` header), so the seam is a
    subclass of the chosen (sandbox or production) protocol class with those two attributes set.
    """
    from aioapns import APNs

    client = APNs(
        key=key,
        key_id=key_id or fake.key_id,
        team_id=team_id or fake.team_id,
        topic=topic,
        use_sandbox=use_sandbox,
        max_connections=max_connections,
        ssl_context=ssl_context or fake.tls.client_context(),
        **kwargs,
    )
    base = client.pool.protocol_class
    attrs = {"APNS_SERVER": host, "APNS_PORT": port or fake.port}
    client.pool.protocol_class = type(f"Local{base.__name__}", (base,), attrs)
    return client


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.apns", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument("--max-streams", type=int, default=1000)
    parser.add_argument("--team-id", required=True)
    parser.add_argument("--key-id", required=True)
    parser.add_argument("--public-key", required=True, help="PEM file of the provider key's public half")
    parser.add_argument("--tls-dir", required=True, help="directory of ca.pem/server.pem/server.key (made if absent)")
    args = parser.parse_args(argv)
    with open(args.public_key, "rb") as f:
        public_pem = f.read()
    fake = FakeAPNs(
        args.team_id,
        args.key_id,
        public_pem,
        max_streams=args.max_streams,
        latency=args.latency,
        tls=make_tls(args.tls_dir),
    )

    def announce(port: int) -> None:
        print(port, flush=True)

    serve_forever(fake, args.host, args.port, announce)


if __name__ == "__main__":
    main()
