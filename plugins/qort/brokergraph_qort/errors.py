"""QORT's error answers as one table: SOAP fault codes, and the text of refused records.

QORT answers a refused operation with a SOAP fault whose ``<QortError><Code>`` names
the reason, and a refused record of ``ImportRecords`` (``IsProcessed=4``, inside a
successful HTTP 200 answer) with its ``ErrorLog`` text only.  :data:`ERRORS` maps
both; every message is QORT's own text, prefixed ("QORT: …" for a fault, "QORT
refused the record: …" for records), and the error names the input field when the
text mentions a QORT column (:data:`FIELD_NAMES`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from gateway.contract import (
    BrokerGraphError,
    Conflict,
    InvalidInput,
    NotFound,
    Outcome,
    RateLimited,
    UpstreamBusy,
    UpstreamRejected,
    UpstreamUnavailable,
    VendorError,
    VendorErrorTable,
)

__all__ = [
    "ERRORS",
    "FIELD_NAMES",
    "RECORD_REFUSED",
    "QortFault",
    "RecordError",
    "fault_error",
    "record_error",
]

PLATFORM: Final = "qort"
#: The vendor code a refused record carries in ``details`` (QORT gives it no code).
RECORD_REFUSED: Final = "IsProcessed=4"
#: The ``<QortError><Code>`` of a fault that has none: QORT's failure or the caller's.
SERVER_DEFAULT: Final = "INTERNAL"
CLIENT_DEFAULT: Final = "VALIDATION"
#: How a refused record's message starts (the patterns below read records only).
RECORD_TEXT: Final = "QORT refused the record: "


class QortFault(Exception):
    """A SOAP fault of QORT with its ``<QortError><Code>`` (what :data:`ERRORS` maps)."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        operation: str,
        server: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{operation}: {code}: {message}")
        self.code = code
        self.message = message
        self.operation = operation
        #: True for ``soap:Server`` faults (QORT's failure), False for ``soap:Client``.
        self.server = server
        #: Seconds QORT asks us to wait (``<RetryAfter>``), when it says.
        self.retry_after = retry_after


def _refused(error: type[BrokerGraphError], hint: str = "") -> VendorError:
    """A refusal: QORT applied nothing.  The text passed in carries QORT's message."""
    return VendorError(error, "{text}" + (f" ({hint})" if hint else ""))


#: The table.  Lookup: a fault's code; then a refused record's ErrorLog text; then any
#: other record refused inside the HTTP 200 answer; then a fault of a code we do not know.
#: INVALID_TOKEN reaches it only when the repeat with a new token fails too (the
#: session logs in again first); BUSY, INVALID_CREDENTIALS and APP_NOT_ALLOWED at login
#: are the session's (it words them for the operator and starts the BUSY cool-down).
ERRORS: Final = VendorErrorTable(
    platform=PLATFORM,
    codes={
        "VALIDATION": _refused(InvalidInput),
        "NOT_FOUND": _refused(NotFound),
        "BUSY": _refused(UpstreamBusy),
        # [I] QORT throttling us (the sandbox's throttle_next): it applied nothing.
        "TOO_MANY_REQUESTS": VendorError(RateLimited, "{text}", retry_after=1.0),
        "LEVERAGE_WITHOUT_UPLOAD": _refused(
            Conflict,
            "QORT changes the leverage only after the limits were uploaded to QUIK the "
            "same day: run enableTrading first",
        ),
        "REPORT_NOT_READY": _refused(
            Conflict, "the report is still being generated: poll its status until READY"
        ),
        # The gateway's credentials or token, not the viewer's: an operator's matter.
        "INVALID_CREDENTIALS": _refused(UpstreamRejected),
        "APP_NOT_ALLOWED": _refused(UpstreamRejected),
        "INVALID_TOKEN": _refused(UpstreamRejected),
        # QORT failed while serving the call: it may have applied it.
        SERVER_DEFAULT: VendorError(UpstreamUnavailable, "{text}", outcome=Outcome.UNKNOWN),
    },
    patterns=[
        (rf"^{RECORD_TEXT}.*\b(duplicate|already exists)\b", _refused(Conflict)),
    ],
    # A refused record (IsProcessed=4) its text does not classify: a bad code, value or
    # reference.  Only that record is refused; the others of the same call were applied.
    statuses={200: _refused(InvalidInput)},
    fallback=_refused(UpstreamRejected),  # a soap:Client fault of a code we do not know
)

