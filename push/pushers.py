"""The one path from a (target, message) to a provider: `Pushers`.

`Pushers.from_settings` builds it: with ``HERALD_PUSH_PROVIDER=outbox`` every push goes to the
outbox; otherwise each configured app (the default one from ``HERALD_APNS_*`` /
``HERALD_FCM_CREDENTIALS_FILE``, and those of ``HERALD_PUSH_APPS_FILE``) gets an APNs and/or FCM
provider. A target with no provider for its (provider, app_id) fails with ``"not_configured"``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config import Settings
from push.apns import ApnsProvider
from push.apns_auth import ProviderToken
from push.apps import AppCredentials, load_apps
from push.fcm import FcmHttp, FcmProvider
from push.fcm_auth import AccessTokens
from push.message import PushMessage
from push.outbox import OutboxProvider
from push.outcome import Outcome, SendResult
from push.providers import Provider
from push.target import Target

NOT_CONFIGURED = SendResult(Outcome.FAIL, "not_configured")


@dataclass(frozen=True, slots=True)
class AppProviders:
    """The providers of one app."""

    apns: Provider | None = None
    fcm: Provider | None = None

    def get(self, provider: str) -> Provider | None:
        return self.apns if provider == "apns" else self.fcm if provider == "fcm" else None


class Pushers:
    def __init__(
        self,
        *,
        default: AppProviders | None = None,
        default_app_id: str | None = None,
        apps: Mapping[str, AppProviders] | None = None,
        outbox: Provider | None = None,
        closers: Sequence[Callable[[], Awaitable[None]]] = (),
    ) -> None:
        """``apps`` None (no apps file): ``default`` serves every app id. Otherwise ``default``
        serves targets without an app id (or with ``default_app_id``), and other unknown app ids
        are not configured. ``outbox`` set: it takes everything."""
        self._default = default
        self._default_app_id = default_app_id
        self._apps = apps
        self._outbox = outbox
        self._closers = list(closers)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, outbox_sink: Callable[[dict[str, Any]], Awaitable[None]] | None = None
    ) -> Pushers:
        """Read and check every credential now (a bad one raises `SettingsError`); connect later."""
        if settings.push_provider == "outbox":
            return cls(outbox=OutboxProvider(outbox_sink))
        return _Builder(settings).build()

    def provider_for(self, target: Target) -> Provider | None:
        if self._outbox is not None:
            return self._outbox
        app: AppProviders | None
        if self._apps is None or target.app_id is None:
            app = self._default
        elif target.app_id in self._apps:
            app = self._apps[target.app_id]
        else:
            app = self._default if target.app_id == self._default_app_id else None
        return app.get(target.provider) if app is not None else None

    async def send(self, target: Target, message: PushMessage) -> SendResult:
        provider = self.provider_for(target)
        if provider is None:
            return NOT_CONFIGURED
        return await provider.send(target, message)

    async def close(self) -> None:
        apps = [self._default, *(self._apps or {}).values()]
        providers = [self._outbox, *(p for app in apps if app is not None for p in (app.apns, app.fcm))]
        closed: set[int] = set()
        for provider in providers:
            if provider is not None and id(provider) not in closed:
                closed.add(id(provider))
                await provider.close()
        for close in self._closers:
            await close()


class _Builder:
    """Providers for every configured app, sharing what can be shared: one APNs JWT per signing
    key, one FCM token source per service account, one HTTP/2 client for all of FCM."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.jwts: dict[tuple[str, str], ProviderToken] = {}
        self.access: dict[Path, AccessTokens] = {}
        self.http: FcmHttp | None = None

    def build(self) -> Pushers:
        registry = load_apps(self.settings)
        default = self.app(registry.default) if registry.default is not None else None
        apps = {app_id: self.app(app) for app_id, app in registry.apps.items()} if registry.apps is not None else None
        return Pushers(
            default=default,
            default_app_id=registry.default.app_id if registry.default is not None else None,
            apps=apps,
            closers=[self.http.close] if self.http is not None else [],
        )

    def app(self, app: AppCredentials) -> AppProviders:
        s = self.settings
        apns = fcm = None
        if app.apns is not None:
            key = (app.apns.team_id, app.apns.key_id)
            if key not in self.jwts:
                self.jwts[key] = ProviderToken(app.apns.key, app.apns.key_id, app.apns.team_id)
            apns = ApnsProvider(
                app.apns,
                token=self.jwts[key],
                host=s.apns_host,
                environment=s.apns_environment,
                ca_file=s.push_ca_file,
                timeout=s.push_timeout,
            )
        if app.fcm is not None:
            path = app.fcm.credentials_file.resolve()
            if path not in self.access:
                self.access[path] = AccessTokens(path, ca_file=s.push_ca_file, timeout=s.push_timeout)
            if self.http is None:
                self.http = FcmHttp(s.fcm_endpoint, ca_file=s.push_ca_file, timeout=s.push_timeout)
            fcm = FcmProvider(app.fcm, tokens=self.access[path], http=self.http)
        return AppProviders(apns, fcm)
