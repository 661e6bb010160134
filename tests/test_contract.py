"""The public surface is deliberate: these lists change only on purpose."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import gateway.contract
from gateway import hookspecs
from gateway.errors import ERROR_CODES
from gateway.graphql.errors import ErrorCode

README = Path(__file__).resolve().parent.parent / "README.md"

PINNED_CONTRACT = [
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
    "AccountType",
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
    "CopySubAccount",
    "CreatePartnerRequest",
    "CreateTraderRequest",
    "Credit",
    "DeactivateTraderRequest",
    "Deal",
    "DemoLink",
    "Funding",
    "GatewayServices",
    "HealthStatus",
    "IdempotencyConflict",
    "InsufficientFunds",
    "InvalidInput",
    "MarketDataEntitlements",
    "MarketDataSubscription",
    "MarketDataSubscriptionEvent",
    "Money",
    "MoneyMovement",
    "NotFound",
    "OpenAccountRequest",
    "Order",
    "OrderEvent",
    "OrderEventKind",
    "OrderReads",
    "OrderRouting",
    "OrderSide",
    "OrderStatus",
    "OrderStream",
    "OrderType",
    "PartnerDirectory",
    "PartnerKind",
    "PermissionDenied",
    "PlaceOrderRequest",
    "Position",
    "ProtocolError",
    "ProvisioningResult",
    "ProvisioningStep",
    "RateLimited",
    "ReactivateTraderRequest",
    "ReplaceOrderRequest",
    "ReportFormat",
    "ReportRequest",
    "ReportStatus",
    "RequestContext",
    "Sandbox",
    "SymbolVolume",
    "TaxCalculation",
    "TaxCalculator",
    "TaxKind",
    "TaxRequest",
    "TimeInForce",
    "Trader",
    "TraderProvisioning",
    "TraderStatus",
    "TradingAccess",
    "Unauthenticated",
    "UpdateAccountRequest",
    "UpdatePartnerRequest",
    "UpstreamBusy",
    "UpstreamError",
    "UpstreamRejected",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "account_fields",
    "context_of",
    "decode_id",
    "encode_id",
    "ensure_utc",
    "hookimpl",
    "Secret",
    "cache_key",
    "MoneyType",
    "ServedApp",
    "serve_asgi",
]

PINNED_ERROR_CODES = (
    "CAPABILITY_NOT_SUPPORTED",
    "CONFLICT",
    "IDEMPOTENCY_CONFLICT",
    "INSUFFICIENT_FUNDS",
    "INVALID_INPUT",
    "NOT_FOUND",
    "PERMISSION_DENIED",
    "RATE_LIMITED",
    "UNAUTHENTICATED",
    "UPSTREAM_BUSY",
    "UPSTREAM_ERROR",
    "UPSTREAM_PROTOCOL_ERROR",
    "UPSTREAM_REJECTED",
    "UPSTREAM_TIMEOUT",
    "UPSTREAM_UNAVAILABLE",
)


def hook_names() -> list[str]:
    return sorted(
        name
        for name, obj in vars(hookspecs).items()
        if name.startswith("brokergraph_") and inspect.isfunction(obj)
    )


def test_contract_exports_are_pinned() -> None:
    assert sorted(gateway.contract.__all__) == sorted(PINNED_CONTRACT)
    for name in gateway.contract.__all__:
        assert hasattr(gateway.contract, name), name


def test_error_codes_are_pinned_and_in_the_graphql_enum() -> None:
    assert ERROR_CODES == PINNED_ERROR_CODES
    assert {member.value for member in ErrorCode} == {*ERROR_CODES, "INTERNAL"}


def test_every_hook_has_a_one_line_docstring() -> None:
    assert hook_names(), "no hooks found"
    for name in hook_names():
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert doc and "\n" not in doc.strip(), f"{name} needs a one-line docstring"


def test_every_hook_is_documented_in_the_readme() -> None:
    readme = README.read_text(encoding="utf-8")
    section = readme.split("## Plugin hooks", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`(brokergraph_\w+)", section))
    assert documented == set(hook_names())
