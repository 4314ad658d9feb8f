"""A fake FCM HTTP v1 API and its OAuth2 token endpoint, on one TLS port.

The port speaks HTTP/2 (ALPN ``h2`` or prior knowledge) and HTTP/1.1 (ALPN ``http/1.1`` or none):
httpx reaches ``messages:send`` over HTTP/2, while google-auth's synchronous `requests` reaches
``POST /token`` over HTTP/1.1. Run it as a process for benchmarks (prints the port, writes a
matching service-account file):

    python -m tests.fakes.fcm --port 0 --latency 0.02 --project herald-test \
        --tls-dir /tmp/tls --service-account /tmp/sa.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import secrets
import time
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .core import FakeProvider, LogEntry, Reply, Request, Response, parse_json, serve_forever
from .tls import TestTLS, make_tls

if TYPE_CHECKING:
    import firebase_admin

FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"

#: FcmError codes: (HTTP status, google.rpc status, message), as FCM answers them.
FCM_ERRORS: dict[str, tuple[int, str, str]] = {
    "UNREGISTERED": (404, "NOT_FOUND", "Requested entity was not found."),
    "INVALID_ARGUMENT": (400, "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token"),
    "SENDER_ID_MISMATCH": (403, "PERMISSION_DENIED", "SenderId mismatch"),
    "THIRD_PARTY_AUTH_ERROR": (401, "UNAUTHENTICATED", "Auth error from APNS or Web Push Service"),
    "QUOTA_EXCEEDED": (429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Send requests'"),
    "INTERNAL": (500, "INTERNAL", "Internal error encountered."),
    "UNAVAILABLE": (503, "UNAVAILABLE", "The service is currently unavailable."),
}
#: Reply reasons beyond FCM_ERRORS: a google.rpc.BadRequest (payload) error, a bare HTML 404.
BAD_REQUEST = "BAD_REQUEST"
HTML_404 = "HTML_404"

MESSAGE_FIELDS = frozenset(
    ["name", "data", "notification", "android", "webpush", "apns", "fcm_options", "token", "fid", "topic", "condition"]
)
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
TARGETS = ("token", "fid", "topic", "condition")  # exactly one (fid: firebase-admin >= 7.7)
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
#: Any of these lets an access token send (firebase-admin asks for cloud-platform and firebase).
SEND_SCOPES = frozenset(
    [SCOPE, "https://www.googleapis.com/auth/cloud-platform", "https://www.googleapis.com/auth/firebase"]
)
_SEND_PATH = re.compile(r"/v1/projects/([^/]+)/messages:send")
_HTML_404 = b"<!DOCTYPE html>\n<html lang=en><title>Error 404 (Not Found)!!1</title><p>Not Found</p></html>"
_UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
    "other valid authentication credential."
)


def fcm_error(code: str, *, retry_after: int | None = None) -> Reply:
    """Reply.error with the real HTTP status of an FCM error code (or BAD_REQUEST / HTML_404)."""
    status = 400 if code == BAD_REQUEST else 404 if code == HTML_404 else FCM_ERRORS[code][0]
    return Reply.error(status, code, retry_after=retry_after)


def rpc_error(status: int, rpc_status: str, message: str, details: list[dict[str, Any]] | None = None) -> Any:
    error: dict[str, Any] = {"code": status, "message": message, "status": rpc_status}
    if details:
        error["details"] = details
    return {"error": error}


def bad_request(description: str, field: str | None = None) -> Response:
    violation = {"field": field, "description": description} if field else {"description": description}
    details = [{"@type": BAD_REQUEST_TYPE, "fieldViolations": [violation]}]
    return Response.json(400, rpc_error(400, "INVALID_ARGUMENT", description, details))


class FakeFCM(FakeProvider):
    """POST /token (OAuth2 JWT bearer) and POST /v1/projects/{project}/messages:send."""

    http1 = True
    alpn = ("h2", "http/1.1")

    def __init__(
        self,
        project_id: str = "herald-test",
        *,
        max_streams: int = 1000,
        latency: float = 0.0,
        tls: TestTLS | None = None,
        token_ttl: int = 3600,
    ) -> None:
        super().__init__(max_streams=max_streams, latency=latency, tls=tls)
        self.project_id = project_id
        self.client_email = f"herald-push@{project_id}.iam.gserviceaccount.com"
        self.token_ttl = token_ttl
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._key_id = secrets.token_hex(20)
        self._access_tokens: dict[str, tuple[float, frozenset[str]]] = {}  # token -> (expiry, scopes)
        self._ids = itertools.count(1)
        #: Claims of every accepted token-endpoint assertion.
        self.token_requests: list[dict[str, Any]] = []

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    @property
    def send_url(self) -> str:
        return f"{self.base_url}/v1/projects/{self.project_id}/messages:send"

    def service_account_info(self) -> dict[str, str]:
        """A service-account JSON (as a dict) whose token_uri is this fake; call after start()."""
        assert self.port, "start the fake first: token_uri needs its port"
        pem = self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": self._key_id,
            "private_key": pem.decode(),
            "client_email": self.client_email,
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri,
            "universe_domain": "googleapis.com",
        }

    def write_service_account(self, path: Path | str) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.service_account_info(), indent=2))
        return path

    def issue_access_token(self, scopes: frozenset[str] = frozenset([SCOPE])) -> str:
        """An access token the send endpoint accepts (for clients that skip the token endpoint)."""
        token = "ya29.fake-" + secrets.token_urlsafe(24)
        self._access_tokens[token] = (time.time() + self.token_ttl, scopes)
        return token

    def revoke_access_tokens(self) -> None:
        self._access_tokens.clear()

    async def handle(self, request: Request) -> Response:
        path = request.path.split("?", 1)[0]
        if path == "/token" and request.method == "POST":
            await self.pace(None)
            return self._token(request)
        match = _SEND_PATH.fullmatch(path)
        if match is None or request.method != "POST":
            await self.pace(None)
            return Response(404, [("content-type", "text/html; charset=UTF-8")], _HTML_404)
        payload = parse_json(request.body)
        message = payload.get("message") if isinstance(payload, dict) else None
        target = ""
        if isinstance(message, dict):
            target = str(next((message[k] for k in TARGETS if message.get(k)), ""))
        entry = LogEntry(target, request.header_dict(), payload, http2=request.http2)
        self.log(entry)
        refused = self._check(request, match.group(1), payload)
        if refused is not None:
            await self.pace(None)
            entry.status, entry.reason = refused.status, parse_json(refused.body)["error"]["status"]
            return refused
        reply = self.next_reply(target)
        await self.pace(reply)
        entry.status, entry.reason = reply.status, reply.reason
        if reply.status != 200:
            return self._error(reply)
        entry.message_id = f"projects/{self.project_id}/messages/0:{int(time.time() * 1e6)}%{next(self._ids):08x}"
        return Response.json(200, {"name": entry.message_id})

    def _token(self, request: Request) -> Response:
        form = dict(urllib.parse.parse_qsl(request.body.decode("utf-8", "replace")))
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return Response.json(400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type"})
        try:
            if jwt.get_unverified_header(form.get("assertion", "")).get("kid") not in (None, self._key_id):
                raise jwt.InvalidTokenError("kid")
            claims: dict[str, Any] = jwt.decode(
                form.get("assertion", ""),
                self._key.public_key(),
                algorithms=["RS256"],
                audience=[self.token_uri, GOOGLE_TOKEN_URI],  # google-auth always uses the latter
                issuer=self.client_email,
                options={"require": ["iss", "aud", "iat", "exp"]},
                leeway=60,
            )
        except jwt.PyJWTError:
            return Response.json(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
        scopes = frozenset(str(claims.get("scope", "")).split())
        if not scopes:
            return Response.json(
                400, {"error": "invalid_scope", "error_description": "Empty or missing scope not allowed."}
            )
        self.token_requests.append(claims)
        body = {"access_token": self.issue_access_token(scopes), "expires_in": self.token_ttl, "token_type": "Bearer"}
        return Response.json(200, body, [("cache-control", "no-store")])

    def _check(self, request: Request, project: str, payload: Any) -> Response | None:
        """The refusal of a request before the script is consulted, or None."""
        scheme, _, token = (request.header("authorization") or "").partition(" ")
        expiry, scopes = self._access_tokens.get(token, (0.0, frozenset[str]()))
        if scheme.lower() != "bearer" or expiry < time.time():
            return Response.json(
                401,
                rpc_error(401, "UNAUTHENTICATED", _UNAUTHENTICATED),
                [("www-authenticate", 'Bearer realm="https://accounts.google.com/"')],
            )
        if not scopes & SEND_SCOPES:
            return Response.json(
                403, rpc_error(403, "PERMISSION_DENIED", "Request had insufficient authentication scopes.")
            )
        if project != self.project_id:
            denied = f"Permission 'cloudmessaging.messages.create' denied on resource 'projects/{project}'"
            return Response.json(403, rpc_error(403, "PERMISSION_DENIED", denied))
        if not isinstance(payload, dict) or not isinstance(payload.get("message"), dict):
            return bad_request("Invalid JSON payload received. 'message' must be an object.", "message")
        if unknown := set(payload) - {"message", "validate_only"}:
            return bad_request(f'Invalid JSON payload received. Unknown name "{min(unknown)}": Cannot find field.')
        msg: dict[str, Any] = payload["message"]
        if unknown := set(msg) - MESSAGE_FIELDS:
            name = min(unknown)
            return bad_request(
                f"Invalid JSON payload received. Unknown name \"{name}\" at 'message': Cannot find field."
            )
        if [bool(msg.get(k)) for k in TARGETS].count(True) != 1:
            return bad_request("Exactly one of token, fid, topic or condition must be set.", "message")
        data = msg.get("data", {})
        if not isinstance(data, dict):
            return bad_request("Invalid value at 'message.data' (map<string, string>)", "message.data")
        for i, value in enumerate(data.values()):
            if not isinstance(value, str):
                description = f"Invalid value at 'message.data[{i}].value' (TYPE_STRING), {json.dumps(value)}"
                return bad_request(description, f"message.data[{i}].value")
        return None

    @staticmethod
    def _error(reply: Reply) -> Response:
        headers = [] if reply.retry_after is None else [("retry-after", str(reply.retry_after))]
        code = reply.reason or "INTERNAL"
        if code == HTML_404:
            return Response(reply.status, [("content-type", "text/html; charset=UTF-8"), *headers], _HTML_404)
        if code == BAD_REQUEST:
            response = bad_request("Invalid value at 'message.data[0].value' (TYPE_STRING), 1", "message.data[0].value")
            response.status = reply.status
            response.headers += headers
            return response
        _, rpc_status, message = FCM_ERRORS.get(code, (reply.status, "UNKNOWN", code))
        body = rpc_error(reply.status, rpc_status, message, [{"@type": FCM_ERROR_TYPE, "errorCode": code}])
        return Response.json(reply.status, body, headers)


# -- firebase-admin seam


def point_messaging_at(fake: FakeFCM, app: firebase_admin.App) -> None:
    """Send `app`'s messages to `fake`: the only override is the private ``_fcm_url`` of the app's
    messaging service (an instance attribute, so other apps are unaffected).

    TLS trust comes from the environment: httpx reads ``SSL_CERT_FILE`` when the service is first
    created (here), `requests` reads ``REQUESTS_CA_BUNDLE`` at each token refresh; see `ca_env`.
    """
    from firebase_admin import messaging

    service = messaging._get_messaging_service(app)
    service._fcm_url = f"{fake.base_url}/v1/projects/{app.project_id}/messages:send"


def ca_env(fake: FakeProvider) -> dict[str, str]:
    """Environment variables that make httpx and requests trust the fake's test CA."""
    ca = str(fake.tls.ca_path)
    return {"SSL_CERT_FILE": ca, "REQUESTS_CA_BUNDLE": ca}


