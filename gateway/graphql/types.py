"""The unified object types.  Leaves are plain attributes (copied from the standard
models once), so only list- and object-level fields resolve asynchronously, through
the request's DataLoaders.  Entities carry Apollo Federation ``@key(fields: "id")``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Generic, Self, TypeVar, cast

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from gateway import models
from gateway.connectors import Capability, OrderReads
from gateway.errors import (
    BrokerGraphError,
    CapabilityNotSupported,
    InvalidInput,
    NotFound,
    RateLimited,
    UpstreamError,
)
from gateway.graphql import access, client_order_ids
from gateway.graphql.context import RequestContext, context_of
from gateway.graphql.ids import decode_id, encode_id
from gateway.graphql.rankings import OpenedRank, RankingLevel, check_rankings, ranking

if TYPE_CHECKING:
    from gateway.graphql.partner_analytics import PartnerAnalytics
    from gateway.store import PartnerRecord, TransferRecord

T = TypeVar("T")
MAX_PERIOD = timedelta(days=366)

PartnerKind = strawberry.enum(models.PartnerKind, name="PartnerKind")
TraderStatus = strawberry.enum(models.TraderStatus, name="TraderStatus")
AccountStatus = strawberry.enum(models.AccountStatus, name="AccountStatus")
OrderSide = strawberry.enum(models.OrderSide, name="OrderSide")
OrderType = strawberry.enum(models.OrderType, name="OrderType")
TimeInForce = strawberry.enum(models.TimeInForce, name="TimeInForce")
OrderStatus = strawberry.enum(models.OrderStatus, name="OrderStatus")
BalanceOperationKind = strawberry.enum(models.BalanceOperationKind, name="BalanceOperationKind")
TaxKind = strawberry.enum(models.TaxKind, name="TaxKind")
ReportFormat = strawberry.enum(models.ReportFormat, name="ReportFormat")
ReportStatus = strawberry.enum(models.ReportStatus, name="ReportStatus")
HealthStatus = strawberry.enum(models.HealthStatus, name="HealthStatus")
OrderEventKind = strawberry.enum(models.OrderEventKind, name="OrderEventKind")
Weekday = strawberry.enum(models.Weekday, name="Weekday")
TradingSessionEvent = strawberry.enum(models.TradingSessionEvent, name="TradingSessionEvent")

From = Annotated[datetime, strawberry.argument(name="from", description="Start, inclusive.")]
To = Annotated[datetime, strawberry.argument(description="End, exclusive.")]


def check_period(start: datetime, end: datetime) -> None:
    """A period is ``start < end`` and at most a year long; connectors split it further."""
    if start >= end:
        raise InvalidInput("`from` must be before `to`", field=["from"])
    if end - start > MAX_PERIOD:
        raise InvalidInput("a period may span at most 366 days", field=["to"])


#: ISO 4217 minor units of the currencies that have other than two.
_MINOR_UNITS = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG"), 0),
    **dict.fromkeys(("RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}


def money_amount(amount: Decimal, currency: str) -> Decimal:
    """The one rule for money amounts: the currency's minor units (ISO 4217, two when it
    is not listed), whatever the platform sent — USD ``25000``, ``25000.0`` and
    ``25000.00000`` are all ``25000.00``, JPY ``1500``.  Nothing is rounded: a non-zero
    digit below the minor unit (``0.005`` USD) is kept."""
    if not amount.is_finite():
        return amount
    exponent = -_MINOR_UNITS.get(currency.upper(), 2)
    significant = amount.normalize()
    digits = significant.as_tuple().exponent
    if isinstance(digits, int) and digits < exponent:
        return significant
    return significant.quantize(Decimal(1).scaleb(exponent))


def money_text(amount: Decimal, currency: str) -> str:
    """``100.00 USD``: an amount for a message, by :func:`money_amount`'s rule."""
    return f"{money_amount(amount, currency):f} {currency}"


@strawberry.type(
    description="An exact amount of money, in the currency's minor units (ISO 4217: "
    '"25000.00" USD, "1500" JPY); a digit below them is kept, never rounded.'
)
class Money:
    amount: Decimal
    currency: str

    @staticmethod
    def of(value: models.Money | None) -> Money | None:
        return None if value is None else Money.required(value)

    @staticmethod
    def required(value: models.Money) -> Money:
        return Money(amount=money_amount(value.amount, value.currency), currency=value.currency)


@strawberry.interface(description="An object with a global, opaque id (Relay).")
class Node:
    id: strawberry.ID


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    total_count: int | None = None


def connection(
    nodes: Sequence[tuple[str, T]], next_cursor: str | None, total: int | None = None
) -> Connection[T]:
    """A connection from ``(cursor, node)`` pairs and the cursor of the next page."""
    return Connection(
        edges=[Edge(cursor=cursor, node=node) for cursor, node in nodes],
        page_info=PageInfo(has_next_page=next_cursor is not None, end_cursor=next_cursor),
        total_count=total,
    )


@strawberry.type
class Position:
    external_id: str
    platform: str
    account_id: strawberry.ID
    symbol: str
    side: OrderSide  # type: ignore[valid-type]
    volume: Decimal
    open_price: Decimal
    opened_at: datetime
    current_price: Decimal | None
    unrealized_pnl: Money | None
    swap: Money | None
    commission: Money | None

    @classmethod
    def from_model(cls, m: models.Position) -> Position:
        return cls(
            external_id=m.id,
            platform=m.platform,
            account_id=strawberry.ID(encode_id("Account", m.platform, m.account_id)),
            symbol=m.symbol,
            side=m.side,
            volume=m.volume,
            open_price=m.open_price,
            opened_at=m.opened_at,
            current_price=m.current_price,
            unrealized_pnl=Money.of(m.unrealized_pnl),
            swap=Money.of(m.swap),
            commission=Money.of(m.commission),
        )


