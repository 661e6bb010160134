"""The cTrader connector: WebServices behind the gateway's standard families.

Capabilities: TRADER_PROVISIONING, ACCOUNT_READS, ACCOUNT_HISTORY,
ACCOUNT_ANALYTICS, FUNDING, CREDIT, BONUS.  Everything goes through
:class:`~brokergraph_ctrader.client.WebServicesClient`; errors come from its
table.  Upstream-call bounds (stated in the README and tested):

* ``get_accounts(n ids)``: ``n`` trader reads (4.2) when ``n <= single_read_limit``
  (3), otherwise **one** list call (4.3) over the whole registration window (plus one
  per further 100 000-trader page);
* ``get_positions(n ids)``: **one** openPositions call (4.12) whatever ``n``;
* so a query for 50 accounts with their positions makes **2** upstream calls with a
  cold cache and **0** within the 60 s TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar, TypeVar

from brokergraph_ctrader import __version__
from brokergraph_ctrader.analytics import summarize
from brokergraph_ctrader.client import WebServicesClient, md5_hex
from brokergraph_ctrader.csvwire import (
    ClosedDealRow,
    OpenPositionRow,
    format_timestamp,
    parse_closed_positions,
    parse_open_positions,
)
from brokergraph_ctrader.money import check_precision, leverage_to_cents, money_digits_of, plain
from brokergraph_ctrader.records import (
    operation_from_record,
    operation_record,
    trader_from_record,
)
from brokergraph_ctrader.settings import CTraderSettings
from brokergraph_ctrader.wire import (
    ACCESS_RIGHTS,
    access_rights_for,
    account_from_trader,
    deal_from_row,
    epoch_ms,
    position_from_row,
)
from gateway.contract import (
    Account,
    AccountAnalytics,
    AccountAnalyticsReads,
    AccountHistory,
    AccountReads,
    BalanceOperation,
    BalanceOperationKind,
    Bonus,
    BrokerGraphError,
    Capability,
    Conflict,
    Connector,
    ConnectorContext,
    ConnectorHealth,
    CopySubAccount,
    CreateTraderRequest,
    Credit,
    DeactivateTraderRequest,
    Deal,
    Funding,
    HealthStatus,
    InvalidInput,
    Money,
    MoneyMovement,
    NotFound,
    OpenAccountRequest,
    Position,
    ProtocolError,
    ProvisioningResult,
    ProvisioningStep,
    ReactivateTraderRequest,
    Trader,
    TraderProvisioning,
    TraderStatus,
    UpdateAccountRequest,
    UpstreamTimeout,
    UpstreamUnavailable,
)

__all__ = ["CTraderConnector"]

T = TypeVar("T")
WINDOW = timedelta(days=2)  # closedPositions refuses longer windows (A8)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_LIST_PAGES = 100
ACCOUNT_TYPES = frozenset({"HEDGED", "NETTED", "SPREAD_BETTING"})
MARGIN_TYPES = frozenset({"MAX", "SUM", "NET"})
TRADERS = "/v2/webserv/traders"


def _login_of(account_id: str) -> str | None:
    """The login an account id names, or None when it cannot be a cTrader login."""
    text = account_id.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 18 or int(text) <= 0:
        return None
    return str(int(text))


def _now() -> datetime:
    return datetime.now(UTC)


def _window_starts(start: datetime, end: datetime) -> list[datetime]:
    """2-day windows aligned on even epoch days, so different periods share them."""
    first = EPOCH + WINDOW * ((start - EPOCH) // WINDOW)
    starts: list[datetime] = []
    current = first
    while current < end:
        starts.append(current)
        current += WINDOW
    return starts


def _step(name: str, reference: Any = None, message: str | None = None) -> ProvisioningStep:
    return ProvisioningStep(
        name=name,
        succeeded=True,
        reference=None if reference is None else str(reference),
        message=message,
    )


def _failed(name: str, error: BrokerGraphError) -> ProvisioningStep:
    return ProvisioningStep(name=name, succeeded=False, message=f"{error.code}: {error.message}")


class CTraderConnector(
    Connector,
    TraderProvisioning,
    AccountReads,
    AccountHistory,
    AccountAnalyticsReads,
    Funding,
    Credit,
    Bonus,
):
    name: ClassVar[str] = "ctrader"
    platform: ClassVar[str] = "ctrader"
    version: ClassVar[str] = __version__
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.TRADER_PROVISIONING,
            Capability.ACCOUNT_READS,
            Capability.ACCOUNT_HISTORY,
            Capability.ACCOUNT_ANALYTICS,
            Capability.FUNDING,
            Capability.CREDIT,
            Capability.BONUS,
        }
    )
    #: cTrader asks CRMs to refresh about once a minute, never every second.
    cache_ttl_seconds: ClassVar[Mapping[Capability, float]] = {Capability.ACCOUNT_READS: 60.0}
    # changebalance/changebonus carry the key as externalId, which cTrader dedupes.
    idempotent_writes: ClassVar[bool] = True

    def __init__(self, context: ConnectorContext) -> None:
        super().__init__(context)
        self._settings: CTraderSettings | None = None
        self._client: WebServicesClient | None = None
        #: login -> (moneyDigits, depositCurrency), learnt from every trader read; both
        #: are fixed once an account exists, and money writes need them before sending.
        self._digits: dict[str, tuple[int, str]] = {}
        #: Striped locks serialising createTrader per email within this process.
        self._locks = [asyncio.Lock() for _ in range(64)]

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def settings(self) -> CTraderSettings:
        if self._settings is None:
            raise RuntimeError("the cTrader connector is not started")
        return self._settings

    @property
    def client(self) -> WebServicesClient:
        if self._client is None:
            raise RuntimeError("the cTrader connector is not started")
        return self._client

    async def start(self) -> None:
        # Settings are read here: a bad section fails this connector only.
        self._settings = CTraderSettings.from_section(self.context.name, self.context.settings)
        self._client = WebServicesClient(
            self._settings.url,
            manager_login=self._settings.login,
            manager_password=self._settings.password,
            timeout_seconds=self._settings.timeout_seconds,
        )
        await self._client.start()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def health(self) -> ConnectorHealth:
        started = time.perf_counter()
        try:
            await self._groups(refresh=True)  # cheap, and keeps the group list fresh
        except BrokerGraphError as error:
            return ConnectorHealth(status=HealthStatus.DOWN, detail=error.code)
        elapsed = round((time.perf_counter() - started) * 1000, 2)
        return ConnectorHealth(status=HealthStatus.UP, latency_ms=elapsed)

    # -- small helpers ----------------------------------------------------------------------

    def _key(self, *parts: str) -> str:
        """A key of the connector's own cache entries and store records."""
        return ":".join((self.name, *parts))

    async def _cached(
        self, key: str, ttl: float, load: Callable[[], Awaitable[T]], *, refresh: bool = False
    ) -> T:
        cache = self.context.cache
        if not refresh:
            hit = await cache.get(key)
            if hit is not None:
                value: T = hit
                return value
        fresh = await load()
        if fresh is not None:
            await cache.set(key, fresh, ttl)
        return fresh

    def _account(self, data: Mapping[str, Any], trader_id: str | None = None) -> Account:
        account = account_from_trader(
            data, self.platform, is_live=self.settings.is_live, trader_id=trader_id
        )
        self._digits[account.id] = (money_digits_of(data.get("moneyDigits", 2)), account.currency)
        return account

    async def _trader_json(self, login: str) -> dict[str, Any]:
        data = await self.client.get(f"{TRADERS}/{login}")
        if not isinstance(data, dict):
            raise ProtocolError("cTrader answered a trader read without an object")
        return data

    async def _read_account(self, account_id: str) -> Account:
        """One account, or NotFound (single-object operations never answer None)."""
        login = _login_of(account_id)
        if login is None:
            raise NotFound("account not found", field=["accountId"])
        account = self._account(await self._trader_json(login))
        return account

    # -- the gateway's links and the connector's records ----------------------------------

    async def _account_trader_ids(self, logins: Sequence[str]) -> dict[str, str]:
        """login -> userId, from the gateway's links of the accounts' partners."""
        store = self.context.store
        owners = await store.owners(self.platform, "account", list(logins))
        wanted = set(logins)
        found: dict[str, str] = {}
        for code in {o for o in owners if o is not None}:
            for link in await store.links_of_partner(code, platform=self.platform, kind="account"):
                if link.external_id in wanted and link.trader_id:
                    found[link.external_id] = link.trader_id
        return found

    async def _user_record(self, user_id: str) -> dict[str, Any] | None:
        return await self.context.store.get_flow(self._key("user", user_id))

    async def _save_user(self, user_id: str, record: dict[str, Any]) -> None:
        await self.context.store.save_flow(self._key("user", user_id), f"{self.name}-user", record)

    async def _add_login(
        self, user_id: str, login: str, *, email: str | None = None, name: str | None = None
    ) -> None:
        record = await self._user_record(user_id) or {
            "userId": user_id,
            "email": email,
            "name": name,
            "status": TraderStatus.ACTIVE.value,
            "createdAt": _now().isoformat(),
            "logins": [],
        }
        if login and login not in record["logins"]:
            record["logins"] = [*record["logins"], login]
        await self._save_user(user_id, record)

    async def _user_logins(self, user_ids: Sequence[str]) -> dict[str, list[str]]:
        """userId -> logins: the connector's records plus the gateway's account links."""
        store = self.context.store
        result: dict[str, list[str]] = {u: [] for u in user_ids}
        records = await asyncio.gather(*(self._user_record(u) for u in user_ids))
        for user_id, record in zip(user_ids, records, strict=True):
            if record is not None:
                result[user_id].extend(str(login) for login in record.get("logins", []))
        owners = await store.owners(self.platform, "trader", list(user_ids))
        for code in {o for o in owners if o is not None}:
            for link in await store.links_of_partner(code, platform=self.platform, kind="account"):
                if link.trader_id in result and link.external_id not in result[link.trader_id]:
                    result[link.trader_id].append(link.external_id)
        return result

    async def _require_user(self, user_id: str) -> dict[str, Any] | None:
        """The user's record (None when known only by a link); NotFound when unknown."""
        if _login_of(user_id) is None:
            raise NotFound("trader not found", field=["traderId"])
        record = await self._user_record(user_id)
        if record is not None:
            return record
        (owner,) = await self.context.store.owners(self.platform, "trader", [user_id])
        if owner is None:
            raise NotFound("trader not found", field=["traderId"])
        return None

    # -- ACCOUNT_READS ------------------------------------------------------------------------

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

    async def get_copy_sub_accounts(self, account_id: str) -> list[CopySubAccount]:
        """The Copy sub-accounts of a trader (4.4) with each one's balance and equity."""
        login = _login_of(account_id)
        if login is None:
            raise NotFound("account not found", field=["accountId"])

        async def load() -> list[str]:
            data = await self.client.get(f"{TRADERS}/{login}/subaccounts")
            return _sub_account_logins(data)

        key = self._key("subaccounts", login)
        logins = await self._cached(key, self.settings.history_cache_seconds, load)
        if not logins:
            return []
        accounts = await self.get_accounts(logins)
        return [
            CopySubAccount(account_id=a.id, balance=a.balance, equity=a.equity)
            for a in accounts
            if a is not None and a.balance is not None
        ]

    # -- ACCOUNT_HISTORY ----------------------------------------------------------------------

    async def _closed_rows(
        self,
        login: str,
        start: datetime,
        end: datetime,
        open_rows: Sequence[OpenPositionRow] | None = None,
    ) -> list[ClosedDealRow]:
        """Closing deals of positions *opened* in ``[start, end)``, in ≤ 2-day windows.

        A window is cached for ``history_cache_seconds``, or for
        ``final_window_cache_seconds`` once it is past and none of the positions opened
        in it is still open (then no deal can be added to it any more).
        """
        now = _now()
        starts = _window_starts(start, min(end, now + timedelta(days=1)))
        keys = [self._key("closed", login, format_timestamp(s)) for s in starts]
        cache = self.context.cache
        cached: list[list[ClosedDealRow] | None] = list(
            await asyncio.gather(*(cache.get(k) for k in keys))
        )
        missing = [i for i, rows in enumerate(cached) if rows is None]
        if missing:
            if open_rows is None:
                open_rows = await self._open_rows(login)
            # Read after the open positions: a position that closes in between shows up
            # in its window, and one still open keeps the window's cache entry short.
            open_times = [r.opened_at for r in open_rows if r.login == login]
            gate = asyncio.Semaphore(self.settings.window_concurrency)

            async def fetch(i: int) -> None:
                window_start = starts[i]
                window_end = window_start + WINDOW
                params = {
                    "from": format_timestamp(window_start),
                    "to": format_timestamp(window_end),
                    "login": login,
                }
                async with gate:
                    try:
                        text = await self.client.get_text("/v2/webserv/closedPositions", params)
                    except NotFound:
                        text = ""
                rows = [r for r in parse_closed_positions(text) if r.login == login]
                final = window_end < now - timedelta(minutes=1) and not any(
                    window_start <= t < window_end for t in open_times
                )
                ttl = (
                    self.settings.final_window_cache_seconds
                    if final
                    else self.settings.history_cache_seconds
                )
                await cache.set(keys[i], rows, ttl)
                cached[i] = rows

            await asyncio.gather(*(fetch(i) for i in missing))
        unique: dict[str, ClosedDealRow] = {}
        for rows in cached:
            for row in rows or []:
                unique.setdefault(row.deal_id, row)
        return sorted(unique.values(), key=lambda r: (r.closed_at, r.deal_id))

    def _lookback(self, start: datetime) -> datetime:
        return start - timedelta(days=self.settings.deals_lookback_days)

    async def get_deals(self, account_id: str, start: datetime, end: datetime) -> Sequence[Deal]:
        """Deals *closed* in ``[start, end)`` (positions opened up to the look-back before)."""
        account = await self._read_account(account_id)
        rows = await self._closed_rows(account.id, self._lookback(start), end)
        return [
            deal_from_row(row, self.platform, account.currency)
            for row in rows
            if start <= row.closed_at < end
        ]

    async def get_balance_operations(
        self, account_id: str, start: datetime, end: datetime
    ) -> Sequence[BalanceOperation]:
        """Operations made through this gateway (WebServices has no balance-history read)."""
        login = _login_of(account_id)
        if login is None:
            return []
        records = await self.context.store.list_flows(
            f"{self.name}-op", prefix=f"{self.name}-op:{login}:", limit=100_000
        )
        operations = [operation_from_record(self.platform, state) for _, state in records]
        return sorted((o for o in operations if start <= o.at < end), key=lambda o: (o.at, o.id))

    # -- ACCOUNT_ANALYTICS --------------------------------------------------------------------

    async def get_analytics(
        self, account_id: str, start: datetime, end: datetime
    ) -> AccountAnalytics:
        """The seed-003 analytics (see :mod:`brokergraph_ctrader.analytics`), cached for
        ``history_cache_seconds``: cTrader asks for about one refresh a minute."""
        login = _login_of(account_id)
        if login is None:
            raise NotFound("account not found", field=["accountId"])
        key = self._key("analytics", login, format_timestamp(start), format_timestamp(end))

        async def load() -> AccountAnalytics:
            account = await self._read_account(login)  # NotFound for an unknown login
            open_rows = await self._open_rows(login)
            rows, subs = await asyncio.gather(
                self._closed_rows(login, self._lookback(start), end, open_rows),
                self.get_copy_sub_accounts(login),
            )
            return summarize(
                account_id=login,
                currency=account.currency,
                start=start,
                end=end,
                deals=[deal_from_row(r, self.platform, account.currency) for r in rows],
                positions=[position_from_row(r, self.platform) for r in open_rows],
                copy_sub_accounts=subs,
            )

        return await self._cached(key, self.settings.history_cache_seconds, load)

    # -- money ------------------------------------------------------------------------------

    async def _money_digits(self, login: str) -> tuple[int, str]:
        known = self._digits.get(login)
        if known is None:
            self._account(await self._trader_json(login))  # NotFound for an unknown login
            known = self._digits[login]
        return known

    async def _change(
        self,
        movement: MoneyMovement,
        *,
        operation: str,
        wire_type: str,
        kind: BalanceOperationKind,
    ) -> BalanceOperation:
        """One changebalance/changebonus call, checked first and recorded after."""
        login = _login_of(movement.account_id)
        if login is None:
            raise NotFound("account not found", field=["accountId"])
        amount = abs(movement.amount)
        if amount == 0:
            raise InvalidInput("amount must be non-zero", field=["amount"])
        digits, currency = await self._money_digits(login)
        if movement.currency is not None and movement.currency.upper() != currency:
            raise InvalidInput(
                f"account {login} holds {currency}, not {movement.currency}", field=["currency"]
            )
        check_precision(amount, digits)
        body: dict[str, Any] = {
            "login": int(login),
            "preciseAmount": plain(amount),
            "type": wire_type,
            # cTrader answers a repeated externalId with the first operation: a retry
            # after a lost answer cannot move money twice.
            "externalId": movement.idempotency_key,
            "comment": movement.comment or f"brokergraph {kind.value.lower()}",
            "source": "brokergraph",
        }
        if movement.comment:
            body["externalNote"] = movement.comment
        data = await self.client.post(f"{TRADERS}/{login}/{operation}", body)
        ledger = "bonus" if operation == "changebonus" else "balance"
        id_key = "bonusHistoryId" if ledger == "bonus" else "balanceHistoryId"
        value = data.get(id_key, data.get("balanceHistoryId")) if isinstance(data, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | str) or not str(value):
            raise ProtocolError(f"cTrader's {operation} answer has no {id_key}")
        record_key = f"{self.name}-op:{login}:{ledger}:{value}"
        store = self.context.store
        earlier = await store.get_flow(record_key)
        if earlier is not None:  # the same operation again (replayed externalId)
            return operation_from_record(self.platform, earlier)
        result = BalanceOperation(
            platform=self.platform,
            id=str(value),
            account_id=login,
            kind=kind,
            amount=_money(amount, currency, digits),
            at=_now(),
            comment=movement.comment,
            external_id=movement.idempotency_key,
            raw=data,
        )
        await store.save_flow(record_key, f"{self.name}-op", operation_record(result, ledger))
        await self.context.cache.delete_prefix(self._key("analytics", login) + ":")
        return result

    async def deposit(self, movement: MoneyMovement) -> BalanceOperation:
        return await self._change(
            movement,
            operation="changebalance",
            wire_type="DEPOSIT",
            kind=BalanceOperationKind.DEPOSIT,
        )

    async def withdraw(self, movement: MoneyMovement) -> BalanceOperation:
        """Returns only once cTrader answered 200: the debit is done before any payout."""
        return await self._change(
            movement,
            operation="changebalance",
            wire_type="WITHDRAW",
            kind=BalanceOperationKind.WITHDRAWAL,
        )

    async def change_credit(self, movement: MoneyMovement) -> BalanceOperation:
        adding = movement.amount > 0
        return await self._change(
            movement,
            operation="changebalance",
            wire_type="DEPOSIT_NONWITHDRAWABLE_BONUS"
            if adding
            else "WITHDRAW_NONWITHDRAWABLE_BONUS",
            kind=BalanceOperationKind.CREDIT_IN if adding else BalanceOperationKind.CREDIT_OUT,
        )

    async def change_bonus(self, movement: MoneyMovement) -> BalanceOperation:
        adding = movement.amount > 0
        return await self._change(
            movement,
            operation="changebonus",
            wire_type="DEPOSIT" if adding else "WITHDRAW",
            kind=BalanceOperationKind.BONUS_IN if adding else BalanceOperationKind.BONUS_OUT,
        )

    # -- provisioning: checks made before any write ----------------------------------------

    async def _groups(self, *, refresh: bool = False) -> list[str]:
        async def load() -> list[str]:
            data = await self.client.get("/v2/webserv/tradergroups")
            items = data.get("traderGroup") if isinstance(data, dict) else data
            if not isinstance(items, list):
                raise ProtocolError("cTrader's trader groups answer is not a list")
            return [str(g["name"]) for g in items if isinstance(g, dict) and "name" in g]

        key = self._key("groups")
        return await self._cached(key, self.settings.reference_cache_seconds, load, refresh=refresh)

    async def _check_group(self, group: str) -> str:
        name = group.strip()
        if name in await self._groups() or name in await self._groups(refresh=True):
            return name
        raise InvalidInput(f"cTrader has no trader group {name!r}", field=["group"])

    async def _deposit_assets(self) -> list[str] | None:
        async def load() -> list[str] | None:
            try:
                data = await self.client.get("/v2/webserv/depositAssets")
            except NotFound:
                return None  # an older server without 6.2: cTrader checks on create
            items = data.get("depositAsset") if isinstance(data, dict) else data
            if not isinstance(items, list):
                raise ProtocolError("cTrader's deposit assets answer is not a list")
            return [str(a).upper() for a in items]

        return await self._cached(
            self._key("deposit-assets"), self.settings.reference_cache_seconds, load
        )

    async def _check_currency(self, currency: str | None) -> str:
        code = (currency or self.settings.default_currency).strip().upper()
        assets = await self._deposit_assets()
        if not code or (assets is not None and code not in assets):
            raise InvalidInput(f"cTrader takes no deposits in {code!r}", field=["currency"])
        return code

    async def _new_trader_body(
        self,
        *,
        group: str | None,
        currency: str | None,
        leverage: Decimal | None,
        options: Mapping[str, Any],
        email: str | None,
        name: str | None,
        password_hash: str,
        marker: str,
    ) -> dict[str, Any]:
        """The body of 4.1, every field checked (and groups/currencies looked up) first."""
        rights = str(options.get("accessRights", "FULL_ACCESS")).upper()
        if rights not in ACCESS_RIGHTS:
            raise InvalidInput(
                f"options.accessRights must be one of {sorted(ACCESS_RIGHTS)}", field=["options"]
            )
        account_type = str(options.get("accountType", "HEDGED")).upper()
        if account_type not in ACCOUNT_TYPES:
            raise InvalidInput(
                f"options.accountType must be one of {sorted(ACCOUNT_TYPES)}", field=["options"]
            )
        margin = str(options.get("totalMarginCalculationType", "MAX")).upper()
        if margin not in MARGIN_TYPES:
            raise InvalidInput(
                f"options.totalMarginCalculationType must be one of {sorted(MARGIN_TYPES)}",
                field=["options"],
            )
        cents = leverage_to_cents(
            leverage if leverage is not None else self.settings.default_leverage
        )
        group_name, deposit_currency = await asyncio.gather(
            self._check_group(group or self.settings.default_group),
            self._check_currency(currency),
        )
        body: dict[str, Any] = {
            "accessRights": rights,
            "accountType": account_type,
            "balance": 0,
            "brokerName": self.settings.broker_name,
            "depositCurrency": deposit_currency,
            "groupName": group_name,
            "hashedPassword": password_hash,
            "leverageInCents": cents,
            "totalMarginCalculationType": margin,
            "contactDetails": {"email": email} if email else {},
            # Finds the trader again if the create answer is lost (see _find_marked).
            "description": marker,
            "swapFree": bool(options.get("swapFree", False)),
        }
        if name:
            body["name"] = name
        return body

    async def _find_marked(self, marker: str, since: datetime) -> dict[str, Any] | None:
        """A trader created by a create call whose answer was lost, by its description."""
        params = {
            "from": format_timestamp(since - timedelta(minutes=5)),
            "to": format_timestamp(_now() + timedelta(minutes=5)),
        }
        data = await self.client.get(f"{TRADERS}/", params)
        items = data.get("trader", []) if isinstance(data, dict) else []
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and item.get("description") == marker:
                return item
        return None

    async def _create_and_link(
        self, user_id: str, body: Mapping[str, Any], password_hash: str
    ) -> tuple[Account, Any]:
        """4.1 then 5.2 for a known user (openAccount); the login is recorded in between."""
        created = await self.client.post(TRADERS, body)
        if not isinstance(created, dict):
            raise ProtocolError("cTrader answered the trader creation without an object")
        account = self._account(created, user_id)
        await self._add_login(user_id, account.id)
        try:
            reference = await self._link(user_id, account.id, password_hash)
        except BrokerGraphError as error:
            error.details.setdefault("createdLogin", account.id)
            error.details.setdefault("failedStep", "link-user")
            raise
        return account, reference

    async def _link(self, user_id: str, login: str, password_hash: str) -> Any:
        body = {
            "traderLogin": int(login),
            "traderPasswordHash": password_hash,
            "userId": int(user_id),
            "brokerName": self.settings.broker_name,
            "environmentName": self.settings.environment,
            "returnAccountDetails": True,
        }
        data = await self.client.post("/cid/ctid/link", body)
        return data.get("ctidTraderAccountId") if isinstance(data, dict) else None

    # -- TRADER_PROVISIONING ------------------------------------------------------------------

    def _flow_kind(self) -> str:
        return f"{self.name}-create-trader"

    def _email_key(self, email: str) -> str:
        return self._key("create-trader-email", email.strip().lower())

    async def create_trader(self, request: CreateTraderRequest) -> ProvisioningResult:
        """create-user (cTID) → create-trader → link-user, resumable at the failed step.

        One flow per email at a time: while a createTrader for an email is unfinished, a
        new one (without ``resume_token``) is a Conflict naming the token to resume with,
        so a retry that lost the first answer cannot make a second trading account.
        """
        email_key = self._email_key(request.email)
        # In-process serialisation per email (and so per flow): a double submit waits
        # for the first and then meets its state.
        lock = self._locks[int(md5_hex(email_key)[:8], 16) % len(self._locks)]
        async with lock:
            return await self._create_trader(request, email_key)

    async def _create_trader(
        self, request: CreateTraderRequest, email_key: str
    ) -> ProvisioningResult:
        store = self.context.store
        if request.resume_token:
            flow_id = request.resume_token
            state = await store.get_flow(flow_id)
            if state is None or not flow_id.startswith(f"{self.name}-ct-"):
                raise InvalidInput(
                    "the resume token names no createTrader flow", field=["resumeToken"]
                )
            if state.get("email", "").lower() != request.email.lower():
                raise InvalidInput(
                    "the resume token belongs to another email", field=["resumeToken"]
                )
        else:
            running = await store.get_flow(email_key)
            if running is not None:
                earlier = await store.get_flow(str(running["flowId"]))
                if earlier is not None and not earlier.get("linked"):
                    raise Conflict(
                        "a createTrader for this email stopped midway: send the same input "
                        f"with resumeToken {running['flowId']} to finish it",
                        field=["resumeToken"],
                        details={"platform": self.platform, "resumeToken": running["flowId"]},
                    )
            generated = request.password is None
            # A strong random password when none is given; neither it nor its hash is
            # ever logged.  Users sign in with their cTID; the trader password only
            # authorises the link.
            password = request.password or secrets.token_urlsafe(24)
            flow_id = f"{self.name}-ct-{uuid.uuid4().hex}"
            password_hash = md5_hex(password)
            body = await self._new_trader_body(
                group=request.group,
                currency=request.currency,
                leverage=request.leverage,
                options=request.options,
                email=request.email,
                name=request.name,
                password_hash=password_hash,
                marker=f"brokergraph:{flow_id}",
            )
            language = str(
                request.options.get("preferredLanguage", self.settings.preferred_language)
            )
            state = {
                "email": request.email,
                "name": request.name,
                "partnerCode": request.partner_code,
                "language": language.upper(),
                "body": {k: v for k, v in body.items() if k != "hashedPassword"},
                "passwordHash": password_hash,
                "passwordGenerated": generated,
                "startedAt": _now().isoformat(),
                "userId": None,
                "login": None,
                "traderAttemptedAt": None,
                "linked": False,
                "ctidTraderAccountId": None,
            }
            await store.save_flow(flow_id, self._flow_kind(), state)
            await store.save_flow(
                email_key, f"{self.name}-create-trader-email", {"flowId": flow_id}
            )
        result = await self._run_create_flow(flow_id, state)
        if result.complete:
            await store.delete_flow(email_key)
        return result

    async def _run_create_flow(self, flow_id: str, state: dict[str, Any]) -> ProvisioningResult:
        store = self.context.store
        kind = self._flow_kind()
        steps: list[ProvisioningStep] = []
        earlier = "done in an earlier attempt"

        async def save() -> None:
            await store.save_flow(flow_id, kind, state)

        # 1. create-user: idempotent by email on cTrader's side.
        if state["userId"] is None:
            try:
                data = await self.client.post(
                    "/cid/ctid/create",
                    {
                        "email": state["email"],
                        "brokerName": self.settings.broker_name,
                        "preferredLanguage": state["language"],
                    },
                )
                user_id = data.get("userId") if isinstance(data, dict) else None
                if isinstance(user_id, bool) or not isinstance(user_id, int | str):
                    raise ProtocolError("cTrader's create-user answer has no userId")
            except BrokerGraphError:
                # Nothing exists upstream yet: report the typed error, keep no flow.
                await store.delete_flow(flow_id)
                await store.delete_flow(self._email_key(state["email"]))
                raise
            state["userId"] = str(user_id)
            await save()
            steps.append(_step("create-user", state["userId"]))
        else:
            steps.append(_step("create-user", state["userId"], earlier))
        user_id = str(state["userId"])
        await self._add_login(user_id, "", email=state["email"], name=state["name"])
        record = await self._user_record(user_id)
        trader = trader_from_record(self.platform, user_id, record)

        # 2. create-trader.
        account: Account | None = None
        if state["login"] is None:
            marker = str(state["body"]["description"])
            found = None
            if state["traderAttemptedAt"] is not None:  # the last answer was lost
                since = datetime.fromisoformat(state["traderAttemptedAt"])
                found = await self._find_marked(marker, since)
            if found is None:
                state["traderAttemptedAt"] = _now().isoformat()
                await save()
                try:
                    found = await self.client.post(
                        TRADERS, {**state["body"], "hashedPassword": state["passwordHash"]}
                    )
                    if not isinstance(found, dict):
                        raise ProtocolError(
                            "cTrader answered the trader creation without an object"
                        )
                except BrokerGraphError as error:
                    if not isinstance(error, UpstreamTimeout | UpstreamUnavailable):
                        state["traderAttemptedAt"] = None  # refused: certainly not created
                        await save()
                    steps.append(_failed("create-trader", error))
                    return ProvisioningResult(steps=steps, trader=trader, resume_token=flow_id)
            account = self._account(found, user_id)
            state["login"] = account.id
            await save()
            await self._add_login(user_id, account.id)
            steps.append(_step("create-trader", account.id))
        else:
            steps.append(_step("create-trader", state["login"], earlier))
            with contextlib.suppress(BrokerGraphError):
                account = self._account(await self._trader_json(str(state["login"])), user_id)
        login = str(state["login"])
        accounts = [account] if account is not None else []

        # 3. link-user.
        if not state["linked"]:
            try:
                reference = await self._link(user_id, login, str(state["passwordHash"]))
            except Conflict:
                reference = None  # linked by the attempt whose answer was lost
            except BrokerGraphError as error:
                steps.append(_failed("link-user", error))
                return ProvisioningResult(
                    steps=steps, trader=trader, accounts=accounts, resume_token=flow_id
                )
            state.update(linked=True, ctidTraderAccountId=reference, passwordHash=None)
            state["completedAt"] = _now().isoformat()
            await save()
            steps.append(_step("link-user", reference))
        else:
            steps.append(_step("link-user", state["ctidTraderAccountId"], earlier))
        return ProvisioningResult(steps=steps, trader=trader, accounts=accounts)

    async def open_account(self, request: OpenAccountRequest) -> Account:
        """A new trader (4.1) linked (5.2) to an existing user."""
        record = await self._require_user(request.trader_id)
        password_hash = md5_hex(secrets.token_urlsafe(24))
        body = await self._new_trader_body(
            group=request.group,
            currency=request.currency,
            leverage=request.leverage,
            options=request.options,
            email=record.get("email") if record else None,
            name=record.get("name") if record else None,
            password_hash=password_hash,
            marker=f"brokergraph:open:{uuid.uuid4().hex}",
        )
        account, _ = await self._create_and_link(request.trader_id, body, password_hash)
        return account

    async def update_account(self, request: UpdateAccountRequest) -> Account:
        """PATCH (4.5.2) with only the changed fields — all three are PATCH fields, so a
        PUT (which would reset every omitted field) is never needed."""
        login = _login_of(request.account_id)
        if login is None:
            raise NotFound("account not found", field=["accountId"])
        body: dict[str, Any] = {}
        if request.leverage is not None:
            body["leverageInCents"] = leverage_to_cents(request.leverage)
        if request.status is not None:
            body["accessRights"] = access_rights_for(request.status)
        if request.group is not None:
            body["groupName"] = await self._check_group(request.group)
        if not body:
            raise InvalidInput("nothing to change", field=["leverage"])
        await self.client.patch(f"{TRADERS}/{login}", body)
        await self.context.cache.delete_prefix(self._key("analytics", login) + ":")
        (account,) = await self.get_accounts([login])
        if account is None:
            raise NotFound("account not found", field=["accountId"])
        return account

    async def _set_rights(
        self, user_id: str, target: Callable[[str, str], str], step: str
    ) -> tuple[list[ProvisioningStep], dict[str, str]]:
        """PATCH accessRights of every login of a user; ``target(login, current)``."""
        logins = (await self._user_logins([user_id]))[user_id]
        steps: list[ProvisioningStep] = []
        previous: dict[str, str] = {}
        for login in logins:
            try:
                current = str((await self._trader_json(login)).get("accessRights"))
                wanted = target(login, current)
                previous[login] = current
                if wanted != current:
                    await self.client.patch(f"{TRADERS}/{login}", {"accessRights": wanted})
                steps.append(_step(step, login, wanted))
            except BrokerGraphError as error:
                steps.append(_failed(step, error))
        return steps, previous

    async def deactivate_trader(self, request: DeactivateTraderRequest) -> ProvisioningResult:
        """cTrader has no user switch: every account of the user goes to NO_LOGIN, and
        the rights they had are remembered for :meth:`reactivate_trader`."""
        record = await self._require_user(request.trader_id) or {
            "userId": request.trader_id,
            "logins": [],
            "createdAt": _now().isoformat(),
        }
        steps, previous = await self._set_rights(
            request.trader_id, lambda _login, _current: "NO_LOGIN", "disable-account"
        )
        saved = dict(record.get("savedRights") or {})
        for login, rights in previous.items():
            if rights != "NO_LOGIN":
                saved[login] = rights
        record.update(status=TraderStatus.DISABLED.value, savedRights=saved)
        await self._save_user(request.trader_id, record)
        trader = trader_from_record(self.platform, request.trader_id, record)
        return ProvisioningResult(steps=steps, trader=trader)

    async def reactivate_trader(self, request: ReactivateTraderRequest) -> ProvisioningResult:
        record = await self._require_user(request.trader_id) or {
            "userId": request.trader_id,
            "logins": [],
            "createdAt": _now().isoformat(),
        }
        saved: dict[str, str] = dict(record.get("savedRights") or {})
        steps, _ = await self._set_rights(
            request.trader_id,
            lambda login, current: (
                saved.get(login, "FULL_ACCESS") if current == "NO_LOGIN" else current
            ),
            "enable-account",
        )
        record.update(status=TraderStatus.ACTIVE.value, savedRights={})
        await self._save_user(request.trader_id, record)
        accounts: list[Account] = []
        if request.new_account is not None:
            opened = await self.open_account(request.new_account)
            accounts.append(opened)
            steps.append(_step("open-account", opened.id))
        trader = trader_from_record(self.platform, request.trader_id, record)
        return ProvisioningResult(steps=steps, trader=trader, accounts=accounts)


def _money(amount: Decimal, currency: str, digits: int) -> Money:
    return Money(amount.quantize(Decimal(1).scaleb(-digits)), currency)


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