def firebase_app(fake: FakeFCM, name: str | None = None) -> firebase_admin.App:
    """A firebase-admin App with the fake's service account, its messaging pointed at the fake.
    Set `ca_env(fake)` in the environment first."""
    import firebase_admin
    from firebase_admin import credentials

    cred = credentials.Certificate(fake.service_account_info())
    app = firebase_admin.initialize_app(cred, name=name or f"fake-fcm-{secrets.token_hex(4)}")
    point_messaging_at(fake, app)
    return app


async def close_firebase_app(app: firebase_admin.App) -> None:
    """Delete `app` from inside a running loop (firebase_admin.delete_app alone raises there)."""
    import firebase_admin

    service = (app._services or {}).pop("_messaging", None)
    if service is not None:
        await service._async_client.aclose()
    firebase_admin.delete_app(app)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.fcm", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument("--max-streams", type=int, default=1000)
    parser.add_argument("--project", default="herald-test")
    parser.add_argument("--tls-dir", required=True, help="directory of ca.pem/server.pem/server.key (made if absent)")
    parser.add_argument("--service-account", required=True, help="where to write the matching service-account JSON")
    args = parser.parse_args(argv)
    fake = FakeFCM(args.project, max_streams=args.max_streams, latency=args.latency, tls=make_tls(args.tls_dir))

    def announce(port: int) -> None:
        fake.write_service_account(args.service_account)
        print(port, flush=True)

    serve_forever(fake, args.host, args.port, announce)


if __name__ == "__main__":
    main()