@strawberry.type(description="A closing deal or fill.")
class Deal:
    external_id: str
    platform: str
    symbol: str
    side: OrderSide  # type: ignore[valid-type]
    volume: Decimal
    price: Decimal
    executed_at: datetime
    position_id: str | None
    realized_pnl: Money | None
    commission: Money | None
    swap: Money | None

    @classmethod
    def from_model(cls, m: models.Deal) -> Deal:
        return cls(
            external_id=m.id,
            platform=m.platform,
            symbol=m.symbol,
            side=m.side,
            volume=m.volume,
            price=m.price,
            executed_at=m.executed_at,
            position_id=m.position_id,
            realized_pnl=Money.of(m.realized_pnl),
            commission=Money.of(m.commission),
            swap=Money.of(m.swap),
        )


@strawberry.type
class BalanceOperation:
    external_id: str = strawberry.field(
        description="The movement's own id: for one the gateway made, the idempotencyKey "
        "it was sent with (as its deposit/withdraw payload says), so a CRM finds its "
        "movements by its own keys; else the platform's id."
    )
    platform_id: str | None = strawberry.field(
        description="The platform's own id of the movement (cTrader's balanceHistoryId, "
        "DXtrade's transactionCode) when it has one besides externalId."
    )
    platform: str
    account_id: strawberry.ID
    kind: BalanceOperationKind  # type: ignore[valid-type]
    amount: Money
    at: datetime
    balance_after: Money | None
    comment: str | None

    @classmethod
    def from_model(cls, m: models.BalanceOperation) -> BalanceOperation:
        external_id = m.external_id or m.id
        return cls(
            external_id=external_id,
            platform_id=m.id if m.id != external_id else None,
            platform=m.platform,
            account_id=strawberry.ID(encode_id("Account", m.platform, m.account_id)),
            kind=m.kind,
            amount=Money.required(m.amount),
            at=m.at,
            balance_after=Money.of(m.balance_after),
            comment=m.comment,
        )


@strawberry.type
class MarketDataSubscription:
    external_id: str
    platform: str
    name: str
    active: bool
    ends_at: datetime | None

    @classmethod
    def from_model(cls, m: models.MarketDataSubscription) -> MarketDataSubscription:
        return cls(
            external_id=m.id, platform=m.platform, name=m.name, active=m.active, ends_at=m.ends_at
        )


@strawberry.type
class TaxCalculation:
    platform: str
    partner_code: str
    kind: TaxKind  # type: ignore[valid-type]
    tax_base: Money
    tax_amount: Money
    period_from: datetime | None
    period_to: datetime | None
    calculated_at: datetime | None

    @classmethod
    def from_model(cls, m: models.TaxCalculation) -> TaxCalculation:
        return cls(
            platform=m.platform,
            partner_code=m.partner_code,
            kind=m.kind,
            tax_base=Money.required(m.tax_base),
            tax_amount=Money.required(m.tax_amount),
            period_from=m.period_from,
            period_to=m.period_to,
            calculated_at=m.calculated_at,
        )


@strawberry.type
class ClientReport(Node):
    id: strawberry.ID
    platform: str
    external_id: str
    partner_code: str
    status: ReportStatus  # type: ignore[valid-type]
    format: ReportFormat  # type: ignore[valid-type]
    requested_at: datetime
    period_from: datetime | None
    period_to: datetime | None
    ready_at: datetime | None
    download_url: str | None = strawberry.field(
        description="Relative URL to fetch the file with the same bearer token, once READY."
    )
    account_id: strawberry.ID | None = strawberry.field(
        description="The account the report covers (an Account id: `node`/`account` resolve"
        " it), so the reports of one request tell apart; null when it covers the partner"
        " as a whole."
    )
    account_external_id: str | None = strawberry.field(
        description="The platform's id of that account (QORT: the sub-account's code)."
    )

    @classmethod
    def from_model(cls, m: models.ClientReport) -> ClientReport:
        global_id = encode_id("ClientReport", m.platform, m.partner_code, m.id)
        ready = m.status is models.ReportStatus.READY
        return cls(
            id=strawberry.ID(global_id),
            platform=m.platform,
            external_id=m.id,
            partner_code=m.partner_code,
            status=m.status,
            format=m.format,
            requested_at=m.requested_at,
            period_from=m.period_from,
            period_to=m.period_to,
            ready_at=m.ready_at,
            download_url=f"/reports/{global_id}" if ready else None,
            account_id=None
            if m.account_id is None
            else strawberry.ID(encode_id("Account", m.platform, m.account_id)),
            account_external_id=m.account_id,
        )


@strawberry.type
class SymbolVolume:
    symbol: str
    volume: Decimal
    deals: int


@strawberry.type(description="The positions open now in one symbol.")
class SymbolOpenVolume:
    symbol: str
    volume: Decimal = strawberry.field(description="Base-asset units (not lots).")
    positions: int
    lots: Decimal | None = strawberry.field(
        description="Volume in lots; null when the platform's lot size is unknown."
    )
    notional: Money | None = strawberry.field(
        description="Volume at entry price in the account's currency; null when that "
        "needs a conversion rate the platform does not give."
    )


@strawberry.type(
    description="A symbol's positions opened in the period (still open or since closed)."
)
class SymbolOpened:
    symbol: str
    positions: int
    volume: Decimal = strawberry.field(description="Base-asset units opened.")


@strawberry.type(
    description="A Copy sub-account of the account (cTrader Copy: an account following a"
    " strategy with the client's money)."
)
class CopySubAccount:
    account_id: strawberry.ID = strawberry.field(
        description="Its Account id: `node`/`account` resolve it for the parent's partner"
        " (a client token: the sub-account is linked to no partner, but belongs to one of"
        " its accounts); reads only."
    )
    external_id: str = strawberry.field(
        description="The platform's id of the sub-account (cTrader: its login)."
    )
    balance: Money
    equity: Money | None
    platform: strawberry.Private[str]

    @strawberry.field(
        description="The sub-account itself (its currency, balance, positions...), read"
        " from its platform; null when the platform no longer has it."
    )
    async def account(self, info: Info[Any, Any]) -> Account | None:
        # Seen through its parent's analytics, which passed the viewer's access check.
        ctx = context_of(info)
        model = await ctx.loaders.accounts.load((self.platform, self.external_id))
        return None if model is None else account_type(ctx, model)


