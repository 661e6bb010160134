"""The tables the sandbox imports and exports, with IDB column names and value rules.

Values travel as text: codes, dates as int YYYYMMDD, booleans 'y'/'n', integers for
``*_Const``/``*_Flags``.  A value that breaks a rule raises :class:`RecordError`, whose
text becomes the record's ``ErrorLog``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Final, Literal

__all__ = [
    "AGREEMENT_TYPES",
    "ATTRIBUTE_TYPES",
    "CLIENT_AGREES",
    "FIRMS",
    "FIRM_ACCOUNTS",
    "FIRM_ATTRIBUTES",
    "FIRM_ATTRIBUTE_DEFS",
    "SUBACCS",
    "TABLES",
    "Column",
    "RecordError",
    "Table",
    "attribute_value",
    "normalize",
    "parse_date",
]

Kind = Literal["text", "code", "name", "yn", "date", "int", "positive", "currency", "digits"]

#: ClientAgreeTypes.ShortName values the sandbox knows [D]: brokerage, depository, IIS.
AGREEMENT_TYPES: Final = frozenset({"BA", "DA", "IIS"})
#: [I] Types a Data model extension field is declared with (FirmAttributeDefs.Type).
ATTRIBUTE_TYPES: Final = frozenset({"STRING", "DECIMAL", "DATE", "BOOLEAN"})

_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./-]{0,31}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_INT = re.compile(r"-?[0-9]{1,10}")
_DATE = re.compile(r"[0-9]{8}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_MAX_TEXT = 255


class RecordError(Exception):
    """A record that cannot be applied; ``str(error)`` is its ErrorLog."""


@dataclass(frozen=True, slots=True)
class Column:
    kind: Kind = "text"
    #: Needed (non-empty) on insert and never cleared by an update.
    required: bool = False
    #: Written on insert when the record leaves the column out.
    default: str | None = None
    #: The table whose key this column names (checked on insert and update).
    ref: str | None = None
    choices: frozenset[str] = frozenset()
    #: Allowed lengths of a ``digits`` value.
    lengths: tuple[int, ...] = ()
    #: A ``date`` that may be 0 (open-ended, as ClientAgrees.DateEnd).
    zero_ok: bool = False


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    key: tuple[str, ...]
    #: The column holding the owning firm's BOCode.
    owner: str
    columns: Mapping[str, Column]


def parse_date(value: str, name: str = "date") -> date:
    """An int YYYYMMDD as a date."""
    if not _DATE.fullmatch(value):
        raise RecordError(f"{name} must be a date as YYYYMMDD, not {value!r}")
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        raise RecordError(f"{name} {value} is not a calendar date") from None


def normalize(name: str, column: Column, raw: str) -> str:
    """The stored text of ``raw`` for ``column``; '' (after stripping) means no value."""
    value = raw.strip()
    if not value:
        return ""
    kind = column.kind
    if kind == "text":
        if len(value) > _MAX_TEXT:
            raise RecordError(f"{name} is longer than {_MAX_TEXT} characters")
    elif kind == "code":
        if not _CODE.fullmatch(value):
            raise RecordError(
                f"{name} must be a code of letters, digits and _./- (at most 32), not {value!r}"
            )
    elif kind == "name":
        if not _NAME.fullmatch(value):
            raise RecordError(f"{name} must be an identifier, not {value!r}")
    elif kind == "yn":
        if value not in ("y", "n"):
            raise RecordError(f"{name} must be 'y' or 'n', not {value!r}")
    elif kind == "date":
        if not (column.zero_ok and value == "0"):
            parse_date(value, name)
    elif kind == "int":
        if not _INT.fullmatch(value):
            raise RecordError(f"{name} must be an integer, not {value!r}")
        value = str(int(value))
    elif kind == "positive":
        value = _positive(name, value)
    elif kind == "currency":
        if not _CURRENCY.fullmatch(value):
            raise RecordError(f"{name} must be a 3-letter currency code, not {value!r}")
    elif kind == "digits" and not (value.isascii() and value.isdigit()):
        raise RecordError(f"{name} must be digits only, not {value!r}")
    elif kind == "digits" and column.lengths and len(value) not in column.lengths:
        lengths = " or ".join(str(n) for n in column.lengths)
        raise RecordError(f"{name} must have {lengths} digits, not {len(value)}")
    if column.choices and value not in column.choices:
        allowed = ", ".join(sorted(column.choices))
        raise RecordError(f"{name} must be one of {allowed}, not {value!r}")
    return value


def _positive(name: str, value: str) -> str:
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise RecordError(f"{name} must be a decimal number, not {value!r}") from None
    if not number.is_finite() or number <= 0:
        raise RecordError(f"{name} must be a positive number, not {value!r}")
    return str(number)


def attribute_value(name: str, type_: str, raw: str) -> str:
    """[I] An extension field's stored text for its declared type: DECIMAL a finite number,
    DATE int YYYYMMDD, BOOLEAN 'y'/'n' (QORT's own conventions for its columns), STRING
    at most 255 characters; '' is no value."""
    value = raw.strip()
    if not value:
        return ""
    if type_ == "DECIMAL":
        try:
            number = Decimal(value)
        except InvalidOperation:
            number = Decimal("NaN")
        if not number.is_finite():
            raise RecordError(f"Value of {name} must be a DECIMAL, not {value!r}")
        return str(number)
    if type_ == "DATE":
        parse_date(value, f"Value of {name}")
        return value
    if type_ == "BOOLEAN":
        if value not in ("y", "n"):
            raise RecordError(f"Value of {name} must be a BOOLEAN ('y' or 'n'), not {value!r}")
        return value
    if len(value) > _MAX_TEXT:
        raise RecordError(f"Value of {name} is longer than {_MAX_TEXT} characters")
    return value


_TEXT = Column()
_YN = Column("yn")
_DAY = Column("date")
_INTEGER = Column("int")

FIRMS: Final = Table(
    "Firms",
    key=("BOCode",),
    owner="BOCode",
    columns={
        "BOCode": Column("code", required=True),
        "FirmShortName": Column(required=True),
        "Name": Column(required=True),
        "EngName": _TEXT,
        "EngShortName": _TEXT,
        "LatAddrJu": _TEXT,
        "INN": Column("digits", lengths=(10, 12)),
        "IDocNum": _TEXT,
        "IDocDate": _DAY,
        "IDocDateEnd": _DAY,
        "IDocType_Name": _TEXT,
        "IsFirm": Column("yn", default="n"),
        "IsResident": Column("yn", default="y"),
        "IsTaxResident": Column("yn", default="y"),
        "IsQualified": Column("yn", default="n"),
        "IsCheckedKYC": Column("yn", default="n"),
        "IsSpam": _YN,
        "Emails": _TEXT,
        "Phones": _TEXT,
        "DateOfBirth": _DAY,
        "STAT_Const": _INTEGER,
        "FT_Flags": Column("int", default="1"),
        "LEI": _TEXT,
        "BIK": Column("digits", lengths=(9,)),
        "SWIFT": _TEXT,
        # [D] the white label the client belongs to, kept as a data-model extension field.
        "Broker": _TEXT,
    },
)

SUBACCS: Final = Table(
    "Subaccs",
    key=("SubAccCode",),
    owner="OwnerFirm_BOCode",
    columns={
        "SubAccCode": Column("code", required=True),
        "SubaccName": _TEXT,
        "OwnerFirm_BOCode": Column("code", required=True, ref="Firms"),
        "BrokerFirm_BOCode": Column("code", ref="Firms"),
        "ACSTAT_Const": Column("int", default="5", choices=frozenset({"5", "7", "12"})),
        "StatusChangeDate": _DAY,
        "IsAnalytic": Column("yn", default="n"),
        "IsQUIK": Column("yn", default="n"),
        # Defaulted by the store: SubAccCode for a QUIK sub-account, 'BLOCK' otherwise.
        "TradeCode": Column("code"),
        "FirmCode": _TEXT,
        "MarketFirmCode": _TEXT,
        "RPTACTION_Flags": Column("int"),
        "AccountType_Name": _TEXT,
        "ConstitutorCode": _TEXT,
        "Comment": _TEXT,
        "Currency": Column("currency", default="RUB"),  # [D]
        "Leverage": Column("positive", default="1"),  # [D]
        # [D] the day UploadQuikLimits last ran for it (QORT keeps this on the QUIK side; the
        # module's answer is not published, so the sandbox shows it on the row).
        "QuikUploadDate": _DAY,
    },
)

CLIENT_AGREES: Final = Table(
    "ClientAgrees",
    key=("Num",),
    owner="OwnerFirm_BOCode",
    columns={
        "Num": Column("code", required=True),
        "ClientAgreeTypeShortName": Column(required=True, choices=AGREEMENT_TYPES),
        "OwnerFirm_BOCode": Column("code", required=True, ref="Firms"),
        "SubAccCode": Column("code", ref="Subaccs"),
        "DateCreate": _DAY,
        "DateSign": Column("date", required=True),
        "DateEnd": Column("date", default="0", zero_ok=True),
        "Comment": _TEXT,
    },
)

FIRM_ACCOUNTS: Final = Table(
    "FirmAccounts",
    key=("AccName",),
    owner="FirmBOCode",
    columns={
        "AccName": Column("code", required=True),
        "FirmBOCode": Column("code", required=True, ref="Firms"),
        "FirmShortName": _TEXT,
        "BankAccNum": Column("digits", required=True, lengths=(20,)),
        "BankAccBank_BOCode": Column("code"),
        "SettlementAsset_ShortName": Column("currency", default="RUB"),
        "Type_Flags": _INTEGER,
        "GetFirm": _TEXT,
        "Comment": _TEXT,
    },
)

FIRM_ATTRIBUTES: Final = Table(
    "FirmAttributes",
    key=("BOCode", "Name"),
    owner="BOCode",
    columns={
        "BOCode": Column("code", required=True, ref="Firms"),
        "Name": Column("name", required=True),
        "Value": Column(default=""),
    },
)

#: [I] The Data model extension module's field definitions: which extension fields exist
#: and of what type.  Not public; name and columns are ours (no firm owns a definition).
FIRM_ATTRIBUTE_DEFS: Final = Table(
    "FirmAttributeDefs",
    key=("Name",),
    owner="",
    columns={
        "Name": Column("name", required=True),
        "Type": Column(required=True, choices=ATTRIBUTE_TYPES),
        "Description": _TEXT,
    },
)

TABLES: Final[Mapping[str, Table]] = {
    table.name: table
    for table in (
        FIRMS,
        SUBACCS,
        CLIENT_AGREES,
        FIRM_ACCOUNTS,
        FIRM_ATTRIBUTE_DEFS,
        FIRM_ATTRIBUTES,
    )
}