#: QORT column -> the GraphQL input field it comes from, to name the field at fault.
FIELD_NAMES: Final[Mapping[str, str]] = {
    "BOCode": "code",
    "OwnerFirm_BOCode": "code",
    "FirmBOCode": "code",
    "Name": "name",
    "FirmShortName": "shortName",
    "Emails": "email",
    "Phones": "phone",
    "INN": "taxId",
    "IsResident": "residency",
    "IsQualified": "isQualifiedInvestor",
    "IsCheckedKYC": "kycPassed",
    "SubAccCode": "subAccountCode",
    "SubaccName": "subAccountCode",
    "Num": "agreementNumber",
    "Value": "attributes",
    "Currency": "currency",
    "Leverage": "leverage",
    "Amount": "amount",
    "DateFrom": "periodFrom",
    "DateTo": "periodTo",
}

_UNKNOWN: Final = re.compile(
    r"\b(unknown|not found|does not exist|no such|no \w+ record)\b", re.IGNORECASE
)


def _naming_field(error: BrokerGraphError, text: str) -> BrokerGraphError:
    """``error`` naming the input field its QORT text mentions ("unknown INN …"), if any."""
    for word in re.findall(r"[A-Za-z_]+", text):
        if word in FIELD_NAMES:
            error.field = (FIELD_NAMES[word],)
            break
    return error


def fault_error(fault: QortFault) -> BrokerGraphError:
    """The gateway error of a QORT fault, carrying QORT's message."""
    code = fault.code
    if fault.server and code not in ERRORS.codes:
        code = SERVER_DEFAULT  # a failure of QORT's we have no code for
    error = ERRORS.error(
        code=code,
        text=f"QORT: {fault.message}",
        what=fault.operation,
        retry_after=fault.retry_after,
        details={"vendorCode": fault.code, "operation": fault.operation},
    )
    return _naming_field(error, fault.message)


@dataclass(frozen=True, slots=True)
class RecordError:
    """One record QORT refused (IsProcessed=4) and its ErrorLog."""

    table: str
    index: int
    error_log: str
    key: str | None = None


def record_error(
    errors: Sequence[RecordError], *, missing_is_not_found: str | None = None
) -> BrokerGraphError:
    """One typed error for the refused records of an ImportRecords call.

    A duplicate code is a Conflict; an unknown code is NotFound when it is the very
    record's own key (``missing_is_not_found``, for updates and deletes), else
    InvalidInput (a bad reference or value).  The message is QORT's ErrorLog text.
    """
    first = errors[0].error_log
    own_key_unknown = (
        missing_is_not_found is not None
        and missing_is_not_found in first
        and _UNKNOWN.search(first) is not None
    )
    details: dict[str, Any] = {
        "vendorCode": RECORD_REFUSED,
        "records": [
            {"table": e.table, "index": e.index, "errorLog": e.error_log}
            | ({"key": e.key} if e.key else {})
            for e in errors
        ],
    }
    text = "; ".join(f"{e.table}: {e.error_log}" for e in errors)
    error = ERRORS.error(
        # QORT's answer to an unknown key, whichever way it came (fault or record).
        code="NOT_FOUND" if own_key_unknown else None,
        text=RECORD_TEXT + text,
        status=200,
        what="record",
        details=details,
    )
    return _naming_field(error, first)
