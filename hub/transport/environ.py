"""What a connected socket keeps of the HTTP request that opened it."""

from __future__ import annotations

from typing import Any

ENVIRON_KEPT = ("REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "REMOTE_ADDR")


def remote_address(environ: dict[str, Any]) -> str:
    """The client's address: engineio's aiohttp driver fills REMOTE_ADDR with a constant, so the
    aiohttp request's while the environ has it, else what the take-over or trim left there."""
    request = environ.get("aiohttp.request")
    if request is not None:
        return str(request.remote or "unknown")
    return str(environ.get("REMOTE_ADDR") or "unknown")


def detach_request(environ: dict[str, Any]) -> None:
    """Replace the aiohttp request in a socket's environ (which holds the connection's handler,
    parser and headers) by the one thing Herald reads of it later: the client's address."""
    environ["REMOTE_ADDR"] = remote_address(environ)
    environ.pop("aiohttp.request", None)
    environ.pop("wsgi.input", None)


def trim_environ(environ: dict[str, Any]) -> None:
    """Drop what a connected socket's environ need not keep (Socket.IO keeps it for the connection's
    life): the aiohttp request and the request headers copied into it (~1 KB); what is left: the
    method, path, query and the client's address."""
    detach_request(environ)
    kept = {key: environ[key] for key in ENVIRON_KEPT if key in environ}
    environ.clear()  # frees the table too, which deleting keys one by one would not
    environ.update(kept)
