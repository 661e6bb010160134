"""QortConnector: QORT, the back office of record, behind the standard families.

What it declares and how each family maps onto QORT's web-services module:

* Extension fields (the Data model extension module): their definitions (name and
  type: STRING, DECIMAL, DATE, BOOLEAN) are ``ExportRecords`` of ``FirmAttributeDefs``
  (inferred: the module's API is not public), read once per
  ``attribute_definitions_ttl_seconds`` on the gateway's cache road.  A declared
  field's value is checked against its type and written in QORT's text (numbers plain,
  dates YYYYMMDD, booleans 'y'/'n') before any write; undeclared fields stay free text.
* PARTNER_DIRECTORY — a business partner is a QORT firm.  Reads take ONE
  ``GetFirmPacket`` per partner (firm, sub-accounts, agreements, accounts and
  extension attributes in one packet, the module's documented advantage over the
  IDB), a batch fanning out with bounded concurrency.  Writes are ``ImportRecords``
  with IDB semantics: ``ET_Const`` 2 insert / 4 update / 8 delete, one call per
  table in dependency order (Firms → Subaccs → ClientAgrees → FirmAttributes), and
  each refused record (``IsProcessed=4``) becomes a typed error carrying QORT's
  ``ErrorLog``.  A create that fails at a later table deletes what it inserted, so
  a retry does not meet a half-created firm.
* ACCOUNT_READS — QORT sub-accounts (``Subaccs``) are the partner's accounts
  (``QortSubaccount`` in GraphQL).  QORT has no trader logins (those live on the
  trading platforms), so ``get_traders`` finds none; its positions are asset
  holdings, not open trades with a side and open price, and the module does not
  export them, so ``get_positions`` answers none.  Declared anyway because
  partners' sub-accounts are linked as accounts and must read.
* TRADING_ACCESS — ``UploadQuikLimits`` (onboarding done: the client can trade)
  and ``SetQuikLeverage`` on each active QUIK sub-account of the partner.
* TAX — ``CalcPitWithdrawal`` on the partner's first active sub-account (in code
  order) in the withdrawal's currency, and ``CalcPitPeriod`` for the partner; its own
  ``pit_report`` (the ``qortPitReport`` query) is ``CalcPitPeriod`` from 1 January to a
  day, for the partner or one of its sub-accounts, with QORT's per-deal rows.
* CLIENT_REPORTS — ``RequestClientReport`` on one sub-account of the partner, the
  one asked for (the gateway asks once per linked sub-account), else the first
  active one; QORT has no "list reports" operation, so requested reports are
  remembered in the gateway store (``flows``, kind ``qort-report``) and their
  status refreshed with ``GetClientReport`` until READY.  A download checks that
  QORT's ``OwnerBOCode`` is the partner asked for.

Periods: QORT dates are inclusive ``int YYYYMMDD`` days in UTC; the gateway's
periods are ``[from, to)``, so ``to`` becomes the day of its last instant.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, TypeVar

from brokergraph_qort import __version__
from brokergraph_qort.client import (
    ET_DELETE,
    ET_INSERT,
    ET_UPDATE,
    FirmPacket,
    QortClient,
    Row,
    TaxResult,
    refuse_unencodable,
)
from brokergraph_qort.errors import PLATFORM, RecordError, record_error
from brokergraph_qort.settings import QortSettings
from gateway.contract import (
    Account,
    AccountReads,
    AccountStatus,
    BrokerGraphError,
    BusinessPartner,
    Capability,
    ClientReport,
    ClientReports,
    Conflict,
    Connector,
    ConnectorContext,
    ConnectorHealth,
    CreatePartnerRequest,
    HealthStatus,
    InvalidInput,
    Money,
    NotFound,
    PartnerDirectory,
    PartnerKind,
    Position,
    ProtocolError,
    ReportFormat,
    ReportRequest,
    ReportStatus,
    TaxCalculation,
    TaxCalculator,
    TaxKind,
    TaxRequest,
    Trader,
    TradingAccess,
    UpdatePartnerRequest,
    UpstreamBusy,
    ensure_utc,
    read,
    write,
)

__all__ = [
    "REPORT_FLOW_KIND",
    "AttributeDefinition",
    "AttributeType",
    "PitDeal",
    "PitReport",
    "QortConnector",
    "attribute_from_qort",
    "attribute_to_qort",
    "partner_from_packet",
    "qort_date",
]

logger = logging.getLogger("brokergraph_qort.connector")

T = TypeVar("T")
R = TypeVar("R")

REPORT_FLOW_KIND = "qort-report"
ACTIVE = "5"
#: Subaccs.RPTACTION_Flags that QUIK sub-accounts carry in practice [V-3P; meaning inferred].
QUIK_REPORT_ACTIONS = 14
ACCOUNT_STATUS: Mapping[str, AccountStatus] = {
    "5": AccountStatus.FULL_TRADING,
    "12": AccountStatus.CLOSE_ONLY,  # closing planned
    "7": AccountStatus.TERMINATED,
}
REPORT_STATUS: Mapping[str, ReportStatus] = {s.value: s for s in ReportStatus}
REPORT_FORMATS: Mapping[str, ReportFormat] = {f.value: f for f in ReportFormat}
CONTENT_TYPES: Mapping[ReportFormat, str] = {
    ReportFormat.CSV: "text/csv",
    ReportFormat.PDF: "application/pdf",
}
#: QORT extension-field names (Data model extension module): identifiers.
ATTRIBUTE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
MAX_ATTRIBUTE_TEXT = 255


# --------------------------------------------------------------------------- extension fields


class AttributeType(enum.Enum):
    """[I] The types a Data model extension field is declared with."""

    STRING = "STRING"
    DECIMAL = "DECIMAL"
    DATE = "DATE"
    BOOLEAN = "BOOLEAN"


@dataclass(frozen=True, slots=True)
class AttributeDefinition:
    """One declared extension field (a FirmAttributeDefs row)."""

    name: str
    type: AttributeType
    description: str | None = None


AttributeValue = str | Decimal | date | bool
_TRUE = frozenset({"true", "y", "yes"})
_FALSE = frozenset({"false", "n", "no"})
_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_QORT_DAY = re.compile(r"[0-9]{8}")


def _bad_attribute(name: str, type_: AttributeType, value: Any, example: str) -> InvalidInput:
    return InvalidInput(
        f"attribute {name!r} is declared {type_.value} in QORT: {value!r} is not one "
        f"(e.g. {example})",
        field=["attributes", name],
        details={"platform": PLATFORM, "type": type_.value},
    )


def attribute_to_qort(name: str, type_: AttributeType, value: Any) -> str:
    """A declared field's value as QORT's text, or INVALID_INPUT naming it (no call made).

    DECIMAL: a number or numeric string (not a boolean) -> plain decimal text; DATE: a
    date, 'YYYY-MM-DD' or QORT's YYYYMMDD -> YYYYMMDD; BOOLEAN: a boolean or
    true/false/y/n -> 'y'/'n'; STRING: text (numbers as their text), at most 255.
    """
    if type_ is AttributeType.DECIMAL:
        number: Decimal | None = None
        if isinstance(value, Decimal | int) and not isinstance(value, bool):
            number = Decimal(value)
        elif isinstance(value, float):
            number = Decimal(str(value))
        elif isinstance(value, str):
            number = _decimal_or_none(value.strip())
        if number is None or not number.is_finite():
            raise _bad_attribute(name, type_, value, '"1500000.50"')
        return format(number, "f")
    if type_ is AttributeType.DATE:
        if isinstance(value, datetime):
            value = value.date()
        if isinstance(value, date):
            return str(qort_date(value))
        text = value.strip() if isinstance(value, str) else ""
        day: date | None = None
        try:
            if _ISO_DAY.fullmatch(text):
                day = date.fromisoformat(text)
            elif _QORT_DAY.fullmatch(text):
                day = date(int(text[:4]), int(text[4:6]), int(text[6:]))
        except ValueError:
            day = None
        if day is None:
            raise _bad_attribute(name, type_, value, '"2024-05-31"')
        return str(qort_date(day))
    if type_ is AttributeType.BOOLEAN:
        if isinstance(value, bool):
            return _yn(value)
        text = value.strip().lower() if isinstance(value, str) else ""
        if text in _TRUE or text in _FALSE:
            return _yn(text in _TRUE)
        raise _bad_attribute(name, type_, value, "true")
    return _attribute_text(name, value)


def attribute_from_qort(type_: AttributeType, text: str) -> AttributeValue | None:
    """A stored value read by its declared type; None when QORT holds text that is not one."""
    value = text.strip()
    if type_ is AttributeType.DECIMAL:
        return _decimal_or_none(value)
    if type_ is AttributeType.DATE:
        when = from_qort_date(value) if _QORT_DAY.fullmatch(value) else None
        return None if when is None else when.date()
    if type_ is AttributeType.BOOLEAN:
        return True if value == "y" else False if value == "n" else None
    return text


def definitions_from_rows(rows: Sequence[Row]) -> dict[str, AttributeDefinition]:
    """FirmAttributeDefs rows by name; a type the gateway does not know reads as STRING."""
    known = {t.value: t for t in AttributeType}
    found: dict[str, AttributeDefinition] = {}
    for row in rows:
        name = row.get("Name")
        if not name:
            continue
        type_ = known.get((row.get("Type") or "").strip().upper())
        if type_ is None:
            logger.warning("QORT field %s has type %r: read as STRING", name, row.get("Type"))
            type_ = AttributeType.STRING
        found[name] = AttributeDefinition(name, type_, row.get("Description") or None)
    return found


# --------------------------------------------------------------------------- PIT report


@dataclass(frozen=True, slots=True)
class PitDeal:
    """One row of CalcPitPeriod: a closed deal and what it adds to the tax base."""

    trade_number: str
    sub_account_code: str
    instrument: str
    quantity: Decimal
    buy_date: date | None
    buy_price: Decimal | None
    buy_amount: Decimal | None
    sell_date: date | None
    sell_price: Decimal | None
    sell_amount: Decimal | None
    currency: str
    income: Decimal
    rate: Decimal | None
    tax_base: Decimal


@dataclass(frozen=True, slots=True)
class PitReport:
    """PIT from 1 January to ``period_to``: QORT's totals and rows.

    ``narrowed`` is False when a sub-account was asked for but QORT answered rows of
    others too (it does not narrow; inferred): ``deals`` are then the sub-account's
    rows only, and the totals are the partner's.
    """

    partner_code: str
    sub_account_code: str | None
    period_from: date
    period_to: date
    narrowed: bool
    currency: str
    tax_base: Decimal
    tax_amount: Decimal
    deals: tuple[PitDeal, ...]


def _row_decimal(row: Row, name: str) -> Decimal | None:
    return _decimal_or_none(row.get(name))


def _row_number(row: Row, name: str) -> Decimal:
    value = _decimal_or_none(row.get(name))
    if value is None:
        raise ProtocolError(
            f"QORT's PIT row has no number in {name}: {row.get(name)!r}",
            details={"platform": PLATFORM, "operation": "CalcPitPeriod"},
        )
    return value


def _row_day(row: Row, name: str) -> date | None:
    when = from_qort_date(row.get(name))
    return None if when is None else when.date()


def pit_deal(row: Row, currency: str) -> PitDeal:
    """A CalcPitPeriod row as a deal (a row without its numbers is a protocol error)."""
    return PitDeal(
        trade_number=row.get("TradeNum") or "",
        sub_account_code=row.get("SubAccCode") or "",
        instrument=row.get("Security_Code") or "",
        quantity=_row_number(row, "Qty"),
        buy_date=_row_day(row, "BuyDate"),
        buy_price=_row_decimal(row, "BuyPrice"),
        buy_amount=_row_decimal(row, "BuyVolume"),
        sell_date=_row_day(row, "SellDate"),
        sell_price=_row_decimal(row, "SellPrice"),
        sell_amount=_row_decimal(row, "SellVolume"),
        currency=row.get("Currency") or currency,
        income=_row_number(row, "Income"),
        rate=_row_decimal(row, "Rate"),
        tax_base=_row_number(row, "IncomeRUB"),
    )


# --------------------------------------------------------------------------- conversions


#: QORT keeps no deals before this: a tax day (PIT, a withdrawal's) earlier is a typo.
EARLIEST_TAX_DAY = date(1990, 1, 1)


def qort_date(value: datetime | date) -> int:
    """A day as QORT's int YYYYMMDD (datetimes are taken in UTC)."""
    day = ensure_utc(value).date() if isinstance(value, datetime) else value
    return day.year * 10000 + day.month * 100 + day.day


