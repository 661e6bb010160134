"""Configuration: a TOML file, then environment overrides, then validation.

Environment variables override the file with ``BROKERGRAPH_<SECTION>__<KEY>``
(double underscores separate levels), e.g. ``BROKERGRAPH_STORE__URL`` or
``BROKERGRAPH_CONNECTORS__CTRADER__PASSWORD``.  A value is read as a TOML literal
when it parses as one (``8000``, ``true``, ``["a", "b"]``), as a string otherwise.

Secrets are wrapped in :class:`Secret`, whose ``repr`` and ``str`` are ``***``,
so they never reach a log line or a printed settings dump by accident.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from gateway.auth import HMAC_ALGORITHMS, PUBLIC_KEY_ALGORITHMS, check_jwks_url
from gateway.contract._settings import Secret

__all__ = [
    "AuthSettings",
    "CacheSettings",
    "ClusterSettings",
    "ConfigError",
    "EventSettings",
    "LimitSettings",
    "ObservabilitySettings",
    "PluginSettings",
    "ReconcilerSettings",
    "Secret",
    "ServerSettings",
    "Settings",
    "StoreSettings",
    "load_settings",
]

ENV_PREFIX = "BROKERGRAPH_"
CONFIG_ENV = "BROKERGRAPH_CONFIG"
SECRET_KEY_PARTS = ("password", "secret", "token", "key")


class ConfigError(ValueError):
    """The configuration is invalid; the message names the setting, never its secret value."""


def is_secret_key(key: str) -> bool:
    """True for setting names that hold credentials (``password``, ``api_key``...)."""
    lowered = key.lower()
    return any(part in lowered for part in SECRET_KEY_PARTS)


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    graphiql: bool = True
    introspection: bool = True
    allowed_origins: tuple[str, ...] = ()
    #: Browser origins allowed to call /graphql cross-origin (CORS); none by default.
    cors_origins: tuple[str, ...] = ()
    #: Let those origins send cookies / HTTP auth (bearer tokens need no credentials).
    cors_allow_credentials: bool = False
    #: How long a browser may reuse a preflight's answer.
    cors_max_age_seconds: int = 600

    def __post_init__(self) -> None:
        object.__setattr__(self, "cors_origins", tuple(self.cors_origins))
        for origin in self.cors_origins:
            if origin != "*" and (origin.endswith("/") or "://" not in origin):
                raise ConfigError(
                    f"[server] cors_origins: {origin!r} is not an origin like https://app.example"
                )
        if "*" in self.cors_origins and self.cors_allow_credentials:
            # Starlette would echo any Origin back with credentials allowed: every site
            # could then act with the visitor's cookies.
            raise ConfigError('[server] cors_origins "*" cannot go with cors_allow_credentials')
        if self.cors_max_age_seconds < 0:
            raise ConfigError("[server] cors_max_age_seconds must be >= 0")


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """How callers authenticate; combinations are checked here, key files when serving.

    Each token algorithm needs its own key material: HS* the shared
    ``jwt_secret``, RS*/ES* a ``jwt_public_key_file``, a ``jwks_file`` or a ``jwks_url``.  A
    configuration that lists an algorithm without its keys, or keys without an
    algorithm for them, is refused rather than left half-working.
    """

    jwt_secret: Secret | None = None
    algorithms: tuple[str, ...] = ("HS256",)
    jwt_public_key_file: str | None = None
    jwks_file: str | None = None
    #: An identity provider's JWKS (https://; http:// to a loopback host only), fetched
    #: at start, again when older than ``jwks_cache_seconds``, and when a token names an
    #: unknown ``kid`` (a rotation) — at most once per ``jwks_refetch_seconds``.
    jwks_url: str | None = None
    jwks_cache_seconds: float = 300.0
    jwks_refetch_seconds: float = 30.0
    issuer: str = "brokergraph"
    audience: str = "brokergraph"
    api_keys: bool = True

    def __post_init__(self) -> None:
        # Frozen: normalise a list handed over directly, so the settings hash.
        object.__setattr__(self, "algorithms", tuple(self.algorithms))
        _check_auth(self)

    @property
    def hmac_algorithms(self) -> tuple[str, ...]:
        return tuple(a for a in self.algorithms if a in HMAC_ALGORITHMS)

    @property
    def public_key_algorithms(self) -> tuple[str, ...]:
        return tuple(a for a in self.algorithms if a in PUBLIC_KEY_ALGORITHMS)


def _check_auth(auth: AuthSettings) -> None:
    supported = sorted(HMAC_ALGORITHMS) + sorted(PUBLIC_KEY_ALGORITHMS)
    if not auth.algorithms:
        raise ConfigError("[auth] algorithms must list at least one algorithm")
    for algorithm in auth.algorithms:
        if algorithm not in supported:
            raise ConfigError(
                f"[auth] algorithms: {algorithm!r} is not supported; use {', '.join(supported)}"
            )
    if not auth.issuer or not auth.audience:
        raise ConfigError("[auth] issuer and audience must not be empty")
    if auth.jwt_secret is not None and not auth.jwt_secret:
        raise ConfigError("[auth] jwt_secret must not be empty")
    key_sources = ("jwt_public_key_file", "jwks_file", "jwks_url")
    for name in key_sources:
        if getattr(auth, name) == "":
            raise ConfigError(f"[auth] {name} must not be empty")
    configured = [name for name in key_sources if getattr(auth, name) is not None]
    if len(configured) > 1:
        raise ConfigError(f"[auth] set one key source, not both {' and '.join(configured)}")
    key_file = configured[0] if configured else None
    if auth.jwks_url is not None:
        try:
            check_jwks_url(auth.jwks_url)
        except ValueError as error:
            raise ConfigError(f"[auth] {error}") from None
    if auth.jwks_cache_seconds <= 0 or auth.jwks_refetch_seconds <= 0:
        raise ConfigError("[auth] jwks_cache_seconds and jwks_refetch_seconds must be positive")
    public, hmac = auth.public_key_algorithms, auth.hmac_algorithms
    if key_file is not None and not public:
        raise ConfigError(
            f"[auth] {key_file} is set but algorithms lists no public-key algorithm "
            f'({", ".join(sorted(PUBLIC_KEY_ALGORITHMS))}); add one, e.g. algorithms = ["RS256"]'
        )
    if public and key_file is None:
        raise ConfigError(
            f"[auth] algorithms lists {', '.join(public)} but neither jwt_public_key_file "
            "nor jwks_file nor jwks_url is set"
        )
    if auth.jwt_secret is not None and not hmac:
        raise ConfigError(
            "[auth] jwt_secret is set but algorithms lists no HS* algorithm; "
            'remove the secret or add "HS256"'
        )
    if hmac and auth.jwt_secret is None and key_file is not None:
        # With only public keys configured an HS* token must never be accepted
        # (algorithm confusion); say so instead of silently ignoring the entry.
        raise ConfigError(
            f"[auth] algorithms lists {', '.join(hmac)} but jwt_secret is not set; remove "
            "the HS* entries to accept only public-key tokens"
        )


@dataclass(frozen=True, slots=True)
class StoreSettings:
    url: str = "sqlite+aiosqlite:///var/brokergraph.db"
    #: PostgreSQL connections each replica keeps open, and how many more it may open
    #: under load (SQLAlchemy's pool); ignored for SQLite.  replicas x (both) must stay
    #: under the server's max_connections.
    pool_size: int = 5
    max_overflow: int = 10
    #: ``serve`` upgrades a store behind this code's schema (``brokergraph db upgrade``)
    #: instead of refusing to start (an empty database is made at the head either way).
    #: Unset: yes for SQLite (one process owns the file: the demo, tests, a newcomer's
    #: ``serve``), no for PostgreSQL, where replicas share the store and upgrading it is
    #: a deploy step taken after a backup.
    upgrade_at_start: bool | None = None

    def __post_init__(self) -> None:
        if self.pool_size < 1:
            raise ConfigError("[store] pool_size must be at least 1")

    @property
    def upgrades_at_start(self) -> bool:
        if self.upgrade_at_start is not None:
            return self.upgrade_at_start
        return self.url.startswith("sqlite")


@dataclass(frozen=True, slots=True)
class CacheSettings:
    url: str = "memory://"
    max_entries: int = 10_000
    secret: Secret | None = None


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    """What replicas share: the Redis namespace, and how often upstreams are checked."""

    #: Prefix of every Redis key and channel the gateway uses (``<namespace>:cache:…``),
    #: so two environments can share one Redis.
    namespace: str = "bg"
    #: Seconds between two background health checks of the upstreams (jittered ±20 %).
    upstream_health_seconds: float = 15.0
    #: Single upstream sessions (QST, QORT): a silent holder's lease ends this many
    #: seconds after its last heartbeat; a killed or stopped one hands over at once.
    lease_seconds: float = 5.0
    #: How long a call waits for a holder during a hand-over (0: ``lease_seconds``).
    route_wait_seconds: float = 0.0
    #: HMAC key of calls routed between replicas (the same on every replica); unset,
    #: one is derived from ``[cache] secret``.
    secret: Secret | None = None
    #: Where the other replicas reach this one (``http://pod-ip:8000``); unset, the
    #: address ``serve`` bound (the host name when it bound every interface).
    advertise_url: str | None = None

    def __post_init__(self) -> None:
        if not _NAMESPACE.fullmatch(self.namespace):
            raise ConfigError(
                "[cluster] namespace must be 1-64 letters, digits, '_', '-' or '.', "
                f"got {self.namespace!r}"
            )
        if self.upstream_health_seconds <= 0:
            raise ConfigError("[cluster] upstream_health_seconds must be greater than 0")
        if self.lease_seconds < 1:
            raise ConfigError("[cluster] lease_seconds must be at least 1")


_NAMESPACE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


@dataclass(frozen=True, slots=True)
class EventSettings:
    """The event log: in process (``memory://``) or on Redis Streams (``redis://``)."""

    url: str = "memory://"
    #: Events each topic keeps for resuming subscribers (the oldest go first)...
    retention_count: int = 10_000
    #: ...and none older than this many seconds (0: no age limit).
    retention_seconds: int = 86_400
    #: How long a subscriber's stream waits for an unreachable log before it ends
    #: with STREAM_INTERRUPTED (the client resumes with its last sequence).
    reconnect_seconds: int = 30

    def __post_init__(self) -> None:
        if self.retention_count < 1:
            raise ConfigError("[events] retention_count must be at least 1")


@dataclass(frozen=True, slots=True)
class LimitSettings:
    max_body_bytes: int = 1_000_000
    max_depth: int = 12
    max_aliases: int = 30
    #: Times one response name may be selected in a selection set, fragments merged
    #: (graphql-core compares same-named fields pairwise: quadratic past this).
    max_repeated_fields: int = 100
    max_tokens: int = 5_000
    max_page_size: int = 100
    max_cost: int = 20_000
    default_list_size: int = 20
    max_subscriptions_per_connection: int = 20
    #: WebSockets one viewer (token subject or API key) may hold open in this process
    #: (0: no cap); one more is closed with 4429.
    max_sockets_per_viewer: int = 5
    #: Operations in flight over all of one viewer's sockets (0: no cap).
    max_subscriptions_per_viewer: int = 50
    #: Server keep-alive: a graphql-transport-ws ``ping`` this often (0: never)...
    ws_ping_interval_seconds: float = 20.0
    #: ...and a socket whose ``pong`` does not come within this is closed with 4408.
    ws_pong_timeout_seconds: float = 10.0
    #: How often a socket opened with an API key re-reads the key's state (0: only
    #: on each new operation); a revoked key's socket is closed with 4403.
    ws_credential_check_seconds: float = 30.0
    idempotency_lease_seconds: int = 60
    max_batch: int = 10
    #: GraphQL HTTP requests one viewer (token subject or API key) may make per
    #: second in this process, refilled continuously (0: no limit); over it, 429.
    requests_per_viewer_per_second: float = 50.0
    #: Requests a viewer may make at once before the per-second rate applies.
    requests_per_viewer_burst: int = 100
    #: Upstream calls one viewer's reads may make per second, refilled continuously
    #: (0: no limit), cluster-wide with the cache on Redis: each read that reaches a
    #: platform takes one before it is sent (cache hits and reads joined to one in
    #: flight take none); an empty budget answers RATE_LIMITED with retryAfter.
    upstream_calls_per_viewer_per_second: float = 5.0
    #: Upstream calls a viewer may make at once before the per-second rate applies.
    upstream_calls_per_viewer_burst: int = 600
    #: An operation certain to make more upstream calls than this (the connectors'
    #: declared costs of its literal periods) is refused as QUERY_TOO_COSTLY (0: no cap).
    max_upstream_calls: int = 600
    #: Failed API-key authentications one client address may make per minute (0: no
    #: limit); past it, API-key requests answer 429 without checking the key.
    api_key_failures_per_minute: int = 60
    persisted_operations_file: str | None = None
    persisted_only: bool = False
    #: Apollo's automatic persisted queries (registration is off under persisted_only).
    apq: bool = True
    #: How long a registered query text is remembered after its registration.
    apq_ttl_seconds: float = 86_400.0
    #: Texts remembered with the in-memory cache (with Redis, its memory policy bounds them).
    apq_max_entries: int = 1_000
    #: Longer texts run but are not remembered: memory stays under entries x this.
    apq_max_query_bytes: int = 20_000


@dataclass(frozen=True, slots=True)
class ReconcilerSettings:
    """The background settling of writes whose outcome is unknown (gateway.reconciler)."""

    #: Seconds between two rounds on each replica (jittered ±20 %); 0 turns it off
    #: (a same-key retry still settles a claim by reading the platform).
    interval_seconds: float = 30.0
    #: A claim left STARTED is left to its own request this long: younger, it may
    #: still be in flight (the platform is read only after this).
    grace_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class ObservabilitySettings:
    """Metrics, traces and logs (gateway.observability); traces' exporter: ``OTEL_*``."""

    #: Serve Prometheus metrics (GraphQL operations, upstream calls, breakers...).
    metrics: bool = True
    #: Where the gateway serves them...
    metrics_path: str = "/metrics"
    #: ...or on this port of their own, apart from ``/graphql`` (0: on the gateway's).
    metrics_port: int = 0
    #: When set, a scrape must send ``Authorization: Bearer <metrics_token>``.
    metrics_token: Secret | None = None
    #: Record OpenTelemetry traces (also on when ``OTEL_TRACES_EXPORTER`` names an
    #: exporter; ``OTEL_SDK_DISABLED=true`` turns them off whatever this says).
    tracing: bool = False
    #: ``text`` (for people) or ``json`` (one object a line, for a log pipeline).
    log_format: str = "text"
    #: One line per HTTP request and per WebSocket operation (logger ``gateway.access``).
    access_log: bool = True

    def __post_init__(self) -> None:
        if self.log_format not in ("text", "json"):
            raise ConfigError(
                f"[observability] log_format must be text or json, got {self.log_format!r}"
            )
        if not self.metrics_path.startswith("/") or self.metrics_path == "/graphql":
            raise ConfigError("[observability] metrics_path must be a path other than /graphql")
        if self.metrics_port > 65535:
            raise ConfigError("[observability] metrics_port must be a TCP port (0: the gateway's)")


@dataclass(frozen=True, slots=True)
class PluginSettings:
    strict: bool = False
    blocked: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    events: EventSettings = field(default_factory=EventSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    plugins: PluginSettings = field(default_factory=PluginSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    reconciler: ReconcilerSettings = field(default_factory=ReconcilerSettings)
    observability: ObservabilitySettings = field(default_factory=ObservabilitySettings)
    #: One section per connector name; secret-looking keys hold :class:`Secret`.
    connectors: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Upstream guards: plain keys are defaults, ``[resilience.<connector>]`` tables override.
    resilience: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """The settings as plain data, every secret shown as ``***`` (safe to log)."""
        described: dict[str, Any] = _plain(self)
        return described


_SECTIONS: dict[str, type[Any]] = {
    "server": ServerSettings,
    "auth": AuthSettings,
    "store": StoreSettings,
    "cache": CacheSettings,
    "events": EventSettings,
    "limits": LimitSettings,
    "plugins": PluginSettings,
    "cluster": ClusterSettings,
    "reconciler": ReconcilerSettings,
    "observability": ObservabilitySettings,
}


def _plain(value: Any) -> Any:
    if isinstance(value, Secret):
        return str(value)
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV or "__" not in name:
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        node = data
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{name} overrides a value that is not a section")
            node = child
        node[path[-1]] = _parse_env_value(raw)


def _build_section(cls: type[Any], name: str, data: Mapping[str, Any]) -> Any:
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"[{name}] has unknown settings: {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for key, value in data.items():
        expected = str(known[key].type)
        if "Secret" in expected:
            if not isinstance(value, str):
                raise ConfigError(f"[{name}] {key} must be a string")
            values[key] = Secret(value)
        elif "tuple" in expected:
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"[{name}] {key} must be a list of strings")
            values[key] = tuple(value)
        elif expected == "int":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"[{name}] {key} must be a non-negative integer, got {value!r}")
            values[key] = value
        elif expected == "float":
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"[{name}] {key} must be a non-negative number, got {value!r}")
            values[key] = float(value)
        elif expected in ("bool", "bool | None"):
            if not isinstance(value, bool):
                raise ConfigError(f"[{name}] {key} must be true or false, got {value!r}")
            values[key] = value
        else:
            if not isinstance(value, str):
                raise ConfigError(f"[{name}] {key} must be a string, got {type(value).__name__}")
            values[key] = value
    return cls(**values)


