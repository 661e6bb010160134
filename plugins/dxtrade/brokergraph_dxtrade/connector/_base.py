"""What every DXtrade family shares: the client, the settings, the batch helpers, the
id parsing, the user/account reads the families build on, and the owner memory."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from brokergraph_dxtrade.client import DXSCA, DXWEB, DxTradeClient, Response, segment
from brokergraph_dxtrade.mapping import (
    PLATFORM,
    account_id,
    balance_operations,
    iso,
    parse_account_id,
    parse_trader_id,
    trader_id,
)
from brokergraph_dxtrade.settings import DxTradeSettings
from brokergraph_dxtrade.webhook import subscription_model
from gateway.contract import (
    BalanceOperation,
    BalanceOperationKind,
    BrokerGraphError,
    Connector,
    ConnectorContext,
    ConnectorHealth,
    HealthStatus,
    MarketDataSubscription,
    NotFound,
    Outcome,
    ProtocolError,
    UpstreamError,
    UpstreamRejected,
    UpstreamUnavailable,
)

__all__ = ["DxTradeBase", "error_text", "items_of"]

T = TypeVar("T")
R = TypeVar("R")

OWNER_FLOW = "dxtrade-account-owner"
#: On-behalf sessions kept open at once (``read_on_behalf``).
BEHALF_SESSIONS = 256
#: The most transfers the settling read asks for: a page that full proves no absence.
SETTLE_READ_LIMIT = 500


def error_text(error: BrokerGraphError) -> str:
    return f"{error.message} ({error.code})"


class DxTradeBase(Connector):
    """The shared state and helpers of the DXtrade families (see the package docstring)."""

    def __init__(self, context: ConnectorContext) -> None:
        super().__init__(context)
        self.settings = DxTradeSettings.from_section(context.name, context.settings)
        s = self.settings
        feed_token = s.dxfeed_token or s.webhook_secret
        self.client = DxTradeClient(
            base_url=s.url,
            username=s.username,
            domain=s.domain,
            password=s.password.reveal(),
            timeout_seconds=s.timeout_seconds,
            reads_per_second=s.reads_per_second,
            dxfeed_url=s.dxfeed_url,
            dxfeed_token=None if feed_token is None else feed_token.reveal(),
            verify=s.ssl_context(),
        )
        self._slots = asyncio.Semaphore(s.concurrency)
        self._owners: dict[str, str] = {}
        self._currencies: dict[str, str] = {}
        self._feed_ids: dict[str, str] = {}
        self._credit_locks: dict[str, asyncio.Lock] = {}
        self._cash_locks: dict[str, asyncio.Lock] = {}
        #: On-behalf clients by owner (``read_on_behalf``), least recently used first.
        self._behalf: OrderedDict[str, DxTradeClient] = OrderedDict()

    async def close(self) -> None:
        await self.client.close()

    async def health(self) -> ConnectorHealth:
        """A ``/ping`` of the admin session (logging in first when there is none)."""
        started = time.monotonic()
        try:
            await self.client.call(DXWEB, "POST", "/ping", what="health check")
        except BrokerGraphError as error:
            return ConnectorHealth(status=HealthStatus.DOWN, detail=error.message)
        return ConnectorHealth(
            status=HealthStatus.UP, latency_ms=(time.monotonic() - started) * 1000
        )

    # -- helpers ------------------------------------------------------------------------

    @staticmethod
    def _may_have_applied(error: BrokerGraphError) -> bool:
        """Whether a write that failed with ``error`` may have been applied: not after a
        refusal, nor after a failure proven to precede sending (the contract's rule,
        which marks the others ``details.outcome = UNKNOWN``)."""
        if not isinstance(error, UpstreamError) or isinstance(error, UpstreamRejected):
            return False
        if isinstance(error, UpstreamUnavailable):
            return error.details.get("outcome") == Outcome.UNKNOWN.value
        return True

    async def _bounded(self, call: Callable[[], Awaitable[T]]) -> T:
        async with self._slots:
            return await call()

    async def _each(self, items: Sequence[T], call: Callable[[T], Awaitable[R]]) -> list[R]:
        return list(
            await asyncio.gather(*(self._bounded(functools.partial(call, i)) for i in items))
        )

    @staticmethod
    def _trader_path(login: str, domain: str) -> str:
        return f"/api/register/client/{segment(domain)}/{segment(login)}"

    @staticmethod
    def _account_path(clearing: str, code: str) -> str:
        return f"/api/register/account/{segment(clearing)}/{segment(code)}"

    def _trader_parts(self, value: str) -> tuple[str, str]:
        parts = parse_trader_id(value)
        if parts is None:
            raise NotFound(f"no DXtrade user {value!r} (ids are login@domain)")
        return parts

    def _account_parts(self, value: str) -> tuple[str, str]:
        parts = parse_account_id(value)
        if parts is None:
            raise NotFound(f"no DXtrade account {value!r} (ids are clearingCode:accountCode)")
        return parts

    async def _client(self, value: str) -> Response:
        login, domain = self._trader_parts(value)
        return await self.client.get(DXWEB, self._trader_path(login, domain), what="user")

    async def _client_or_none(self, value: str) -> Mapping[str, Any] | None:
        if parse_trader_id(value) is None:
            return None
        try:
            body = (await self._client(value)).body
        except NotFound:
            return None
        if not isinstance(body, Mapping):
            raise ProtocolError("DXtrade answered a user read with something else")
        return body

    async def _account_or_none(self, value: str) -> Mapping[str, Any] | None:
        parts = parse_account_id(value)
        if parts is None:
            return None
        try:
            body = (await self.client.get(DXWEB, self._account_path(*parts), what="account")).body
        except NotFound:
            return None
        if not isinstance(body, Mapping):
            raise ProtocolError("DXtrade answered an account read with something else")
        self._currencies[value] = str(body.get("currency"))
        return body

    async def _metrics(self, account_ids: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        """Metrics of many accounts in ONE dxsca-web read per session (unknown ones are
        left out)."""
        bodies = await self._batched(account_ids, "/accounts/metrics", "account metrics")
        return {str(m.get("account")): m for b in bodies for m in items_of(b, "metrics")}

    # -- dxsca-web reads: as the service account, or on behalf of each owner -------------

    async def _batched(
        self,
        account_ids: Sequence[str],
        path: str,
        what: str,
        params: Mapping[str, str] | None = None,
    ) -> list[Any]:
        """The bodies of one ``accounts=a,b,…`` read of ``path`` per session: the service
        account's, or with ``read_on_behalf`` one per owner of the accounts (accounts no
        user owns are left out: nobody can log in for them); ``params`` go with each."""
        if not account_ids:
            return []
        extra = dict(params or {})
        if not self.settings.read_on_behalf:
            query = {**self.client.accounts_param(account_ids), **extra}
            return [(await self.client.get(DXSCA, path, what=what, params=query)).body]
        groups: dict[str, list[str]] = {}
        for account, owner in zip(account_ids, await self._owners_of(account_ids), strict=True):
            if owner is not None:
                groups.setdefault(owner, []).append(account)

        async def read(owner: str) -> Any:
            reader = self._reader_for(owner)
            query = {**reader.accounts_param(groups[owner]), **extra}
            return (
                await self._as_owner(owner, reader.get(DXSCA, path, what=what, params=query))
            ).body

        return await self._each(list(groups), read)

    async def _read_account(
        self, account_id: str, path: str, what: str, params: Mapping[str, str]
    ) -> Response:
        """One account's dxsca-web read at ``path``, in the session :meth:`_batched` says."""
        if not self.settings.read_on_behalf:
            return await self.client.get(DXSCA, path, what=what, params=params)
        (owner,) = await self._owners_of([account_id])
        if owner is None:
            raise NotFound(f"no DXtrade user owns account {account_id!r}")
        reader = self._reader_for(owner)
        return await self._as_owner(owner, reader.get(DXSCA, path, what=what, params=params))

    def _reader_for(self, owner: str) -> DxTradeClient:
        """``owner``'s on-behalf client, kept for its session (the least recently used
        beyond ``BEHALF_SESSIONS`` are dropped: their sessions lapse on DXtrade)."""
        reader = self._behalf.pop(owner, None)
        if reader is None:
            login, domain = self._trader_parts(owner)
            reader = self.client.on_behalf(login, domain)
        self._behalf[owner] = reader
        while len(self._behalf) > BEHALF_SESSIONS:
            self._behalf.popitem(last=False)
        return reader

    @staticmethod
    async def _as_owner(owner: str, call: Awaitable[Response]) -> Response:
        """A read on ``owner``'s behalf; a refusal names the permission it needs."""
        try:
            return await call
        except UpstreamRejected as error:
            raise UpstreamRejected(
                f"DXtrade refused to read {owner}'s accounts on their behalf: the service "
                "account needs the LOGIN_ON_BEHALF permission (read_on_behalf)",
                details=error.details,
            ) from error

    async def _owners_of(self, account_ids: Sequence[str]) -> list[str | None]:
        """Each account's user, from what the connector has learnt, else from DXtrade's
        user list (read once for all the unknown ones)."""
        owners = [await self._owner(a) for a in account_ids]
        if None in owners:
            response = await self.client.get(DXWEB, "/api/register/client", what="users")
            for client in items_of(response.body, "clients"):
                await self._accounts_of(client)
            owners = [await self._owner(a) for a in account_ids]
        return owners

    async def _balance_operations(
        self, account_id: str, start: datetime, end: datetime, *, limit: int | None = None
    ) -> tuple[list[BalanceOperation], int]:
        """Each cash transaction of the account's transfers in ``[start, end)``, by time,
        and how many transfers DXtrade answered (``limit``: at most that many)."""
        self._account_parts(account_id)
        params = {"time-from": iso(start), "time-to": iso(end)}
        if limit is not None:
            params["limit"] = str(limit)
        response = await self._read_account(
            account_id, f"/accounts/{segment(account_id)}/transfers", "account", params
        )
        transfers = items_of(response.body, "transfers")
        operations = [op for t in transfers for op in balance_operations(t)]
        in_period = sorted((o for o in operations if start <= o.at < end), key=lambda o: o.at)
        return in_period, len(transfers)

    async def _find_cash(
        self, account_id: str, idempotency_key: str, since: datetime
    ) -> BalanceOperation | None:
        """The deposit or withdrawal DXtrade holds under ``idempotency_key`` (its
        ``transferCode``), or None: the read that settles an unknown cash PUT.

        None only when the read is provably whole: it asks for at most
        ``SETTLE_READ_LIMIT`` transfers (DXtrade's page size is not known, B5), and a
        full page proves nothing, so it is an error, never "absent"."""
        until = datetime.now(UTC) + timedelta(minutes=1)  # DXtrade's clock may run ahead
        operations, answered = await self._balance_operations(
            account_id, since, until, limit=SETTLE_READ_LIMIT
        )
        for operation in operations:
            if operation.external_id == idempotency_key and operation.kind in (
                BalanceOperationKind.DEPOSIT,
                BalanceOperationKind.WITHDRAWAL,
            ):
                # The id the PUT's own answer gives, so a settled replay reads alike.
                return dataclasses.replace(operation, id=idempotency_key)
        if answered >= SETTLE_READ_LIMIT:
            raise UpstreamError(
                "DXtrade's transfers since this key's attempt fill a whole page, so the "
                "key's absence cannot be proven; its outcome stays unknown",
                details={"platform": PLATFORM, "accountId": account_id},
            )
        return None

    async def _remember_owner(self, account: str, owner: str) -> None:
        """Account -> user is not in DXtrade's account read (B4): keep what we learn,
        in the gateway store so every replica and restart knows it."""
        if self._owners.get(account) == owner:
            return
        self._owners[account] = owner
        await self.context.store.save_flow(f"dxtrade:owner:{account}", OWNER_FLOW, {"owner": owner})

    async def _owner(self, account: str) -> str | None:
        known = self._owners.get(account)
        if known is None:
            state = await self.context.store.get_flow(f"dxtrade:owner:{account}")
            if state is not None and isinstance(state.get("owner"), str):
                known = self._owners[account] = state["owner"]
        return known

    async def _accounts_of(self, client: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        owner = trader_id(str(client.get("login")), str(client.get("domain")))
        accounts = [a for a in client.get("accounts") or [] if isinstance(a, Mapping)]
        for a in accounts:
            await self._remember_owner(account_id(a["clearingCode"], a["accountCode"]), owner)
        return accounts

    async def _subscriptions_of(self, tid: str, feed_id: str) -> list[MarketDataSubscription]:
        response = await self.client.dxfeed(
            f"/dxfeed/accounts/{segment(feed_id)}/subscriptions", what="dxFeed account"
        )
        return [subscription_model(tid, s) for s in items_of(response.body, "subscriptions")]


def items_of(body: Any, key: str) -> list[Mapping[str, Any]]:
    """The list under ``key`` of a dxsca-web answer (``{"metrics": [...]}``, B5)."""
    if body is None:
        return []
    items = body.get(key) if isinstance(body, Mapping) else body
    if not isinstance(items, list):
        raise ProtocolError(f"DXtrade's answer has no {key!r} list")
    return [i for i in items if isinstance(i, Mapping)]
