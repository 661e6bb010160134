"""The symbol list (6.1) as the analytics need it: each symbol's category and asset
class, read once per ``symbols_cache_seconds`` on the gateway's road of reads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from brokergraph_ctrader.analytics import SymbolClass
from brokergraph_ctrader.connector._base import CTraderBase
from gateway.contract import ProtocolError

SYMBOLS = "/v2/webserv/symbols"
#: The kind (and key) of the symbol list on the road of reads: one entry for the
#: whole list, shared by every account's analytics and every request.
HELD_SYMBOLS, ALL = "ctrader-symbols", "all"


def symbol_classes(data: Any) -> dict[str, SymbolClass]:
    """Symbol name -> its category and asset class, from 6.1's ``{"symbol": [...]}``.

    A symbol without a name is skipped; one without a category or asset class keeps
    ``None`` there (it is then ranked unclassified, never guessed)."""
    items = data.get("symbol") if isinstance(data, dict) else None
    if items is None and isinstance(data, dict):
        items = []
    if not isinstance(items, list):
        raise ProtocolError("cTrader's symbols answer is not a list")
    classes: dict[str, SymbolClass] = {}
    for item in items:
        if not isinstance(item, dict):
            raise ProtocolError("cTrader's symbols answer holds a non-object")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            continue
        classes[name] = SymbolClass(_text(item.get("category")), _text(item.get("assetClass")))
    return classes


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


class SymbolsMixin(CTraderBase):
    async def _symbol_classes(self) -> Mapping[str, SymbolClass]:
        """The cached symbol list (one 6.1 call per TTL whoever asks)."""

        async def fetch() -> dict[str, SymbolClass]:
            return symbol_classes(await self.client.get(SYMBOLS))

        ttl = max(self.settings.symbols_cache_seconds, 0.0)
        return await self.context.reads.read(HELD_SYMBOLS, ALL, fetch, ttl=ttl)