@strawberry.type(
    description="Realised P&L, win/loss, most-traded symbols and open volume of a period."
)
class AccountAnalytics:
    period_from: datetime
    period_to: datetime
    realized_pnl: Money
    wins: int
    losses: int
    win_ratio: Decimal | None
    most_traded_symbols: list[SymbolVolume]
    open_volume: Decimal = strawberry.field(
        deprecation_reason="Sums base units across symbols (10,000 GBPUSD + 10 XAUUSD = "
        "10,010); use volumeBySymbol."
    )
    copy_sub_accounts: list[CopySubAccount]
    volume_by_symbol: list[SymbolOpenVolume]
    most_opened_symbols: list[SymbolOpened] = strawberry.field(
        description="Symbols by positions opened in the period, most first."
    )
    opened_by_level: strawberry.Private[Mapping[models.RankingLevel, Sequence[models.OpenedRank]]]

    @strawberry.field(
        description="Positions opened in the period ranked by symbol, category or asset"
        " class (seed 003's three levels), most first, ties by name; null when the"
        " platform does not classify symbols at that level."
    )
    def most_opened(
        self,
        level: RankingLevel,  # type: ignore[valid-type]
        first: int = 10,
    ) -> list[OpenedRank] | None:
        return ranking(self.opened_by_level, level, first)

    @classmethod
    def from_model(cls, m: models.AccountAnalytics, platform: str) -> AccountAnalytics:
        return cls(
            opened_by_level=m.opened_by_level,
            period_from=m.period_from,
            period_to=m.period_to,
            realized_pnl=Money.required(m.realized_pnl),
            wins=m.wins,
            losses=m.losses,
            win_ratio=m.win_ratio,
            most_traded_symbols=[
                SymbolVolume(symbol=s.symbol, volume=s.volume, deals=s.deals)
                for s in m.most_traded_symbols
            ],
            open_volume=m.open_volume,
            volume_by_symbol=[
                SymbolOpenVolume(
                    symbol=v.symbol,
                    volume=v.volume,
                    positions=v.positions,
                    lots=v.lots,
                    notional=Money.of(v.notional),
                )
                for v in m.volume_by_symbol
            ],
            most_opened_symbols=[
                SymbolOpened(symbol=o.symbol, positions=o.positions, volume=o.volume)
                for o in m.most_opened_symbols
            ],
            copy_sub_accounts=[
                CopySubAccount(
                    account_id=strawberry.ID(encode_id("Account", platform, c.account_id)),
                    external_id=c.account_id,
                    platform=platform,
                    balance=Money.required(c.balance),
                    equity=Money.of(c.equity),
                )
                for c in m.copy_sub_accounts
            ],
        )


def account_type(ctx: RequestContext, model: models.Account) -> Account:
    """The platform's Account type (contributed by its plugin) or GenericAccount."""
    cls: type[Account] = ctx.account_types.get(model.platform, GenericAccount)
    result: Account = cls.from_model(model)
    return result


async def load_account(ctx: RequestContext, platform: str, native_id: str) -> Account:
    """An account the viewer may see, or NotFound."""
    await access.require_account(ctx, platform, native_id)
    model = await ctx.loaders.accounts.load((platform, native_id))
    if model is None:
        raise NotFound("account not found")
    return account_type(ctx, model)


@strawberry.federation.interface(keys=["id"], description="A trading account on one platform.")
class Account(Node):
    id: strawberry.ID
    platform: str
    external_id: str
    number: str
    currency: str
    status: AccountStatus  # type: ignore[valid-type]
    is_live: bool
    group: str | None
    leverage: Decimal | None
    balance: Money | None
    equity: Money | None
    credit: Money | None
    bonus: Money | None
    margin: Money | None
    free_margin: Money | None
    trader_external_id: strawberry.Private[str | None]

    #: A platform type's own fields that :meth:`lazily` leaves to their first read, each
    #: worked out from the model then (the interface's own are in ``_LAZY_ACCOUNT``).
    lazy_fields: ClassVar[Mapping[str, Callable[[models.Account], Any]]] = {}

    @classmethod
    def from_model(cls, m: models.Account) -> Self:
        return cls.lazily(m)

    @classmethod
    def lazily(cls, m: models.Account, /, **fields: Any) -> Self:
        """The account of ``m`` whose costlier fields are made only when first read: its
        global id and six amounts, and ``cls.lazy_fields`` (a warm ``account { balance }``
        makes one amount).  ``fields``: the type's other own fields, as values.  Reads
        answer what ``cls(**account_fields(m), **fields)`` does."""
        account = cls.__new__(cls)
        vars(account).update(_plain_fields(m), _lazy_model=m, **fields)
        if (cls, *fields) not in _LAZY_CHECKED:
            _check_lazy(cls, m, fields)
        return account

    if not TYPE_CHECKING:  # a type checker still sees only the declared fields

        def __getattr__(self, name: str) -> Any:
            # Asked only for what the instance has not got: a lazy field's first read.
            m = vars(self).get("_lazy_model")
            make = type(self).lazy_fields.get(name) or _LAZY_ACCOUNT.get(name)
            if m is None or make is None:
                raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
            value = vars(self)[name] = make(m)
            return value

    @classmethod
    async def resolve_reference(cls, info: Info[Any, Any], id: strawberry.ID) -> Account:
        _, (platform, native_id) = decode_id(id, "Account", size=2)
        return await load_account(context_of(info), platform, native_id)

    @strawberry.field
    async def positions(self, info: Info[Any, Any]) -> list[Position] | None:
        positions = await context_of(info).loaders.positions.load((self.platform, self.external_id))
        return [Position.from_model(p) for p in positions]

    @strawberry.field(
        description="The account's orders as its platform lists them, optionally only those"
        " in one of `status`, on `symbol`, or created in [createdFrom, createdTo) (an order"
        " whose platform gives no creation time matches no time bound)."
    )
    async def orders(
        self,
        info: Info[Any, Any],
        status: list[OrderStatus] | None = None,  # type: ignore[valid-type]
        symbol: str | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
    ) -> list[Order] | None:
        wanted = OrderFilter.of(status, symbol, created_from, created_to)
        ctx = context_of(info)
        ctx.services.registry.require(self.platform, Capability.ORDER_READS, OrderReads)
        orders = await ctx.loaders.orders.load((self.platform, self.external_id))
        return [Order.from_model(o) for o in orders if wanted.matches(o)]

    @strawberry.field
    async def deals(self, info: Info[Any, Any], from_: From, to: To) -> list[Deal] | None:
        check_period(from_, to)
        deals = await context_of(info).loaders.deals(self.platform, self.external_id, from_, to)
        return [Deal.from_model(d) for d in deals]

    @strawberry.field
    async def balance_operations(
        self, info: Info[Any, Any], from_: From, to: To
    ) -> list[BalanceOperation] | None:
        check_period(from_, to)
        loaders = context_of(info).loaders
        operations = await loaders.balance_operations(self.platform, self.external_id, from_, to)
        return [BalanceOperation.from_model(o) for o in operations]

    @strawberry.field
    async def analytics(self, info: Info[Any, Any], from_: From, to: To) -> AccountAnalytics | None:
        check_period(from_, to)
        check_rankings(info)
        result = await context_of(info).loaders.analytics(
            self.platform, self.external_id, from_, to
        )
        return AccountAnalytics.from_model(result, self.platform)

    @strawberry.field
    async def trader(self, info: Info[Any, Any]) -> Trader | None:
        if self.trader_external_id is None:
            return None
        return await load_trader(context_of(info), self.platform, self.trader_external_id)

    @strawberry.field
    async def partner(self, info: Info[Any, Any]) -> BusinessPartner | None:
        ctx = context_of(info)
        owner = await ctx.loaders.account_owners.load((self.platform, self.external_id))
        return None if owner is None else await load_partner(ctx, owner)

    @strawberry.field(
        description="The subscriptions the account's platform serves for it (from what its "
        "connector declares): a client subscribes to these and need not try the others, "
        "which answer CAPABILITY_NOT_SUPPORTED."
    )
    def streams(self, info: Info[Any, Any]) -> list[StreamKind]:
        registry = context_of(info).services.registry
        return [kind for kind, needs in STREAM_CAPABILITIES if registry.has(self.platform, needs)]


