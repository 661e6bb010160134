"""Everything a running gateway holds, opened and closed in one place.

``GatewayServices`` is built once at start-up from settings and loaded plugins;
the HTTP app, the schema's context and plugin routes all receive this object.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import redis.asyncio as aioredis

from gateway.auth import (
    ApiKeyAuthenticator,
    AuthenticatorChain,
    JwtAuthenticator,
    JwtSettings,
    PublicKeyJwtAuthenticator,
    PublicKeys,
    PublicKeySettings,
    RemoteJwks,
    TokenVerifier,
)
from gateway.cache import Cache, SharedReads, create_cache
from gateway.cache._redis import redis_client
from gateway.cluster import open_cluster
from gateway.config import AuthSettings, ConfigError, Secret, Settings
from gateway.connectors import ConnectorContext
from gateway.events import EventLog, Retention, create_event_log
from gateway.plugins import Plugins
from gateway.readiness import Readiness
from gateway.reconciler import SETTLED_BY, Reconciler
from gateway.registry import ConnectorRegistry
from gateway.resilience import ResiliencePolicy, SharedTokenBucket
from gateway.store import Store
from gateway.upstream_health import UpstreamHealthChecker

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


def _share_rate_limits(registry: ConnectorRegistry, settings: Settings) -> aioredis.Redis | None:
    """With the cache on Redis, make each upstream's rate limit one bucket for the whole
    cluster (``<namespace>:ratelimit:<connector>``); the client is returned to close."""
    if urlsplit(settings.cache.url).scheme.lower() not in ("redis", "rediss"):
        return None
    limited = {n: u for n, u in registry.upstreams.items() if u.policy.rate_limit_per_second > 0}
    # Made even with no upstream limit: per-viewer request budgets share it too.
    client = redis_client(settings.cache.url)
    for name, upstream in limited.items():
        upstream.bucket = SharedTokenBucket(
            client,
            f"{settings.cluster.namespace}:ratelimit:{name}",
            upstream.policy.rate_limit_per_second,
            upstream.policy.rate_limit_burst,
        )
    return client


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
            keys: PublicKeys | RemoteJwks
            if auth.jwks_url is not None:
                keys = RemoteJwks(
                    auth.jwks_url,
                    cache_seconds=auth.jwks_cache_seconds,
                    refetch_seconds=auth.jwks_refetch_seconds,
                )
            elif auth.jwks_file is not None:
                keys = PublicKeys.from_jwks_file(auth.jwks_file)
            elif auth.jwt_public_key_file is not None:
                keys = PublicKeys.from_pem_file(auth.jwt_public_key_file)
            else:  # AuthSettings refuses this; kept so a bypass cannot accept every key
                raise ValueError(
                    "public-key algorithms need jwt_public_key_file, jwks_file or jwks_url"
                )
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
        "auth.jwt_secret is not set (nor auth.jwt_public_key_file, jwks_file or jwks_url) and "
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
    #: What /readyz runs: this replica's own dependencies (add yours with ``add``).
    readiness: Readiness
    #: The background upstream checker behind /upstreamz and ``connectors { health }``.
    upstream_health: UpstreamHealthChecker
    #: The background settling of writes whose outcome is unknown.
    reconciler: Reconciler
    _shared_redis: aioredis.Redis | None = field(default=None, repr=False)
    _serving: bool = field(default=True, repr=False)
    _closed: bool = field(default=False, repr=False)

    @classmethod
    async def open(cls, settings: Settings, plugins: Plugins) -> GatewayServices:
        """Open the store, cache and event bus, then instantiate and start the connectors."""
        # Key files (or a JWKS URL) read before anything opens; in a thread, as a fetch blocks.
        verifiers = await asyncio.to_thread(jwt_verifiers, settings.auth)
        if not verifiers and not settings.auth.api_keys:
            raise _nobody_can_authenticate("auth.api_keys is false")
        policies = resilience_policies(settings)  # validated before anything opens
        # Cache values in Redis are signed; without a configured secret a per-process
        # one is fine for memory, but replicas sharing Redis must configure the same one.
        cache_secret = (settings.cache.secret or Secret(secrets.token_hex(32))).reveal().encode()
        store = await Store.open(
            settings.store.url,
            pool_size=settings.store.pool_size,
            max_overflow=settings.store.max_overflow,
            upgrade=settings.store.upgrades_at_start,
        )
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
            settings.cache.url,
            secret=cache_secret,
            max_entries=settings.cache.max_entries,
            namespace=settings.cluster.namespace,
        )
        events = create_event_log(
            settings.events.url,
            secret=cache_secret,
            namespace=f"{settings.cluster.namespace}:events:",
            retention=Retention(settings.events.retention_count, settings.events.retention_seconds),
            reconnect_seconds=settings.events.reconnect_seconds,
        )
        # Replicas keep each other's in-memory partners and link owners exact.
        store.share_changes(events)
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
        registry = ConnectorRegistry(
            plugins.connector_classes, contexts, policies, open_cluster(settings)
        )
        shared_redis = _share_rate_limits(registry, settings)
        await registry.start()
        upstream_health = UpstreamHealthChecker(registry, settings.cluster.upstream_health_seconds)
        await upstream_health.start()
        reconciler = Reconciler(
            store,
            registry,
            interval=settings.reconciler.interval_seconds,
            grace=settings.reconciler.grace_seconds,
            lease=settings.limits.idempotency_lease_seconds,
        )
        await reconciler.start()
        logger.info(
            "gateway ready: store=%s cache=%s connectors=%s",
            store.url_for_display,
            settings.cache.url.split("@")[-1],
            ",".join(registry.platforms()) or "none",
        )
        services = cls(
            settings,
            plugins,
            store,
            cache,
            events,
            registry,
            authenticator,
            Readiness(),
            upstream_health,
            reconciler,
            shared_redis,
        )
        # Imported here: the transfers module depends on this one.
        from gateway.graphql.mutations.transfers import resume_transfers

        async def resume(older_than: datetime, hold: timedelta) -> int:
            return await resume_transfers(
                services, older_than=older_than, hold=hold, settled_by=SETTLED_BY
            )

        reconciler.add_follow_up(resume)
        services.readiness.add("store", store.ping)
        services.readiness.add("plugins", services._plugins_serving)
        # The lease manager runs (whether or not this replica holds a session).
        services.readiness.add("leases", registry.cluster.ready)
        return services

    @property
    def shared_redis(self) -> aioredis.Redis | None:
        """The Redis for cluster-wide counters (rate limits); None unless the cache is Redis."""
        return self._shared_redis

    async def _plugins_serving(self) -> bool:
        # Plugins are loaded and connectors started once open() returns; closing ends it.
        return self._serving

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._serving = False
        await self.reconciler.stop()
        await self.upstream_health.stop()
        await self.registry.close()
        if self._shared_redis is not None:
            await self._shared_redis.aclose()
        await self.events.close()
        await self.cache.close()
        await self.store.close()
