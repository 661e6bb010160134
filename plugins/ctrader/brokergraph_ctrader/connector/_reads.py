"""ACCOUNT_READS: accounts, traders, positions and Copy sub-accounts."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from brokergraph_ctrader.connector._base import EPOCH, TRADERS, CTraderBase, _login_of, _now
from brokergraph_ctrader.connector._batch import KeyBatcher
from brokergraph_ctrader.csvwire import OpenPositionRow, format_timestamp, parse_open_positions
from brokergraph_ctrader.records import trader_from_record
from brokergraph_ctrader.wire import epoch_ms, position_from_row
from gateway.contract import (
    Account,
    AccountReads,
    Capability,
    CopySubAccount,
    NotFound,
    Position,
    ProtocolError,
    Trader,
    read,
)

MAX_LIST_PAGES = 100
#: The kinds under which the gateway's loaders keep an account, its open positions
#: and (this plugin's field) its Copy sub-accounts, keyed by the account id
#: (``gateway.graphql.loaders``, ``brokergraph_ctrader.schema``).  The analytics and
#: deals reads ask ``context.reads`` for the same entries, so what a batched loader
#: of the same query holds (or is fetching) is reused, never read again.
HELD_ACCOUNT, HELD_POSITIONS = "account", "positions"
HELD_SUB_ACCOUNTS = "ctrader-copy-sub-accounts"


class ReadsMixin(CTraderBase, AccountReads):
    async def _list_traders(self) -> list[dict[str, Any]]:
        """Every trader the manager sees (4.3), paging backwards while ``hasMore``."""
        upper = _now() + timedelta(days=1)
        traders: list[dict[str, Any]] = []
        for _ in range(MAX_LIST_PAGES):
            params = {"from": format_timestamp(EPOCH), "to": format_timestamp(upper)}
            data = await self.client.get(f"{TRADERS}/", params)
            if not isinstance(data, dict):
                raise ProtocolError("cTrader answered the trader list without an object")
            page = data.get("trader") or []
            if not isinstance(page, list):
                raise ProtocolError("cTrader's trader list is not a list")
            traders.extend(t for t in page if isinstance(t, dict))
            # epoch_ms bounds and types the value (a huge or non-numeric one is a ProtocolError)
            stamps = [
                stamp
                for t in page
                if isinstance(t, dict)
                and (stamp := epoch_ms(t.get("registrationTimestamp"), "registrationTimestamp"))
            ]
            if not data.get("hasMore") or not stamps:
                break
            earliest = min(stamps)
            if earliest >= upper:
                break  # no progress: never loop on a server that ignores `to`
            upper = earliest
        return traders

    async def _traders_by_login(self, logins: Sequence[str]) -> dict[str, dict[str, Any]]:
        if len(logins) <= self.settings.single_read_limit:

            async def one(login: str) -> dict[str, Any] | None:
                try:
                    return await self._trader_json(login)
                except NotFound:
                    return None

            found = await asyncio.gather(*(one(login) for login in logins))
            return {login: data for login, data in zip(logins, found, strict=True) if data}
        wanted = set(logins)
        result: dict[str, dict[str, Any]] = {}
        for data in await self._list_traders():
            login = str(data.get("login"))
            if login in wanted:
                result[login] = data
        return result

    async def get_accounts(self, account_ids: Sequence[str]) -> Sequence[Account | None]:
        logins = [login for login in dict.fromkeys(map(_login_of, account_ids)) if login]
        if not logins:
            return [None] * len(account_ids)
        by_login, trader_ids = await asyncio.gather(
            self._traders_by_login(logins), self._account_trader_ids(logins)
        )
        accounts = {
            login: self._account(data, trader_ids.get(login)) for login, data in by_login.items()
        }
        return [accounts.get(_login_of(i) or "") for i in account_ids]

    async def get_traders(self, trader_ids: Sequence[str]) -> Sequence[Trader | None]:
        ids = [i for i in dict.fromkeys(trader_ids) if _login_of(i) == i]
        records = await asyncio.gather(*(self._user_record(i) for i in ids))
        known = {i: r for i, r in zip(ids, records, strict=True) if r is not None}
        rest = [i for i in ids if i not in known]
        linked = set()
        if rest:
            owners = await self.context.store.owners(self.platform, "trader", rest)
            linked = {i for i, owner in zip(rest, owners, strict=True) if owner is not None}
        found: dict[str, Trader] = {
            i: trader_from_record(self.platform, i, known.get(i))
            for i in ids
            if i in known or i in linked
        }
        return [found.get(i) for i in trader_ids]

    async def get_trader_accounts(self, trader_ids: Sequence[str]) -> Sequence[Sequence[Account]]:
        ids = [i for i in dict.fromkeys(trader_ids) if _login_of(i) == i]
        logins_of = await self._user_logins(ids) if ids else {}
        everything = list(dict.fromkeys(login for ls in logins_of.values() for login in ls))
        found = await self.get_accounts(everything) if everything else []
        by_login = {a.id: a for a in found if a is not None}
        result: list[list[Account]] = []
        for trader_id in trader_ids:
            accounts = [
                dataclasses.replace(by_login[login], trader_id=trader_id)
                if by_login[login].trader_id is None
                else by_login[login]
                for login in logins_of.get(trader_id, [])
                if login in by_login
            ]
            result.append(accounts)
        return result

    async def _open_rows(self, login: str | None = None) -> list[OpenPositionRow]:
        params = {"login": login} if login is not None else None
        try:
            text = await self.client.get_text("/v2/webserv/openPositions", params)
        except NotFound:
            return []
        return parse_open_positions(text)

    async def get_positions(self, account_ids: Sequence[str]) -> Sequence[Sequence[Position]]:
        logins = [login for login in dict.fromkeys(map(_login_of, account_ids)) if login]
        if not logins:
            return [[] for _ in account_ids]
        # One call: for one account ask for its rows only, for more ask for all and split.
        rows = await self._open_rows(logins[0] if len(logins) == 1 else None)
        grouped: dict[str, list[Position]] = defaultdict(list)
        wanted = set(logins)
        for row in rows:
            if row.login in wanted:
                grouped[row.login].append(position_from_row(row, self.platform))
        return [grouped.get(_login_of(i) or "", []) for i in account_ids]

    def _held_ttl(self) -> float:
        # The loaders cache these kinds for the ACCOUNT_READS TTL: the same here.
        return max(self.cache_ttl_seconds.get(Capability.ACCOUNT_READS, 0), 0)

    async def _held_account(self, login: str) -> Account:
        """The account as the accounts loader holds it, else one trader read (4.2)."""
        return await self.context.reads.read(
            HELD_ACCOUNT, login, lambda: self._read_account(login), ttl=self._held_ttl()
        )

    _positions_batcher: KeyBatcher[list[Position]] | None = None

    async def _held_positions(self, login: str) -> list[Position]:
        """The open positions as the positions loader holds them (a batch of a whole
        page of accounts is one call), else one ``openPositions`` call for the accounts
        whose reads start within ``window_batch_seconds`` of each other (with
        ``login`` when there is one)."""
        if self._positions_batcher is None:

            async def batch(logins: list[str]) -> dict[str, list[Position]]:
                found = await self.get_positions(logins)
                return {login: list(p) for login, p in zip(logins, found, strict=True)}

            self._positions_batcher = KeyBatcher(batch, delay=self.settings.window_batch_seconds)
        batcher = self._positions_batcher

        async def fetch() -> list[Position]:
            return await batcher.get(login)

        return await self.context.reads.read(HELD_POSITIONS, login, fetch, ttl=self._held_ttl())

    async def _held_sub_accounts(self, login: str) -> list[CopySubAccount]:
        """The Copy sub-accounts as the ``copySubAccounts`` field holds them, else 4.4."""
        return await self.context.reads.read(
            HELD_SUB_ACCOUNTS,
            login,
            lambda: self.get_copy_sub_accounts(login),
            ttl=self._held_ttl(),
        )

    @read
    async def get_copy_sub_accounts(self, account_id: str) -> list[CopySubAccount]:
        """The Copy sub-accounts of a trader (4.4) with each one's balance and equity."""
        login = _login_of(account_id)
        if login is None:
            raise NotFound("account not found", field=["accountId"])

        logins = _sub_account_logins(await self.client.get(f"{TRADERS}/{login}/subaccounts"))
        if not logins:
            return []
        accounts = await self.get_accounts(logins)
        return [
            CopySubAccount(account_id=a.id, balance=a.balance, equity=a.equity)
            for a in accounts
            if a is not None and a.balance is not None
        ]


def _sub_account_logins(data: Any) -> list[str]:
    """``subAccountLogins.login[]`` of 4.4, tolerating the shapes clients have seen."""
    if not isinstance(data, dict):
        raise ProtocolError("cTrader's sub-accounts answer is not an object")
    holder = data.get("subAccountLogins", [])
    items: Iterable[Any]
    if isinstance(holder, dict):
        inner = holder.get("login", [])
        items = inner if isinstance(inner, list) else [inner]
    elif isinstance(holder, list):
        items = holder
    else:
        raise ProtocolError("cTrader's subAccountLogins has an unknown shape")
    logins: list[str] = []
    for item in items:
        value = item.get("login") if isinstance(item, dict) else item
        login = _login_of(str(value))
        if login is not None:
            logins.append(login)
    return logins
