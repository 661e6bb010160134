"""``DxTradeConnector``: DXtrade's DxRegister (users, accounts, cash) and dxsca-web
(reads), with dxFeed market-data entitlements, behind the gateway's families.

Where each family goes (paths relative to ``/dxweb/rest`` or ``/dxsca-web``):

=====================  =================================================================
create_trader          POST /api/register/client (user + its first account, seed 004 §2.1)
open_account           POST /api/register/client/{domain}/{login}/account
update_account         PUT /api/register/account/{cc}/{ac} (status; leverage as metadata)
deactivate_trader      POST .../client/{domain}/{login}/disable-user-and-terminate-accounts
                       (seed 004 §2.3), or the two documented steps (B3) where it is missing
reactivate_trader      PUT .../client/{domain}/{login} {"status":"OFFLINE"}, then POST a new
                       account (seed 004 §2.4)
get_traders            GET /api/register/client/{domain}/{login} per trader (concurrent)
get_accounts           GET /api/register/account/{cc}/{ac} per account, then ONE
                       GET /dxsca-web/accounts/metrics?accounts=a,b,... for the live money
get_positions          ONE GET /dxsca-web/accounts/positions?accounts=a,b,...
get_balance_operations GET /dxsca-web/accounts/{account}/transfers?time-from=&time-to=
get_deals              GET /dxsca-web/accounts/{account}/orders/history (COMPLETED)
deposit / withdraw     PUT /api/register/account/{cc}/{ac}/deposit|withdrawal/{key}
change_credit          GET the account, PUT {"credit": old + change} (read-modify-write)
market-data            dxFeed account of the user (``dxFeedAccountId``), its subscriptions
                       from the dxFeed API stand-in; events from the webhook via the bus
=====================  =================================================================
"""

from __future__ import annotations

import asyncio
import functools
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar, TypeVar

from brokergraph_dxtrade import __version__
from brokergraph_dxtrade.client import DXSCA, DXWEB, DxTradeClient, Response, segment
from brokergraph_dxtrade.mapping import (
    ACCOUNT_STATUS_OUT,
    PLATFORM,
    account_id,
    account_model,
    balance_operations,
    deals_of_order,
    iso,
    parse_account_id,
    parse_time,
    parse_trader_id,
    position_model,
    trader_id,
    trader_model,
)
from brokergraph_dxtrade.settings import DxTradeSettings
from brokergraph_dxtrade.webhook import events_from_payload, subscription_model, topic_for
from gateway.contract import (
    Account,
    AccountHistory,
    AccountReads,
    BalanceOperation,
    BalanceOperationKind,
    BrokerGraphError,
    Capability,
    Conflict,
    Connector,
    ConnectorContext,
    ConnectorHealth,
    CreateTraderRequest,
    Credit,
    DeactivateTraderRequest,
    Deal,
    Funding,
    HealthStatus,
    InsufficientFunds,
    InvalidInput,
    MarketDataEntitlements,
    MarketDataSubscription,
    MarketDataSubscriptionEvent,
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
    UpdateAccountRequest,
)

__all__ = ["MODES", "DxTradeConnector"]

T = TypeVar("T")
R = TypeVar("R")

#: createTrader ``options.mode`` (seed 004 §1).
MODES = ("SINGLE_FEED", "DXTRADE_XT", "CRM")
ACCOUNT_OPTIONS = frozenset(
    {"accountCode", "accountType", "accountCashType", "clearingCode", "categories", "balance"}
)
TRADER_OPTIONS = ACCOUNT_OPTIONS | {"mode", "dxFeedAccountId", "login", "domain", "brokerCode"}
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_FEED_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")
MAX_CATEGORIES = 50
#: How many numbered candidates a new login/accountCode tries before a random suffix.
NAME_TRIES = 5
OWNER_FLOW = "dxtrade-account-owner"
CREDIT_FLOW = "dxtrade-credit-change"


@dataclass(frozen=True, slots=True)
class _AccountPlan:
    """A new account's DXtrade body, checked before any call."""

    clearing_code: str
    account_code: str | None  # None: derived from the login and made unique
    currency: str
    account_type: str
    cash_type: str
    categories: tuple[Mapping[str, str], ...]
    balance: Decimal
    leverage: Decimal | None

    def body(self, code: str, broker_code: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "clearingCode": self.clearing_code,
            "accountCode": code,
            "type": "CLIENT",
            "status": "FULL_TRADING",
            "accountCashType": self.cash_type,
            "accountType": self.account_type,
            "currency": self.currency,
            "balance": self.balance,
            "categories": [dict(c) for c in self.categories],
        }
        if broker_code is not None:
            body["brokerCode"] = broker_code
        if self.leverage is not None:
            body["metadata"] = {"leverage": format(self.leverage, "f")}
        return body


