"""Standard models: what connectors return and what the schema layer reads.

They are plain frozen dataclasses, not Strawberry types, so connectors never see
GraphQL and the schema never sees a vendor's field names.  The rules they enforce
on construction are the contract every connector must meet:

* money is ``Decimal`` with a currency, never ``float``;
* times are timezone-aware and in UTC;
* ids are strings (protobuf int64 ids and cTrader logins do not fit GraphQL ``Int``).

``raw`` keeps the untouched vendor payload for debugging; it is never exposed to
clients and is excluded from equality and ``repr``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Generic, TypeVar

__all__ = [
    "Account",
    "AccountAnalytics",
    "AccountEvent",
    "AccountStatus",
    "BalanceOperation",
    "BalanceOperationKind",
    "BusinessPartner",
    "ClientReport",
    "ConnectorHealth",
    "ConversionRate",
    "CopySubAccount",
    "Deal",
    "Execution",
    "HealthStatus",
    "Instrument",
    "MarketDataSubscription",
    "MarketDataSubscriptionEvent",
    "Money",
    "OpenedRank",
    "Order",
    "OrderEvent",
    "OrderEventKind",
    "OrderSide",
    "OrderStatus",
    "OrderType",
    "Page",
    "PartnerKind",
    "Position",
    "RankingLevel",
    "ReportFormat",
    "ReportStatus",
    "SymbolOpenVolume",
    "SymbolOpened",
    "SymbolVolume",
    "TaxCalculation",
    "TaxKind",
    "TimeInForce",
    "Trader",
    "TraderStatus",
    "TradingHoursEvent",
    "TradingSessionEvent",
    "Weekday",
    "ensure_utc",
]

T = TypeVar("T")
RATIO_PLACES = Decimal("0.0001")


def ensure_utc(value: datetime, name: str = "datetime") -> datetime:
    """Return ``value`` in UTC; naive datetimes are refused, never guessed."""
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value!r}")
    return value.astimezone(UTC)


def _check_utc(obj: object, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if value is not None:
            object.__setattr__(obj, name, ensure_utc(value, name))


def _check_id(obj: object, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if value is not None and (not isinstance(value, str) or not value):
            raise TypeError(f"{type(obj).__name__}.{name} must be a non-empty str, got {value!r}")


def _check_decimal(obj: object, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if value is not None and (not isinstance(value, Decimal) or not value.is_finite()):
            raise TypeError(f"{type(obj).__name__}.{name} must be a finite Decimal, got {value!r}")


_RAW = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount in a currency (ISO 4217 code or a platform's asset name)."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        _check_decimal(self, "amount")
        if not isinstance(self.currency, str) or not 1 <= len(self.currency) <= 12:
            raise ValueError(f"currency must be a short code, got {self.currency!r}")


class PartnerKind(enum.Enum):
    INDIVIDUAL = "INDIVIDUAL"
    LEGAL_ENTITY = "LEGAL_ENTITY"
    SOLE_PROPRIETOR = "SOLE_PROPRIETOR"


class TraderStatus(enum.Enum):
    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"
    DISABLED = "DISABLED"


class AccountStatus(enum.Enum):
    FULL_TRADING = "FULL_TRADING"
    CLOSE_ONLY = "CLOSE_ONLY"
    NO_TRADING = "NO_TRADING"
    NO_LOGIN = "NO_LOGIN"
    TERMINATED = "TERMINATED"
    EXPIRED = "EXPIRED"


class OrderSide(enum.Enum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(enum.Enum):
    LIMIT = "LIMIT"
    MARKET = "MARKET"
    STOP = "STOP"
    STOP_LIMIT = "STOP_LIMIT"


class TimeInForce(enum.Enum):
    DAY = "DAY"
    GTC = "GTC"
    GTD = "GTD"


class OrderStatus(enum.Enum):
    PENDING = "PENDING"
    WORKING = "WORKING"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"


class Weekday(enum.Enum):
    MONDAY = "MONDAY"
    TUESDAY = "TUESDAY"
    WEDNESDAY = "WEDNESDAY"
    THURSDAY = "THURSDAY"
    FRIDAY = "FRIDAY"
    SATURDAY = "SATURDAY"
    SUNDAY = "SUNDAY"


class TradingSessionEvent(enum.Enum):
    OPEN = "OPEN"
    CLOSE = "CLOSE"


class BalanceOperationKind(enum.Enum):
    DEPOSIT = "DEPOSIT"
    WITHDRAWAL = "WITHDRAWAL"
    CREDIT_IN = "CREDIT_IN"
    CREDIT_OUT = "CREDIT_OUT"
    BONUS_IN = "BONUS_IN"
    BONUS_OUT = "BONUS_OUT"
    ADJUSTMENT = "ADJUSTMENT"
    TRADE = "TRADE"


class TaxKind(enum.Enum):
    WITHDRAWAL = "WITHDRAWAL"
    PERIOD = "PERIOD"


class ReportFormat(enum.Enum):
    CSV = "CSV"
    PDF = "PDF"


class ReportStatus(enum.Enum):
    REQUESTED = "REQUESTED"
    GENERATING = "GENERATING"
    READY = "READY"
    FAILED = "FAILED"


class HealthStatus(enum.Enum):
    UP = "UP"
    DEGRADED = "DEGRADED"
    DOWN = "DOWN"
    UNCONFIGURED = "UNCONFIGURED"


class OrderEventKind(enum.Enum):
    """The six kinds of QST's OrderEntryNotification, plus text notifications."""

    ORDER = "ORDER"
    POSITION = "POSITION"
    ACCOUNT = "ACCOUNT"
    FILL = "FILL"
    ORDER_BOOK_SNAPSHOT = "ORDER_BOOK_SNAPSHOT"
    TEXT = "TEXT"


