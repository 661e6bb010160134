"""The public contract for connector authors: everything a connector may import.

Three faces, one per audience, each a thin namespace over private modules that
sit on the ground floor of the house (they import nothing of the gateway's GraphQL
layer, store or server, so importing this module loads neither Strawberry nor
SQLAlchemy):

* ``gateway.contract`` — connector authors: capability families and their request
  types, the standard models, the error tree, ``Capability``, the narrow services a
  connector receives, settings, and the connector toolkit (vendor error tables,
  transport-failure mapping, exact-decimal JSON, single-flight token sessions, the
  declared upstream cost of a read);
* ``gateway.contract.schema`` — schema contributors: what a plugin needs to add
  GraphQL types and fields, and the one road for a field's upstream reads;
* ``gateway.contract.sandbox`` — sandbox authors: the sandbox base classes.

``tests/test_contract.py`` pins each face's ``__all__``: a name is added
deliberately, and never removed without a deprecation (a moved name keeps working
here with a ``DeprecationWarning``).  A plugin declares the contract version it was
built for as ``BROKERGRAPH_CONTRACT = 1`` in its plugin module; the loader refuses
one built for another version.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

from gateway.cli_commands import CliCommand
from gateway.connectors import (
    AccountAnalyticsReads,
    AccountHistory,
    AccountReads,
    AccountStream,
    Bonus,
    CancelOrdersRequest,
    Capability,
    ClientReports,
    Connector,
    ConnectorContext,
    CreatePartnerRequest,
    CreateTraderRequest,
    Credit,
    DeactivateTraderRequest,
    Funding,
    InstrumentReads,
    MarketDataEntitlements,
    MethodKind,
    MoneyMovement,
    OpenAccountRequest,
    OrderReads,
    OrderRouting,
    OrderStream,
    PartnerDirectory,
    PlaceOrderRequest,
    ProvisioningResult,
    ProvisioningStep,
    ReactivateTraderRequest,
    ReplaceOrderRequest,
    ReportRequest,
    TaxCalculator,
    TaxRequest,
    TraderProvisioning,
    TradingAccess,
    UpdateAccountRequest,
    UpdatePartnerRequest,
    VendorIdentity,
    method_kind,
    read,
    stream,
    write,
)
from gateway.contract._http import upstream_client
from gateway.contract._json import exact_json_dumps, exact_json_loads
from gateway.contract._public import publish
from gateway.contract._services import (
    ConnectorReads,
    ConnectorStore,
    EventLog,
    LoggedEvent,
    PartnerLink,
    PluginServices,
)
from gateway.contract._settings import ConnectorSettings, Secret, SettingsError, reveal, setting
from gateway.contract._tls import TlsSettings
from gateway.contract._token_session import IssuedToken, TokenSession
from gateway.contract._transport import may_have_arrived, transport_error
from gateway.contract._upstream_cost import UpstreamCost
from gateway.contract._vendor_errors import Outcome, VendorError, VendorErrorTable
from gateway.contract._version import CONTRACT_VERSION, ENTRY_POINT_GROUP
from gateway.errors import (
    ERROR_CODES,
    BrokerGraphError,
    CapabilityNotSupported,
    Conflict,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidInput,
    NotFound,
    PermissionDenied,
    ProtocolError,
    RateLimited,
    ResumeTooOld,
    StreamInterrupted,
    Unauthenticated,
    UpstreamBusy,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.hookspecs import hookimpl
from gateway.models import (
    Account,
    AccountAnalytics,
    AccountEvent,
    AccountStatus,
    BalanceOperation,
    BalanceOperationKind,
    BusinessPartner,
    ClientReport,
    ConnectorHealth,
    ConversionRate,
    CopySubAccount,
    Deal,
    Execution,
    HealthStatus,
    Instrument,
    MarketDataSubscription,
    MarketDataSubscriptionEvent,
    Money,
    OpenedRank,
    Order,
    OrderEvent,
    OrderEventKind,
    OrderSide,
    OrderStatus,
    OrderType,
    PartnerKind,
    Position,
    RankingLevel,
    ReportFormat,
    ReportStatus,
    SymbolOpened,
    SymbolOpenVolume,
    SymbolVolume,
    TaxCalculation,
    TaxKind,
    TimeInForce,
    Trader,
    TraderStatus,
    TradingHoursEvent,
    TradingSessionEvent,
    Weekday,
    ensure_utc,
)

__all__ = [
    "CONTRACT_VERSION",
    "ENTRY_POINT_GROUP",
    "ERROR_CODES",
    "Account",
    "AccountAnalytics",
    "AccountAnalyticsReads",
    "AccountEvent",
    "AccountHistory",
    "AccountReads",
    "AccountStatus",
    "AccountStream",
    "BalanceOperation",
    "BalanceOperationKind",
    "Bonus",
    "BrokerGraphError",
    "BusinessPartner",
    "CancelOrdersRequest",
    "Capability",
    "CapabilityNotSupported",
    "CliCommand",
    "ClientReport",
    "ClientReports",
    "Conflict",
    "Connector",
    "ConnectorContext",
    "ConnectorHealth",
    "ConnectorReads",
    "ConnectorSettings",
    "ConnectorStore",
    "ConversionRate",
    "CopySubAccount",
    "CreatePartnerRequest",
    "CreateTraderRequest",
    "Credit",
    "DeactivateTraderRequest",
    "Deal",
    "EventLog",
    "Execution",
    "Funding",
    "HealthStatus",
    "IdempotencyConflict",
    "Instrument",
    "InstrumentReads",
    "InsufficientFunds",
    "InvalidInput",
    "IssuedToken",
    "LoggedEvent",
    "MarketDataEntitlements",
    "MarketDataSubscription",
    "MarketDataSubscriptionEvent",
    "MethodKind",
    "Money",
    "MoneyMovement",
    "NotFound",
    "OpenAccountRequest",
    "OpenedRank",
    "Order",
    "OrderEvent",
    "OrderEventKind",
    "OrderReads",
    "OrderRouting",
    "OrderSide",
    "OrderStatus",
    "OrderStream",
    "OrderType",
    "Outcome",
    "PartnerDirectory",
    "PartnerKind",
    "PartnerLink",
    "PermissionDenied",
    "PlaceOrderRequest",
    "PluginServices",
    "Position",
    "ProtocolError",
    "ProvisioningResult",
    "ProvisioningStep",
    "RankingLevel",
    "RateLimited",
    "ReactivateTraderRequest",
    "ReplaceOrderRequest",
    "ReportFormat",
    "ReportRequest",
    "ReportStatus",
    "ResumeTooOld",
    "Secret",
    "SettingsError",
    "StreamInterrupted",
    "SymbolOpenVolume",
    "SymbolOpened",
    "SymbolVolume",
    "TaxCalculation",
    "TaxCalculator",
    "TaxKind",
    "TaxRequest",
    "TimeInForce",
    "TlsSettings",
    "TokenSession",
    "Trader",
    "TraderProvisioning",
    "TraderStatus",
    "TradingAccess",
    "TradingHoursEvent",
    "TradingSessionEvent",
    "Unauthenticated",
    "UpdateAccountRequest",
    "UpdatePartnerRequest",
    "UpstreamBusy",
    "UpstreamCost",
    "UpstreamError",
    "UpstreamRejected",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "VendorError",
    "VendorErrorTable",
    "VendorIdentity",
    "Weekday",
    "ensure_utc",
    "exact_json_dumps",
    "exact_json_loads",
    "hookimpl",
    "may_have_arrived",
    "method_kind",
    "read",
    "reveal",
    "setting",
    "stream",
    "transport_error",
    "upstream_client",
    "write",
]

publish(__name__, globals(), __all__)

#: Names that lived here before the contract had faces: where they are now.
_MOVED = {
    "AccountType": "gateway.contract.schema",
    "MoneyType": "gateway.contract.schema",
    "RequestContext": "gateway.contract.schema",
    "account_fields": "gateway.contract.schema",
    "cache_key": "gateway.contract.schema",
    "context_of": "gateway.contract.schema",
    "decode_id": "gateway.contract.schema",
    "encode_id": "gateway.contract.schema",
    "DemoLink": "gateway.contract.sandbox",
    "Sandbox": "gateway.contract.sandbox",
    "ServedApp": "gateway.contract.sandbox",
    "serve_asgi": "gateway.contract.sandbox",
    "GatewayServices": "gateway.services",
}


def __getattr__(name: str) -> Any:
    """A moved name still works for one minor release, with a DeprecationWarning."""
    home = _MOVED.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    replacement = "gateway.contract.PluginServices" if name == "GatewayServices" else home
    warnings.warn(
        f"gateway.contract.{name} moved; import it from {replacement}",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(home), name)