def _invalid(message: str, *path: str) -> InvalidInput:
    return InvalidInput(message, field=["options", *path] if path else ["options"])


def _option_text(options: Mapping[str, Any], key: str, pattern: re.Pattern[str]) -> str | None:
    value = options.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not pattern.match(value):
        raise _invalid(f"options.{key} must be 1-64 letters, digits, '_', '.' or '-'", key)
    return value


def _choice(options: Mapping[str, Any], key: str, allowed: Sequence[str], default: str) -> str:
    value = options.get(key, default)
    if value not in allowed:
        raise _invalid(f"options.{key} must be one of {', '.join(allowed)}", key)
    return str(value)


def _categories(options: Mapping[str, Any]) -> tuple[Mapping[str, str], ...]:
    raw = options.get("categories", [])
    if not isinstance(raw, list) or len(raw) > MAX_CATEGORIES:
        raise _invalid(
            f"options.categories must be a list of at most {MAX_CATEGORIES} "
            "{category, value} objects",
            "categories",
        )
    result = []
    for item in raw:
        if (
            not isinstance(item, dict)
            or set(item) != {"category", "value"}
            or not all(isinstance(item[k], str) and 0 < len(item[k]) <= 100 for k in item)
        ):
            raise _invalid(
                'each category is {"category": "<domain>", "value": "<value>"} (strings)',
                "categories",
            )
        result.append({"category": item["category"], "value": item["value"]})
    return tuple(result)


def _balance(options: Mapping[str, Any], account_type: str) -> Decimal:
    raw = options.get("balance")
    if raw is None:
        return Decimal(0)
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise _invalid("options.balance must be an integer or a decimal string", "balance")
    try:
        value = Decimal(str(raw))
    except ArithmeticError:
        raise _invalid("options.balance must be a decimal number", "balance") from None
    if not value.is_finite() or value < 0:
        raise _invalid("options.balance must be zero or more", "balance")
    if value and account_type != "DEMO":
        raise _invalid(
            "options.balance is for DEMO accounts; fund a LIVE account with deposit "
            "(idempotent, audited)",
            "balance",
        )
    return value