@dataclass(frozen=True, slots=True, kw_only=True)
class BusinessPartner:
    """A client or counterparty of the broker (QORT "firm"), keyed by its business code."""

    code: str
    name: str
    kind: PartnerKind = PartnerKind.INDIVIDUAL
    short_name: str | None = None
    email: str | None = None
    phone: str | None = None
    tax_id: str | None = None
    residency: str | None = None
    is_qualified_investor: bool = False
    kyc_passed: bool = False
    broker: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    platform: str | None = None
    raw: Mapping[str, Any] | None = _RAW

    def __post_init__(self) -> None:
        _check_id(self, "code")


@dataclass(frozen=True, slots=True, kw_only=True)
class Trader:
    """One person's login on one platform."""

    platform: str
    id: str
    login: str | None = None
    email: str | None = None
    name: str | None = None
    status: TraderStatus = TraderStatus.ACTIVE
    created_at: datetime | None = None
    raw: Mapping[str, Any] | None = _RAW

    def __post_init__(self) -> None:
        _check_id(self, "platform", "id")
        _check_utc(self, "created_at")


@dataclass(frozen=True, slots=True, kw_only=True)
class Account:
    """A trading account on one platform, with its money as last read."""

    platform: str
    id: str
    number: str
    currency: str
    trader_id: str | None = None
    status: AccountStatus = AccountStatus.FULL_TRADING
    is_live: bool = True
    group: str | None = None
    leverage: Decimal | None = None
    balance: Money | None = None
    equity: Money | None = None
    credit: Money | None = None
    bonus: Money | None = None
    margin: Money | None = None
    free_margin: Money | None = None
    created_at: datetime | None = None
    raw: Mapping[str, Any] | None = _RAW

    def __post_init__(self) -> None:
        _check_id(self, "platform", "id", "number", "trader_id")
        _check_decimal(self, "leverage")
        _check_utc(self, "created_at")