@strawberry.enum(description="A subscription of an account.")
class StreamKind(enum.Enum):
    ORDER_EVENTS = strawberry.enum_value(
        "ORDER_EVENTS", description="Subscription.orderEvents: orders, positions, texts."
    )
    ACCOUNT_EVENTS = strawberry.enum_value(
        "ACCOUNT_EVENTS", description="Subscription.accountEvents: money and status."
    )


#: Each stream of an account and the capability its platform must declare for it.
STREAM_CAPABILITIES = (
    (StreamKind.ORDER_EVENTS, Capability.ORDER_STREAM),
    (StreamKind.ACCOUNT_EVENTS, Capability.ACCOUNT_STREAM),
)


def account_fields(m: models.Account) -> dict[str, Any]:
    """The Account interface's fields of a model; platform types add their own to it
    (or build with :meth:`Account.lazily`, which makes the costlier ones when read)."""
    return {**_plain_fields(m), **{name: make(m) for name, make in _LAZY_ACCOUNT.items()}}


def _plain_fields(m: models.Account) -> dict[str, Any]:
    """The Account interface's fields that are the model's own values."""
    return {
        "platform": m.platform,
        "external_id": m.id,
        "number": m.number,
        "currency": m.currency,
        "status": m.status,
        "is_live": m.is_live,
        "group": m.group,
        "leverage": m.leverage,
        "trader_external_id": m.trader_id,
    }


#: The Account interface's fields a lazily made account works out when first read.
_LAZY_ACCOUNT: dict[str, Callable[[models.Account], Any]] = {
    "id": lambda m: strawberry.ID(encode_id("Account", m.platform, m.id)),
    "balance": lambda m: Money.of(m.balance),
    "equity": lambda m: Money.of(m.equity),
    "credit": lambda m: Money.of(m.credit),
    "bonus": lambda m: Money.of(m.bonus),
    "margin": lambda m: Money.of(m.margin),
    "free_margin": lambda m: Money.of(m.free_margin),
}

#: Account types, with the names of the fields given, whose lazy construction was
#: checked (see :func:`_check_lazy`).
_LAZY_CHECKED: set[tuple[Any, ...]] = set()


def _check_lazy(cls: type[Account], m: models.Account, fields: Mapping[str, Any]) -> None:
    """Every field of ``cls`` is given or lazy, and no lazy one has a class attribute
    (a default would be read instead of the field ever being made)."""
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    lazy = {*_LAZY_ACCOUNT, *cls.lazy_fields}
    missing = names - lazy - {*_plain_fields(m), *fields}
    shadowed = {name for name in lazy if name in names and hasattr(cls, name)}
    if missing or shadowed:
        raise TypeError(
            f"{cls.__name__}.lazily: fields neither given nor lazy {sorted(missing)},"
            f" lazy fields with a class attribute {sorted(shadowed)}"
        )
    _LAZY_CHECKED.add((cls, *fields))


@strawberry.federation.type(
    keys=["id"], description="An account of a platform without its own type."
)
class GenericAccount(Account):
    pass


async def load_trader(ctx: RequestContext, platform: str, native_id: str) -> Trader:
    await access.require_trader(ctx, platform, native_id)
    model = await ctx.loaders.traders.load((platform, native_id))
    if model is None:
        raise NotFound("trader not found")
    return Trader.from_model(model)