def _check_keys(options: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise _invalid(f"unknown options {unknown}; DXtrade takes {sorted(allowed)}")


def _currency(value: str | None) -> str:
    if value is None or not re.fullmatch(r"[A-Z]{3}", value.upper()):
        raise InvalidInput("currency must be a 3-letter ISO code", field=["currency"])
    return value.upper()


def _login_base(email: str) -> str:
    local = email.partition("@")[0].lower()
    base = re.sub(r"[^a-z0-9_.-]+", "-", local).strip("-.") or "trader"
    return base[:40]


def _message(error: BrokerGraphError) -> str:
    return f"{error.message} ({error.code})"


class DxTradeConnector(
    Connector,
    TraderProvisioning,
    AccountReads,
    AccountHistory,
    Funding,
    Credit,
    MarketDataEntitlements,
):
    """DXtrade (DxRegister + dxsca-web) with dxFeed entitlements; see the module table."""

    name: ClassVar[str] = "dxtrade"
    platform: ClassVar[str] = PLATFORM
    version: ClassVar[str] = __version__
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.TRADER_PROVISIONING,
            Capability.ACCOUNT_READS,
            Capability.ACCOUNT_HISTORY,
            Capability.FUNDING,
            Capability.CREDIT,
            Capability.MARKET_DATA_ENTITLEMENTS,
        }
    )
    #: Account reads may be 5 s old (DXtrade allows ~10 reads/s per session); market-data
    #: entitlements change rarely and their callbacks are pushed to subscribers anyway.
    cache_ttl_seconds: ClassVar[Mapping[Capability, float]] = {
        Capability.ACCOUNT_READS: 5.0,
        Capability.MARKET_DATA_ENTITLEMENTS: 5.0,
    }
    # Cash operations use the key as DXtrade's client-generated id, which DXtrade dedupes.
    idempotent_writes: ClassVar[bool] = True

    def __init__(self, context: ConnectorContext) -> None:
        super().__init__(context)
        self.settings = DxTradeSettings.from_section(context.name, context.settings)
        s = self.settings
        self.client = DxTradeClient(
            base_url=s.url,
            username=s.username,
            domain=s.domain,
            password=s.password,
            timeout_seconds=s.timeout_seconds,
            reads_per_second=s.reads_per_second,
            dxfeed_url=s.dxfeed_url,
            dxfeed_token=s.dxfeed_token or s.webhook_secret,
        )
        self._slots = asyncio.Semaphore(s.concurrency)
        self._owners: dict[str, str] = {}
        self._currencies: dict[str, str] = {}
        self._feed_ids: dict[str, str] = {}
        self._credit_locks: dict[str, asyncio.Lock] = {}

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
        """Metrics of many accounts in ONE dxsca-web read (unknown ones are left out)."""
        if not account_ids:
            return {}
        response = await self.client.get(
            DXSCA,
            "/accounts/metrics",
            what="account metrics",
            params=self.client.accounts_param(account_ids),
        )
        return {str(m.get("account")): m for m in _items(response.body, "metrics")}

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

    # -- ACCOUNT_READS ------------------------------------------------------------------

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
        if valid:
            response = await self.client.get(
                DXSCA,
                "/accounts/positions",
                what="positions",
                params=self.client.accounts_param(valid),
            )
            for p in _items(response.body, "positions"):
                position = position_model(p)
                grouped.setdefault(position.account_id, []).append(position)
        return [grouped.get(i, []) for i in account_ids]

    # -- ACCOUNT_HISTORY ----------------------------------------------------------------

    async def get_balance_operations(
        self, account_id: str, start: datetime, end: datetime
    ) -> Sequence[BalanceOperation]:
        self._account_parts(account_id)
        response = await self.client.get(
            DXSCA,
            f"/accounts/{segment(account_id)}/transfers",
            what="account",
            params={"time-from": iso(start), "time-to": iso(end)},
        )
        operations = [
            op for t in _items(response.body, "transfers") for op in balance_operations(t)
        ]
        return sorted((o for o in operations if start <= o.at < end), key=lambda o: o.at)

    async def get_deals(self, account_id: str, start: datetime, end: datetime) -> Sequence[Deal]:
        self._account_parts(account_id)
        response = await self.client.get(
            DXSCA,
            f"/accounts/{segment(account_id)}/orders/history",
            what="account",
            params={
                "in-status": "COMPLETED",
                "completed-from": iso(start),
                "completed-to": iso(end),
            },
        )
        deals = [d for o in _items(response.body, "orders") for d in deals_of_order(o)]
        return sorted(
            (d for d in deals if start <= d.executed_at < end), key=lambda d: d.executed_at
        )

    # -- FUNDING and CREDIT -------------------------------------------------------------

    async def _account_currency(self, value: str) -> str:
        currency = self._currencies.get(value)
        if currency is None:
            account = await self._account_or_none(value)
            if account is None:
                raise NotFound(f"no DXtrade account {value!r}", field=["accountId"])
            currency = str(account.get("currency"))
        return currency

    async def _cash(self, kind: str, movement: MoneyMovement) -> BalanceOperation:
        clearing, code = self._account_parts(movement.account_id)
        if movement.amount <= 0:
            raise InvalidInput("amount must be greater than zero", field=["amount"])
        currency = await self._account_currency(movement.account_id)
        if movement.currency is not None and movement.currency.upper() != currency:
            raise InvalidInput(f"the account's currency is {currency}", field=["currency"])
        # The gateway's idempotency key IS DXtrade's client-generated id: a retry of the
        # same request returns DXtrade's first record and moves nothing (B3).
        path = f"{self._account_path(clearing, code)}/{kind}/{segment(movement.idempotency_key)}"
        body = {
            "currency": currency,
            "amount": movement.amount,
            "description": movement.comment or f"brokergraph {kind}",
        }
        response = await self.client.call(DXWEB, "PUT", path, what=kind, body=body)
        record = response.body if isinstance(response.body, Mapping) else {}
        return BalanceOperation(
            platform=PLATFORM,
            id=movement.idempotency_key,
            account_id=movement.account_id,
            kind=BalanceOperationKind.DEPOSIT
            if kind == "deposit"
            else BalanceOperationKind.WITHDRAWAL,
            amount=Money(movement.amount, currency),
            at=parse_time(record.get("transactionTime")) or datetime.now(UTC),
            comment=movement.comment,
            external_id=movement.idempotency_key,
            raw=dict(record),
        )

    async def deposit(self, movement: MoneyMovement) -> BalanceOperation:
        return await self._cash("deposit", movement)

    async def withdraw(self, movement: MoneyMovement) -> BalanceOperation:
        """Returns only once DXtrade has debited: its PUT answers after the debit (B3)."""
        return await self._cash("withdrawal", movement)

    async def change_credit(self, movement: MoneyMovement) -> BalanceOperation:
        """Credit is an absolute account field (B3), so this reads, adds and writes.

        Two changes of one account racing across replicas could lose one (DXtrade
        offers no ETag on accounts): changes are serialised per account in this
        process, and each key's before/after is kept in the gateway store so a retry
        of a change that reached DXtrade is recognised instead of applied twice.
        """
        clearing, code = self._account_parts(movement.account_id)
        if movement.amount == 0:
            raise InvalidInput("amount must be non-zero", field=["amount"])
        flow_id = f"dxtrade:credit:{movement.account_id}:{movement.idempotency_key}"
        lock = self._credit_locks.setdefault(movement.account_id, asyncio.Lock())
        async with lock:
            account = await self._account_or_none(movement.account_id)
            if account is None:
                raise NotFound(f"no DXtrade account {movement.account_id!r}", field=["accountId"])
            currency = str(account.get("currency"))
            current = Decimal(str(account.get("credit") or 0))
            flow = await self.context.store.get_flow(flow_id)
            if flow is not None:
                if Decimal(flow["amount"]) != movement.amount:
                    raise Conflict(
                        "this idempotency key was used for another credit change",
                        field=["idempotencyKey"],
                    )
                target = Decimal(flow["target"])
                if not flow.get("done"):
                    if current == target:  # it reached DXtrade before we could note it
                        await self.context.store.save_flow(
                            flow_id, CREDIT_FLOW, {**flow, "done": True}
                        )
                    elif current == Decimal(flow["before"]):
                        flow = None  # it never reached DXtrade: apply it now
                    else:
                        raise Conflict(
                            "the account's credit changed since this key's first attempt, "
                            "whose outcome is unknown; read the account before retrying"
                        )
            if flow is None:
                target = current + movement.amount
                if target < 0:
                    raise InsufficientFunds(
                        f"the account has {current} {currency} of credit; cannot remove "
                        f"{-movement.amount}",
                        field=["amount"],
                    )
                state = {
                    "amount": str(movement.amount),
                    "before": str(current),
                    "target": str(target),
                    "done": False,
                }
                await self.context.store.save_flow(flow_id, CREDIT_FLOW, state)
                await self.client.call(
                    DXWEB,
                    "PUT",
                    self._account_path(clearing, code),
                    what="credit change",
                    body={"credit": target},
                )
                await self.context.store.save_flow(flow_id, CREDIT_FLOW, {**state, "done": True})
        return BalanceOperation(
            platform=PLATFORM,
            id=movement.idempotency_key,
            account_id=movement.account_id,
            kind=BalanceOperationKind.CREDIT_IN
            if movement.amount > 0
            else BalanceOperationKind.CREDIT_OUT,
            amount=Money(movement.amount, currency),
            at=datetime.now(UTC),
            balance_after=None,
            comment=movement.comment,
            external_id=movement.idempotency_key,
        )

    # -- TRADER_PROVISIONING ------------------------------------------------------------

    def _account_plan(
        self,
        options: Mapping[str, Any],
        currency: str,
        is_live: bool,
        leverage: Decimal | None,
        *,
        template: Mapping[str, Any] | None = None,
    ) -> _AccountPlan:
        t = template or {}
        default_type = "LIVE" if is_live else "DEMO"
        account_type = _choice(
            options, "accountType", ("LIVE", "DEMO"), str(t.get("accountType", default_type))
        )
        code = _option_text(options, "accountCode", _CODE)
        clearing = _option_text(options, "clearingCode", _CODE) or str(
            t.get("clearingCode", self.settings.clearing_code)
        )
        categories = (
            _categories(options)
            if "categories" in options
            else tuple(
                {"category": str(c["category"]), "value": str(c.get("value"))}
                for c in t.get("categories") or []
                if isinstance(c, Mapping) and "category" in c
            )
        )
        if leverage is not None and (leverage <= 0 or leverage > 10_000):
            raise InvalidInput("leverage must be between 0 and 10000", field=["leverage"])
        return _AccountPlan(
            clearing_code=clearing,
            account_code=code,
            currency=currency,
            account_type=account_type,
            cash_type=_choice(
                options,
                "accountCashType",
                ("MARGIN", "CASH"),
                str(t.get("accountCashType", "MARGIN")),
            ),
            categories=categories,
            balance=_balance(options, account_type),
            leverage=leverage,
        )

    async def _exists(self, path: str, what: str) -> bool:
        try:
            await self.client.get(DXWEB, path, what=what)
        except NotFound:
            return False
        return True

    @staticmethod
    async def _free_name(base: str, taken: Callable[[str], Awaitable[bool]]) -> str:
        """``base`` or the first free ``base-N`` (then a random suffix)."""
        for n in range(1, NAME_TRIES + 1):
            candidate = base if n == 1 else f"{base}-{n}"
            if not await taken(candidate):
                return candidate
        return f"{base}-{secrets.token_hex(3)}"

    async def _free_account_code(
        self, plan: _AccountPlan, base: str, also_taken: Collection[str] = ()
    ) -> str:
        async def taken(code: str) -> bool:
            if code in also_taken:
                return True
            return await self._exists(self._account_path(plan.clearing_code, code), "account")

        if plan.account_code is not None:
            return plan.account_code
        return await self._free_name(base, taken)

    @staticmethod
    def _client_body(
        request: CreateTraderRequest,
        mode: str,
        domain: str,
        login: str,
        broker_code: str | None,
        feed_id: str | None,
    ) -> dict[str, Any]:
        """Seed 004 §2.1's createClient body (accounts added by the caller)."""
        body: dict[str, Any] = {
            "domain": domain,
            "login": login,
            "type": "CLIENT",
            "status": "ONLINE",
            # Without a password the user gets a random one and must reset it.
            "password": request.password or secrets.token_urlsafe(12),
            "passwordReset": request.password is None,
        }
        if request.name:
            body["fullName"] = request.name
        if broker_code is not None:
            body["brokerCode"] = broker_code
        if request.group is not None:
            body["groups"] = [request.group]
        # DxTradeXT reads an email without dxFeedAccountId as DxTradeXT mode (seed 004
        # §2.1), so a single-feed user is created without one.
        if mode != "SINGLE_FEED":
            body["email"] = request.email
        if feed_id is not None:
            body["dxFeedAccountId"] = feed_id
        return body

    async def create_trader(self, request: CreateTraderRequest) -> ProvisioningResult:
        """One call: the user and (with a currency) its first account, as seed 004 §2.1.

        ``options``: ``mode`` (SINGLE_FEED | DXTRADE_XT | CRM; CRM when a
        ``dxFeedAccountId`` is given, else SINGLE_FEED), ``dxFeedAccountId`` (CRM only,
        required there), ``login`` (default: the email's local part, made unique),
        ``domain``, ``brokerCode``, and for the account ``accountCode``, ``accountType``
        (LIVE | DEMO), ``accountCashType`` (MARGIN | CASH), ``clearingCode``,
        ``categories`` [{category, value}], ``balance`` (DEMO only).
        """
        options = request.options
        _check_keys(options, TRADER_OPTIONS)
        if request.resume_token is not None:
            raise InvalidInput(
                "DXtrade creates a user and its account in one call: there is nothing to resume",
                field=["resumeToken"],
            )
        feed_id = _option_text(options, "dxFeedAccountId", _FEED_ID)
        mode = _choice(options, "mode", MODES, "CRM" if feed_id else "SINGLE_FEED")
        if mode == "CRM" and feed_id is None:
            raise _invalid(
                "CRM mode needs options.dxFeedAccountId (the CRM creates the dxFeed account "
                "first, seed 004 §2.1)",
                "dxFeedAccountId",
            )
        if mode != "CRM" and feed_id is not None:
            raise _invalid(
                f"options.dxFeedAccountId is for CRM mode, not {mode}", "dxFeedAccountId"
            )
        if mode == "DXTRADE_XT" and not request.email:
            raise InvalidInput("DxTradeXT mode needs the user's email", field=["email"])
        login_option = _option_text(options, "login", _CODE)
        domain = _option_text(options, "domain", _CODE) or self.settings.domain
        broker_code = _option_text(options, "brokerCode", _CODE) or self.settings.broker_code
        plan: _AccountPlan | None = None
        if request.currency is not None or ACCOUNT_OPTIONS & set(options):
            if request.currency is None:
                raise InvalidInput(
                    "currency is required when account options are given", field=["currency"]
                )
            plan = self._account_plan(
                options, _currency(request.currency), request.is_live, request.leverage
            )
        elif request.leverage is not None:
            raise InvalidInput(
                "leverage applies to an account: give a currency too", field=["leverage"]
            )
        if request.group is not None and not _CODE.match(request.group):
            raise InvalidInput("group must be a DXtrade user group name", field=["group"])

        if login_option is not None and await self._exists(
            self._trader_path(login_option, domain), "user"
        ):
            raise Conflict(
                f"DXtrade user {login_option}@{domain} exists already", field=["options", "login"]
            )
        if (
            plan is not None
            and plan.account_code is not None
            and await self._exists(
                self._account_path(plan.clearing_code, plan.account_code), "account"
            )
        ):
            raise Conflict(
                f"DXtrade account {plan.clearing_code}:{plan.account_code} exists already",
                field=["options", "accountCode"],
            )
        base = login_option or _login_base(request.email)
        for attempt in range(2):
            if login_option is not None:
                login = login_option
            elif attempt == 0:
                login = await self._free_name(
                    base, lambda c: self._exists(self._trader_path(c, domain), "user")
                )
            else:
                login = f"{base}-{secrets.token_hex(3)}"
            body = self._client_body(request, mode, domain, login, broker_code, feed_id)
            if plan is not None:
                code = await self._free_account_code(plan, f"{login}-{plan.currency.lower()}")
                body["accounts"] = [plan.body(code, broker_code)]
            try:
                response = await self.client.call(
                    DXWEB, "POST", "/api/register/client", what="user", body=body
                )
            except Conflict:
                # A derived name was taken between our check and the create: once more.
                if attempt or login_option is not None:
                    raise
                continue
            break
        client = response.body if isinstance(response.body, Mapping) else {}
        trader = trader_model(client)
        accounts = await self._accounts_of(client)
        steps = [
            ProvisioningStep(
                name="create user" + (" with account" if accounts else ""),
                succeeded=True,
                reference=trader.id,
                message=f"{mode} mode",
            )
        ]
        return ProvisioningResult(
            steps=steps,
            trader=trader,
            accounts=[account_model(a, owner=trader.id) for a in accounts],
        )

    async def open_account(self, request: OpenAccountRequest) -> Account:
        options = request.options
        _check_keys(options, ACCOUNT_OPTIONS)
        login, domain = self._trader_parts(request.trader_id)
        plan = self._account_plan(
            options, _currency(request.currency), request.is_live, request.leverage
        )
        if request.group is not None:
            raise InvalidInput(
                "DXtrade accounts have categories, not groups: use options.categories",
                field=["group"],
            )
        client = (await self._client(request.trader_id)).body
        own = {str(a.get("accountCode")) for a in client.get("accounts") or []}
        return await self._add_account(login, domain, plan, own)

    async def _add_account(
        self, login: str, domain: str, plan: _AccountPlan, own: set[str], base: str | None = None
    ) -> Account:
        owner = trader_id(login, domain)
        code = await self._free_account_code(plan, base or f"{login}-{plan.currency.lower()}", own)
        path = f"{self._trader_path(login, domain)}/account"
        body = plan.body(code, self.settings.broker_code)
        try:
            response = await self.client.call(DXWEB, "POST", path, what="account", body=body)
        except Conflict:
            if plan.account_code is not None:
                raise
            body["accountCode"] = f"{code}-{secrets.token_hex(3)}"
            response = await self.client.call(DXWEB, "POST", path, what="account", body=body)
        account = response.body if isinstance(response.body, Mapping) else {}
        aid = account_id(str(account.get("clearingCode")), str(account.get("accountCode")))
        await self._remember_owner(aid, owner)
        return account_model(account, owner=owner)

    async def update_account(self, request: UpdateAccountRequest) -> Account:
        """Status, and leverage recorded in the account's ``metadata`` (see the README:
        DXtrade has no account leverage; margin follows instrument margin rates and the
        account's Margining category)."""
        clearing, code = self._account_parts(request.account_id)
        if request.group is not None:
            raise InvalidInput("DXtrade accounts have categories, not groups", field=["group"])
        body: dict[str, Any] = {}
        if request.status is not None:
            status = ACCOUNT_STATUS_OUT.get(request.status)
            if status is None:
                raise InvalidInput(
                    f"DXtrade has no account status {request.status.value}; log a user out "
                    "with deactivateTrader",
                    field=["status"],
                )
            body["status"] = status
        if request.leverage is not None:
            if request.leverage <= 0 or request.leverage > 10_000:
                raise InvalidInput("leverage must be between 0 and 10000", field=["leverage"])
            current = await self._account_or_none(request.account_id)
            if current is None:
                raise NotFound(f"no DXtrade account {request.account_id!r}")
            metadata = dict(current.get("metadata") or {})
            metadata["leverage"] = format(request.leverage, "f")
            body["metadata"] = metadata
        if not body:
            raise InvalidInput("nothing to change", field=["status"])
        response = await self.client.call(
            DXWEB, "PUT", self._account_path(clearing, code), what="account", body=body
        )
        account = response.body if isinstance(response.body, Mapping) else {}
        return account_model(account, owner=await self._owner(request.account_id))

    async def deactivate_trader(self, request: DeactivateTraderRequest) -> ProvisioningResult:
        """Seed 004 §2.3: one call disables the user, terminates every account and, when
        asked, cancels the dxFeed subscriptions.  Each effect is read back and reported
        as its own step (disable user, terminate accounts, cancel market-data
        subscriptions).  A host without that route (or ``use_disable_route = false``)
        gets B3's two documented steps instead.  A refused step ends the flow with that
        step failed and its reason; the steps before it stay done."""
        login, domain = self._trader_parts(request.trader_id)
        before = (await self._client(request.trader_id)).body
        cancel = request.cancel_market_data_subscriptions
        self._feed_ids.pop(request.trader_id, None)
        if self.settings.use_disable_route:
            path = f"{self._trader_path(login, domain)}/disable-user-and-terminate-accounts"
            try:
                await self.client.call(
                    DXWEB,
                    "POST",
                    path,
                    what="deactivation",
                    body={"cancelDxFeedSubscriptions": cancel},
                )
            except NotFound:  # the user exists (read above): the route does not
                steps = await self._deactivate_in_steps(login, domain, before, cancel)
            except BrokerGraphError as error:
                refused = ProvisioningStep(
                    name="disable user",
                    succeeded=False,
                    reference=request.trader_id,
                    message=f"DXtrade refused the deactivation: {_message(error)}; "
                    "nothing was changed",
                )
                return ProvisioningResult(steps=[refused], trader=trader_model(before))
            else:
                steps = []
        else:
            steps = await self._deactivate_in_steps(login, domain, before, cancel)
        after = (await self._client(request.trader_id)).body
        accounts = await self._accounts_of(after)
        result_accounts = [account_model(a, owner=request.trader_id) for a in accounts]
        if any(not s.succeeded for s in steps):
            return ProvisioningResult(
                steps=steps, trader=trader_model(after), accounts=result_accounts
            )
        steps = [self._disabled_step(request.trader_id, after), self._terminated_step(accounts)]
        if cancel:
            steps.append(await self._check_cancelled(request.trader_id, after))
        return ProvisioningResult(steps=steps, trader=trader_model(after), accounts=result_accounts)

    @staticmethod
    def _disabled_step(tid: str, client: Mapping[str, Any]) -> ProvisioningStep:
        disabled = client.get("status") == "DISABLED"
        return ProvisioningStep(
            name="disable user",
            succeeded=disabled,
            reference=tid,
            message=None if disabled else f"the user is still {client.get('status')}",
        )

    @staticmethod
    def _terminated_step(accounts: Sequence[Mapping[str, Any]]) -> ProvisioningStep:
        ids = [account_id(a["clearingCode"], a["accountCode"]) for a in accounts]
        still_open = [
            i
            for i, a in zip(ids, accounts, strict=True)
            if a.get("status") not in ("TERMINATED", "EXPIRED")
        ]
        return ProvisioningStep(
            name="terminate accounts",
            succeeded=not still_open,
            reference=",".join(ids) or None,
            message=f"still open: {', '.join(still_open)}" if still_open else None,
        )

    async def _check_cancelled(self, tid: str, client: Mapping[str, Any]) -> ProvisioningStep:
        name = "cancel market-data subscriptions"
        feed_id = client.get("dxFeedAccountId")
        if not isinstance(feed_id, str):
            return ProvisioningStep(
                name=name, succeeded=True, message="the user has no dxFeed account (single feed)"
            )
        try:
            subscriptions = await self._subscriptions_of(tid, feed_id)
        except BrokerGraphError as error:
            return ProvisioningStep(
                name=name,
                succeeded=False,
                reference=feed_id,
                message=f"could not read the subscriptions back: {_message(error)}",
            )
        active = [s.name for s in subscriptions if s.active]
        return ProvisioningStep(
            name=name,
            succeeded=not active,
            reference=feed_id,
            message=f"still active: {', '.join(active)}" if active else None,
        )

    async def _deactivate_in_steps(
        self, login: str, domain: str, client: Mapping[str, Any], cancel: bool
    ) -> list[ProvisioningStep]:
        """B3's two documented steps.  dxFeed subscriptions cannot be cancelled this way,
        so with ``cancel`` the last step is reported as refused."""
        tid = trader_id(login, domain)
        try:
            await self._put_client(login, domain, {"status": "DISABLED"})
        except BrokerGraphError as error:
            return [
                ProvisioningStep(
                    name="disable user",
                    succeeded=False,
                    reference=tid,
                    message=f"DXtrade refused: {_message(error)}; nothing was changed",
                )
            ]
        steps = [ProvisioningStep(name="disable user", succeeded=True, reference=tid)]
        updates = [
            {
                "clearingCode": a["clearingCode"],
                "accountCode": a["accountCode"],
                "status": "TERMINATED",
            }
            for a in client.get("accounts") or []
            if a.get("status") not in ("TERMINATED", "EXPIRED")
        ]
        try:
            if updates:
                await self.client.call(
                    DXWEB, "PUT", "/api/register/account", what="account update", body=updates
                )
        except BrokerGraphError as error:
            steps.append(
                ProvisioningStep(
                    name="terminate accounts",
                    succeeded=False,
                    message=f"DXtrade refused: {_message(error)}; the user is disabled",
                )
            )
            return steps
        steps.append(ProvisioningStep(name="terminate accounts", succeeded=True))
        if cancel:
            steps.append(
                ProvisioningStep(
                    name="cancel market-data subscriptions",
                    succeeded=False,
                    message="this DXtrade host has no disable-user-and-terminate-accounts "
                    "route: cancel the subscriptions in dxFeed",
                )
            )
        return steps

    async def _put_client(self, login: str, domain: str, body: Mapping[str, Any]) -> Response:
        """PUT a user update with ``If-Match`` (B7); a stale ETag is re-read once."""
        path = self._trader_path(login, domain)
        for attempt in range(2):
            etag = (await self.client.get(DXWEB, path, what="user")).etag
            try:
                return await self.client.call(
                    DXWEB, "PUT", path, what="user update", body=body, if_match=etag
                )
            except Conflict as error:
                if attempt or error.details.get("status") != 412:
                    raise
        raise AssertionError("unreachable")

    async def reactivate_trader(self, request: ReactivateTraderRequest) -> ProvisioningResult:
        """Seed 004 §2.4: status OFFLINE, then a NEW account (terminated ones stay so).

        The new account is ``new_account`` when given, else a copy of the user's latest
        account's settings (currency, type, cash type, categories) with a new code and
        no money.
        """
        login, domain = self._trader_parts(request.trader_id)
        client = (await self._client(request.trader_id)).body
        accounts = [a for a in client.get("accounts") or [] if isinstance(a, Mapping)]
        template = accounts[-1] if accounts else None
        if request.new_account is not None:
            new = request.new_account
            _check_keys(new.options, ACCOUNT_OPTIONS)
            plan = self._account_plan(
                new.options, _currency(new.currency), new.is_live, new.leverage
            )
        elif template is not None:
            plan = self._account_plan(
                {}, _currency(str(template.get("currency"))), True, None, template=template
            )
        else:
            raise InvalidInput(
                "the user has no account to copy: give newAccount", field=["newAccount"]
            )
        steps: list[ProvisioningStep] = []
        status = client.get("status")
        if status == "DISABLED":
            try:
                await self._put_client(login, domain, {"status": "OFFLINE"})
            except BrokerGraphError as error:
                steps.append(
                    ProvisioningStep(
                        name="set user OFFLINE",
                        succeeded=False,
                        reference=request.trader_id,
                        message=f"DXtrade refused: {_message(error)}; no account was opened",
                    )
                )
                return ProvisioningResult(steps=steps, trader=trader_model(client))
            steps.append(
                ProvisioningStep(
                    name="set user OFFLINE", succeeded=True, reference=request.trader_id
                )
            )
        else:
            steps.append(
                ProvisioningStep(
                    name="set user OFFLINE",
                    succeeded=True,
                    reference=request.trader_id,
                    message=f"already enabled ({status}); left as is",
                )
            )
        opened: list[Account] = []
        own = {str(a.get("accountCode")) for a in accounts}
        base = None
        if template is not None and plan.account_code is None:
            base = re.sub(r"-\d+$", "", str(template.get("accountCode")))
        try:
            account = await self._add_account(login, domain, plan, own, base)
        except BrokerGraphError as error:
            steps.append(
                ProvisioningStep(
                    name="open new account",
                    succeeded=False,
                    message=f"DXtrade refused the new account: {_message(error)}",
                )
            )
        else:
            opened.append(account)
            steps.append(
                ProvisioningStep(name="open new account", succeeded=True, reference=account.id)
            )
        after = (await self._client(request.trader_id)).body
        return ProvisioningResult(steps=steps, trader=trader_model(after), accounts=opened)

    # -- MARKET_DATA_ENTITLEMENTS -------------------------------------------------------

    async def _subscriptions_of(self, tid: str, feed_id: str) -> list[MarketDataSubscription]:
        response = await self.client.dxfeed(
            f"/dxfeed/accounts/{segment(feed_id)}/subscriptions", what="dxFeed account"
        )
        return [subscription_model(tid, s) for s in _items(response.body, "subscriptions")]

    async def _feed_id(self, tid: str) -> str | None:
        known = self._feed_ids.get(tid)
        if known is not None:
            return known
        client = await self._client_or_none(tid)
        feed_id = None if client is None else client.get("dxFeedAccountId")
        if isinstance(feed_id, str) and feed_id:
            self._feed_ids[tid] = feed_id
            return feed_id
        return None

    async def get_market_data_subscriptions(
        self, trader_ids: Sequence[str]
    ) -> Sequence[Sequence[MarketDataSubscription]]:
        """The user's dxFeed subscriptions; none for single-feed users (or XT users who
        never logged in: their dxFeed account is created at the first login)."""

        async def one(tid: str) -> Sequence[MarketDataSubscription]:
            feed_id = await self._feed_id(tid)
            if feed_id is None:
                return []
            try:
                return await self._subscriptions_of(tid, feed_id)
            except NotFound:
                return []

        return await self._each(trader_ids, one)

    async def market_data_events(
        self, trader_id: str
    ) -> AsyncIterator[MarketDataSubscriptionEvent]:
        """Events the webhook published for this user, as they arrive (no replay)."""
        async with self.context.events.subscribe(topic_for(trader_id)) as subscription:
            async for payload in subscription:
                if not isinstance(payload, Mapping):
                    continue
                try:
                    events = events_from_payload(trader_id, payload)
                except (KeyError, TypeError, ValueError):
                    self.context.logger.warning("dropped an unreadable dxFeed event")
                    continue
                for event in events:
                    yield event


def _items(body: Any, key: str) -> list[Mapping[str, Any]]:
    """The list under ``key`` of a dxsca-web answer (``{"metrics": [...]}``, B5)."""
    if body is None:
        return []
    items = body.get(key) if isinstance(body, Mapping) else body
    if not isinstance(items, list):
        raise ProtocolError(f"DXtrade's answer has no {key!r} list")
    return [i for i in items if isinstance(i, Mapping)]
