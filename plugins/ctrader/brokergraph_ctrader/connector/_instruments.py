"""INSTRUMENTS from WebServices' symbol list (6.1, verified): a symbol's name and asset
class — and nothing else a client could check an order against, because 6.1 carries
no tick size, contract or lot size, quantity bounds or trading hours: those stay None
(the analytics' lot sizes are an inferred table, not cTrader data, so they are not
offered here).  The list is the broker's, the same for every account; it is read
through the analytics' cached read (one 6.1 call per ``symbols_cache_seconds``), after
one account read that makes an unknown account NOT_FOUND.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from brokergraph_ctrader.connector._reads import ReadsMixin
from brokergraph_ctrader.connector._symbols import SymbolsMixin
from gateway.contract import Instrument, InstrumentReads, NotFound, UpstreamCost

__all__ = ["InstrumentsMixin"]


class InstrumentsMixin(ReadsMixin, SymbolsMixin, InstrumentReads):
    def upstream_costs(self) -> Mapping[str, UpstreamCost]:
        # The account read, and the symbol list when its cache has lapsed.
        return {**super().upstream_costs(), "get_instruments": UpstreamCost(calls=2)}

    async def get_instruments(
        self, account_id: str, symbols: Sequence[str] | None
    ) -> Sequence[Instrument]:
        (account,) = await self.get_accounts([account_id])
        if account is None:
            raise NotFound(f"no cTrader account {account_id!r}", details={"platform": "ctrader"})
        classes = await self._symbol_classes()
        names = sorted(classes) if symbols is None else [s for s in symbols if s in classes]
        return [
            Instrument(platform="ctrader", symbol=name, kind=classes[name].asset_class)
            for name in names
        ]
