"""Per-operation DataLoaders: batch by platform, dedupe, and read through the cache.

One loader call per (platform, capability) per tick of the event loop: a query
for 50 accounts with their positions makes one ``get_accounts`` and one
``get_positions`` call per platform, whatever the shape of the query.  Entries
are cached for the TTL the connector declares for that capability (none when it
declares none); the data is not viewer-scoped because access is checked before
any loader is asked.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

from strawberry.dataloader import DataLoader

from gateway.connectors import (
    AccountReads,
    Capability,
    MarketDataEntitlements,
    OrderReads,
    PartnerDirectory,
)
from gateway.models import Account, BusinessPartner, MarketDataSubscription, Order, Position, Trader
from gateway.services import GatewayServices
from gateway.store import Link, PartnerRecord

__all__ = ["Loaders", "PlatformKey", "cache_key"]

V = TypeVar("V")
PlatformKey = tuple[str, str]
Fetch = Callable[[str, list[str]], Awaitable[Sequence[V]]]


def cache_key(kind: str, platform: str, native_id: str) -> str:
    """The cache key of one object read; mutations delete the keys they change."""
    return f"{kind}:{platform}:{native_id}"


class Loaders:
    """The loaders of one GraphQL operation (created per HTTP request / subscription)."""

    def __init__(self, services: GatewayServices, *, cache: bool = True) -> None:
        self._services = services
        registry = services.registry
        self.partners: DataLoader[str, PartnerRecord | None] = DataLoader(
            self._load_partners, cache=cache
        )
        self.partner_details: DataLoader[str, BusinessPartner | None] = DataLoader(
            self._load_partner_details, cache=cache
        )
        # Links resolve together so that sibling fields' upstream reads land in one batch.
        self.partner_links: DataLoader[tuple[str, str], list[Link]] = DataLoader(
            self._load_partner_links, cache=cache
        )
        self.account_owners: DataLoader[PlatformKey, str | None] = DataLoader(
            self._owners("account"), cache=cache
        )
        self.trader_owners: DataLoader[PlatformKey, str | None] = DataLoader(
            self._owners("trader"), cache=cache
        )

        def reads(platform: str) -> AccountReads:
            return registry.require(platform, Capability.ACCOUNT_READS, AccountReads)

        self.accounts: DataLoader[PlatformKey, Account | None] = self._platform_loader(
            "account",
            Capability.ACCOUNT_READS,
            lambda p, ids: reads(p).get_accounts(ids),
            cache,
        )
        self.traders: DataLoader[PlatformKey, Trader | None] = self._platform_loader(
            "trader",
            Capability.ACCOUNT_READS,
            lambda p, ids: reads(p).get_traders(ids),
            cache,
        )
        self.trader_accounts: DataLoader[PlatformKey, Sequence[Account]] = self._platform_loader(
            "trader-accounts",
            Capability.ACCOUNT_READS,
            lambda p, ids: reads(p).get_trader_accounts(ids),
            cache,
        )
        self.positions: DataLoader[PlatformKey, Sequence[Position]] = self._platform_loader(
            "positions",
            Capability.ACCOUNT_READS,
            lambda p, ids: reads(p).get_positions(ids),
            cache,
        )
        self.orders: DataLoader[PlatformKey, Sequence[Order]] = self._platform_loader(
            "orders",
            Capability.ORDER_READS,
            lambda p, ids: registry.require(p, Capability.ORDER_READS, OrderReads).get_orders(ids),
            cache,
        )
        self.market_data_subscriptions: DataLoader[
            PlatformKey, Sequence[MarketDataSubscription]
        ] = self._platform_loader(
            "md-subscriptions",
            Capability.MARKET_DATA_ENTITLEMENTS,
            lambda p, ids: registry.require(
                p, Capability.MARKET_DATA_ENTITLEMENTS, MarketDataEntitlements
            ).get_market_data_subscriptions(ids),
            cache,
        )

    def forget_partner(self, code: str) -> None:
        """Drop what this operation loaded about a partner (after a mutation changed it)."""
        for loader in (self.partners, self.partner_details):
            with contextlib.suppress(KeyError):  # DataLoader.clear raises for unknown keys
                loader.clear(code)
        for kind in ("trader", "account"):
            with contextlib.suppress(KeyError):
                self.partner_links.clear((code, kind))

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
        directory = registry.require(platforms[0], Capability.PARTNER_DIRECTORY, PartnerDirectory)
        return await directory.get_partners(codes)

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
        services = self._services

        async def load(platform: str, ids: list[str]) -> Sequence[V]:
            connector = services.registry.require_any(platform)
            ttl = connector.cache_ttl_seconds.get(capability, 0)
            if ttl <= 0:
                return await fetch(platform, ids)
            cache = services.cache
            keys = [cache_key(kind, platform, native_id) for native_id in ids]
            cached = await asyncio.gather(*(cache.get(key) for key in keys))
            missing = [i for i, value in enumerate(cached) if value is None]
            if missing:
                fetched = await fetch(platform, [ids[i] for i in missing])
                for i, value in zip(missing, fetched, strict=True):
                    cached[i] = value
                await asyncio.gather(
                    *(cache.set(keys[i], cached[i], ttl) for i in missing if cached[i] is not None)
                )
            return cast(Sequence[V], cached)

        return load


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

        await asyncio.gather(*(run(platform, indexes) for platform, indexes in groups.items()))
        return results

    return load
