"""Account categories checked against DXtrade's own list before any write.

``GET /api/register/category`` lists every category domain with its allowed values
(B3, observed D4: ``[{category, values: [{value}]}]``).  A new account's categories are
checked against it, so a value DXtrade does not have is ``InvalidInput`` on
``options.categories`` and nothing is written.  The list is read once and kept for
``category_cache_seconds`` (one read per connector and period, never one per
request); a value added in DXtrade's back office is accepted once it expires.  A host
that serves no such list (404, 405 or 400 there) leaves only the documented domains
(B6) to check against, values unchecked: DXtrade judges those on create.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

from brokergraph_dxtrade.client import DXWEB
from brokergraph_dxtrade.connector._base import DxTradeBase
from brokergraph_dxtrade.connector._options import invalid_option
from gateway.contract import BrokerGraphError, ProtocolError

__all__ = ["CATEGORY_LIST", "DOCUMENTED_DOMAINS", "Catalogue", "CategoriesMixin", "parse_catalogue"]

CATEGORY_LIST = "/api/register/category"
#: The category domains the vendor facts name (B6: observed D4; ``TRADE_TYPE`` verified
#: D2): the check on a host without the list.
DOCUMENTED_DOMAINS = frozenset(
    {
        "Internal",
        "Commissions",
        "AutoExecution",
        "Limits",
        "Financing",
        "Margining",
        "Trading",
        "Spreads",
        "immediateConversion",
        "STAKE_TYPE",
        "ProprietaryTrading",
        "TRADE_TYPE",
    }
)
#: What a host without the list answers there: nothing to check against.
NO_LIST = frozenset({400, 404, 405})

#: Domain -> allowed values.
Catalogue = Mapping[str, frozenset[str]]


def _listing(names: Sequence[str] | frozenset[str], most: int = 20) -> str:
    ordered = sorted(names)
    more = f" and {len(ordered) - most} more" if len(ordered) > most else ""
    return ", ".join(ordered[:most]) + more


def parse_catalogue(body: Any) -> dict[str, frozenset[str]]:
    """``[{category, values: [{value}]}]`` as domain -> values."""
    if not isinstance(body, list):
        raise ProtocolError("DXtrade's category list is not a list")
    catalogue: dict[str, frozenset[str]] = {}
    for item in body:
        if not isinstance(item, Mapping) or not isinstance(item.get("category"), str):
            raise ProtocolError("DXtrade's category list holds an entry without a category")
        values = item.get("values") or []
        catalogue[item["category"]] = frozenset(
            str(v.get("value")) for v in values if isinstance(v, Mapping) and "value" in v
        )
    return catalogue


class CategoriesMixin(DxTradeBase):
    _catalogue: tuple[float, Catalogue | None] | None = None
    _catalogue_lock: asyncio.Lock | None = None

    async def _category_catalogue(self) -> Catalogue | None:
        """DXtrade's category list (None: this host serves none), read at most once per
        ``category_cache_seconds``; concurrent first checks share one read."""
        if self._catalogue_lock is None:
            self._catalogue_lock = asyncio.Lock()
        async with self._catalogue_lock:
            kept, ttl = self._catalogue, self.settings.category_cache_seconds
            if kept is not None and time.monotonic() - kept[0] < ttl:
                return kept[1]
            try:
                body = (await self.client.get(DXWEB, CATEGORY_LIST, what="category list")).body
            except BrokerGraphError as error:
                if error.details.get("status") not in NO_LIST:
                    raise
                catalogue: Catalogue | None = None
            else:
                catalogue = parse_catalogue(body)
            self._catalogue = (time.monotonic(), catalogue)
            return catalogue

    async def _check_categories(self, categories: Sequence[Mapping[str, str]]) -> None:
        """Each category a domain DXtrade has and a value it allows (no write before)."""
        if not categories:
            return
        catalogue = await self._category_catalogue()
        for item in categories:
            domain, value = item["category"], item["value"]
            if catalogue is None:
                if domain not in DOCUMENTED_DOMAINS:
                    raise invalid_option(
                        f"DXtrade documents no category {domain!r}; it has "
                        f"{_listing(DOCUMENTED_DOMAINS)}",
                        "categories",
                    )
                continue
            allowed = catalogue.get(domain)
            if allowed is None:
                raise invalid_option(
                    f"DXtrade has no category {domain!r}; it has {_listing(list(catalogue))}",
                    "categories",
                )
            if value not in allowed:
                raise invalid_option(
                    f"DXtrade's category {domain} takes {_listing(allowed)}, not {value!r}",
                    "categories",
                )
