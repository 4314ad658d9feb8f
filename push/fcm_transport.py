"""How FCM requests travel: `H2Transport` (default) or `HttpxTransport`.

Both POST a ready-made JSON body with a bearer token to a path of one origin and return the
status, the ``retry-after`` header and the body. `H2Transport` (push/h2client.py) is the lean
path over TLS: about 4x less CPU per request than httpx's HTTP/2 against the fake FCM
(docs/push.md). `HttpxTransport` serves ``http://`` endpoints (an emulator or a plain proxy) and
is kept for comparison in bench/push_clients.py.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

from push.h2client import H2Pool
from push.tls import client_context

CONTENT_TYPE = b"application/json; charset=UTF-8"
MAX_CONNECTIONS = 4  # of up to STREAMS_PER_CONNECTION streams each: room for MAX_IN_FLIGHT (1000)
STREAMS_PER_CONNECTION = 250


@dataclass(frozen=True, slots=True)
class FcmAnswer:
    status: int
    retry_after: str | None
    body: bytes


class FcmTransport(Protocol):
    async def post(self, path: str, token: str, body: bytes) -> FcmAnswer: ...

    async def close(self) -> None: ...


class H2Transport:
    def __init__(self, endpoint: str, *, ca_file: Path | None = None, max_connections: int = MAX_CONNECTIONS) -> None:
        url = urllib.parse.urlsplit(endpoint)
        if url.scheme != "https" or not url.hostname:
            raise ValueError(f"{endpoint} is not an https:// origin")
        self.pool = H2Pool(
            url.hostname,
            url.port or 443,
            ssl_context=client_context(ca_file),
            max_connections=max_connections,
            streams_per_connection=STREAMS_PER_CONNECTION,
        )
        self.prefix = url.path.rstrip("/")  # an endpoint may carry a path (a proxy's)

    async def post(self, path: str, token: str, body: bytes) -> FcmAnswer:
        headers = [
            (b"authorization", b"Bearer " + token.encode()),
            (b"content-type", CONTENT_TYPE),
            (b"content-length", str(len(body)).encode()),
        ]
        response = await self.pool.request(b"POST", (self.prefix + path).encode(), headers, body)
        retry_after = response.headers.get(b"retry-after")
        return FcmAnswer(response.status, retry_after.decode("latin-1") if retry_after else None, response.body)

    async def close(self) -> None:
        await self.pool.close()


class HttpxTransport:
    def __init__(self, endpoint: str, *, ca_file: Path | None = None, timeout: float = 10.0) -> None:
        verify = client_context(ca_file) if ca_file is not None else True
        self.client = httpx.AsyncClient(base_url=endpoint.rstrip("/"), http2=True, verify=verify, timeout=timeout)

    async def post(self, path: str, token: str, body: bytes) -> FcmAnswer:
        headers = {"authorization": f"Bearer {token}", "content-type": CONTENT_TYPE.decode()}
        response = await self.client.post(path, content=body, headers=headers)
        return FcmAnswer(response.status_code, response.headers.get("retry-after"), response.content)

    async def close(self) -> None:
        await self.client.aclose()


def transport_for(endpoint: str, *, ca_file: Path | None, timeout: float) -> FcmTransport:
    """The lean HTTP/2 transport for https:// endpoints, httpx for plain http://."""
    if endpoint.startswith("https://"):
        return H2Transport(endpoint, ca_file=ca_file)
    return HttpxTransport(endpoint, ca_file=ca_file, timeout=timeout)