def qort_last_day(end: datetime) -> int:
    """The inclusive QORT day of an exclusive end instant."""
    return qort_date(ensure_utc(end) - timedelta(microseconds=1))


def from_qort_date(value: str | int | None) -> datetime | None:
    """QORT's YYYYMMDD as midnight UTC; 0 or empty means none."""
    text = str(value or "").strip()
    if not text or text == "0":
        return None
    try:
        return datetime(int(text[:4]), int(text[4:6]), int(text[6:8]), tzinfo=UTC)
    except ValueError:
        return None


def _yes(value: str | None) -> bool:
    return (value or "").strip().lower() == "y"


def _yn(value: bool) -> str:
    return "y" if value else "n"


def _first(value: str | None) -> str | None:
    """The first entry of QORT's list fields (Emails, Phones: ';' or ',' separated)."""
    for part in re.split(r"[;,]", value or ""):
        if part.strip():
            return part.strip()
    return None


def _decimal_or_none(value: str | None) -> Decimal | None:
    try:
        number = Decimal(value) if value else None
    except InvalidOperation:
        return None
    return number if number is not None and number.is_finite() else None


def partner_from_packet(
    packet: FirmPacket, *, platform: str = PLATFORM, home_country: str = "RU"
) -> BusinessPartner:
    """The standard model of a firm packet (``raw`` keeps the whole packet)."""
    firm = packet.firm
    return BusinessPartner(
        code=firm["BOCode"],
        name=firm.get("Name") or firm.get("FirmShortName") or firm["BOCode"],
        kind=PartnerKind.LEGAL_ENTITY if _yes(firm.get("IsFirm")) else PartnerKind.INDIVIDUAL,
        short_name=firm.get("FirmShortName") or None,
        email=_first(firm.get("Emails")),
        phone=_first(firm.get("Phones")),
        tax_id=firm.get("INN") or None,
        residency=home_country if _yes(firm.get("IsResident")) else None,
        is_qualified_investor=_yes(firm.get("IsQualified")),
        kyc_passed=_yes(firm.get("IsCheckedKYC")),
        broker=firm.get("Broker") or None,
        attributes=dict(packet.attributes),
        platform=platform,
        raw={
            "Firm": dict(firm),
            "Subacc": [dict(r) for r in packet.subaccs],
            "ClientAgree": [dict(r) for r in packet.client_agrees],
            "FirmAccount": [dict(r) for r in packet.firm_accounts],
            "Attribute": dict(packet.attributes),
        },
    )