def _connector_section(name: str, data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ConfigError(f"[connectors.{name}] must be a table")
    return {
        key: Secret(value) if is_secret_key(key) and isinstance(value, str) else value
        for key, value in data.items()
    }


def load_settings(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read ``path`` (or ``$BROKERGRAPH_CONFIG``), apply the environment, then ``overrides``."""
    env = os.environ if environ is None else environ
    path = path or env.get(CONFIG_ENV)
    data: dict[str, Any] = {}
    if path:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as error:
            raise ConfigError(f"configuration file {path} does not exist") from error
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"configuration file {path} is not valid TOML: {error}") from error
    _apply_env(data, env)
    for section, values in (overrides or {}).items():
        data.setdefault(section, {}).update(values)
    unknown = sorted(set(data) - set(_SECTIONS) - {"connectors", "resilience"})
    if unknown:
        raise ConfigError(f"unknown configuration sections: {', '.join(unknown)}")
    sections = {
        name: _build_section(cls, name, data.get(name, {})) for name, cls in _SECTIONS.items()
    }
    connectors_data = data.get("connectors", {})
    if not isinstance(connectors_data, dict):
        raise ConfigError("[connectors] must be a table of tables")
    connectors = {name: _connector_section(name, v) for name, v in connectors_data.items()}
    resilience = data.get("resilience", {})
    if not isinstance(resilience, dict):
        raise ConfigError("[resilience] must be a table")
    return Settings(**sections, connectors=connectors, resilience=resilience)
