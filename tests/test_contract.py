"""The public surface is deliberate: these lists change only on purpose."""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
import typing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

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
    "ConnectorReads",
    "ConnectorContext",
    "ConnectorHealth",
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

PINNED_SCHEMA_FACE = [
    "STAFF",
    "AccountOptions",
    "AccountType",
    "AccountWrite",
    "Loaders",
    "MoneyType",
    "RequestContext",
    "TraderOptions",
    "UserError",
    "account_fields",
    "cache_key",
    "context_of",
    "decode_account",
    "decode_id",
    "encode_id",
    "require_linked_account",
    "require_partner",
    "send",
    "visible_partner",
    "write",
]

PINNED_SANDBOX_FACE = [
    "ASGIApp",
    "AsgiSandbox",
    "DemoLink",
    "Misbehaving",
    "Sandbox",
    "SandboxCertificate",
    "ServedApp",
    "sandbox_certificate",
    "serve_asgi",
]

PINNED_ERROR_CODES = (
    "CAPABILITY_NOT_SUPPORTED",
    "CONFLICT",
    "IDEMPOTENCY_CONFLICT",
    "INSUFFICIENT_FUNDS",
    "INVALID_INPUT",
    "NOT_FOUND",
    "OUTCOME_UNKNOWN",
    "PERMISSION_DENIED",
    "RATE_LIMITED",
    "RESUME_POINT_EXPIRED",
    "STREAM_INTERRUPTED",
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


@pytest.mark.parametrize(
    ("face", "pinned"),
    [
        ("gateway.contract", PINNED_CONTRACT),
        ("gateway.contract.schema", PINNED_SCHEMA_FACE),
        ("gateway.contract.sandbox", PINNED_SANDBOX_FACE),
    ],
)
def test_each_face_exports_exactly_its_pinned_names(face: str, pinned: list[str]) -> None:
    module = importlib.import_module(face)
    assert sorted(module.__all__) == sorted(pinned)
    for name in module.__all__:
        assert hasattr(module, name), name


@pytest.mark.parametrize("face", ["gateway.contract", "gateway.contract.sandbox"])
def test_public_classes_and_functions_live_at_their_public_path(face: str) -> None:
    module = importlib.import_module(face)
    for name in module.__all__:
        value = getattr(module, name)
        if isinstance(value, type) or inspect.isfunction(value):
            assert value.__module__ == face, name


def test_importing_the_contract_loads_no_strawberry_and_no_sqlalchemy() -> None:
    # A fresh interpreter: this one has long imported everything.
    code = (
        "import sys, gateway.contract\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'strawberry', 'sqlalchemy', 'graphql', 'starlette', 'uvicorn'})\n"
        "print(','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""


def test_a_moved_name_still_works_with_a_deprecation_warning() -> None:
    from gateway.contract.schema import AccountType

    with pytest.warns(DeprecationWarning, match=r"gateway\.contract\.schema"):
        moved = gateway.contract.AccountType
    assert moved is AccountType
    with pytest.raises(AttributeError):
        gateway.contract.NoSuchName  # noqa: B018


def test_resolved_annotations_keep_models_serialisable() -> None:
    # publish() moved __module__; type hints must still resolve (serialisation uses them).
    hints = typing.get_type_hints(gateway.contract.Account)
    assert hints["balance"] == gateway.contract.Money | None
    hints = typing.get_type_hints(gateway.contract.ConnectorContext)
    assert hints["store"] is gateway.contract.ConnectorStore


def test_a_connector_declares_a_single_session_through_the_contract() -> None:
    """Cluster-wide single sessions are the gateway's job: a connector only declares them."""
    connector = gateway.contract.Connector
    assert connector.single_session is False
    assert list(inspect.signature(connector.session_identity).parameters) == ["self"]
    assert typing.get_type_hints(connector.session_identity)["return"] is str


def test_a_connector_declares_the_upstream_cost_of_its_reads_through_the_contract() -> None:
    """A read that fans out says so; the gateway's cost model charges a query for it."""
    assert list(inspect.signature(gateway.contract.Connector.upstream_costs).parameters) == ["self"]
    two_days = gateway.contract.UpstreamCost(calls=1, window=timedelta(days=2))
    # Four days from an even epoch day: two windows, plus the one fixed call.
    assert (
        two_days.of_period(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 5, tzinfo=UTC)) == 3
    )


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