def account_from_row(row: Row, *, platform: str = PLATFORM, currency: str = "RUB") -> Account:
    """A QORT sub-account as an Account (``raw`` keeps the Subaccs row)."""
    code = row["SubAccCode"]
    return Account(
        platform=platform,
        id=code,
        number=code,
        currency=row.get("Currency") or currency,
        status=ACCOUNT_STATUS.get(row.get("ACSTAT_Const", ""), AccountStatus.NO_TRADING),
        is_live=True,
        leverage=_decimal_or_none(row.get("Leverage")),
        raw=dict(row),
    )


def _attribute_text(name: str, value: Any) -> str:
    if isinstance(value, bool):
        text = _yn(value)
    elif isinstance(value, str | int | Decimal) or (
        isinstance(value, float) and value == value and abs(value) != float("inf")
    ):
        text = str(value)
    else:
        raise InvalidInput(
            f"attribute {name!r} must be a string, number or boolean (QORT stores text)",
            field=["attributes", name],
        )
    if len(text) > MAX_ATTRIBUTE_TEXT:
        raise InvalidInput(
            f"attribute {name!r} is longer than {MAX_ATTRIBUTE_TEXT} characters",
            field=["attributes", name],
        )
    return text


def check_attributes(attributes: Mapping[str, Any]) -> dict[str, str | None]:
    """Extension fields as QORT text (``None`` kept: it deletes on update); no upstream call."""
    checked: dict[str, str | None] = {}
    for name, value in attributes.items():
        if not isinstance(name, str) or not ATTRIBUTE_NAME.fullmatch(name):
            raise InvalidInput(
                f"attribute name {name!r} must be an identifier (letters, digits, _; at most 64)",
                field=["attributes"],
            )
        checked[name] = None if value is None else _attribute_text(name, value)
    return checked


