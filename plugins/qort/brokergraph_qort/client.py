"""QORT's web-services module over SOAP 1.1, through zeep (the only module that touches it).

zeep builds and parses every envelope from the WSDL; this module adds what the
gateway needs around it:

* **async all the way.**  zeep's :class:`~zeep.transports.AsyncTransport` posts
  operations with an ``httpx.AsyncClient`` but would load the WSDL with a
  *blocking* client, which stalls the event loop (and deadlocks against a sandbox
  served on the same loop).  We fetch the WSDL once with the async client and hand
  zeep the bytes through an in-memory ``httpx.MockTransport``; the parsed client
  is cached for the connector's lifetime.  A ``wsdl`` setting may point at a local
  file instead (the vendor's real WSDL, when a broker has it).
* **one error table** (:data:`brokergraph_qort.errors.ERRORS`): QORT's fault codes
  and per-record ``IsProcessed=4`` results become :mod:`gateway.contract` errors
  whose message carries QORT's own text; transport failures go through the
  toolkit's :func:`~gateway.contract.transport_error`.
* **the one session** (:class:`~brokergraph_qort.session.QortSession`): every
  operation but ``Login`` runs with the shared token.

zeep ships no type hints, so its few uses sit here behind ``Any``.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import httpx
import zeep
import zeep.exceptions
import zeep.helpers
import zeep.proxy
import zeep.transports

from brokergraph_qort.errors import (
    CLIENT_DEFAULT,
    PLATFORM,
    SERVER_DEFAULT,
    QortFault,
    RecordError,
    fault_error,
)
from brokergraph_qort.session import LoginResult, QortSession
from brokergraph_qort.settings import QortSettings
from gateway.contract import (
    InvalidInput,
    NotFound,
    ProtocolError,
    UpstreamUnavailable,
    reveal,
    transport_error,
    upstream_client,
)

__all__ = [
    "ET_DELETE",
    "ET_INSERT",
    "ET_UPDATE",
    "NAMESPACE",
    "ClientReportState",
    "FirmPacket",
    "QortClient",
    "TaxResult",
    "refuse_unencodable",
]

logger = logging.getLogger("brokergraph_qort.client")

NAMESPACE: Final = "urn:brokergraph:qort:v1"
BINDING: Final = f"{{{NAMESPACE}}}QortBinding"

#: IDB operation codes (ET_Const): a bit set, as QORT users write them.
ET_INSERT: Final = 2
ET_UPDATE: Final = 4
ET_DELETE: Final = 8
#: Per-record outcome (IsProcessed): 3 done, 4 error with ErrorLog.
PROCESSED_OK: Final = 3
PROCESSED_ERROR: Final = 4

Row = dict[str, str]


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class FirmPacket:
    """GetFirmPacket: a firm with its sub-accounts, agreements, accounts and attributes."""

    firm: Row
    subaccs: list[Row]
    client_agrees: list[Row]
    firm_accounts: list[Row]
    attributes: dict[str, str]


@dataclass(frozen=True, slots=True)
class TaxResult:
    tax_base: Decimal
    tax_amount: Decimal
    currency: str
    rows: list[Row]


@dataclass(frozen=True, slots=True)
class ClientReportState:
    report_id: str
    status: str
    format: str | None
    owner_code: str | None
    content_type: str | None
    content: bytes | None


# --------------------------------------------------------------------------- the client


class _QortTransport(zeep.transports.AsyncTransport):
    """zeep's async transport, without logging envelopes (they hold the password)."""

    async def post(self, address: str, message: bytes, headers: dict[str, str]) -> Any:
        return await self.client.post(address, content=message, headers=headers)


