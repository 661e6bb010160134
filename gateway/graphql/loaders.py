"""Per-operation DataLoaders: batch by platform, dedupe, and read through the cache.

Every upstream read of a resolver takes one road: resolver → loader (here) →
gateway cache, for the TTL the connector declares for that capability (none when
it declares none) → :meth:`ConnectorRegistry.require` → the connector behind its
guards (breaker, rate limit, timeout, retries by the method's read mark).

One loader call per (platform, capability) per tick of the event loop: a query
for 50 accounts with their positions makes one ``get_accounts`` and one
``get_positions`` call per platform, whatever the shape of the query.  Reads with
arguments (a period of deals, a plugin's own field) go through :meth:`Loaders.read`,
deduplicated per operation and cached under their arguments.

Across requests, every read goes through :class:`~gateway.cache.SingleFlight`, the
helper a connector's ``context.reads`` uses too: a read of a key another request
is already fetching in this process joins that fetch.  Keys are the data's
(kind, platform, ids, period), not the viewer's: resolvers check the viewer's
access to an account, trader or partner *before* asking a loader for its data, so
what a loader returns for a key is the same for every viewer allowed to ask, and
viewers who may see it share one fetch.

Each read that reaches a platform first takes one call from the viewer's budget of
upstream calls (``[limits] upstream_calls_per_viewer_*``): the loaders name their
viewer as the :data:`~gateway.resilience.upstream_payer` of the reads they start,
and a connector's sub-reads inherit it.  A spent budget answers RATE_LIMITED with
``retryAfter`` before the vendor is called; cache hits and joined reads are free.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar, cast
from urllib.parse import quote
from weakref import WeakKeyDictionary

from strawberry.dataloader import DataLoader

from gateway.auth import Viewer
from gateway.cache._keys import cache_key
from gateway.cache._shared_reads import SingleFlight
from gateway.connectors import (
    AccountAnalyticsReads,
    AccountHistory,
    AccountReads,
    Capability,
    ClientReports,
    MarketDataEntitlements,
    OrderReads,
    PartnerDirectory,
)
from gateway.http._client_limits import ViewerBudgets
from gateway.models import (
    Account,
    AccountAnalytics,
    BalanceOperation,
    BusinessPartner,
    ClientReport,
    Deal,
    MarketDataSubscription,
    Order,
    Position,
    Trader,
    ensure_utc,
)
from gateway.registry import ConnectorRegistry
from gateway.resilience import UpstreamPayer, upstream_payer
from gateway.services import GatewayServices
from gateway.store import Link, PartnerRecord

__all__ = [
    "ACCOUNT_PERIOD_KINDS",
    "Loaders",
    "PlatformKey",
    "account_period_prefixes",
    "cache_key",
    "period_key",
    "upstream_budgets",
]

F = TypeVar("F")
V = TypeVar("V")
PlatformKey = tuple[str, str]
Fetch = Callable[[str, list[str]], Awaitable[Sequence[V]]]

#: Kinds of the cached period reads of one account (the first part of their keys).
ACCOUNT_PERIOD_KINDS = ("deals", "balance-operations", "analytics")


def period_key(account_id: str, start: datetime, end: datetime) -> str:
    """The ``native_id`` part of the cache key of a read of one account over a period.

    The account id is quoted so that its own ``:`` cannot run into the period, which
    keeps :func:`account_period_prefixes` exact.
    """
    period = f"{ensure_utc(start).isoformat()}:{ensure_utc(end).isoformat()}"
    return f"{quote(account_id, safe='')}:{period}"


def account_period_prefixes(platform: str, account_id: str) -> list[str]:
    """Cache-key prefixes of every cached period read of one account.

    A write that changes the account's history (money movement, fill) makes these
    stale: delete them with ``cache.delete_prefix``.
    """
    return [
        cache_key(kind, platform, f"{quote(account_id, safe='')}:") for kind in ACCOUNT_PERIOD_KINDS
    ]


#: The budgets of upstream calls of each gateway in this process, by its registry.
_BUDGETS: WeakKeyDictionary[ConnectorRegistry, ViewerBudgets] = WeakKeyDictionary()


def upstream_budgets(services: GatewayServices) -> ViewerBudgets:
    """The viewers' budgets of upstream calls of ``services``' connectors: one per
    gateway, in Redis for the whole cluster when the cache is Redis."""
    budgets = _BUDGETS.get(services.registry)
    if budgets is None:
        limits = services.settings.limits
        budgets = _BUDGETS[services.registry] = ViewerBudgets(
            limits.upstream_calls_per_viewer_per_second,
            limits.upstream_calls_per_viewer_burst,
            shared=services.shared_redis,
            prefix=f"{services.settings.cluster.namespace}:upstream-budget:",
            refusal="this client's budget of upstream calls is spent",
        )
    return budgets


@dataclass(frozen=True, slots=True)
class _Read(Generic[F, V]):
    """One keyed read; two reads with the same kind, platform and key are the same read."""

    kind: str
    platform: str
    key: str
    capability: Capability = field(compare=False)
    family: type[F] = field(compare=False)
    fetch: Callable[[F], Awaitable[V]] = field(compare=False)


class Loaders:
    """The loaders of one GraphQL operation (created per HTTP request / subscription)."""

    def __init__(
        self, services: GatewayServices, *, cache: bool = True, viewer: Viewer | None = None
    ) -> None:
        self._services = services
        budgets = upstream_budgets(services)
        #: Who pays the upstream calls of this operation's reads (None: nobody).
        self._payer: UpstreamPayer | None = None
        if viewer is not None and budgets.enabled:
            self._payer = budgets.payer(f"{viewer.role.value}:{viewer.subject}")
        self._cache = cache
        # Partners a mutation changed: their next detail read skips the gateway cache.
        self._changed_partners: set[str] = set()

    # Each loader is made on first use: an operation touches one or two of them, and
    # making all of them cost a tenth of a warm read.

    @functools.cached_property
    def partners(self) -> DataLoader[str, PartnerRecord | None]:
        return DataLoader(self._load_partners, cache=self._cache)

    @functools.cached_property
    def partner_details(self) -> DataLoader[str, BusinessPartner | None]:
        return DataLoader(self._load_partner_details, cache=self._cache)

    @functools.cached_property
    def partner_links(self) -> DataLoader[tuple[str, str], list[Link]]:
        # Links resolve together so that sibling fields' upstream reads land in one batch.
        return DataLoader(self._load_partner_links, cache=self._cache)

    @functools.cached_property
    def account_owners(self) -> DataLoader[PlatformKey, str | None]:
        return DataLoader(self._owners("account"), cache=self._cache)

    @functools.cached_property
    def trader_owners(self) -> DataLoader[PlatformKey, str | None]:
        return DataLoader(self._owners("trader"), cache=self._cache)

    @functools.cached_property
    def _keyed(self) -> DataLoader[_Read[Any, Any], Any]:
        return DataLoader(self._load_keyed, cache=self._cache)

    def _reads(self, platform: str) -> AccountReads:
        return self._services.registry.require(platform, Capability.ACCOUNT_READS, AccountReads)

    @functools.cached_property
    def accounts(self) -> DataLoader[PlatformKey, Account | None]:
        return self._platform_loader(
            "account",
            Capability.ACCOUNT_READS,
            lambda p, ids: self._reads(p).get_accounts(ids),
            self._cache,
        )

    @functools.cached_property
    def traders(self) -> DataLoader[PlatformKey, Trader | None]:
        return self._platform_loader(
            "trader",
            Capability.ACCOUNT_READS,
            lambda p, ids: self._reads(p).get_traders(ids),
            self._cache,
        )

    @functools.cached_property
    def trader_accounts(self) -> DataLoader[PlatformKey, Sequence[Account]]:
        return self._platform_loader(
            "trader-accounts",
            Capability.ACCOUNT_READS,
            lambda p, ids: self._reads(p).get_trader_accounts(ids),
            self._cache,
        )

    @functools.cached_property
    def positions(self) -> DataLoader[PlatformKey, Sequence[Position]]:
        return self._platform_loader(
            "positions",
            Capability.ACCOUNT_READS,
            lambda p, ids: self._reads(p).get_positions(ids),
            self._cache,
        )

    @functools.cached_property
    def orders(self) -> DataLoader[PlatformKey, Sequence[Order]]:
        registry = self._services.registry
        return self._platform_loader(
            "orders",
            Capability.ORDER_READS,
            lambda p, ids: registry.require(p, Capability.ORDER_READS, OrderReads).get_orders(ids),
            self._cache,
        )

    @functools.cached_property
    def market_data_subscriptions(
        self,
    ) -> DataLoader[PlatformKey, Sequence[MarketDataSubscription]]:
        registry = self._services.registry
        return self._platform_loader(
            "md-subscriptions",
            Capability.MARKET_DATA_ENTITLEMENTS,
            lambda p, ids: registry.require(
                p, Capability.MARKET_DATA_ENTITLEMENTS, MarketDataEntitlements
            ).get_market_data_subscriptions(ids),
            self._cache,
        )

    async def read(
        self,
        platform: str,
        capability: Capability,
        family: type[F],
        kind: str,
        key: str,
        fetch: Callable[[F], Awaitable[V]],
    ) -> V:
        """One upstream read on the gateway's road, for core and plugin fields alike.

        ``fetch`` gets the platform's connector as ``family`` behind its guards
        (``family`` is ``capability``'s family class, or the plugin's connector class
        for its own methods marked ``read``) and makes the read.  The read is made
        once per operation for one ``(kind, platform, key)`` — ``key`` must therefore
        identify every argument ``fetch`` passes — and cached under
        ``cache_key(kind, platform, key)`` for the TTL the connector declares for
        ``capability``.  A ``None`` result is not cached.
        """
        return cast(
            V, await self._keyed.load(_Read(kind, platform, key, capability, family, fetch))
        )

    async def deals(
        self, platform: str, account_id: str, start: datetime, end: datetime
    ) -> Sequence[Deal]:
        return await self.read(
            platform,
            Capability.ACCOUNT_HISTORY,
            AccountHistory,
            "deals",
            period_key(account_id, start, end),
            lambda history: history.get_deals(account_id, start, end),
        )

    async def balance_operations(
        self, platform: str, account_id: str, start: datetime, end: datetime
    ) -> Sequence[BalanceOperation]:
        return await self.read(
            platform,
            Capability.ACCOUNT_HISTORY,
            AccountHistory,
            "balance-operations",
            period_key(account_id, start, end),
            lambda history: history.get_balance_operations(account_id, start, end),
        )

    async def analytics(
        self, platform: str, account_id: str, start: datetime, end: datetime
    ) -> AccountAnalytics:
        return await self.read(
            platform,
            Capability.ACCOUNT_ANALYTICS,
            AccountAnalyticsReads,
            "analytics",
            period_key(account_id, start, end),
            lambda reader: reader.get_analytics(account_id, start, end),
        )

    async def reports(self, platform: str, partner_code: str) -> Sequence[ClientReport]:
        return await self.read(
            platform,
            Capability.CLIENT_REPORTS,
            ClientReports,
            "reports",
            partner_code,
            lambda reports: reports.get_reports(partner_code),
        )

    def forget_partner(self, code: str) -> None:
        """Drop what this operation loaded about a partner (after a mutation changed it).

        Its cached details are dropped by its next detail read, which a mutation
        answering with the partner makes at once.
        """
        for loader in (self.partners, self.partner_details):
            with contextlib.suppress(KeyError):  # DataLoader.clear raises for unknown keys
                loader.clear(code)
        for kind in ("trader", "account"):
            with contextlib.suppress(KeyError):
                self.partner_links.clear((code, kind))
        self._changed_partners.add(code)

    def forget_reads(self) -> None:
        """Drop every read this operation made so far (a mutation has just written).

        Mutations of one request run one after the other and share these loaders: the
        next field, the write's own payload included, must not answer what was read
        before the write.  Partners marked changed stay marked.
        """
        made = vars(self)
        for name in _LOADER_NAMES:
            loader = made.get(name)  # one never used holds nothing (and is not made now)
            if loader is not None:
                loader.clear_all()

    async def _load_partners(self, codes: list[str]) -> list[PartnerRecord | None]:
        return await self._services.store.get_partners(codes)

    async def _load_partner_links(self, keys: list[tuple[str, str]]) -> list[list[Link]]:
        store = self._services.store
        return list(
            await asyncio.gather(*(store.links_of_partner(code, kind=kind) for code, kind in keys))
        )

    async def _load_partner_details(self, codes: list[str]) -> Sequence[BusinessPartner | None]:
        registry = self._services.registry
        platforms = registry.platforms_with(Capability.PARTNER_DIRECTORY)
        if not platforms:
            return [None] * len(codes)
        platform = platforms[0]
        changed = self._changed_partners.intersection(codes)

        async def fetch(platform: str, codes: list[str]) -> Sequence[BusinessPartner | None]:
            directory = registry.require(platform, Capability.PARTNER_DIRECTORY, PartnerDirectory)
            return await directory.get_partners(codes)

        if changed:
            self._changed_partners -= changed
            await self._services.cache.delete(*(cache_key("partner", platform, c) for c in changed))
            # Straight from the platform: a read in flight may have started before the change.
            # What it answers is the freshest there is: cache it for the next request.
            fresh = await fetch(platform, codes)
            ttl = registry.require_any(platform).cache_ttl_seconds.get(
                Capability.PARTNER_DIRECTORY, 0
            )
            if ttl > 0:
                await asyncio.gather(
                    *(
                        self._services.cache.set(cache_key("partner", platform, code), value, ttl)
                        for code, value in zip(codes, fresh, strict=True)
                        if value is not None
                    )
                )
            return fresh
        return await self._cached("partner", Capability.PARTNER_DIRECTORY, fetch)(platform, codes)

    async def _load_keyed(self, reads: list[_Read[Any, Any]]) -> list[Any]:
        registry = self._services.registry

        async def one(read: _Read[Any, Any]) -> Any:
            async def fetch(platform: str, keys: list[str]) -> Sequence[Any]:
                return [await read.fetch(registry.require(platform, read.capability, read.family))]

            try:
                (value,) = await self._cached(read.kind, read.capability, fetch)(
                    read.platform, [read.key]
                )
            except Exception as error:  # the DataLoader raises it for this read only
                return error
            return value

        return list(await asyncio.gather(*(one(read) for read in reads)))

    def _owners(self, kind: str) -> Callable[[list[PlatformKey]], Awaitable[list[Any]]]:
        store = self._services.store

        async def fetch(platform: str, ids: list[str]) -> Sequence[str | None]:
            return await store.owners(platform, kind, ids)

        return _grouped(fetch)

    def _platform_loader(
        self, kind: str, capability: Capability, fetch: Fetch[V], cache: bool
    ) -> DataLoader[PlatformKey, V]:
        return DataLoader(_grouped(self._cached(kind, capability, fetch)), cache=cache)

    def _cached(self, kind: str, capability: Capability, fetch: Fetch[V]) -> Fetch[V]:
        """``fetch`` on the read road (cache, shared flights, the viewer's budget): ``ids``
        are the ``native_id`` parts of the keys (object ids for batched reads,
        :func:`period_key` or a plugin's key for keyed ones).
        """
        services = self._services
        flights = SingleFlight.of(services.cache)
        payer = self._payer

        async def load(platform: str, ids: list[str]) -> Sequence[V]:
            connector = services.registry.require_any(platform)
            ttl = max(connector.cache_ttl_seconds.get(capability, 0), 0)
            keys = [cache_key(kind, platform, native_id) for native_id in ids]

            async def some(indexes: list[int]) -> Sequence[V]:
                return await fetch(platform, [ids[i] for i in indexes])

            named = upstream_payer.set(payer)  # inherited by the fetch's task
            try:
                return await flights.read(keys, some, ttl=ttl)
            finally:
                upstream_payer.reset(named)

        return load


#: Every loader of :class:`Loaders` (each a cached property, made on first use).
_LOADER_NAMES = tuple(
    name for name, member in vars(Loaders).items() if isinstance(member, functools.cached_property)
)


def _grouped(fetch: Fetch[V]) -> Callable[[list[PlatformKey]], Awaitable[list[Any]]]:
    """A DataLoader batch function that makes one ``fetch`` per platform, concurrently."""

    async def load(keys: list[PlatformKey]) -> list[Any]:
        groups: dict[str, list[int]] = defaultdict(list)
        for index, (platform, _) in enumerate(keys):
            groups[platform].append(index)
        results: list[Any] = [None] * len(keys)

        async def run(platform: str, indexes: list[int]) -> None:
            try:
                values: Sequence[Any] = await fetch(platform, [keys[i][1] for i in indexes])
                if len(values) != len(indexes):
                    raise RuntimeError(f"{platform} returned {len(values)} of {len(indexes)}")
            except Exception as error:  # each key of the batch carries the error
                values = [error] * len(indexes)
            for i, value in zip(indexes, values, strict=True):
                results[i] = value

        if len(groups) == 1:  # the usual batch: no task of its own needed
            ((platform, indexes),) = groups.items()
            await run(platform, indexes)
        else:
            await asyncio.gather(*(run(p, indexes) for p, indexes in groups.items()))
        return results

    return load
