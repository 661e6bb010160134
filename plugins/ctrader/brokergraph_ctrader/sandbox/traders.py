"""Trader bodies: which fields create (4.1), full update (4.5.1) and patch (4.5.2) take,
their defaults, and the trader object on the wire (A4.3).

``read_fields`` turns a request body into trader attributes:

* ``"create"``: the 4.1 required fields (``accessRights``, ``accountType``, ``balance``,
  ``brokerName``, ``depositCurrency``, ``groupName``, ``hashedPassword``,
  ``leverageInCents``) must be present; ``totalMarginCalculationType`` defaults to MAX
  (the docs' minimal example omits it); every optional field gets its default.
* ``"replace"`` (PUT): as create, but ``balance`` is ignored (4.7 moves money) and an
  omitted ``hashedPassword`` keeps the password [I]; every other omitted field is reset
  to its default (null, false, {}, MAX).
* ``"patch"``: only the fields sent; ``contactDetails`` is merged key by key, a null
  value clearing a key [I].

Unknown and read-only keys (``login``, ``equity``...) are ignored, so a client may PUT
back what it read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from brokergraph_ctrader.sandbox import fields
from brokergraph_ctrader.sandbox.errors import invalid
from brokergraph_ctrader.sandbox.model import Trader

ACCESS_RIGHTS = ("FULL_ACCESS", "CLOSE_ONLY", "NO_TRADING", "NO_LOGIN")
ACCOUNT_TYPES = ("HEDGED", "NETTED", "SPREAD_BETTING")
MARGIN_TYPES = ("MAX", "SUM", "NET")
RISK_STRATEGIES = (
    "ACCORDING_TO_LEVERAGE",
    "ACCORDING_TO_GSL",
    "ACCORDING_TO_GSL_AND_LEVERAGE",
)
LIFETIME_TYPES = ("UNLIMITED", "LIMITED_CREATION_FREE")
CONTACT_TEXT = (
    "address",
    "city",
    "documentId",
    "email",
    "phone",
    "state",
    "zipCode",
    "introducingBroker1",
    "introducingBroker2",
    "status",
    "phonePassword",
)


def contact_details(name: str, value: Any) -> dict[str, Any]:
    """contactDetails as sent; a null value stays null (patch clears that key)."""
    if value is None or value == "":  # "" is an empty XML element
        return {}
    if not isinstance(value, dict):
        raise invalid(f"{name} must be an object")
    result: dict[str, Any] = {}
    for key, item in value.items():
        if key == "countryId":
            result[key] = None if item is None else fields.integer(f"{name}.{key}", item)
        elif key in CONTACT_TEXT:
            result[key] = fields.optional_text(f"{name}.{key}", item)
    return result


def _none() -> None:
    return None


def _false() -> bool:
    return False


@dataclass(frozen=True, slots=True)
class Writable:
    key: str
    attribute: str
    reader: fields.Reader
    #: The value an omitted field takes on create/replace; None = the field is required.
    default: Callable[[], Any] | None


WRITABLE = (
    Writable("accessRights", "access_rights", fields.one_of(ACCESS_RIGHTS), None),
    Writable("accountType", "account_type", fields.one_of(ACCOUNT_TYPES), None),
    Writable("brokerName", "broker_name", fields.text, None),
    Writable("depositCurrency", "deposit_currency", fields.text, None),
    Writable("groupName", "group_name", fields.text, None),
    Writable("leverageInCents", "leverage_in_cents", fields.positive_integer, None),
    Writable(
        "totalMarginCalculationType",
        "total_margin_calculation_type",
        fields.one_of(MARGIN_TYPES),
        lambda: "MAX",
    ),
    Writable("contactDetails", "contact_details", contact_details, dict),
    Writable("name", "name", fields.optional_text, _none),
    Writable("lastName", "last_name", fields.optional_text, _none),
    Writable("description", "description", fields.optional_text, _none),
    Writable("maxLeverage", "max_leverage", fields.optional_positive_integer, _none),
    Writable("isLimitedRisk", "is_limited_risk", fields.boolean, _false),
    Writable(
        "limitedRiskMarginCalculationStrategy",
        "limited_risk_margin_calculation_strategy",
        fields.optional(fields.one_of(RISK_STRATEGIES)),
        _none,
    ),
    Writable("sendOwnStatement", "send_own_statement", fields.boolean, _false),
    Writable("sendStatementToBroker", "send_statement_to_broker", fields.boolean, _false),
    Writable("swapFree", "swap_free", fields.boolean, _false),
    Writable(
        "accountLifetimeType",
        "account_lifetime_type",
        fields.optional(fields.one_of(LIFETIME_TYPES)),
        _none,
    ),
)


def read_fields(body: dict[str, Any], mode: str) -> dict[str, Any]:
    """Trader attributes from a create / replace / patch body (see the module docstring)."""
    values: dict[str, Any] = {}
    missing: list[str] = []
    for field in WRITABLE:
        value = body.get(field.key)
        if field.key in body and value is not None:
            values[field.attribute] = field.reader(field.key, value)
        elif field.key in body and field.default is not None:
            values[field.attribute] = field.default()  # an explicit null resets
        elif field.default is None and (mode != "patch" or field.key in body):
            missing.append(field.key)
        elif mode != "patch" and field.default is not None:
            values[field.attribute] = field.default()
    if body.get("hashedPassword") is not None:
        values["password_md5"] = fields.md5_hex("hashedPassword", body["hashedPassword"])
    elif mode == "create" or "hashedPassword" in body:
        missing.append("hashedPassword")
    if mode == "create":
        if body.get("balance") is None:
            missing.append("balance")
        else:
            values["balance"] = fields.integer("balance", body["balance"])
            if values["balance"] < 0:
                raise invalid("balance must not be negative")
    if missing:
        raise invalid(f"required fields missing or null: {', '.join(missing)}")
    if mode != "patch":
        values["contact_details"] = {
            k: v for k, v in values["contact_details"].items() if v is not None
        }
    return values


@dataclass(frozen=True, slots=True)
class Figures:
    """A trader's derived money, scaled by its moneyDigits."""

    equity: int
    used_margin: int
    free_margin: int
    cash_equity: int