@dataclass(frozen=True, slots=True, kw_only=True)
class Position:
    platform: str
    id: str
    account_id: str
    symbol: str
    side: OrderSide
    volume: Decimal
    open_price: Decimal
    opened_at: datetime
    current_price: Decimal | None = None
    unrealized_pnl: Money | None = None
    swap: Money | None = None
    commission: Money | None = None
    raw: Mapping[str, Any] | None = _RAW

    def __post_init__(self) -> None:
        _check_id(self, "platform", "id", "account_id")
        _check_decimal(self, "volume", "open_price", "current_price")
        _check_utc(self, "opened_at")


@dataclass(frozen=True, slots=True, kw_only=True)
class Order:
    platform: str
    id: str
    account_id: str
    symbol: str
    side: OrderSide
    type: OrderType
    quantity: Decimal
    status: OrderStatus
    time_in_force: TimeInForce = TimeInForce.DAY
    filled_quantity: Decimal = Decimal(0)
    price: Decimal | None = None
    stop_price: Decimal | None = None
    average_fill_price: Decimal | None = None
    expires_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    client_order_id: str | None = None
    reject_reason: str | None = None
    #: The order's fills, oldest first, as the platform reports them one by one; None
    #: when the platform does not (``filled_quantity`` and ``average_fill_price`` still
    #: give the total), never a list made up from the total.
    executions: Sequence[Execution] | None = None
    raw: Mapping[str, Any] | None = _RAW

    def __post_init__(self) -> None:
        _check_id(self, "platform", "id", "account_id", "client_order_id")
        _check_decimal(
            self, "quantity", "filled_quantity", "price", "stop_price", "average_fill_price"
        )
        _check_utc(self, "expires_at", "created_at", "updated_at")
        if self.executions is not None and not isinstance(self.executions, tuple):
            object.__setattr__(self, "executions", tuple(self.executions))


@dataclass(frozen=True, slots=True, kw_only=True)
class Execution:
    """One fill of an order: ``quantity`` traded at ``price``; ``id`` is the platform's."""

    id: str
    quantity: Decimal
    price: Decimal
    executed_at: datetime
    raw: Mapping[str, Any] | None = _RAW

    def __post_init__(self) -> None:
        _check_id(self, "id")
        _check_decimal(self, "quantity", "price")
        _check_utc(self, "executed_at")