@strawberry.federation.type(keys=["id"], description="One person's login on one platform.")
class Trader(Node):
    id: strawberry.ID
    platform: str
    external_id: str
    login: str | None
    email: str | None
    name: str | None
    status: TraderStatus  # type: ignore[valid-type]
    created_at: datetime | None

    @classmethod
    def from_model(cls, m: models.Trader) -> Trader:
        return cls(
            id=strawberry.ID(encode_id("Trader", m.platform, m.id)),
            platform=m.platform,
            external_id=m.id,
            login=m.login,
            email=m.email,
            name=m.name,
            status=m.status,
            created_at=m.created_at,
        )

    @classmethod
    async def resolve_reference(cls, info: Info[Any, Any], id: strawberry.ID) -> Trader:
        _, (platform, native_id) = decode_id(id, "Trader", size=2)
        return await load_trader(context_of(info), platform, native_id)

    @strawberry.field
    async def partner(self, info: Info[Any, Any]) -> BusinessPartner | None:
        ctx = context_of(info)
        owner = await ctx.loaders.trader_owners.load((self.platform, self.external_id))
        return None if owner is None else await load_partner(ctx, owner)

    @strawberry.field
    async def accounts(self, info: Info[Any, Any]) -> list[Account] | None:
        ctx = context_of(info)
        accounts = await ctx.loaders.trader_accounts.load((self.platform, self.external_id))
        return [account_type(ctx, a) for a in accounts]

    @strawberry.field
    async def market_data_subscriptions(
        self, info: Info[Any, Any]
    ) -> list[MarketDataSubscription] | None:
        ctx = context_of(info)
        subscriptions = await ctx.loaders.market_data_subscriptions.load(
            (self.platform, self.external_id)
        )
        return [MarketDataSubscription.from_model(s) for s in subscriptions]


async def _linked(
    ctx: RequestContext, code: str, kind: str, platform: str | None
) -> list[tuple[str, str]]:
    links = await ctx.loaders.partner_links.load((code, kind))
    return [
        (link.platform, link.external_id)
        for link in links
        if platform is None or link.platform == platform
    ]


#: A directory read that failed with one of these could not be made now (the platform
#: down, held by another application, or throttling us): the partner still answers.
DIRECTORY_UNREADABLE: tuple[type[BrokerGraphError], ...] = (UpstreamError, RateLimited)


def naming(error: BrokerGraphError, **facts: str) -> BrokerGraphError:
    """A copy of ``error`` whose details also name the item it failed for.

    A batch that fails gives every key of the batch the same exception object, so each
    item gets its own copy (made without calling the class's ``__init__``, whose
    signature a plugin's error class may change) instead of a change to the shared one.
    """
    named = type(error).__new__(type(error))
    named.__dict__.update(error.__dict__)
    named.args = error.args
    named.details = {**error.details, **facts}
    return named


async def linked_account(ctx: RequestContext, key: tuple[str, str]) -> Account | None:
    """A partner's linked account (``None`` when its platform no longer has it); an error
    reading it names the account (``accountId``, ``externalId``, ``platform``), since the
    accounts read with it in one batch share one exception."""
    try:
        model = await ctx.loaders.accounts.load(key)
    except BrokerGraphError as error:
        account_id = encode_id("Account", *key)
        raise naming(error, accountId=account_id, externalId=key[1], platform=key[0]) from error
    return None if model is None else account_type(ctx, model)


@strawberry.type(name="AccountEdge")
class AccountEdge:
    cursor: str
    found: strawberry.Private[Account | BrokerGraphError | None]

    @strawberry.field(
        description="The account; null when its platform failed, with that error at this"
        " path naming the account (accountId, externalId, platform), or when the platform"
        " no longer has it."
    )
    def node(self) -> Account | None:
        if isinstance(self.found, BrokerGraphError):
            raise self.found
        return self.found


@strawberry.type(
    name="AccountConnection",
    description="A page of accounts: every linked account of the page has its edge, one"
    " whose platform failed with a null node and its own error.",
)
class AccountConnection:
    edges: list[AccountEdge]
    page_info: PageInfo
    total_count: int | None = None


async def load_partner(ctx: RequestContext, code: str) -> BusinessPartner:
    """The partner from the store, its directory details from the directory platform.

    A directory that fails (down, held by another application, rate-limited) does not
    hide the partner: the store knows it and its links, so it answers with those and
    its directory-backed fields are null, each with the directory's error.
    """
    record = await access.require_partner(ctx, code)
    try:
        details = await ctx.loaders.partner_details.load(code)
    except DIRECTORY_UNREADABLE as error:
        return BusinessPartner.from_records(record, None, error)
    return BusinessPartner.from_records(record, details)


