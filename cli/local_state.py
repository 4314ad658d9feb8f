"""Local state: the dev JWT secret under the data dir, and the services of a `herald up` in this folder."""

from __future__ import annotations

import os
import secrets
from dataclasses import replace
from pathlib import Path
from typing import Any

from config import Settings

DEV_SECRET_FILE = "dev-secret"


def dev_secret(data_dir: Path, *, create: bool) -> str | None:
    """The dev JWT secret kept under the data dir, created on first use when ``create``."""
    path = data_dir / DEV_SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    if not create:
        return None
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    return secret


def with_local_state(settings: Settings) -> Settings:
    """Fill unset URLs from a running `herald up` in this folder, and the secret from its dev secret."""
    from devservices import running_services

    changes: dict[str, Any] = {}
    if not (settings.database_url and settings.redis_url):
        urls = running_services(settings.data_dir)
        if urls is not None:
            changes["database_url"] = settings.database_url or urls.database_url
            changes["redis_url"] = settings.redis_url or urls.redis_url
    if not settings.jwt_secret and "HS256" in settings.jwt_algorithms:
        secret = dev_secret(settings.data_dir, create=False)
        if secret:
            changes["jwt_secret"] = secret
    return replace(settings, **changes) if changes else settings