@dataclass(frozen=True, slots=True, kw_only=True)
class TradingHoursEvent:
    """A session opens or closes each ``weekday`` at ``time`` ("HH:MM", the platform's
    schedule as it gives it)."""

    weekday: Weekday
    time: str
    event: TradingSessionEvent

    def __post_init__(self) -> None:
        hours, _, minutes = self.time.partition(":")
        if not (
            len(hours) == 2 == len(minutes)
            and hours.isdigit()
            and minutes.isdigit()
            and int(hours) < 24
            and int(minutes) < 60
        ):
            raise ValueError(f"TradingHoursEvent.time must be HH:MM, got {self.time!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Instrument:
    """What an account may trade and the rules a valid order of it follows.

    Each rule is ``None`` where the platform does not give it; a client validates
    against what is there and leaves the rest to the platform.  Quantities are in
    the units orders of the platform use.
    """

    platform: str
    symbol: str
    description: str | None = None
    #: The platform's kind of instrument ("FOREX", "CFD", "FUTURES"...), as it names it.
    kind: str | None = None
    #: The currency prices are quoted in.
    currency: str | None = None
    #: The smallest price step: a valid price is a multiple of it.
    tick_size: Decimal | None = None
    #: What one unit of quantity is worth per 1.0 of price (the multiplier).
    contract_size: Decimal | None = None
    #: Units in one lot, where the platform counts lots.
    lot_size: Decimal | None = None
    min_quantity: Decimal | None = None
    max_quantity: Decimal | None = None
    #: A valid quantity is a multiple of it.
    quantity_increment: Decimal | None = None
    #: Whether the account may trade it now, in the platform's words ("FULL", "CLOSE_ONLY").
    trading_status: str | None = None
    trading_hours: Sequence[TradingHoursEvent] | None = None
    raw: Mapping[str, Any] | None = _RAW

    def __post_init__(self) -> None:
        _check_id(self, "platform", "symbol")
        _check_decimal(
            self,
            "tick_size",
            "contract_size",
            "lot_size",
            "min_quantity",
            "max_quantity",
            "quantity_increment",
        )
        if self.trading_hours is not None and not isinstance(self.trading_hours, tuple):
            object.__setattr__(self, "trading_hours", tuple(self.trading_hours))


@dataclass(frozen=True, slots=True, kw_only=True)
class Deal:
    """A closing deal or fill: the realised part of trading."""

    platform: str
    id: str
    account_id: str
    symbol: str
    side: OrderSide
    volume: Decimal
    price: Decimal
    executed_at: datetime
    position_id: str | None = None
    realized_pnl: Money | None = None
    commission: Money | None = None
    swap: Money | None = None
    raw: Mapping[str, Any] | None = _RAW

    def __post_init__(self) -> None:
        _check_id(self, "platform", "id", "account_id", "position_id")
        _check_decimal(self, "volume", "price")
        _check_utc(self, "executed_at")


@dataclass(frozen=True, slots=True, kw_only=True)
class BalanceOperation:
    platform: str
    id: str
    account_id: str
    kind: BalanceOperationKind
    amount: Money
    at: datetime
    balance_after: Money | None = None
    comment: str | None = None
    external_id: str | None = None
    raw: Mapping[str, Any] | None = _RAW

    def __post_init__(self) -> None:
        _check_id(self, "platform", "id", "account_id")
        _check_utc(self, "at")


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketDataSubscription:
    """A market-data entitlement (dxFeed) that may decide whether a user can log in."""

    platform: str
    id: str
    trader_id: str
    name: str
    active: bool
    ends_at: datetime | None = None
    raw: Mapping[str, Any] | None = _RAW

    def __post_init__(self) -> None:
        _check_id(self, "platform", "id", "trader_id")
        _check_utc(self, "ends_at")


@dataclass(frozen=True, slots=True, kw_only=True)
class TaxCalculation:
    platform: str
    partner_code: str
    kind: TaxKind
    tax_base: Money
    tax_amount: Money
    period_from: datetime | None = None
    period_to: datetime | None = None
    calculated_at: datetime | None = None
    raw: Mapping[str, Any] | None = _RAW

    def __post_init__(self) -> None:
        _check_id(self, "platform", "partner_code")
        _check_utc(self, "period_from", "period_to", "calculated_at")


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientReport:
    platform: str
    id: str
    partner_code: str
    status: ReportStatus
    format: ReportFormat
    requested_at: datetime
    period_from: datetime | None = None
    period_to: datetime | None = None
    ready_at: datetime | None = None
    #: The platform's id of the account the report covers (QORT: the sub-account's
    #: code, one report per sub-account); None: the partner as a whole.
    account_id: str | None = None
    raw: Mapping[str, Any] | None = _RAW

    def __post_init__(self) -> None:
        _check_id(self, "platform", "id", "partner_code")
        _check_utc(self, "requested_at", "period_from", "period_to", "ready_at")


@dataclass(frozen=True, slots=True, kw_only=True)
class SymbolVolume:
    symbol: str
    volume: Decimal
    deals: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SymbolOpenVolume:
    """The open positions of one symbol: base units, lots and notional.

    ``lots`` is ``None`` when the symbol's lot size is unknown, ``notional`` when
    its price cannot be put in the account's currency without a rate.
    """

    symbol: str
    volume: Decimal
    positions: int
    lots: Decimal | None = None
    notional: Money | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SymbolOpened:
    """The positions of one symbol opened in a period (still open or since closed)."""

    symbol: str
    positions: int
    volume: Decimal


class RankingLevel(enum.Enum):
    """How finely positions opened are ranked: by symbol, by the platform's symbol
    category, or by its asset class (seed 003's three levels)."""

    SYMBOL = "SYMBOL"
    CATEGORY = "CATEGORY"
    ASSET_CLASS = "ASSET_CLASS"


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenedRank:
    """Positions opened in a period under one name of a :class:`RankingLevel`.

    ``name`` is ``None`` for symbols the platform's symbol list does not classify
    at that level (a symbol no longer listed), never a guessed class.
    """

    name: str | None
    positions: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversionRate:
    """One unit of ``currency`` is worth ``rate`` units of ``target``, as the
    platform's own data said at ``as_of``; ``source`` says which data."""

    currency: str
    target: str
    rate: Decimal
    as_of: datetime
    source: str

    def __post_init__(self) -> None:
        _check_decimal(self, "rate")
        if self.rate <= 0:
            raise ValueError("a conversion rate is positive")
        _check_utc(self, "as_of")


@dataclass(frozen=True, slots=True, kw_only=True)
class CopySubAccount:
    account_id: str
    balance: Money
    equity: Money | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountAnalytics:
    """The seed-003 analytics of one account over a period."""

    account_id: str
    period_from: datetime
    period_to: datetime
    realized_pnl: Money
    wins: int
    losses: int
    most_traded_symbols: Sequence[SymbolVolume] = ()
    #: Base units summed across symbols (10,000 GBPUSD + 10 XAUUSD = 10,010): kept
    #: for old clients; ``volume_by_symbol`` is the meaningful figure.
    open_volume: Decimal = Decimal(0)
    copy_sub_accounts: Sequence[CopySubAccount] = ()
    volume_by_symbol: Sequence[SymbolOpenVolume] = ()
    #: Symbols ranked by positions opened in the period (seed 003's "frequently
    #: placed new orders"), most first.
    most_opened_symbols: Sequence[SymbolOpened] = ()
    #: Positions opened in the period per level, every name, most first; a level
    #: absent: the platform does not classify symbols at that level.
    opened_by_level: Mapping[RankingLevel, Sequence[OpenedRank]] = field(default_factory=dict)
    #: Rates from the account's currency that the platform's own data of the
    #: period give (cTrader: a closing deal's conversion columns), for reporting
    #: several accounts in one currency; none is ever invented.
    conversion_rates: Sequence[ConversionRate] = ()

    def __post_init__(self) -> None:
        _check_utc(self, "period_from", "period_to")

    @property
    def win_ratio(self) -> Decimal | None:
        """Wins over closed deals to 4 places (0.6667), or ``None`` when nothing closed."""
        total = self.wins + self.losses
        if total == 0:
            return None
        return (Decimal(self.wins) / Decimal(total)).quantize(RATIO_PLACES, ROUND_HALF_EVEN)


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderEvent:
    """One order-stream event; ``sequence`` grows by one per account so gaps show."""

    platform: str
    account_id: str
    sequence: int
    kind: OrderEventKind
    at: datetime
    order: Order | None = None
    position: Position | None = None
    account: Account | None = None
    text: str | None = None
    raw: Mapping[str, Any] | None = _RAW

    def __post_init__(self) -> None:
        _check_id(self, "platform", "account_id")
        _check_utc(self, "at")


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountEvent:
    platform: str
    account_id: str
    sequence: int
    at: datetime
    account: Account | None = None
    balance_operation: BalanceOperation | None = None
    text: str | None = None

    def __post_init__(self) -> None:
        _check_id(self, "platform", "account_id")
        _check_utc(self, "at")


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketDataSubscriptionEvent:
    platform: str
    trader_id: str
    kind: str
    at: datetime
    subscription: MarketDataSubscription | None = None
    #: The event's number in the event log (0: not from the log); what a subscriber
    #: resumes after.  Each event is its own entry, so its own number (DXtrade logs
    #: a callback naming several subscriptions as one entry per subscription).
    sequence: int = 0

    def __post_init__(self) -> None:
        _check_id(self, "platform", "trader_id")
        _check_utc(self, "at")


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectorHealth:
    status: HealthStatus
    detail: str | None = None
    latency_ms: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Page(Generic[T]):
    """A page of a list; ``next_cursor`` is opaque to the gateway and ``None`` at the end."""

    items: Sequence[T]
    next_cursor: str | None = None
    total: int | None = None