@strawberry.federation.type(keys=["id"], description="A client or counterparty of the broker.")
class BusinessPartner(Node):
    id: strawberry.ID
    code: str
    name: str = strawberry.field(
        description="The directory's name; the gateway's display name while it cannot be read."
    )
    broker: str | None
    details: strawberry.Private[models.BusinessPartner | None]
    #: Why the directory could not be read (its fields then answer this error).
    details_error: strawberry.Private[BrokerGraphError | None]

    @classmethod
    def from_records(
        cls,
        record: PartnerRecord,
        details: models.BusinessPartner | None,
        details_error: BrokerGraphError | None = None,
    ) -> BusinessPartner:
        return cls(
            id=strawberry.ID(encode_id("BusinessPartner", record.code)),
            code=record.code,
            name=(details.name if details else None) or record.display_name or record.code,
            broker=record.broker,
            details=details,
            details_error=details_error,
        )

    def _directory(self) -> models.BusinessPartner | None:
        if self.details_error is not None:
            raise self.details_error
        return self.details

    # The directory-backed fields: null with the directory's error when it failed.
    @strawberry.field
    def kind(self) -> PartnerKind | None:  # type: ignore[valid-type]
        d = self._directory()
        return d.kind if d else None

    @strawberry.field
    def short_name(self) -> str | None:
        d = self._directory()
        return d.short_name if d else None

    @strawberry.field
    def email(self) -> str | None:
        d = self._directory()
        return d.email if d else None

    @strawberry.field
    def phone(self) -> str | None:
        d = self._directory()
        return d.phone if d else None

    @strawberry.field
    def tax_id(self) -> str | None:
        d = self._directory()
        return d.tax_id if d else None

    @strawberry.field
    def residency(self) -> str | None:
        d = self._directory()
        return d.residency if d else None

    @strawberry.field
    def is_qualified_investor(self) -> bool | None:
        d = self._directory()
        return d.is_qualified_investor if d else None

    @strawberry.field
    def kyc_passed(self) -> bool | None:
        d = self._directory()
        return d.kyc_passed if d else None

    @strawberry.field(
        description="Data-model extension fields of the back office "
        "(null only while the directory cannot be read)."
    )
    def attributes(self) -> JSON | None:
        d = self._directory()
        return JSON(dict(d.attributes) if d else {})

    @classmethod
    async def resolve_reference(cls, info: Info[Any, Any], id: strawberry.ID) -> BusinessPartner:
        _, (code,) = decode_id(id, "BusinessPartner", size=1)
        return await load_partner(context_of(info), code)

    @strawberry.field(
        description="The partner's traders; one that cannot be read is null with its error, "
        "whose details name it: traderId (its id) and externalId."
    )
    async def traders(
        self, info: Info[Any, Any], platform: str | None = None
    ) -> list[Trader | None]:
        ctx = context_of(info)

        async def one(key: tuple[str, str]) -> Trader | None:
            try:
                model = await ctx.loaders.traders.load(key)
            except BrokerGraphError as error:  # say which trader: its siblings share it
                trader_id = encode_id("Trader", *key)
                raise naming(error, traderId=trader_id, externalId=key[1]) from error
            return None if model is None else Trader.from_model(model)

        keys = await _linked(ctx, self.code, "trader", platform)
        return cast(list[Trader | None], [one(key) for key in keys])

    @strawberry.field(
        description="The partner's accounts; one whose platform fails is null with its error, "
        "the others still answer.  That error's details name the account: accountId (its "
        "id), externalId and platform."
    )
    async def accounts(
        self, info: Info[Any, Any], platform: str | None = None
    ) -> list[Account | None]:
        ctx = context_of(info)
        keys = await _linked(ctx, self.code, "account", platform)
        # Awaitables as items: graphql-core completes each one, locating a failure at its index.
        return cast(list[Account | None], [linked_account(ctx, key) for key in keys])

    @strawberry.field(
        description="The partner's accounts' analytics over a period, money in `currency`"
        " (converted only with rates the platforms' own data give: see `rates`,"
        " `notConverted`); accounts without analytics are in `notCovered`."
    )
    async def analytics(
        self, info: Info[Any, Any], from_: From, to: To, currency: str = "USD"
    ) -> Annotated[PartnerAnalytics, strawberry.lazy("gateway.graphql.partner_analytics")] | None:
        from gateway.graphql.partner_analytics import partner_analytics, reporting_currency

        check_period(from_, to)
        check_rankings(info)
        reporting = reporting_currency(currency)
        return await partner_analytics(context_of(info), self.code, from_, to, reporting)

    @strawberry.field
    async def reports(self, info: Info[Any, Any]) -> list[ClientReport] | None:
        ctx = context_of(info)
        platforms = ctx.services.registry.platforms_with(Capability.CLIENT_REPORTS)
        if not platforms:
            raise CapabilityNotSupported(
                "no configured platform provides client reports",
                details={"capability": Capability.CLIENT_REPORTS.value},
            )
        found = await asyncio.gather(*(ctx.loaders.reports(p, self.code) for p in platforms))
        return [ClientReport.from_model(r) for reports in found for r in reports]


@dataclasses.dataclass(frozen=True, slots=True)
class OrderFilter:
    """Which orders a list shows: any of ``statuses``, on ``symbol``, created in
    [start, end) (an order without a creation time matches no time bound)."""

    statuses: frozenset[models.OrderStatus] | None
    symbol: str | None
    start: datetime | None
    end: datetime | None

    @classmethod
    def of(
        cls,
        status: Sequence[models.OrderStatus] | None,
        symbol: str | None,
        start: datetime | None,
        end: datetime | None,
    ) -> OrderFilter:
        if start is not None and end is not None and start >= end:
            raise InvalidInput("`createdFrom` must be before `createdTo`", field=["createdFrom"])
        return cls(None if status is None else frozenset(status), symbol, start, end)

    def matches(self, order: models.Order) -> bool:
        if self.statuses is not None and order.status not in self.statuses:
            return False
        if self.symbol is not None and order.symbol != self.symbol:
            return False
        if self.start is None and self.end is None:
            return True
        created = order.created_at
        return (
            created is not None
            and (self.start is None or created >= self.start)
            and (self.end is None or created < self.end)
        )


async def load_order(ctx: RequestContext, platform: str, account_id: str, order_id: str) -> Order:
    await access.require_account(ctx, platform, account_id)
    ctx.services.registry.require(platform, Capability.ORDER_READS, OrderReads)
    for order in await ctx.loaders.orders.load((platform, account_id)):
        if order.id == order_id:
            return Order.from_model(order)
    raise NotFound("order not found")


