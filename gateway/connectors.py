"""Connectors and their capability families.

A connector is an async class serving one platform.  It *declares* what it can do
in ``capabilities`` (as ccxt's ``has`` map does) and implements the family base
class of each declared capability; the registry checks the two agree when it
loads the class, so dispatch never discovers a missing method by trial.

Every family method returns standard models (:mod:`gateway.models`) and raises
only :mod:`gateway.errors`.  Batched reads take a sequence of ids and return a
sequence of the same length and order (``None`` where nothing was found), which
is what the gateway's DataLoaders need.

Every family method is marked :func:`read`, :func:`write` or :func:`stream`; the
gateway's guards (:mod:`gateway.resilience`) decide retries by that mark, never by
the method's name.  A connector's own extra methods, reached through the guards
from its plugin's schema fields, carry one of the same marks.
"""

from __future__ import annotations

import abc
import enum
import functools
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, runtime_checkable

from gateway.errors import CapabilityNotSupported
from gateway.models import (
    Account,
    AccountAnalytics,
    AccountEvent,
    AccountStatus,
    BalanceOperation,
    BusinessPartner,
    ClientReport,
    ConnectorHealth,
    CopySubAccount,
    Deal,
    Instrument,
    MarketDataSubscription,
    MarketDataSubscriptionEvent,
    Order,
    OrderEvent,
    OrderSide,
    OrderType,
    PartnerKind,
    Position,
    ReportFormat,
    TaxCalculation,
    TaxKind,
    TimeInForce,
    Trader,
)

if TYPE_CHECKING:
    # Type-only: the contract's protocols sit above this module in the import order.
    from gateway.contract._services import ConnectorReads, ConnectorStore, EventLog
    from gateway.contract._upstream_cost import UpstreamCost

__all__ = [
    "AccountAnalyticsReads",
    "AccountHistory",
    "AccountReads",
    "AccountStream",
    "Bonus",
    "CancelOrdersRequest",
    "Capability",
    "ClientReports",
    "Connector",
    "ConnectorContext",
    "CopySubAccountSource",
    "CreatePartnerRequest",
    "CreateTraderRequest",
    "Credit",
    "DeactivateTraderRequest",
    "Funding",
    "InstrumentReads",
    "MarketDataEntitlements",
    "MethodKind",
    "MoneyMovement",
    "OpenAccountRequest",
    "OrderReads",
    "OrderRouting",
    "OrderStream",
    "PartnerDirectory",
    "PlaceOrderRequest",
    "ProvisioningResult",
    "ProvisioningStep",
    "ReactivateTraderRequest",
    "ReplaceOrderRequest",
    "ReportRequest",
    "TaxCalculator",
    "TaxRequest",
    "TraderProvisioning",
    "TradingAccess",
    "UpdateAccountRequest",
    "UpdatePartnerRequest",
    "VendorIdentity",
    "family_of",
    "method_kind",
    "read",
    "stream",
    "write",
]


