"""The toy connector: the toy sandbox's JSON API behind the standard families.

It declares every capability except PARTNER_DIRECTORY, TRADING_ACCESS, TAX,
CLIENT_REPORTS and INSTRUMENTS, so the gateway's "capability not supported" path has a
real connector to refuse.  Batched reads make one HTTP call per batch; errors map to
:mod:`gateway.errors` through one table (:data:`ERRORS`).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote

import httpx
import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from gateway import models
from gateway.config import Secret
from gateway.connectors import (
    AccountAnalyticsReads,
    AccountHistory,
    AccountReads,
    AccountStream,
    Bonus,
    CancelOrdersRequest,
    Capability,
    Connector,
    ConnectorContext,
    CreateTraderRequest,
    Credit,
    DeactivateTraderRequest,
    Funding,
    MarketDataEntitlements,
    MoneyMovement,
    OpenAccountRequest,
    OrderReads,
    OrderRouting,
    OrderStream,
    PlaceOrderRequest,
    ProvisioningResult,
    ProvisioningStep,
    ReactivateTraderRequest,
    ReplaceOrderRequest,
    TraderProvisioning,
    UpdateAccountRequest,
)
from gateway.errors import (
    BrokerGraphError,
    Conflict,
    InsufficientFunds,
    InvalidInput,
    NotFound,
    ProtocolError,
    RateLimited,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from tests.toy import _wire

M = TypeVar("M")
DEFAULT_TIMEOUT_SECONDS = 10.0
RESUME_PREFIX = "toy-trader:"

#: (HTTP status, the platform's error code or None for any) -> our error class.
ERRORS: Mapping[tuple[int, str | None], type[BrokerGraphError]] = {
    (400, None): InvalidInput,
    (401, None): UpstreamRejected,  # our credentials, not the viewer's: not PermissionDenied
    (404, None): NotFound,
    (409, None): Conflict,
    (422, "NOT_ENOUGH_MONEY"): InsufficientFunds,
    (422, None): InvalidInput,
    (429, None): RateLimited,
    (500, None): UpstreamUnavailable,
    (502, None): UpstreamUnavailable,
    (503, None): UpstreamUnavailable,
}


def error_for(status: int, code: str | None, message: str) -> BrokerGraphError:
    cls = ERRORS.get((status, code)) or ERRORS.get((status, None)) or UpstreamError
    return cls(message, details={"platform": "toy", "vendorCode": code or str(status)})


class ToyConnector(
    Connector,
    TraderProvisioning,
    AccountReads,
    AccountHistory,
    AccountAnalyticsReads,
    Funding,
    Credit,
    Bonus,
    OrderReads,
    OrderRouting,
    OrderStream,
    AccountStream,
    MarketDataEntitlements,
):
    name: ClassVar[str] = "toy"
    platform: ClassVar[str] = "toy"
    version: ClassVar[str] = "1.0"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(Capability) - {
        Capability.PARTNER_DIRECTORY,
        Capability.TRADING_ACCESS,
        Capability.TAX,
        Capability.CLIENT_REPORTS,
        Capability.INSTRUMENTS,
    }
    cache_ttl_seconds: ClassVar[Mapping[Capability, float]] = {Capability.ACCOUNT_READS: 30.0}
    # Money and order writes carry the key (clientId, clientOrderId); the sandbox dedupes.
    idempotent_writes: ClassVar[bool] = True

    def __init__(self, context: ConnectorContext) -> None:
        super().__init__(context)
        # Settings are read in start(): a bad section then fails this connector only.
        self._client: httpx.AsyncClient | None = None
        self._base_url = ""
        self._headers: dict[str, str] = {}

    # -- lifecycle and transport ------------------------------------------------------

    def _setting(self, key: str) -> str:
        value = self.context.settings.get(key)
        if isinstance(value, Secret):  # the gateway wraps secret-looking keys
            value = value.reveal()
        if not isinstance(value, str) or not value:
            raise ValueError(f"[connectors.{self.context.name}] {key} must be set")
        return value

    async def start(self) -> None:
        timeout = float(self.context.settings.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS))
        self._base_url = self._setting("url").rstrip("/")
        self._headers = {"X-Api-Key": self._setting("api_key")}
        self._client = httpx.AsyncClient(
            base_url=self._base_url, headers=self._headers, timeout=timeout
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        if self._client is None:
            raise UpstreamUnavailable("the toy connector is not started")
        try:
            response = await self._client.request(method, path, params=params, json=body)
        except httpx.TimeoutException:
            raise UpstreamTimeout("the toy platform did not answer in time") from None
        except httpx.TransportError:
            raise UpstreamUnavailable("the toy platform cannot be reached") from None
        try:
            data = response.json()
        except ValueError:
            raise ProtocolError("the toy platform answered something that is not JSON") from None
        if response.is_success:
            return data
        code = data.get("error") if isinstance(data, dict) else None
        raise error_for(response.status_code, code, f"the toy platform refused: {code}")

    def _decode(self, convert: Callable[[Any, str], M], data: Any) -> M:
        try:
            return convert(data, self.platform)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ProtocolError("the toy platform sent an incomplete object") from error

    async def _batch(
        self, path: str, param: str, ids: Sequence[str], key: str
    ) -> list[dict[str, Any]]:
        """One call for the whole batch; ids the wire cannot carry are simply not found."""
        wanted = [i for i in dict.fromkeys(ids) if i and "," not in i]
        if not wanted:
            return []
        data = await self._call("GET", path, params={param: ",".join(wanted)})
        items: list[dict[str, Any]] = data[key]
        return items

    async def health(self) -> models.ConnectorHealth:
        started = time.perf_counter()
        try:
            await self._call("GET", "/health")
        except BrokerGraphError as error:
            return models.ConnectorHealth(status=models.HealthStatus.DOWN, detail=error.code)
        elapsed = round((time.perf_counter() - started) * 1000, 2)
        return models.ConnectorHealth(status=models.HealthStatus.UP, latency_ms=elapsed)

    # -- account reads ------------------------------------------------------------------

    async def get_traders(self, trader_ids: Sequence[str]) -> Sequence[models.Trader | None]:
        found = {
            t.id: t
            for t in (
                self._decode(_wire.trader, d)
                for d in await self._batch("/traders", "ids", trader_ids, "traders")
            )
        }
        return [found.get(i) for i in trader_ids]

    async def get_accounts(self, account_ids: Sequence[str]) -> Sequence[models.Account | None]:
        found = {
            a.id: a
            for a in (
                self._decode(_wire.account, d)
                for d in await self._batch("/accounts", "ids", account_ids, "accounts")
            )
        }
        return [found.get(i) for i in account_ids]

    async def get_trader_accounts(
        self, trader_ids: Sequence[str]
    ) -> Sequence[Sequence[models.Account]]:
        wanted = [i for i in dict.fromkeys(trader_ids) if i and "," not in i]
        if not wanted:
            return [[] for _ in trader_ids]
        data = await self._call("GET", "/trader-accounts", params={"traderIds": ",".join(wanted)})
        by_trader: Mapping[str, list[Any]] = data["accounts"]
        return [[self._decode(_wire.account, d) for d in by_trader.get(i, [])] for i in trader_ids]

    async def get_positions(
        self, account_ids: Sequence[str]
    ) -> Sequence[Sequence[models.Position]]:
        grouped: dict[str, list[models.Position]] = defaultdict(list)
        for d in await self._batch("/positions", "accountIds", account_ids, "positions"):
            position = self._decode(_wire.position, d)
            grouped[position.account_id].append(position)
        return [grouped.get(i, []) for i in account_ids]

    async def _account(self, account_id: str) -> models.Account:
        """One account, or NotFound: single-object operations never answer None."""
        account = (await self.get_accounts([account_id]))[0]
        if account is None:
            raise NotFound("account not found", details={"platform": self.platform})
        return account

    # -- history and analytics ----------------------------------------------------------

    def _period(self, start: datetime, end: datetime) -> dict[str, str]:
        return {"from": start.isoformat(), "to": end.isoformat()}

    async def get_deals(
        self, account_id: str, start: datetime, end: datetime
    ) -> Sequence[models.Deal]:
        path = f"/accounts/{quote(account_id, safe='')}/deals"
        data = await self._call("GET", path, params=self._period(start, end))
        return [self._decode(_wire.deal, d) for d in data["deals"]]

    async def get_balance_operations(
        self, account_id: str, start: datetime, end: datetime
    ) -> Sequence[models.BalanceOperation]:
        path = f"/accounts/{quote(account_id, safe='')}/balance-operations"
        data = await self._call("GET", path, params=self._period(start, end))
        return [self._decode(_wire.operation, d) for d in data["operations"]]

    async def get_analytics(
        self, account_id: str, start: datetime, end: datetime
    ) -> models.AccountAnalytics:
        """Computed here from deals and positions: the toy platform has no analytics call."""
        account = await self._account(account_id)
        deals = await self.get_deals(account_id, start, end)
        positions = (await self.get_positions([account_id]))[0]
        pnl = [d.realized_pnl.amount for d in deals if d.realized_pnl is not None]
        volumes: dict[str, list[Decimal]] = defaultdict(list)
        for deal in deals:
            volumes[deal.symbol].append(deal.volume)
        ranked = sorted(volumes.items(), key=lambda item: (-sum(item[1]), item[0]))
        return models.AccountAnalytics(
            account_id=account_id,
            period_from=start,
            period_to=end,
            realized_pnl=models.Money(sum(pnl, Decimal(0)), account.currency),
            wins=sum(1 for p in pnl if p > 0),
            losses=sum(1 for p in pnl if p < 0),
            most_traded_symbols=[
                models.SymbolVolume(symbol=s, volume=sum(v, Decimal(0)), deals=len(v))
                for s, v in ranked
            ],
            open_volume=sum((p.volume for p in positions), Decimal(0)),
        )

    # -- money --------------------------------------------------------------------------

    async def _move(self, kind: str, movement: MoneyMovement) -> models.BalanceOperation:
        # The platform keys operations by our idempotency key: a retry returns the
        # first operation and moves nothing.
        path = f"/accounts/{quote(movement.account_id, safe='')}/balance"
        body = {
            "kind": kind,
            "amount": format(movement.amount, "f"),
            "clientId": movement.idempotency_key,
        }
        return self._decode(_wire.operation, await self._call("POST", path, body=body))

    async def deposit(self, movement: MoneyMovement) -> models.BalanceOperation:
        return await self._move("deposit", movement)

    async def withdraw(self, movement: MoneyMovement) -> models.BalanceOperation:
        return await self._move("withdraw", movement)

    async def change_credit(self, movement: MoneyMovement) -> models.BalanceOperation:
        return await self._move("credit", movement)

    async def change_bonus(self, movement: MoneyMovement) -> models.BalanceOperation:
        return await self._move("bonus", movement)

    # -- orders -------------------------------------------------------------------------

    async def get_orders(self, account_ids: Sequence[str]) -> Sequence[Sequence[models.Order]]:
        grouped: dict[str, list[models.Order]] = defaultdict(list)
        for d in await self._batch("/orders", "accountIds", account_ids, "orders"):
            order = self._decode(_wire.order, d)
            grouped[order.account_id].append(order)
        return [grouped.get(i, []) for i in account_ids]

    def _orders_path(self, account_id: str, order_id: str | None = None) -> str:
        path = f"/accounts/{quote(account_id, safe='')}/orders"
        return path if order_id is None else f"{path}/{quote(order_id, safe='')}"

    async def place_order(self, request: PlaceOrderRequest) -> models.Order:
        body = {
            "clientOrderId": request.idempotency_key,
            "symbol": request.symbol,
            "side": _wire.SIDES_OUT[request.side],
            "type": _wire.ORDER_TYPES_OUT[request.type],
            "quantity": format(request.quantity, "f"),
            "price": None if request.price is None else format(request.price, "f"),
            "stopPrice": None if request.stop_price is None else format(request.stop_price, "f"),
            "tif": _wire.TIME_IN_FORCE_OUT[request.time_in_force],
        }
        data = await self._call("POST", self._orders_path(request.account_id), body=body)
        return self._decode(_wire.order, data)

    async def cancel_order(self, account_id: str, order_id: str) -> models.Order:
        data = await self._call("DELETE", self._orders_path(account_id, order_id))
        return self._decode(_wire.order, data)

    async def cancel_orders(self, request: CancelOrdersRequest) -> Sequence[models.Order]:
        path = self._orders_path(request.account_id) + "/cancel"
        data = await self._call("POST", path, body={"orderIds": list(request.order_ids)})
        return [self._decode(_wire.order, d) for d in data["orders"]]

    async def cancel_orders_for_contract(
        self, account_id: str, symbol: str
    ) -> Sequence[models.Order]:
        path = self._orders_path(account_id) + "/cancel"
        data = await self._call("POST", path, body={"symbol": symbol})
        return [self._decode(_wire.order, d) for d in data["orders"]]

    async def replace_order(self, request: ReplaceOrderRequest) -> models.Order:
        def text(value: Decimal | None) -> str | None:
            return None if value is None else format(value, "f")

        body = {
            "quantity": text(request.quantity),
            "price": text(request.price),
            "stopPrice": text(request.stop_price),
        }
        path = self._orders_path(request.account_id, request.order_id)
        return self._decode(_wire.order, await self._call("PUT", path, body=body))

    # -- streams ------------------------------------------------------------------------

    async def _follow(self, path: str) -> AsyncIterator[dict[str, Any]]:
        """The JSON messages of one sandbox stream; its refusals and losses as our errors."""
        url = self._base_url.replace("http", "ws", 1) + path
        try:
            async with websockets.connect(url, additional_headers=self._headers) as socket:
                async for message in socket:
                    yield json.loads(message)
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd is not None else 1006
            if code >= 4000:  # the sandbox refuses with 4000 + HTTP status, after accepting
                reason = closed.rcvd.reason if closed.rcvd is not None else None
                raise error_for(
                    code - 4000, reason, "the toy platform refused the stream"
                ) from None
            raise UpstreamUnavailable("the toy platform closed the stream") from None
        except (OSError, InvalidHandshake, TimeoutError):
            raise UpstreamUnavailable("the toy platform stream cannot be reached") from None
        # A normal close (1000) ends the iteration: the platform has nothing more to say.

    async def order_events(self, account_id: str) -> AsyncIterator[models.OrderEvent]:
        async for d in self._follow(f"/accounts/{quote(account_id, safe='')}/events"):
            yield self._decode(lambda data, p: _wire.order_event(data, p, account_id), d)

    async def account_events(self, account_id: str) -> AsyncIterator[models.AccountEvent]:
        async for d in self._follow(f"/accounts/{quote(account_id, safe='')}/account-events"):
            yield self._decode(lambda data, p: _wire.account_event(data, p, account_id), d)

    async def market_data_events(
        self, trader_id: str
    ) -> AsyncIterator[models.MarketDataSubscriptionEvent]:
        path = f"/traders/{quote(trader_id, safe='')}/market-data-events"
        async for d in self._follow(path):
            yield self._decode(lambda data, p: _wire.market_data_event(data, p, trader_id), d)

    async def get_market_data_subscriptions(
        self, trader_ids: Sequence[str]
    ) -> Sequence[Sequence[models.MarketDataSubscription]]:
        grouped: dict[str, list[models.MarketDataSubscription]] = defaultdict(list)
        items = await self._batch(
            "/market-data-subscriptions", "traderIds", trader_ids, "subscriptions"
        )
        for d in items:
            subscription = self._decode(_wire.subscription, d)
            grouped[subscription.trader_id].append(subscription)
        return [grouped.get(i, []) for i in trader_ids]

    # -- provisioning -------------------------------------------------------------------

    async def create_trader(self, request: CreateTraderRequest) -> ProvisioningResult:
        """Two calls (trader, then account); stopped midway, it resumes at the account."""
        steps: list[ProvisioningStep] = []
        if request.resume_token and request.resume_token.startswith(RESUME_PREFIX):
            trader_id = request.resume_token.removeprefix(RESUME_PREFIX)
            found = (await self.get_traders([trader_id]))[0]
            if found is None:
                raise InvalidInput("the resume token names no trader", field=["resumeToken"])
            trader = found
        else:
            body = {
                "email": request.email,
                "name": request.name,
                "partnerCode": request.partner_code,
            }
            trader = self._decode(_wire.trader, await self._call("POST", "/traders", body=body))
            steps.append(ProvisioningStep(name="createTrader", succeeded=True, reference=trader.id))
        opening = OpenAccountRequest(
            trader_id=trader.id,
            currency=request.currency or "USD",
            group=request.group,
            leverage=request.leverage,
            is_live=request.is_live,
        )
        try:
            account = await self.open_account(opening)
        except BrokerGraphError as error:
            steps.append(
                ProvisioningStep(name="openAccount", succeeded=False, message=error.message)
            )
            return ProvisioningResult(
                steps=steps, trader=trader, resume_token=RESUME_PREFIX + trader.id
            )
        steps.append(ProvisioningStep(name="openAccount", succeeded=True, reference=account.id))
        return ProvisioningResult(steps=steps, trader=trader, accounts=[account])

    async def open_account(self, request: OpenAccountRequest) -> models.Account:
        body = {
            "traderId": request.trader_id,
            "currency": request.currency,
            "group": request.group,
            "leverage": None if request.leverage is None else format(request.leverage, "f"),
            "live": request.is_live is not False,  # None: the toy's default, live
        }
        return self._decode(_wire.account, await self._call("POST", "/accounts", body=body))

    async def update_account(self, request: UpdateAccountRequest) -> models.Account:
        body = {
            "leverage": None if request.leverage is None else format(request.leverage, "f"),
            "access": None if request.status is None else _wire.ACCESS_OUT.get(request.status),
            "group": request.group,
        }
        if request.status is not None and body["access"] is None:
            raise InvalidInput(
                f"the toy platform has no {request.status.value} status", field=["status"]
            )
        path = f"/accounts/{quote(request.account_id, safe='')}"
        return self._decode(_wire.account, await self._call("PATCH", path, body=body))

    async def deactivate_trader(self, request: DeactivateTraderRequest) -> ProvisioningResult:
        trader_path = f"/traders/{quote(request.trader_id, safe='')}"
        steps: list[ProvisioningStep] = []
        if request.cancel_market_data_subscriptions:
            data = await self._call("POST", f"{trader_path}/market-data-subscriptions/cancel")
            ids = ",".join(s["id"] for s in data["subscriptions"]) or None
            steps.append(
                ProvisioningStep(
                    name="cancelMarketDataSubscriptions", succeeded=True, reference=ids
                )
            )
        trader = self._decode(_wire.trader, await self._call("POST", f"{trader_path}/deactivate"))
        steps.append(ProvisioningStep(name="deactivateTrader", succeeded=True, reference=trader.id))
        return ProvisioningResult(steps=steps, trader=trader)

    async def reactivate_trader(self, request: ReactivateTraderRequest) -> ProvisioningResult:
        path = f"/traders/{quote(request.trader_id, safe='')}/reactivate"
        trader = self._decode(_wire.trader, await self._call("POST", path))
        steps = [ProvisioningStep(name="reactivateTrader", succeeded=True, reference=trader.id)]
        accounts: list[models.Account] = []
        if request.new_account is not None:
            accounts.append(await self.open_account(request.new_account))
            steps.append(
                ProvisioningStep(name="openAccount", succeeded=True, reference=accounts[0].id)
            )
        return ProvisioningResult(steps=steps, trader=trader, accounts=accounts)