@strawberry.federation.type(keys=["id"])
class Order(Node):
    id: strawberry.ID
    platform: str
    external_id: str
    account_id: strawberry.ID
    symbol: str
    side: OrderSide  # type: ignore[valid-type]
    type: OrderType  # type: ignore[valid-type]
    quantity: Decimal
    filled_quantity: Decimal
    status: OrderStatus  # type: ignore[valid-type]
    time_in_force: TimeInForce  # type: ignore[valid-type]
    price: Decimal | None
    stop_price: Decimal | None
    average_fill_price: Decimal | None
    expires_at: datetime | None
    created_at: datetime | None
    updated_at: datetime | None
    reject_reason: str | None
    executions: list[Execution] | None = strawberry.field(
        description="The order's fills, oldest first (a FILL event of orderEvents carries the"
        " order with its new fill last). Null where the platform does not report fills one"
        " by one (filledQuantity and averageFillPrice still give the total); an empty list"
        " means no fill yet."
    )
    account_external_id: strawberry.Private[str]
    model: strawberry.Private[models.Order]

    @classmethod
    def from_model(cls, m: models.Order) -> Order:
        return cls(
            account_external_id=m.account_id,
            model=m,
            id=strawberry.ID(encode_id("Order", m.platform, m.account_id, m.id)),
            platform=m.platform,
            external_id=m.id,
            account_id=strawberry.ID(encode_id("Account", m.platform, m.account_id)),
            symbol=m.symbol,
            side=m.side,
            type=m.type,
            quantity=m.quantity,
            filled_quantity=m.filled_quantity,
            status=m.status,
            time_in_force=m.time_in_force,
            price=m.price,
            stop_price=m.stop_price,
            average_fill_price=m.average_fill_price,
            expires_at=m.expires_at,
            created_at=m.created_at,
            updated_at=m.updated_at,
            reject_reason=m.reject_reason,
            executions=None
            if m.executions is None
            else [Execution.from_model(e) for e in m.executions],
        )

    @classmethod
    async def resolve_reference(cls, info: Info[Any, Any], id: strawberry.ID) -> Order:
        _, (platform, account_id, order_id) = decode_id(id, "Order", size=3)
        return await load_order(context_of(info), platform, account_id, order_id)

    @strawberry.field(
        description="The client's own id given at placement (kept by the gateway where"
        " the platform has no field for it)."
    )
    async def client_order_id(self, info: Info[Any, Any]) -> str | None:
        return await client_order_ids.recall(context_of(info).services.store, self.model)

    @strawberry.field(description="The account the order is on.")
    async def account(self, info: Info[Any, Any]) -> Account | None:
        return await load_account(context_of(info), self.platform, self.account_external_id)

    @strawberry.field(description="The trader owning the order's account, if the platform tells.")
    async def trader(self, info: Info[Any, Any]) -> Trader | None:
        ctx = context_of(info)
        account = await load_account(ctx, self.platform, self.account_external_id)
        if account.trader_external_id is None:
            return None
        return await load_trader(ctx, self.platform, account.trader_external_id)


@strawberry.type(description="One fill of an order.")
class Execution:
    external_id: str = strawberry.field(description="The platform's id of the fill.")
    quantity: Decimal = strawberry.field(description="How much of the order this fill traded.")
    price: Decimal
    executed_at: datetime

    @classmethod
    def from_model(cls, m: models.Execution) -> Execution:
        return cls(external_id=m.id, quantity=m.quantity, price=m.price, executed_at=m.executed_at)


@strawberry.type(
    description="A trading session opens or closes each `weekday` at `time` (HH:MM, the"
    " platform's schedule as it gives it)."
)
class TradingHoursEvent:
    weekday: Weekday  # type: ignore[valid-type]
    time: str
    event: TradingSessionEvent  # type: ignore[valid-type]


@strawberry.type(
    description="What an account may trade and the rules a valid order of it follows; a"
    " rule is null where the platform does not give it. Quantities are in the units the"
    " platform's orders use."
)
class Instrument:
    platform: str
    symbol: str
    description: str | None
    kind: str | None = strawberry.field(
        description='The platform\'s kind of instrument ("FOREX", "CFD"...), as it names it.'
    )
    currency: str | None = strawberry.field(description="The currency prices are quoted in.")
    tick_size: Decimal | None = strawberry.field(
        description="The smallest price step: a valid price is a multiple of it."
    )
    contract_size: Decimal | None = strawberry.field(
        description="What one unit of quantity is worth per 1.0 of price (the multiplier)."
    )
    lot_size: Decimal | None = strawberry.field(
        description="Units in one lot, where the platform counts lots."
    )
    min_quantity: Decimal | None
    max_quantity: Decimal | None
    quantity_increment: Decimal | None = strawberry.field(
        description="A valid quantity is a multiple of it."
    )
    trading_status: str | None = strawberry.field(
        description='Whether the account may trade it now, in the platform\'s words ("FULL",'
        ' "CLOSE_ONLY", "NO").'
    )
    trading_hours: list[TradingHoursEvent] | None = strawberry.field(
        description="When sessions open and close; null where the platform gives no hours."
    )

    @classmethod
    def from_model(cls, m: models.Instrument) -> Instrument:
        hours = (
            None
            if m.trading_hours is None
            else [
                TradingHoursEvent(weekday=h.weekday, time=h.time, event=h.event)
                for h in m.trading_hours
            ]
        )
        return cls(
            platform=m.platform,
            symbol=m.symbol,
            description=m.description,
            kind=m.kind,
            currency=m.currency,
            tick_size=m.tick_size,
            contract_size=m.contract_size,
            lot_size=m.lot_size,
            min_quantity=m.min_quantity,
            max_quantity=m.max_quantity,
            quantity_increment=m.quantity_increment,
            trading_status=m.trading_status,
            trading_hours=hours,
        )


@strawberry.type
class OrderEvent:
    account_id: strawberry.ID
    sequence: int = strawberry.field(description="Grows by one per account; a jump means a gap.")
    kind: OrderEventKind  # type: ignore[valid-type]
    at: datetime
    order: Order | None
    position: Position | None
    account: Account | None
    text: str | None

    @classmethod
    def from_model(cls, ctx: RequestContext, m: models.OrderEvent) -> OrderEvent:
        return cls(
            account_id=strawberry.ID(encode_id("Account", m.platform, m.account_id)),
            sequence=m.sequence,
            kind=m.kind,
            at=m.at,
            order=Order.from_model(m.order) if m.order else None,
            position=Position.from_model(m.position) if m.position else None,
            account=account_type(ctx, m.account) if m.account else None,
            text=m.text,
        )


@strawberry.type
class AccountEvent:
    account_id: strawberry.ID
    sequence: int
    at: datetime
    account: Account | None
    balance_operation: BalanceOperation | None
    text: str | None

    @classmethod
    def from_model(cls, ctx: RequestContext, m: models.AccountEvent) -> AccountEvent:
        return cls(
            account_id=strawberry.ID(encode_id("Account", m.platform, m.account_id)),
            sequence=m.sequence,
            at=m.at,
            account=account_type(ctx, m.account) if m.account else None,
            balance_operation=(
                BalanceOperation.from_model(m.balance_operation) if m.balance_operation else None
            ),
            text=m.text,
        )