class Capability(enum.Enum):
    """What a connector may declare; each value has one family base class."""

    PARTNER_DIRECTORY = "PARTNER_DIRECTORY"
    TRADER_PROVISIONING = "TRADER_PROVISIONING"
    ACCOUNT_READS = "ACCOUNT_READS"
    ACCOUNT_HISTORY = "ACCOUNT_HISTORY"
    ACCOUNT_ANALYTICS = "ACCOUNT_ANALYTICS"
    FUNDING = "FUNDING"
    CREDIT = "CREDIT"
    BONUS = "BONUS"
    ORDER_READS = "ORDER_READS"
    ORDER_ROUTING = "ORDER_ROUTING"
    ORDER_STREAM = "ORDER_STREAM"
    ACCOUNT_STREAM = "ACCOUNT_STREAM"
    MARKET_DATA_ENTITLEMENTS = "MARKET_DATA_ENTITLEMENTS"
    TRADING_ACCESS = "TRADING_ACCESS"
    TAX = "TAX"
    CLIENT_REPORTS = "CLIENT_REPORTS"
    INSTRUMENTS = "INSTRUMENTS"


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True, slots=True, kw_only=True)
class CreatePartnerRequest:
    code: str
    name: str
    kind: PartnerKind = PartnerKind.INDIVIDUAL
    short_name: str | None = None
    email: str | None = None
    phone: str | None = None
    tax_id: str | None = None
    residency: str | None = None
    is_qualified_investor: bool = False
    broker: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    sub_account_code: str | None = None
    agreement_number: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdatePartnerRequest:
    """Only the fields that are not ``None`` change; ``attributes`` merge key by key."""

    code: str
    name: str | None = None
    short_name: str | None = None
    email: str | None = None
    phone: str | None = None
    tax_id: str | None = None
    residency: str | None = None
    is_qualified_investor: bool | None = None
    kyc_passed: bool | None = None
    attributes: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateTraderRequest:
    """Create a person's login on a platform; ``options`` carries platform specifics."""

    partner_code: str
    email: str
    name: str | None = None
    password: str | None = field(default=None, repr=False)
    group: str | None = None
    currency: str | None = None
    leverage: Decimal | None = None
    #: Live (True) or demo (False); None: the platform's default.  A platform that
    #: cannot make what is asked refuses it (INVALID_INPUT on ``isLive``), never
    #: silently makes the other kind.
    is_live: bool | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    resume_token: str | None = None
    #: The client's idempotency key, when it sent one: the gateway runs the request at
    #: most once per key, and a connector records what the key's attempt chose (a
    #: login, a flow) so :meth:`TraderProvisioning.find_created_trader` can read it back.
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ProvisioningStep:
    """One upstream step of a multi-call flow and how it ended."""

    name: str
    succeeded: bool
    reference: str | None = None
    message: str | None = None
    #: A failed step's error code (``RATE_LIMITED``…), when an error stopped it.
    code: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ProvisioningResult:
    """What a provisioning flow produced; ``resume_token`` is set when it stopped midway."""

    steps: Sequence[ProvisioningStep]
    trader: Trader | None = None
    accounts: Sequence[Account] = ()
    resume_token: str | None = None

    @property
    def complete(self) -> bool:
        return self.resume_token is None and all(step.succeeded for step in self.steps)


