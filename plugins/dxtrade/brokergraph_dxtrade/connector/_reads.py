"""ACCOUNT_READS and ACCOUNT_HISTORY: dxweb reads one user/account per call, dxsca-web
reads many accounts' metrics and positions in one call."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

from brokergraph_dxtrade.client import segment
from brokergraph_dxtrade.connector._base import DxTradeBase, items_of
from brokergraph_dxtrade.mapping import (
    account_id,
    account_model,
    deals_of_order,
    iso,
    parse_account_id,
    position_model,
    trader_model,
)
from gateway.contract import (
    Account,
    AccountHistory,
    AccountReads,
    BalanceOperation,
    Deal,
    Position,
    Trader,
    read,
)

__all__ = ["DxTradeReads"]


class DxTradeReads(DxTradeBase, AccountReads, AccountHistory):
    """Traders, accounts (with live money), positions, balance operations and deals."""

    async def get_traders(self, trader_ids: Sequence[str]) -> Sequence[Trader | None]:
        clients = await self._each(trader_ids, self._client_or_none)
        return [None if c is None else trader_model(c) for c in clients]

    async def get_accounts(self, account_ids: Sequence[str]) -> Sequence[Account | None]:
        found = await self._each(account_ids, self._account_or_none)
        present = [i for i, a in zip(account_ids, found, strict=True) if a is not None]
        metrics = await self._metrics(list(dict.fromkeys(present)))
        owners = await asyncio.gather(*(self._owner(i) for i in account_ids))
        return [
            None if a is None else account_model(a, owner=o, metrics=metrics.get(i))
            for i, a, o in zip(account_ids, found, owners, strict=True)
        ]

    async def get_trader_accounts(self, trader_ids: Sequence[str]) -> Sequence[Sequence[Account]]:
        clients = await self._each(trader_ids, self._client_or_none)
        per_trader = [[] if c is None else await self._accounts_of(c) for c in clients]
        ids = [account_id(a["clearingCode"], a["accountCode"]) for one in per_trader for a in one]
        metrics = await self._metrics(list(dict.fromkeys(ids)))
        result: list[list[Account]] = []
        for tid, accounts in zip(trader_ids, per_trader, strict=True):
            models = []
            for a in accounts:
                aid = account_id(a["clearingCode"], a["accountCode"])
                models.append(account_model(a, owner=tid, metrics=metrics.get(aid)))
            result.append(models)
        return result

    async def get_positions(self, account_ids: Sequence[str]) -> Sequence[Sequence[Position]]:
        valid = list(dict.fromkeys(i for i in account_ids if parse_account_id(i) is not None))
        grouped: dict[str, list[Position]] = {}
        for body in await self._batched(valid, "/accounts/positions", "positions"):
            for p in items_of(body, "positions"):
                position = position_model(p)
                grouped.setdefault(position.account_id, []).append(position)
        return [grouped.get(i, []) for i in account_ids]

    # -- ACCOUNT_HISTORY ----------------------------------------------------------------

    async def get_balance_operations(
        self, account_id: str, start: datetime, end: datetime
    ) -> Sequence[BalanceOperation]:
        operations, _ = await self._balance_operations(account_id, start, end)
        return operations

    @read
    async def find_movement(
        self, account_id: str, idempotency_key: str, since: datetime
    ) -> BalanceOperation | None:
        """The deposit or withdrawal DXtrade holds under ``idempotency_key``, or None.

        The gateway settles a write whose answer was lost with this read: the key is
        the client-generated id of the cash PUT, which DXtrade keeps as the transfer's
        ``transferCode`` (B3/B4, observed).  Nothing relies on DXtrade deduping a
        repeated id (only inferred): the gateway re-sends only a transfer found absent,
        and so does the connector itself (``_funding``).
        """
        return await self._find_cash(account_id, idempotency_key, since)

    async def get_deals(self, account_id: str, start: datetime, end: datetime) -> Sequence[Deal]:
        self._account_parts(account_id)
        response = await self._read_account(
            account_id,
            f"/accounts/{segment(account_id)}/orders/history",
            "account",
            {"in-status": "COMPLETED", "completed-from": iso(start), "completed-to": iso(end)},
        )
        deals = [d for o in items_of(response.body, "orders") for d in deals_of_order(o)]
        return sorted(
            (d for d in deals if start <= d.executed_at < end), key=lambda d: d.executed_at
        )
