"""Everything a running gateway holds, opened and closed in one place.

``GatewayServices`` is built once at start-up from settings and loaded plugins;
the HTTP app, the schema's context and plugin routes all receive this object.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field

from gateway.auth import (
    ApiKeyAuthenticator,
    AuthenticatorChain,
    JwtAuthenticator,
    JwtSettings,
    PublicKeyJwtAuthenticator,
    PublicKeys,
    PublicKeySettings,
    TokenVerifier,
)
from gateway.cache import Cache, SharedReads, create_cache
from gateway.config import AuthSettings, ConfigError, Secret, Settings
from gateway.connectors import ConnectorContext
from gateway.events import EventLog, Retention, create_event_log
from gateway.plugins import Plugins
from gateway.registry import ConnectorRegistry
from gateway.resilience import ResiliencePolicy
from gateway.store import Store

__all__ = ["GatewayServices", "resilience_policies"]


def resilience_policies(settings: Settings) -> dict[str, ResiliencePolicy]:
    """One policy per configured connector: the defaults, then its own table."""
    raw = dict(settings.resilience)
    overrides = {k: v for k, v in raw.items() if isinstance(v, dict)}
    defaults = {k: v for k, v in raw.items() if not isinstance(v, dict)}
    unknown = sorted(set(overrides) - set(settings.connectors))
    if unknown:
        raise ConfigError(f"[resilience] names unconfigured connectors: {', '.join(unknown)}")
    try:
        return {
            name: ResiliencePolicy.from_mapping({**defaults, **overrides.get(name, {})})
            for name in settings.connectors
        }
    except ValueError as error:
        raise ConfigError(f"[resilience] {error}") from error


logger = logging.getLogger("gateway")


def jwt_verifiers(auth: AuthSettings) -> list[TokenVerifier]:
    """The JWT verifiers ``auth`` configures (HS* and/or RS*/ES*); key files are read here."""
    verifiers: list[TokenVerifier] = []
    try:
        if auth.jwt_secret is not None and auth.hmac_algorithms:
            verifiers.append(
                JwtAuthenticator(
                    JwtSettings(
                        secret=auth.jwt_secret.reveal(),
                        issuer=auth.issuer,
                        audience=auth.audience,
                        algorithms=auth.hmac_algorithms,
                    )
                )
            )
        if auth.public_key_algorithms:
            if auth.jwks_file is not None:
                keys = PublicKeys.from_jwks_file(auth.jwks_file)
            elif auth.jwt_public_key_file is not None:
                keys = PublicKeys.from_pem_file(auth.jwt_public_key_file)
            else:  # AuthSettings refuses this; kept so a bypass cannot accept every key
                raise ValueError("public-key algorithms need jwt_public_key_file or jwks_file")
            verifiers.append(
                PublicKeyJwtAuthenticator(
                    PublicKeySettings(
                        keys=keys,
                        issuer=auth.issuer,
                        audience=auth.audience,
                        algorithms=auth.public_key_algorithms,
                    )
                )
            )
    except ValueError as error:
        # Messages name the rule or the file, never the secret.
        raise ConfigError(f"[auth] {error}") from None
    return verifiers


def _nobody_can_authenticate(why: str) -> ConfigError:
    return ConfigError(
        "auth.jwt_secret is not set (nor auth.jwt_public_key_file or auth.jwks_file) and "
        f"{why}, so no caller could authenticate: set [auth] jwt_secret in the configuration "
        "file or BROKERGRAPH_AUTH__JWT_SECRET (at least 32 bytes), configure public keys, "
        "or create an API key with `brokergraph api-key create`"
    )


@dataclass
class GatewayServices:
    settings: Settings
    plugins: Plugins
    store: Store
    cache: Cache
    events: EventLog
    registry: ConnectorRegistry
    authenticator: AuthenticatorChain
    _closed: bool = field(default=False, repr=False)

    @classmethod
    async def open(cls, settings: Settings, plugins: Plugins) -> GatewayServices:
        """Open the store, cache and event bus, then instantiate and start the connectors."""
        verifiers = jwt_verifiers(settings.auth)  # key files read before anything opens
        if not verifiers and not settings.auth.api_keys:
            raise _nobody_can_authenticate("auth.api_keys is false")
        policies = resilience_policies(settings)  # validated before anything opens
        # Cache values in Redis are signed; without a configured secret a per-process
        # one is fine for memory, but replicas sharing Redis must configure the same one.
        cache_secret = (settings.cache.secret or Secret(secrets.token_hex(32))).reveal().encode()
        store = await Store.open(settings.store.url)
        if not verifiers:
            # API keys alone serve server-to-server callers, but only once one exists.
            try:
                active_keys = await store.list_api_keys(include_revoked=False)
            except BaseException:
                await store.close()
                raise
            if not active_keys:
                await store.close()
                raise _nobody_can_authenticate("the store holds no active API key")
        authenticator = AuthenticatorChain(
            verifiers, ApiKeyAuthenticator(store) if settings.auth.api_keys else None
        )
        cache = create_cache(
            settings.cache.url, secret=cache_secret, max_entries=settings.cache.max_entries
        )
        events = create_event_log(
            settings.events.url,
            secret=cache_secret,
            retention=Retention(
                settings.events.retention_count, settings.events.retention_seconds
            ),
            reconnect_seconds=settings.events.reconnect_seconds,
        )
        contexts = {
            name: ConnectorContext(
                name=name,
                settings=section,
                store=store,
                reads=SharedReads(cache, plugins.connector_classes[name].platform),
                events=events,
                logger=logging.getLogger(f"gateway.connectors.{name}"),
            )
            for name, section in settings.connectors.items()
            if name in plugins.connector_classes
        }
        for name in settings.connectors:
            if name not in plugins.connector_classes:
                logger.warning("settings name connector %r but no plugin provides it", name)
        registry = ConnectorRegistry(plugins.connector_classes, contexts, policies)
        await registry.start()
        logger.info(
            "gateway ready: store=%s cache=%s connectors=%s",
            store.url_for_display,
            settings.cache.url.split("@")[-1],
            ",".join(registry.platforms()) or "none",
        )
        return cls(settings, plugins, store, cache, events, registry, authenticator)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.registry.close()
        await self.events.close()
        await self.cache.close()
        await self.store.close()