@dataclass(frozen=True, slots=True, kw_only=True)
class VendorIdentity:
    """An identity on the platform that a provisioning request would reuse or bind.

    Beyond the trader and accounts a flow creates, a platform may key things by an
    identity that other requests reach too: cTrader's user (cTID) is found by e-mail,
    a DXtrade user names a dxFeed account others may name.  Each belongs to one
    business partner: the gateway refuses a request whose identity is linked to
    another partner, or held by a trader linked to another partner, before any
    upstream write, and links the identity to the request's partner when a creation
    goes ahead.

    ``kind`` names it on its platform (``ctid-email``, ``dxfeed-account``); ``id`` is
    its value, normalised (an e-mail in lower case); ``holders`` are the platform's
    trader ids the connector found using it already; ``field`` is the input path that
    named it, for the refusal.
    """

    kind: str
    id: str
    holders: Sequence[str] = ()
    field: Sequence[str] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenAccountRequest:
    trader_id: str
    currency: str
    group: str | None = None
    leverage: Decimal | None = None
    #: As :attr:`CreateTraderRequest.is_live`.
    is_live: bool | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    #: As :attr:`CreateTraderRequest.idempotency_key` (see ``find_opened_account``).
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateAccountRequest:
    """Only the fields that are not ``None`` change (the connector handles PUT vs PATCH)."""

    account_id: str
    leverage: Decimal | None = None
    status: AccountStatus | None = None
    group: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeactivateTraderRequest:
    trader_id: str
    cancel_market_data_subscriptions: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ReactivateTraderRequest:
    trader_id: str
    new_account: OpenAccountRequest | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MoneyMovement:
    """A deposit, withdrawal, credit or bonus change of ``amount`` (> 0, currency units).

    ``idempotency_key`` is unique per account and operation; connectors pass it to
    platforms that take a client-generated id, so a retry never moves money twice.
    """

    account_id: str
    amount: Decimal
    idempotency_key: str
    currency: str | None = None
    comment: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaceOrderRequest:
    account_id: str
    symbol: str
    side: OrderSide
    type: OrderType
    quantity: Decimal
    idempotency_key: str
    price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.DAY
    expires_at: datetime | None = None
    #: The client's own id for the order.  A connector whose platform has a field for
    #: it sends it and returns it in ``Order.client_order_id``; otherwise the gateway
    #: keeps it (the order comes back without one).
    client_order_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplaceOrderRequest:
    account_id: str
    order_id: str
    idempotency_key: str
    quantity: Decimal | None = None
    price: Decimal | None = None
    stop_price: Decimal | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelOrdersRequest:
    account_id: str
    order_ids: Sequence[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class TaxRequest:
    partner_code: str
    kind: TaxKind
    amount: Decimal | None = None
    currency: str | None = None
    period_from: datetime | None = None
    period_to: datetime | None = None
    #: WITHDRAWAL: the day of the withdrawal (its year's income up to it is taxed);
    #: None: today (UTC).  Never in the future (the gateway checks).
    day: date | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportRequest:
    partner_code: str
    format: ReportFormat
    period_from: datetime
    period_to: datetime
    #: The partner's account to report on; None: the connector's choice (the gateway
    #: sends one request per linked account, so this is None only when none is linked).
    account_id: str | None = None


# --------------------------------------------------------------------------- the connector


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectorContext:
    """What the gateway hands a connector: its settings section and narrow shared services."""

    name: str
    settings: Mapping[str, Any]
    store: ConnectorStore
    reads: ConnectorReads
    events: EventLog
    logger: logging.Logger


class Connector(abc.ABC):
    """Base of every connector.  Subclass it and the family classes you declare.

    ``name`` is the key of the connector's settings section and of its entry in
    ``connectors { ... }``; ``platform`` is the value accounts and traders carry
    (one platform may in future be served by several named connectors).
    """

    name: ClassVar[str]
    platform: ClassVar[str]
    version: ClassVar[str] = "0"
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    #: Seconds the gateway may cache this connector's batched reads, per capability;
    #: absent means "do not cache".  Respect the vendor's polling guidance here.
    cache_ttl_seconds: ClassVar[Mapping[Capability, float]] = {}
    #: True when every write passes the request's idempotency key to the platform
    #: (cTrader externalId, DXtrade's cash ids...), so repeating a write with the same
    #: key cannot apply it twice.  Only then does the gateway re-drive a write whose
    #: outcome was lost (crash, timeout) once its claim has gone stale.
    idempotent_writes: ClassVar[bool] = False
    #: True when the upstream allows one session per credential (QST closes an older
    #: session of the same login, QORT serves one connected application).  The gateway
    #: then starts this connector on one replica only, the holder of a cluster-wide
    #: lease on :meth:`session_identity`, and routes the other replicas' calls to it;
    #: a connector never locks on its own.  In a single process the lease is local.
    single_session: ClassVar[bool] = False

    def __init__(self, context: ConnectorContext) -> None:
        self.context = context

    def session_identity(self) -> str:
        """The credential whose session is single (e.g. the upstream URL and login).

        Called before :meth:`start`, on every replica, from the settings alone.
        Connectors configured with the same identity share one lease; the gateway
        hashes it, so it never leaves the process in clear.  By default the settings
        section's name.
        """
        return self.context.name

    def upstream_costs(self) -> Mapping[str, UpstreamCost]:
        """What each read method costs the platform, by method name (``get_deals`` ...).

        A read that fans out (one call per window of a period) says so here, so the
        gateway's cost model charges a query for it before anything runs.  Asked once
        the connector is started (a setting may size the cost); a method not named
        costs one call.
        """
        return {}

    async def start(self) -> None:  # noqa: B027  (optional hook, empty on purpose)
        """Open sessions and pools; called once before the first request."""

    async def close(self) -> None:  # noqa: B027  (optional hook, empty on purpose)
        """Release everything :meth:`start` opened."""

    @abc.abstractmethod
    async def health(self) -> ConnectorHealth:
        """A cheap liveness check of the upstream, used by ``/readyz``."""


# --------------------------------------------------------------------------- method marks


class MethodKind(enum.Enum):
    """How the gateway may call a connector method (see :mod:`gateway.resilience`)."""

    #: No upstream side effect: retried on upstream failure, cacheable.
    READ = "READ"
    #: Changes upstream state: called once, never retried by the gateway.
    WRITE = "WRITE"
    #: Returns an async iterator of events: the breaker is checked when it starts.
    STREAM = "STREAM"


_MARK = "__brokergraph_method_kind__"
Method = TypeVar("Method", bound=Callable[..., Any])


def _marked(function: Method, kind: MethodKind) -> Method:
    existing = getattr(function, _MARK, None)
    if existing is not None and existing is not kind:
        raise TypeError(f"{function.__qualname__} is marked both {existing.value} and {kind.value}")
    setattr(function, _MARK, kind)
    return function


def read(function: Method) -> Method:
    """Mark a connector method as a read (no side effect upstream; retried, cacheable)."""
    return _marked(function, MethodKind.READ)


def write(function: Method) -> Method:
    """Mark a connector method as a write (changes upstream state; called once)."""
    return _marked(function, MethodKind.WRITE)


def stream(function: Method) -> Method:
    """Mark a connector method as a stream (returns an async iterator of events)."""
    return _marked(function, MethodKind.STREAM)


@functools.cache
def method_kind(cls: type, name: str) -> MethodKind:
    """The mark of method ``name`` of a family or connector class.

    The mark is looked up through the MRO, so a connector's override of a family
    method keeps the family's mark without repeating it; a connector's own extra
    methods carry their mark themselves.  ``LookupError`` when no class marks it,
    ``TypeError`` when two classes of the MRO mark it differently.
    """
    found: MethodKind | None = None
    for klass in cls.__mro__:
        kind = getattr(vars(klass).get(name), _MARK, None)
        if kind is None:
            continue
        if found is not None and kind is not found:
            raise TypeError(
                f"{cls.__qualname__}.{name} is marked {found.value} but "
                f"{klass.__qualname__} marks it {kind.value}"
            )
        found = kind
    if found is None:
        raise LookupError(f"{cls.__qualname__}.{name} has no read/write/stream mark")
    return found


# --------------------------------------------------------------------------- families


class PartnerDirectory(abc.ABC):
    @abc.abstractmethod
    @read
    async def get_partners(self, codes: Sequence[str]) -> Sequence[BusinessPartner | None]: ...

    @abc.abstractmethod
    @write
    async def create_partner(self, request: CreatePartnerRequest) -> BusinessPartner: ...

    @abc.abstractmethod
    @write
    async def update_partner(self, request: UpdatePartnerRequest) -> BusinessPartner: ...

    @abc.abstractmethod
    @write
    async def delete_partner(self, code: str) -> None: ...


class TraderProvisioning(abc.ABC):
    @abc.abstractmethod
    @write
    async def create_trader(self, request: CreateTraderRequest) -> ProvisioningResult: ...

    @abc.abstractmethod
    @write
    async def open_account(self, request: OpenAccountRequest) -> Account: ...

    @abc.abstractmethod
    @write
    async def update_account(self, request: UpdateAccountRequest) -> Account: ...

    @abc.abstractmethod
    @write
    async def deactivate_trader(self, request: DeactivateTraderRequest) -> ProvisioningResult: ...

    @abc.abstractmethod
    @write
    async def reactivate_trader(self, request: ReactivateTraderRequest) -> ProvisioningResult: ...

    @read
    async def creation_identities(self, request: CreateTraderRequest) -> Sequence[VendorIdentity]:
        """The platform identities ``request`` would reuse or bind, found by reads only.

        Optional: none by default.  A platform whose createTrader can reach what another
        createTrader reaches (an existing user by e-mail, a shared feed account) names
        it here, so the gateway keeps it to one partner (see :class:`VendorIdentity`).
        """
        return ()

    @read
    async def deactivation_identities(
        self, request: DeactivateTraderRequest
    ) -> Sequence[VendorIdentity]:
        """The platform identities ``request`` would change beyond the trader and its
        accounts (a dxFeed account whose subscriptions it cancels), by reads only.

        Optional: none by default.  The gateway refuses the deactivation, before any
        write, when one belongs to a partner other than the trader's.
        """
        return ()

    @read
    async def find_created_trader(self, request: CreateTraderRequest) -> ProvisioningResult | None:
        """What an earlier ``create_trader(request)`` under ``request.idempotency_key``
        made, read from the platform: the gateway's read that settles an attempt whose
        answer was lost.  None only when the platform provably holds nothing of it (the
        gateway may then send it again, with the same key).

        Optional: the default cannot tell (``CapabilityNotSupported``), and the gateway
        then never settles such an attempt by itself.
        """
        raise CapabilityNotSupported("this platform cannot read back a createTrader by its key")

    @read
    async def find_opened_account(self, request: OpenAccountRequest) -> Account | None:
        """As :meth:`find_created_trader`, for ``open_account``."""
        raise CapabilityNotSupported("this platform cannot read back an openAccount by its key")


class AccountReads(abc.ABC):
    @abc.abstractmethod
    @read
    async def get_traders(self, trader_ids: Sequence[str]) -> Sequence[Trader | None]: ...

    @abc.abstractmethod
    @read
    async def get_accounts(self, account_ids: Sequence[str]) -> Sequence[Account | None]: ...

    @abc.abstractmethod
    @read
    async def get_trader_accounts(
        self, trader_ids: Sequence[str]
    ) -> Sequence[Sequence[Account]]: ...

    @abc.abstractmethod
    @read
    async def get_positions(self, account_ids: Sequence[str]) -> Sequence[Sequence[Position]]: ...


@runtime_checkable
class CopySubAccountSource(Protocol):
    """A connector whose accounts have Copy sub-accounts (cTrader Copy): accounts of the
    platform that follow a strategy with the parent's money, linked to no partner.

    Reading them (a method marked ``read``, on the ACCOUNT_READS road) lets the partner
    of a parent account see them as its own (:func:`gateway.graphql.access.require_account`),
    so the ids ``AccountAnalytics.copySubAccounts`` gives resolve.  Structural: a
    connector with this method is one.
    """

    async def get_copy_sub_accounts(self, account_id: str) -> Sequence[CopySubAccount]: ...


class AccountHistory(abc.ABC):
    @abc.abstractmethod
    @read
    async def get_deals(
        self, account_id: str, start: datetime, end: datetime
    ) -> Sequence[Deal]: ...

    @abc.abstractmethod
    @read
    async def get_balance_operations(
        self, account_id: str, start: datetime, end: datetime
    ) -> Sequence[BalanceOperation]: ...


class AccountAnalyticsReads(abc.ABC):
    @abc.abstractmethod
    @read
    async def get_analytics(
        self, account_id: str, start: datetime, end: datetime
    ) -> AccountAnalytics: ...


class Funding(abc.ABC):
    """Deposits and withdrawals; a withdrawal returns only after the platform debited."""

    @abc.abstractmethod
    @write
    async def deposit(self, movement: MoneyMovement) -> BalanceOperation: ...

    @abc.abstractmethod
    @write
    async def withdraw(self, movement: MoneyMovement) -> BalanceOperation: ...


class Credit(abc.ABC):
    """Non-withdrawable credit; a positive amount adds, a negative one removes."""

    @abc.abstractmethod
    @write
    async def change_credit(self, movement: MoneyMovement) -> BalanceOperation: ...


class Bonus(abc.ABC):
    @abc.abstractmethod
    @write
    async def change_bonus(self, movement: MoneyMovement) -> BalanceOperation: ...


class OrderReads(abc.ABC):
    @abc.abstractmethod
    @read
    async def get_orders(self, account_ids: Sequence[str]) -> Sequence[Sequence[Order]]: ...


class OrderRouting(abc.ABC):
    @abc.abstractmethod
    @write
    async def place_order(self, request: PlaceOrderRequest) -> Order: ...

    @abc.abstractmethod
    @write
    async def cancel_order(self, account_id: str, order_id: str) -> Order: ...

    @abc.abstractmethod
    @write
    async def cancel_orders(self, request: CancelOrdersRequest) -> Sequence[Order]: ...

    @abc.abstractmethod
    @write
    async def cancel_orders_for_contract(self, account_id: str, symbol: str) -> Sequence[Order]: ...

    @abc.abstractmethod
    @write
    async def replace_order(self, request: ReplaceOrderRequest) -> Order: ...


class OrderStream(abc.ABC):
    @abc.abstractmethod
    @stream
    def order_events(self, account_id: str) -> AsyncIterator[OrderEvent]:
        """Events of one account in order, starting with a snapshot of its working orders."""


class InstrumentReads(abc.ABC):
    @abc.abstractmethod
    @read
    async def get_instruments(
        self, account_id: str, symbols: Sequence[str] | None
    ) -> Sequence[Instrument]:
        """The instruments ``account_id`` may trade, as its platform specifies them.

        Those named in ``symbols`` (exact names; one the platform does not know is left
        out, never an error: the gateway tells the client which are missing), or every
        one the platform lists for the account when ``symbols`` is None.  Any order.
        NotFound for an account the platform does not know.
        """


class AccountStream(abc.ABC):
    @abc.abstractmethod
    @stream
    def account_events(self, account_id: str) -> AsyncIterator[AccountEvent]: ...


class MarketDataEntitlements(abc.ABC):
    @abc.abstractmethod
    @read
    async def get_market_data_subscriptions(
        self, trader_ids: Sequence[str]
    ) -> Sequence[Sequence[MarketDataSubscription]]: ...

    @abc.abstractmethod
    @stream
    def market_data_events(self, trader_id: str) -> AsyncIterator[MarketDataSubscriptionEvent]: ...


class TradingAccess(abc.ABC):
    @abc.abstractmethod
    @write
    async def enable_trading(self, partner_code: str) -> None: ...

    @abc.abstractmethod
    @write
    async def set_trading_leverage(self, partner_code: str, leverage: Decimal) -> None: ...


class TaxCalculator(abc.ABC):
    @abc.abstractmethod
    @write
    async def calculate_tax(self, request: TaxRequest) -> TaxCalculation: ...


class ClientReports(abc.ABC):
    @abc.abstractmethod
    @write
    async def request_report(self, request: ReportRequest) -> ClientReport: ...

    @abc.abstractmethod
    @read
    async def get_reports(self, partner_code: str) -> Sequence[ClientReport]: ...

    @abc.abstractmethod
    @read
    async def download_report(self, partner_code: str, report_id: str) -> tuple[str, bytes]:
        """The media type and content of a READY report; NotFound unless it is the partner's."""


_FAMILIES: Mapping[Capability, type] = {
    Capability.PARTNER_DIRECTORY: PartnerDirectory,
    Capability.TRADER_PROVISIONING: TraderProvisioning,
    Capability.ACCOUNT_READS: AccountReads,
    Capability.ACCOUNT_HISTORY: AccountHistory,
    Capability.ACCOUNT_ANALYTICS: AccountAnalyticsReads,
    Capability.FUNDING: Funding,
    Capability.CREDIT: Credit,
    Capability.BONUS: Bonus,
    Capability.ORDER_READS: OrderReads,
    Capability.ORDER_ROUTING: OrderRouting,
    Capability.ORDER_STREAM: OrderStream,
    Capability.ACCOUNT_STREAM: AccountStream,
    Capability.MARKET_DATA_ENTITLEMENTS: MarketDataEntitlements,
    Capability.TRADING_ACCESS: TradingAccess,
    Capability.TAX: TaxCalculator,
    Capability.CLIENT_REPORTS: ClientReports,
    Capability.INSTRUMENTS: InstrumentReads,
}


def family_of(capability: Capability) -> type:
    """The base class a connector must subclass to declare ``capability``."""
    return _FAMILIES[capability]
