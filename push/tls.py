"""TLS trust for the provider connections.

Without ``HERALD_PUSH_CA_FILE`` the system's trust store is used. With it, only that CA bundle is
trusted (a local fake or a TLS-intercepting proxy): it is passed explicitly, so machine-wide
variables such as ``SSL_CERT_FILE`` or ``REQUESTS_CA_BUNDLE`` never decide which hosts are trusted.
"""

from __future__ import annotations

import ssl
from pathlib import Path


def client_context(ca_file: Path | None) -> ssl.SSLContext:
    """A fresh verifying client context (callers may set ALPN on it, so never share one)."""
    if ca_file is None:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=str(ca_file))