# --------------------------------------------------------------------------- the connector


class QortConnector(
    Connector, PartnerDirectory, AccountReads, TradingAccess, TaxCalculator, ClientReports
):
    """QORT's web-services module (SOAP, one shared session); see the module docstring."""

    name: ClassVar[str] = "qort"
    platform: ClassVar[str] = PLATFORM
    version: ClassVar[str] = __version__
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.PARTNER_DIRECTORY,
            Capability.ACCOUNT_READS,
            Capability.TRADING_ACCESS,
            Capability.TAX,
            Capability.CLIENT_REPORTS,
        }
    )
    #: Partner packets change rarely and each costs a GetFirmPacket.
    cache_ttl_seconds: ClassVar[Mapping[Capability, float]] = {
        Capability.PARTNER_DIRECTORY: 30.0,
    }
    #: QORT serves one connected application at a time: one replica holds its session.
    single_session: ClassVar[bool] = True

    def __init__(self, context: ConnectorContext) -> None:
        super().__init__(context)
        self.settings = QortSettings.from_section(self.name, context.settings)
        self.client = QortClient(self.settings)
        self._limit = asyncio.Semaphore(max(1, self.settings.max_concurrency))

    # ------------------------------------------------------------------ lifecycle

    def session_identity(self) -> str:
        return self.settings.url

    async def start(self) -> None:
        """Load the WSDL and take QORT's one session now; a refusal is not fatal."""
        try:
            await self.client.connect()
        except BrokerGraphError as error:
            self.context.logger.warning(
                "QORT not connected at start (%s): %s; requests will retry",
                error.code,
                error.message,
            )

    async def close(self) -> None:
        await self.client.close()

    async def health(self) -> ConnectorHealth:
        """A Ping with the shared session (logging in if needed; never past a cool-down)."""
        started = time.perf_counter()
        try:
            await self.client.run("Ping")
        except UpstreamBusy as error:
            return ConnectorHealth(status=HealthStatus.DOWN, detail=error.message)
        except BrokerGraphError as error:
            detail = f"{error.code}: {error.message}"
            return ConnectorHealth(status=HealthStatus.DOWN, detail=detail)
        latency = (time.perf_counter() - started) * 1000
        return ConnectorHealth(status=HealthStatus.UP, latency_ms=round(latency, 1))

    # ------------------------------------------------------------------ helpers

    async def _bounded(self, items: Iterable[T], call: Callable[[T], Awaitable[R]]) -> list[R]:
        async def one(item: T) -> R:
            async with self._limit:
                return await call(item)

        return list(await asyncio.gather(*(one(item) for item in items)))

    async def _packet(self, code: str) -> FirmPacket:
        packet = await self.client.get_firm_packet(code)
        if packet is None:
            raise NotFound("partner not found", details={"platform": self.platform})
        return packet

    async def _import(
        self,
        table: str,
        records: Sequence[tuple[int, Mapping[str, Any]]],
        *,
        own_key: str | None = None,
    ) -> None:
        errors = await self.client.import_records(table, records)
        if errors:
            raise record_error(errors, missing_is_not_found=own_key)

    @staticmethod
    def _active(packet: FirmPacket) -> list[Row]:
        rows = [
            r for r in packet.subaccs if r.get("ACSTAT_Const") == ACTIVE and r.get("SubAccCode")
        ]
        return sorted(rows, key=lambda r: r["SubAccCode"])

    def _partner(self, packet: FirmPacket) -> BusinessPartner:
        return partner_from_packet(
            packet, platform=self.platform, home_country=self.settings.home_country
        )

    # ------------------------------------------------------------------ extension fields

    @read
    async def attribute_definitions(self) -> Mapping[str, AttributeDefinition]:
        """The Data model extension's declared fields by name (FirmAttributeDefs).

        A QORT that exports no such table (refused as VALIDATION) declares none: every
        field is then free text, as before definitions were read.
        """

        async def fetch() -> dict[str, AttributeDefinition]:
            try:
                rows = await self.client.export_records("FirmAttributeDefs")
            except InvalidInput as refused:
                logger.warning("QORT exports no field definitions: %s", refused.message)
                return {}
            return definitions_from_rows(rows)

        return await self.context.reads.read(
            "qort-attribute-defs",
            "all",
            fetch,
            ttl=self.settings.attribute_definitions_ttl_seconds,
        )

    async def _typed_attributes(self, attributes: Mapping[str, Any]) -> dict[str, str | None]:
        """``attributes`` as QORT text: shapes checked first (no call), then each declared
        field against its type (the definitions read is the only call, and cached)."""
        checked = check_attributes(attributes)
        if not any(v is not None for v in checked.values()):
            return checked
        definitions = await self.attribute_definitions()
        for name, value in attributes.items():
            definition = definitions.get(name)
            if value is not None and definition is not None:
                checked[name] = attribute_to_qort(name, definition.type, value)
        return checked

    # ------------------------------------------------------------------ PARTNER_DIRECTORY

    async def get_partners(self, codes: Sequence[str]) -> Sequence[BusinessPartner | None]:
        unique = list(dict.fromkeys(codes))
        packets = await self._bounded(unique, self.client.get_firm_packet)
        partners = {
            code: None if packet is None else self._partner(packet)
            for code, packet in zip(unique, packets, strict=True)
        }
        return [partners[code] for code in codes]

    def _firm_fields(
        self,
        *,
        name: str | None,
        short_name: str | None,
        email: str | None,
        phone: str | None,
        tax_id: str | None,
        residency: str | None,
        is_qualified_investor: bool | None,
        kyc_passed: bool | None = None,
    ) -> dict[str, str]:
        fields: dict[str, str] = {}
        if name is not None:
            fields["Name"] = name
        if short_name is not None:
            fields["FirmShortName"] = short_name
        if email is not None:
            fields["Emails"] = email
        if phone is not None:
            fields["Phones"] = phone
        if tax_id is not None:
            fields["INN"] = tax_id
        if residency is not None:
            resident = _yn(residency.strip().upper() == self.settings.home_country.upper())
            fields["IsResident"] = fields["IsTaxResident"] = resident
        if is_qualified_investor is not None:
            fields["IsQualified"] = _yn(is_qualified_investor)
        if kyc_passed is not None:
            fields["IsCheckedKYC"] = _yn(kyc_passed)
        return fields

    async def create_partner(self, request: CreatePartnerRequest) -> BusinessPartner:
        refuse_unencodable(request)  # by its GraphQL field, before any call
        if request.kind is PartnerKind.SOLE_PROPRIETOR:
            raise InvalidInput(
                "QORT records a firm (IsFirm='y') or an individual: use LEGAL_ENTITY or "
                "INDIVIDUAL and keep the distinction in an attribute",
                field=["kind"],
            )
        attributes = {
            k: v
            for k, v in (await self._typed_attributes(request.attributes)).items()
            if v is not None
        }
        code, today = request.code, qort_date(datetime.now(UTC))
        firm: dict[str, Any] = {
            "BOCode": code,
            **self._firm_fields(
                name=request.name,
                short_name=request.short_name or request.name,
                email=request.email,
                phone=request.phone,
                tax_id=request.tax_id,
                residency=request.residency,
                is_qualified_investor=request.is_qualified_investor,
            ),
            "IsFirm": _yn(request.kind is PartnerKind.LEGAL_ENTITY),
            "FT_Flags": 1,  # a client
        }
        if request.broker:
            firm["Broker"] = request.broker
        steps: list[tuple[str, list[dict[str, Any]]]] = [("Firms", [firm])]
        subacc: dict[str, Any] | None = None
        if request.sub_account_code:
            subacc = {
                "SubAccCode": request.sub_account_code,
                "SubaccName": request.short_name or request.name,
                "OwnerFirm_BOCode": code,
                "ACSTAT_Const": ACTIVE,
                "IsQUIK": "y",
                "TradeCode": request.sub_account_code,
                "Currency": self.settings.default_currency,
            }
            steps.append(("Subaccs", [subacc]))
        if request.agreement_number:
            agreement = {
                "Num": request.agreement_number,
                "ClientAgreeTypeShortName": self.settings.agreement_type,
                "OwnerFirm_BOCode": code,
                "SubAccCode": request.sub_account_code,
                "DateSign": today,
                "DateEnd": 0,
            }
            steps.append(("ClientAgrees", [agreement]))
        if attributes:
            steps.append(
                (
                    "FirmAttributes",
                    [{"BOCode": code, "Name": k, "Value": v} for k, v in attributes.items()],
                )
            )
        done: list[tuple[str, list[dict[str, Any]]]] = []
        for table, records in steps:
            try:
                await self._import(table, [(ET_INSERT, r) for r in records])
            except BrokerGraphError as error:
                if done:
                    error.details["rolledBack"] = await self._undo(done)
                raise
            done.append((table, records))
        packet = FirmPacket(
            firm={k: str(v) for k, v in firm.items()},
            subaccs=[{k: str(v) for k, v in subacc.items()}] if subacc else [],
            client_agrees=[],
            firm_accounts=[],
            attributes=attributes,
        )
        return self._partner(packet)

    async def _undo(self, done: Sequence[tuple[str, list[dict[str, Any]]]]) -> bool:
        """Delete (ET_Const 8) what a failed create inserted, newest first."""
        keys = {
            "Firms": ("BOCode",),
            "Subaccs": ("SubAccCode",),
            "ClientAgrees": ("Num",),
            "FirmAttributes": ("BOCode", "Name"),
        }
        complete = True
        for table, records in reversed(done):
            deletes = [(ET_DELETE, {k: r[k] for k in keys[table]}) for r in records]
            try:
                refused = await self.client.import_records(table, deletes)
            except BrokerGraphError as failure:
                refused = [RecordError(table, 0, failure.message)]
            for record in refused:
                complete = False
                self.context.logger.error(
                    "QORT: could not undo %s record %s: %s", table, record.key, record.error_log
                )
        return complete

    async def update_partner(self, request: UpdatePartnerRequest) -> BusinessPartner:
        refuse_unencodable(request)  # by its GraphQL field, before any call
        attributes = await self._typed_attributes(request.attributes or {})
        packet = await self._packet(request.code)
        fields = self._firm_fields(
            name=request.name,
            short_name=request.short_name,
            email=request.email,
            phone=request.phone,
            tax_id=request.tax_id,
            residency=request.residency,
            is_qualified_investor=request.is_qualified_investor,
            kyc_passed=request.kyc_passed,
        )
        changed = {k: v for k, v in fields.items() if packet.firm.get(k) != v}
        if changed:
            await self._import(
                "Firms", [(ET_UPDATE, {"BOCode": request.code, **changed})], own_key=request.code
            )
        merged = dict(packet.attributes)
        records: list[tuple[int, Mapping[str, Any]]] = []
        for name, value in attributes.items():
            key = {"BOCode": request.code, "Name": name}
            if value is None:
                if name in merged:
                    records.append((ET_DELETE, key))
                    del merged[name]
            elif merged.get(name) != value:
                records.append(
                    (ET_UPDATE if name in merged else ET_INSERT, {**key, "Value": value})
                )
                merged[name] = value
        if records:
            await self._import("FirmAttributes", records, own_key=request.code)
        updated = FirmPacket(
            firm={**packet.firm, **changed},
            subaccs=packet.subaccs,
            client_agrees=packet.client_agrees,
            firm_accounts=packet.firm_accounts,
            attributes=merged,
        )
        return self._partner(updated)

    async def delete_partner(self, code: str) -> None:
        await self._import("Firms", [(ET_DELETE, {"BOCode": code})], own_key=code)
        store = self.context.store
        for flow_id, _ in await store.list_flows(
            REPORT_FLOW_KIND, prefix=f"{REPORT_FLOW_KIND}:{code}:"
        ):
            await store.delete_flow(flow_id)

    # ------------------------------------------------------------------ ACCOUNT_READS

    async def _subacc(self, code: str) -> Account | None:
        rows = await self.client.export_records("Subaccs", SubAccCode=code)
        row = next((r for r in rows if r.get("SubAccCode") == code), None)
        if row is None:
            return None
        return account_from_row(
            row, platform=self.platform, currency=self.settings.default_currency
        )

    async def get_accounts(self, account_ids: Sequence[str]) -> Sequence[Account | None]:
        unique = list(dict.fromkeys(account_ids))
        found = dict(zip(unique, await self._bounded(unique, self._subacc), strict=True))
        return [found[code] for code in account_ids]

    async def get_traders(self, trader_ids: Sequence[str]) -> Sequence[Trader | None]:
        # QORT keeps no trader logins: those belong to the trading platforms.
        return [None] * len(trader_ids)

    async def get_trader_accounts(self, trader_ids: Sequence[str]) -> Sequence[Sequence[Account]]:
        return [[] for _ in trader_ids]

    async def get_positions(self, account_ids: Sequence[str]) -> Sequence[Sequence[Position]]:
        # QORT's positions are asset holdings (VolFree per asset), not open trades with a
        # side and an open price; the module exports none, so there are none to show.
        return [[] for _ in account_ids]

    # ------------------------------------------------------------------ TRADING_ACCESS

    async def enable_trading(self, partner_code: str) -> None:
        await self.client.upload_quik_limits(partner_code)

    @write
    async def add_subaccount(
        self,
        partner_code: str,
        sub_account_code: str,
        *,
        name: str | None,
        currency: str | None,
        quik: bool,
        agreement_number: str | None,
    ) -> Account:
        """Open one more sub-account for an existing firm, with its agreement if named.

        The agreement is inserted after the sub-account; if QORT refuses it, the new
        sub-account is deleted again, so a retry does not meet half of the pair.
        """
        packet = await self._packet(partner_code)
        subacc: dict[str, Any] = {
            "SubAccCode": sub_account_code,
            "SubaccName": name or packet.firm.get("FirmShortName") or partner_code,
            "OwnerFirm_BOCode": partner_code,
            "ACSTAT_Const": ACTIVE,
            "IsQUIK": _yn(quik),
            # Practice [V-3P]: a QUIK sub-account trades under its own code, others are BLOCKed.
            "TradeCode": sub_account_code if quik else "BLOCK",
            "Currency": currency or self.settings.default_currency,
        }
        if quik:
            subacc["RPTACTION_Flags"] = QUIK_REPORT_ACTIONS
        await self._import("Subaccs", [(ET_INSERT, subacc)])
        if agreement_number:
            await self._add_agreement_or_undo(
                partner_code, agreement_number, sub_account_code, [("Subaccs", [subacc])]
            )
        account = await self._subacc(sub_account_code)
        if account is None:  # deleted by someone else between the write and the read
            raise NotFound("the sub-account is gone", field=["subAccountCode"])
        return account

    @write
    async def add_agreement(
        self, partner_code: str, agreement_number: str, sub_account_code: str | None
    ) -> None:
        """Sign one more client agreement (ClientAgrees) for an existing firm."""
        packet = await self._packet(partner_code)
        if sub_account_code is not None and not any(
            r.get("SubAccCode") == sub_account_code for r in packet.subaccs
        ):
            raise NotFound(
                "the partner has no such sub-account",
                field=["subAccountCode"],
                details={"platform": self.platform},
            )
        await self._add_agreement_or_undo(partner_code, agreement_number, sub_account_code, [])

    async def _add_agreement_or_undo(
        self,
        partner_code: str,
        number: str,
        sub_account_code: str | None,
        done: Sequence[tuple[str, list[dict[str, Any]]]],
    ) -> None:
        agreement: dict[str, Any] = {
            "Num": number,
            "ClientAgreeTypeShortName": self.settings.agreement_type,
            "OwnerFirm_BOCode": partner_code,
            "DateSign": qort_date(datetime.now(UTC)),
            "DateEnd": 0,
        }
        if sub_account_code is not None:
            agreement["SubAccCode"] = sub_account_code
        try:
            await self._import("ClientAgrees", [(ET_INSERT, agreement)])
        except BrokerGraphError as error:
            if done:
                error.details["rolledBack"] = await self._undo(done)
            raise

    @write
    async def mark_subaccount_for_quik(self, partner_code: str, sub_account_code: str) -> Account:
        """Finish onboarding step 4: mark an active sub-account for QUIK.

        QORT's onboarding marks a sub-account (IsQUIK='y', TradeCode = its code) before
        the limits upload; a sub-account created outside the gateway may still carry
        IsQUIK='n' / TradeCode='BLOCK', and enableTrading refuses such a partner.
        """
        packet = await self._packet(partner_code)
        row = next((r for r in packet.subaccs if r.get("SubAccCode") == sub_account_code), None)
        if row is None:
            raise NotFound(
                "the partner has no such sub-account",
                field=["subAccountCode"],
                details={"platform": self.platform},
            )
        if row.get("ACSTAT_Const") != ACTIVE:
            raise Conflict(
                "only an active sub-account (ACSTAT_Const 5) can be marked for QUIK",
                details={"platform": self.platform, "status": row.get("ACSTAT_Const")},
            )
        change = {
            "SubAccCode": sub_account_code,
            "IsQUIK": "y",
            "TradeCode": sub_account_code,
            "RPTACTION_Flags": QUIK_REPORT_ACTIONS,
        }
        await self._import("Subaccs", [(ET_UPDATE, change)], own_key="SubAccCode")
        account = await self._subacc(sub_account_code)
        if account is None:  # deleted by someone else between the write and the read
            raise NotFound("the sub-account is gone", field=["subAccountCode"])
        return account

    async def set_trading_leverage(self, partner_code: str, leverage: Decimal) -> None:
        packet = await self._packet(partner_code)
        quik = [r for r in self._active(packet) if _yes(r.get("IsQUIK"))]
        if not quik:
            raise Conflict(
                "the partner has no active QUIK sub-account whose leverage QORT could change",
                details={"platform": self.platform},
            )
        for row in quik:
            await self.client.set_quik_leverage(row["SubAccCode"], leverage)

    # ------------------------------------------------------------------ TAX

    async def calculate_tax(self, request: TaxRequest) -> TaxCalculation:
        now = datetime.now(UTC)
        if request.kind is TaxKind.WITHDRAWAL:
            if request.amount is None:
                raise InvalidInput("a withdrawal tax needs an amount", field=["amount"])
            day = request.day or now.date()
            if not EARLIEST_TAX_DAY <= day <= now.date():
                raise InvalidInput(
                    f"date must be a day from {EARLIEST_TAX_DAY.isoformat()} to today",
                    field=["date"],
                )
            packet = await self._packet(request.partner_code)
            currency = request.currency.strip().upper() if request.currency else None
            subacc = next(
                (r for r in self._active(packet) if currency in (None, r.get("Currency"))), None
            )
            if subacc is None:
                wanted = f" in {currency}" if currency else ""
                raise InvalidInput(
                    f"the partner has no active sub-account{wanted} to withdraw from",
                    field=["currency"] if currency else None,
                )
            currency = currency or subacc.get("Currency") or self.settings.default_currency
            result = await self.client.calc_pit_withdrawal(
                subacc["SubAccCode"], currency, request.amount, qort_date(day)
            )
            raw: dict[str, Any] = {"SubAccCode": subacc["SubAccCode"], "Date": qort_date(day)}
        else:
            if request.period_from is None or request.period_to is None:
                raise InvalidInput(
                    "a period tax needs periodFrom and periodTo", field=["periodFrom"]
                )
            result = await self.client.calc_pit_period(
                qort_date(request.period_from),
                qort_last_day(request.period_to),
                request.partner_code,
            )
            raw = {}
        return self._tax(request, result, now, raw)

    @read
    async def pit_report(
        self, partner_code: str, day: date, sub_account_code: str | None = None
    ) -> PitReport:
        """PIT from 1 January of ``day``'s year to ``day``, as QORT calculates it."""
        start = date(day.year, 1, 1)
        result = await self.client.calc_pit_period(
            qort_date(start), qort_date(day), partner_code, sub_account_code
        )
        if not result.currency:
            raise ProtocolError(
                "QORT's tax answer names no currency", details={"platform": self.platform}
            )
        rows = [r for r in result.rows if r.get("OwnerFirm_BOCode") in (None, "", partner_code)]
        narrowed = True
        if sub_account_code is not None:
            mine = [r for r in rows if r.get("SubAccCode") == sub_account_code]
            narrowed = len(mine) == len(rows)
            rows = mine
        return PitReport(
            partner_code=partner_code,
            sub_account_code=sub_account_code,
            period_from=start,
            period_to=day,
            narrowed=narrowed,
            currency=result.currency,
            tax_base=result.tax_base,
            tax_amount=result.tax_amount,
            deals=tuple(pit_deal(r, result.currency) for r in rows),
        )

    def _tax(
        self, request: TaxRequest, result: TaxResult, now: datetime, raw: dict[str, Any]
    ) -> TaxCalculation:
        if not result.currency:
            raise ProtocolError(
                "QORT's tax answer names no currency", details={"platform": self.platform}
            )
        return TaxCalculation(
            platform=self.platform,
            partner_code=request.partner_code,
            kind=request.kind,
            tax_base=Money(result.tax_base, result.currency),
            tax_amount=Money(result.tax_amount, result.currency),
            period_from=request.period_from,
            period_to=request.period_to,
            calculated_at=now,
            raw={
                **raw,
                "TaxBase": str(result.tax_base),
                "TaxAmount": str(result.tax_amount),
                "Currency": result.currency,
                "Row": result.rows,
            },
        )

    # ------------------------------------------------------------------ CLIENT_REPORTS

    @staticmethod
    def _flow_id(partner_code: str, report_id: str) -> str:
        return f"{REPORT_FLOW_KIND}:{partner_code}:{report_id}"

    async def request_report(self, request: ReportRequest) -> ClientReport:
        packet = await self._packet(request.partner_code)
        if request.account_id is not None:
            # QORT reports on one sub-account a request: the one asked for, if the partner's.
            if not any(row.get("SubAccCode") == request.account_id for row in packet.subaccs):
                raise NotFound("the partner has no such sub-account", field=["accountId"])
            subacc = request.account_id
        else:
            active = self._active(packet)
            if not active:
                raise Conflict(
                    "the partner has no active sub-account to report on",
                    details={"platform": self.platform},
                )
            subacc = active[0]["SubAccCode"]
        report_id, status = await self.client.request_client_report(
            subacc,
            qort_date(request.period_from),
            qort_last_day(request.period_to),
            request.format.value,
        )
        state: dict[str, Any] = {
            "partner_code": request.partner_code,
            "report_id": report_id,
            "sub_account": subacc,
            "format": request.format.value,
            "status": REPORT_STATUS.get(status, ReportStatus.REQUESTED).value,
            "requested_at": datetime.now(UTC).isoformat(),
            "period_from": ensure_utc(request.period_from).isoformat(),
            "period_to": ensure_utc(request.period_to).isoformat(),
            "ready_at": None,
        }
        await self.context.store.save_flow(
            self._flow_id(request.partner_code, report_id), REPORT_FLOW_KIND, state
        )
        return self._report(state)

    def _report(self, state: Mapping[str, Any]) -> ClientReport:
        def when(name: str) -> datetime | None:
            value = state.get(name)
            return datetime.fromisoformat(value) if value else None

        return ClientReport(
            platform=self.platform,
            id=state["report_id"],
            partner_code=state["partner_code"],
            status=ReportStatus(state["status"]),
            format=ReportFormat(state["format"]),
            requested_at=when("requested_at") or datetime.now(UTC),
            period_from=when("period_from"),
            period_to=when("period_to"),
            ready_at=when("ready_at"),
            # The sub-account the request named to QORT: QORT reports on one per request.
            account_id=state.get("sub_account") or None,
            raw=dict(state),
        )

    async def _refresh(self, item: tuple[str, dict[str, Any]]) -> dict[str, Any]:
        flow_id, state = item
        if state["status"] in (ReportStatus.READY.value, ReportStatus.FAILED.value):
            return state
        try:
            current = await self.client.get_client_report(state["report_id"])
            status = REPORT_STATUS.get(current.status, ReportStatus.GENERATING)
        except NotFound:
            status = ReportStatus.FAILED
        if status.value == state["status"]:
            return state
        state = {**state, "status": status.value}
        if status is ReportStatus.READY:
            state["ready_at"] = datetime.now(UTC).isoformat()
        await self.context.store.save_flow(flow_id, REPORT_FLOW_KIND, state)
        return state

    async def get_reports(self, partner_code: str) -> Sequence[ClientReport]:
        prefix = f"{REPORT_FLOW_KIND}:{partner_code}:"
        flows = [
            (flow_id, state)
            for flow_id, state in await self.context.store.list_flows(
                REPORT_FLOW_KIND, prefix=prefix
            )
            if state.get("partner_code") == partner_code
        ]
        states = await self._bounded(flows, self._refresh)
        reports = [self._report(state) for state in states]
        return sorted(reports, key=lambda r: (r.requested_at, r.id))

    async def download_report(self, partner_code: str, report_id: str) -> tuple[str, bytes]:
        try:
            report = await self.client.get_client_report(report_id)
        except NotFound:
            raise NotFound("report not found") from None
        if report.owner_code != partner_code:
            raise NotFound("report not found")  # never say whose it is
        if report.status != ReportStatus.READY.value or report.content is None:
            raise Conflict(
                f"the report is {report.status}, not READY yet: poll its status",
                details={"platform": self.platform, "vendorCode": "REPORT_NOT_READY"},
            )
        fmt = REPORT_FORMATS.get(report.format or "", ReportFormat.CSV)
        return report.content_type or CONTENT_TYPES[fmt], report.content