@strawberry.enum(description="What happened to a trader's market-data subscriptions.")
class MarketDataEventKind(enum.Enum):
    ACTIVATED = strawberry.enum_value("ACTIVATED", description="A subscription became active.")
    DEACTIVATED = strawberry.enum_value(
        "DEACTIVATED", description="A subscription stopped (ended or was switched off)."
    )
    ADDED = strawberry.enum_value("ADDED", description="A subscription was added.")
    REMOVED = strawberry.enum_value("REMOVED", description="A subscription was removed.")
    CANCELLED = strawberry.enum_value(
        "CANCELLED", description="The gateway cancelled the subscription (deactivateTrader)."
    )
    OTHER = strawberry.enum_value(
        "OTHER", description="A kind the gateway does not know yet: read vendorKind."
    )


def market_data_event_kind(kind: str) -> MarketDataEventKind:
    """A platform's event name as the enum: ``subscription.activated`` (dxFeed) and
    ``ACTIVATED`` alike; an unknown name is OTHER, never an error in a stream."""
    name = kind.strip().lower().removeprefix("subscription.").upper()
    return MarketDataEventKind.__members__.get(name, MarketDataEventKind.OTHER)


@strawberry.type
class MarketDataSubscriptionEvent:
    trader_id: strawberry.ID
    kind: MarketDataEventKind = strawberry.field(
        description="What happened, whatever the platform calls it (see vendorKind)."
    )
    vendor_kind: str = strawberry.field(
        description="The platform's own name of the event (dxFeed: the callback type, "
        "e.g. subscription.activated): what `kind` was before it became an enum."
    )
    at: datetime
    subscription: MarketDataSubscription | None
    sequence: int = strawberry.field(
        default=0,
        description="The event's own number in the event log (a callback naming several "
        "subscriptions is logged as one entry per event): resume with afterSequence = "
        "the last one received, exactly, even between two events of one callback.",
    )

    @classmethod
    def from_model(cls, m: models.MarketDataSubscriptionEvent) -> MarketDataSubscriptionEvent:
        return cls(
            trader_id=strawberry.ID(encode_id("Trader", m.platform, m.trader_id)),
            kind=market_data_event_kind(m.kind),
            vendor_kind=m.kind,
            at=m.at,
            subscription=MarketDataSubscription.from_model(m.subscription)
            if m.subscription
            else None,
            sequence=m.sequence,
        )


strawberry.enum(Capability, name="Capability")


@strawberry.type(
    description="An upstream's last known health: from the background checker or the "
    "last real call, whichever is newer; reading it calls no upstream."
)
class ConnectorHealth:
    status: HealthStatus  # type: ignore[valid-type]
    detail: str | None
    latency_ms: float | None
    checked_at: datetime | None = strawberry.field(
        default=None, description="When this was observed (null: not configured)."
    )
    age_seconds: float | None = strawberry.field(
        default=None, description="Seconds since checkedAt, at the time of the request."
    )


@strawberry.type(description="An installed connector, what it declares and how it is.")
class ConnectorInfo:
    name: str
    platform: str
    version: str
    capabilities: list[Capability]
    configured: bool
    health: ConnectorHealth


@strawberry.type(description="Who is asking: the authenticated viewer and their scope.")
class ViewerInfo:
    subject: str
    role: str
    partner_code: str | None
    brokers: list[str]


@strawberry.enum(description="Where a transfer's saga stands; see Transfer.")
class TransferState(enum.Enum):
    STARTED = "STARTED"
    WITHDRAW_UNKNOWN = strawberry.enum_value(
        "WITHDRAW_UNKNOWN", description="The withdrawal's outcome is unknown: retry the key."
    )
    WITHDRAWN = "WITHDRAWN"
    DEPOSIT_UNKNOWN = strawberry.enum_value(
        "DEPOSIT_UNKNOWN",
        description="Withdrawn; the deposit's outcome is unknown: retry the key, never redo.",
    )
    DEPOSITED = strawberry.enum_value("DEPOSITED", description="Done: the money moved once.")
    COMPENSATING = strawberry.enum_value(
        "COMPENSATING", description="The deposit was refused; paying the source back."
    )
    COMPENSATED = strawberry.enum_value(
        "COMPENSATED", description="The source was paid back: nothing moved in the end."
    )
    FAILED = strawberry.enum_value("FAILED", description="The withdrawal was refused.")


@strawberry.type(description="One settled step of a transfer's saga.")
class TransferStep:
    step: str = strawberry.field(description="WITHDRAW, DEPOSIT or COMPENSATE.")
    account_id: strawberry.ID
    idempotency_key: str = strawberry.field(description="The money write's own key.")
    outcome: str = strawberry.field(description="ok, refused or unknown.")
    error_code: str | None
    external_id: str | None = strawberry.field(description="The platform's operation id.")
    at: datetime


@strawberry.type(
    description="A transfer between two accounts of one partner, run as a saga: withdraw "
    "from the source, deposit to the target, and pay the source back if the deposit is "
    "refused.  Every step is a money write under its own key, audited."
)
class Transfer:
    id: strawberry.ID
    state: TransferState
    from_account_id: strawberry.ID
    to_account_id: strawberry.ID
    amount: Money
    comment: str | None
    idempotency_key: str
    steps: list[TransferStep]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_record(cls, record: TransferRecord) -> Transfer:
        request = record.request
        return cls(
            id=strawberry.ID(encode_id("Transfer", record.transfer_id)),
            state=TransferState(record.state),
            from_account_id=strawberry.ID(request["from_account_id"]),
            to_account_id=strawberry.ID(request["to_account_id"]),
            amount=Money(amount=Decimal(request["amount"]), currency=request["currency"]),
            comment=request.get("comment"),
            idempotency_key=request["idempotency_key"],
            steps=[
                TransferStep(
                    step=step["step"],
                    account_id=strawberry.ID(step["account_id"]),
                    idempotency_key=step["idempotency_key"],
                    outcome=step["outcome"],
                    error_code=step.get("error_code"),
                    external_id=step.get("external_id"),
                    at=datetime.fromisoformat(step["at"]),
                )
                for step in record.steps
            ],
            created_at=record.created_at,
            updated_at=record.updated_at,
        )


#: Types the schema must list explicitly (they are reached only through interfaces).
CORE_TYPES: tuple[type, ...] = (GenericAccount,)