def wire(trader: Trader, figures: Figures) -> dict[str, Any]:
    """The trader object (A4.3); null fields are left out, as the docs' examples do."""
    data: dict[str, Any] = {
        "login": trader.login,
        "groupName": trader.group_name,
        "depositCurrency": trader.deposit_currency,
        "accessRights": trader.access_rights,
        "brokerName": trader.broker_name,
        "balance": trader.balance,
        "bonus": trader.bonus,
        "nonWithdrawableBonus": trader.non_withdrawable_bonus,
        "leverageInCents": trader.leverage_in_cents,
        "maxLeverage": trader.max_leverage,
        "contactDetails": dict(trader.contact_details),
        "registrationTimestamp": trader.registration_ms,
        "lastUpdateTimestamp": trader.last_update_ms,
        "lastConnectionTimestamp": trader.last_connection_ms,
        "equity": figures.equity,
        "usedMargin": figures.used_margin,
        "freeMargin": figures.free_margin,
        "cashEquity": figures.cash_equity,
        "minEquityDaily": trader.min_equity_daily,
        "maxEquityDaily": trader.max_equity_daily,
        "accountType": trader.account_type,
        "limitedRisk": trader.is_limited_risk,
        "isLimitedRisk": trader.is_limited_risk,
        "limitedRiskMarginCalculationStrategy": trader.limited_risk_margin_calculation_strategy,
        "sendOwnStatement": trader.send_own_statement,
        "sendStatementToBroker": trader.send_statement_to_broker,
        "swapFree": trader.swap_free,
        "totalMarginCalculationType": trader.total_margin_calculation_type,
        "moneyDigits": trader.money_digits,
        "name": trader.name,
        "lastName": trader.last_name,
        "description": trader.description,
        "accountLifetimeType": trader.account_lifetime_type,
        "subAccountOf": trader.sub_account_of,
    }
    return {key: value for key, value in data.items() if value is not None}