class QortClient:
    """QORT's operations as async methods; each maps faults through the error table.

    ``open()`` loads the WSDL and logs in (best effort: a busy or unreachable QORT
    is reported by the first request instead); ``close()`` logs out.
    """

    def __init__(
        self,
        settings: QortSettings,
        *,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        """``http`` (optional) is handed over: :meth:`close` closes it."""
        self.settings = settings
        self._http = http or upstream_client(
            timeout=settings.timeout_seconds, verify=settings.ssl_context()
        )
        self._wsdl_http: httpx.Client | None = None
        self._service: Any = None
        # The client is the session's backend: its login, logout and ping raise QortFault.
        self.session = QortSession(
            self,
            platform=PLATFORM,
            busy_cooldown_seconds=settings.busy_cooldown_seconds,
            keepalive=settings.keepalive,
            keepalive_seconds=settings.keepalive_seconds,
        )

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """Load the WSDL (once) and build zeep's client bound to the endpoint."""
        if self._service is not None:
            return
        location = self.settings.wsdl_location
        documents: dict[str, bytes] = {}
        if location.startswith(("http://", "https://")):
            documents[location] = await self._fetch(location)

        def serve(request: httpx.Request) -> httpx.Response:
            content = documents.get(str(request.url))
            if content is None:
                return httpx.Response(404, text=f"not prefetched: {request.url}")
            return httpx.Response(200, content=content)

        self._wsdl_http = httpx.Client(transport=httpx.MockTransport(serve))
        transport = _QortTransport(client=self._http, wsdl_client=self._wsdl_http)  # type: ignore[no-untyped-call]
        settings = zeep.Settings(strict=True, xml_huge_tree=False, forbid_entities=True)
        try:
            client = zeep.AsyncClient(location, transport=transport, settings=settings)  # type: ignore[no-untyped-call]
            binding = client.wsdl.bindings[BINDING]
        except (zeep.exceptions.Error, KeyError, OSError) as error:
            raise ProtocolError(
                f"QORT's WSDL at {location} cannot be used: {error}",
                details={"platform": PLATFORM},
            ) from None
        self._service = zeep.proxy.AsyncServiceProxy(  # type: ignore[no-untyped-call]
            client, binding, address=self.settings.endpoint_url
        )

    async def _fetch(self, url: str) -> bytes:
        try:
            response = await self._http.get(url)
        except httpx.HTTPError as error:
            raise transport_error(error, platform=PLATFORM, what="WSDL") from None
        if response.status_code != 200:
            raise UpstreamUnavailable(
                f"QORT's WSDL answered HTTP {response.status_code}",
                details={"platform": PLATFORM},
            )
        return response.content

    async def close(self) -> None:
        try:
            if self._service is not None:
                await self.session.close()
        finally:
            await self._http.aclose()
            if self._wsdl_http is not None:
                self._wsdl_http.close()

    # ------------------------------------------------------------------ calling

    async def call(self, operation: str, **arguments: Any) -> Any:
        """One SOAP operation without a token; faults raise :class:`QortFault`."""
        try:
            refuse_unencodable(arguments)  # the connector checks requests by field first
        except InvalidInput as refused:  # SOAP column names are not the caller's fields
            raise InvalidInput(
                refused.message, details={**refused.details, "operation": operation}
            ) from None
        await self.open()
        proxy = self._service[operation]
        try:
            result = await proxy(**arguments)
        except zeep.exceptions.Fault as fault:
            raise _qort_fault(fault, operation) from None
        except httpx.HTTPError as error:
            raise transport_error(
                error, platform=PLATFORM, what=operation, operation=operation
            ) from None
        except zeep.exceptions.TransportError as error:
            status = getattr(error, "status_code", 0) or 0
            cls = UpstreamUnavailable if status >= 500 or status == 0 else ProtocolError
            raise cls(
                f"QORT answered {operation} with HTTP {status}",
                details={"platform": PLATFORM, "operation": operation},
            ) from None
        except zeep.exceptions.Error as error:
            raise ProtocolError(
                f"QORT's answer to {operation} cannot be read: {error}",
                details={"platform": PLATFORM, "operation": operation},
            ) from None
        return zeep.helpers.serialize_object(result, target_cls=dict)  # type: ignore[no-untyped-call]

    async def run(self, operation: str, **arguments: Any) -> Any:
        """An operation with the shared token; QORT faults become gateway errors."""
        try:
            return await self.session.run(
                lambda token: self.call(operation, Token=token, **arguments)
            )
        except QortFault as fault:
            raise fault_error(fault) from None

    # ------------------------------------------------------------------ session

    async def login(self) -> LoginResult:
        s = self.settings
        result = await self.call(
            "Login", Login=s.login, Password=reveal(s.password), AppName=s.app_name
        )
        expires = _get(result, "ExpiresInSeconds")
        return LoginResult(str(_get(result, "Token")), float(expires) if expires else None)

    async def logout(self, token: str) -> None:
        await self.call("Logout", Token=token)

    async def ping(self, token: str) -> float | None:
        result = await self.call("Ping", Token=token)
        expires = _get(result, "ExpiresInSeconds")
        return float(expires) if expires else None

    async def connect(self) -> None:
        """Log in now (the gateway holds QORT from start-up)."""
        try:
            await self.session.token()
        except QortFault as fault:  # a Login fault the session does not map (VALIDATION...)
            raise fault_error(fault) from None

    # ------------------------------------------------------------------ records

    async def import_records(
        self, table: str, records: Sequence[tuple[int, Mapping[str, Any]]]
    ) -> list[RecordError]:
        """ImportRecords of one table; the refused records (an empty list: all done)."""
        payload = [{"ET_Const": et_const, "Field": _fields(values)} for et_const, values in records]
        results = _list(
            await self.run("ImportRecords", Table=table, Record=payload), "RecordResult"
        )
        if len(results) != len(records):
            raise ProtocolError(
                f"QORT answered {len(results)} results for {len(records)} {table} records",
                details={"platform": PLATFORM, "operation": "ImportRecords"},
            )
        errors: list[RecordError] = []
        for index, (result, (_, values)) in enumerate(zip(results, records, strict=True)):
            state = int(_get(result, "IsProcessed") or 0)
            if state == PROCESSED_OK:
                continue
            log = str(_get(result, "ErrorLog") or f"IsProcessed={state}")
            key = next(
                (str(values[k]) for k in ("BOCode", "SubAccCode", "Num", "Name") if k in values),
                None,
            )
            errors.append(RecordError(table, index, log, key))
        return errors

    async def export_records(self, table: str, **filters: Any) -> list[Row]:
        result = await self.run("ExportRecords", Table=table, Field=_fields(filters))
        return [_row(row) for row in _list(result, "Row")]

    async def get_firm_packet(self, code: str) -> FirmPacket | None:
        """The firm's aggregate in one call, or None when QORT does not know the code."""
        try:
            result = await self.run("GetFirmPacket", BOCode=code)
        except NotFound:
            return None
        if not isinstance(result, dict) or not result.get("Firm"):
            raise ProtocolError(
                "QORT's GetFirmPacket answer has no Firm",
                details={"platform": PLATFORM, "operation": "GetFirmPacket"},
            )
        return FirmPacket(
            firm=_row(result["Firm"]),
            subaccs=[_row(r) for r in result.get("Subacc") or []],
            client_agrees=[_row(r) for r in result.get("ClientAgree") or []],
            firm_accounts=[_row(r) for r in result.get("FirmAccount") or []],
            attributes=_pairs(result.get("Attribute") or []),
        )

    # ------------------------------------------------------------------ procedures

    async def upload_quik_limits(self, code: str) -> dict[str, Any]:
        result = await self.run("UploadQuikLimits", BOCode=code)
        return dict(result) if isinstance(result, dict) else {"Status": result}

    async def set_quik_leverage(self, subacc_code: str, leverage: Decimal) -> str:
        result = await self.run("SetQuikLeverage", SubAccCode=subacc_code, Leverage=leverage)
        return str(_get(result, "Status"))

    async def calc_pit_withdrawal(
        self, subacc_code: str, currency: str, amount: Decimal, date: int
    ) -> TaxResult:
        result = await self.run(
            "CalcPitWithdrawal", SubAccCode=subacc_code, Currency=currency, Amount=amount, Date=date
        )
        return _tax(result, "CalcPitWithdrawal")

    async def calc_pit_period(
        self, date_from: int, date_to: int, code: str | None, subacc_code: str | None = None
    ) -> TaxResult:
        result = await self.run(
            "CalcPitPeriod", DateFrom=date_from, DateTo=date_to, BOCode=code, SubAccCode=subacc_code
        )
        return _tax(result, "CalcPitPeriod")

    async def request_client_report(
        self, subacc_code: str, date_from: int, date_to: int, report_format: str
    ) -> tuple[str, str]:
        result = await self.run(
            "RequestClientReport",
            SubAccCode=subacc_code,
            DateFrom=date_from,
            DateTo=date_to,
            Format=report_format,
        )
        return str(_get(result, "ReportId")), str(_get(result, "Status"))

    async def get_client_report(self, report_id: str) -> ClientReportState:
        result = await self.run("GetClientReport", ReportId=report_id)
        content = _get(result, "Content")
        if isinstance(content, str):  # zeep decodes base64Binary; be lenient with text
            content = base64.b64decode(content)
        return ClientReportState(
            report_id=str(_get(result, "ReportId")),
            status=str(_get(result, "Status")),
            format=_opt(_get(result, "Format")),
            owner_code=_opt(_get(result, "OwnerBOCode")),
            content_type=_opt(_get(result, "ContentType")),
            content=bytes(content) if content is not None else None,
        )


# --------------------------------------------------------------------------- helpers


def _qort_fault(fault: Any, operation: str) -> QortFault:
    detail = fault.detail
    code = message = None
    retry_after: float | None = None
    if detail is not None and hasattr(detail, "xpath"):
        codes = detail.xpath(".//*[local-name()='Code']/text()")
        messages = detail.xpath(".//*[local-name()='Message']/text()")
        pauses = detail.xpath(".//*[local-name()='RetryAfter']/text()")
        code = str(codes[0]).strip() if codes else None
        message = str(messages[0]).strip() if messages else None
        pause = _decimal_or_none(str(pauses[0]).strip()) if pauses else None
        retry_after = float(pause) if pause is not None and pause >= 0 else None
    server = str(fault.code or "").endswith("Server")
    return QortFault(
        code or (SERVER_DEFAULT if server else CLIENT_DEFAULT),
        message or str(fault.message or "QORT fault without a message"),
        operation=operation,
        server=server,
        retry_after=retry_after,
    )


def _decimal_or_none(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _text(value: Any) -> str:
    """A value as QORT's IDB text: booleans 'y'/'n', Decimals without exponent."""
    if isinstance(value, bool):
        return "y" if value else "n"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _fields(values: Mapping[str, Any]) -> list[dict[str, str]]:
    return [
        {"Name": name, "Value": _text(value)} for name, value in values.items() if value is not None
    ]


def _get(result: Any, name: str) -> Any:
    """A child of a response; zeep unwraps single-child responses, so accept either."""
    if isinstance(result, dict):
        return result.get(name)
    return result


def _list(result: Any, name: str) -> list[Any]:
    value = _get(result, name)
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _pairs(fields: Sequence[Any]) -> dict[str, str]:
    return {
        str(f["Name"]): "" if f.get("Value") is None else str(f["Value"])
        for f in fields
        if isinstance(f, dict) and f.get("Name")
    }


def _row(row: Any) -> Row:
    if isinstance(row, dict):
        return _pairs(row.get("Field") or [])
    return _pairs(row or [])


def _opt(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _decimal(value: Any, what: str, operation: str) -> Decimal:
    try:
        result = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        result = Decimal("NaN")
    if not result.is_finite():
        raise ProtocolError(
            f"QORT's {operation} answered a {what} that is not a number: {value!r}",
            details={"platform": PLATFORM, "operation": operation},
        )
    return result


def _tax(result: Any, operation: str) -> TaxResult:
    if not isinstance(result, dict):
        raise ProtocolError(
            f"QORT's {operation} answer is incomplete",
            details={"platform": PLATFORM, "operation": operation},
        )
    return TaxResult(
        tax_base=_decimal(result.get("TaxBase"), "TaxBase", operation),
        tax_amount=_decimal(result.get("TaxAmount"), "TaxAmount", operation),
        currency=str(result.get("Currency") or ""),
        rows=[_row(r) for r in result.get("Row") or []],
    )


#: Characters XML 1.0 cannot carry: C0 controls but tab, LF and CR; lone surrogates;
#: U+FFFE/U+FFFF.  lxml refuses them while building the envelope with a bare
#: ValueError, which would reach the caller as INTERNAL.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def refuse_unencodable(value: Any, field: Sequence[str] = ()) -> None:
    """Refuse, as INVALID_INPUT and before any call, text a SOAP envelope cannot carry.

    ``value`` is a request (a dataclass: its fields are named as the GraphQL input
    names them, camel-cased) or the arguments of an operation; ``field`` is the path
    reported for it.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for item in dataclasses.fields(value):
            refuse_unencodable(getattr(value, item.name), (*field, _camel(item.name)))
    elif isinstance(value, str):
        if _NOT_XML.search(value):
            name = ".".join(field) or "a value"
            raise InvalidInput(
                f"{name} holds a control character QORT cannot receive",
                field=list(field) or None,
                details={"platform": PLATFORM},
            )
    elif isinstance(value, Mapping):
        for key, item in value.items():
            refuse_unencodable(str(key), field)
            refuse_unencodable(item, (*field, str(key)))
    elif isinstance(value, list | tuple):
        for item in value:
            refuse_unencodable(item, field)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)
