"""createTrader/openAccount ``options``: their keys, their checks and the account body
they make, all checked before any call (see the README's options table)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from gateway.contract import InvalidInput

__all__ = [
    "ACCOUNT_KINDS",
    "ACCOUNT_OPTIONS",
    "CODE",
    "FEED_ID",
    "MODES",
    "NAME_TRIES",
    "OPENING_STATUSES",
    "TRADER_OPTIONS",
    "AccountPlan",
    "check_option_keys",
    "currency_code",
    "invalid_option",
    "login_base",
    "option_balance",
    "option_categories",
    "option_choice",
    "option_text",
]

#: createTrader ``options.mode`` (seed 004 §1).
MODES = ("SINGLE_FEED", "DXTRADE_XT", "CRM")
ACCOUNT_OPTIONS = frozenset(
    {
        "accountCode",
        "accountType",
        "accountCashType",
        "clearingCode",
        "categories",
        "balance",
        "type",
        "status",
    }
)
#: An account's ``type`` (B6, observed): seed 004 creates CLIENT accounts.
ACCOUNT_KINDS = ("CLIENT", "OFFSET", "REFERENCE")
#: The ``status`` an account may be opened with (B6, observed): TERMINATED and EXPIRED
#: are final, so an account opened in them could never trade.
OPENING_STATUSES = ("FULL_TRADING", "CLOSE_ONLY", "NO_TRADING")
TRADER_OPTIONS = ACCOUNT_OPTIONS | {"mode", "dxFeedAccountId", "login", "domain", "brokerCode"}
CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
FEED_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")
MAX_CATEGORIES = 50
#: How many numbered candidates a new login/accountCode tries before a random suffix.
NAME_TRIES = 5


@dataclass(frozen=True, slots=True)
class AccountPlan:
    """A new account's DXtrade body, checked before any call."""

    clearing_code: str
    account_code: str | None  # None: derived from the login and made unique
    currency: str
    account_type: str
    cash_type: str
    categories: tuple[Mapping[str, str], ...]
    balance: Decimal
    leverage: Decimal | None
    kind: str = "CLIENT"  # DXtrade's account ``type``
    status: str = "FULL_TRADING"

    def body(self, code: str, broker_code: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "clearingCode": self.clearing_code,
            "accountCode": code,
            "type": self.kind,
            "status": self.status,
            "accountCashType": self.cash_type,
            "accountType": self.account_type,
            "currency": self.currency,
            "balance": self.balance,
            "categories": [dict(c) for c in self.categories],
        }
        if broker_code is not None:
            body["brokerCode"] = broker_code
        if self.leverage is not None:
            body["metadata"] = {"leverage": format(self.leverage, "f")}
        return body


def invalid_option(message: str, *path: str) -> InvalidInput:
    return InvalidInput(message, field=["options", *path] if path else ["options"])


def option_text(options: Mapping[str, Any], key: str, pattern: re.Pattern[str]) -> str | None:
    value = options.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not pattern.match(value):
        raise invalid_option(f"options.{key} must be 1-64 letters, digits, '_', '.' or '-'", key)
    return value


def option_choice(
    options: Mapping[str, Any], key: str, allowed: Sequence[str], default: str
) -> str:
    value = options.get(key, default)
    if value not in allowed:
        raise invalid_option(f"options.{key} must be one of {', '.join(allowed)}", key)
    return str(value)


def option_categories(options: Mapping[str, Any]) -> tuple[Mapping[str, str], ...]:
    raw = options.get("categories", [])
    if not isinstance(raw, list) or len(raw) > MAX_CATEGORIES:
        raise invalid_option(
            f"options.categories must be a list of at most {MAX_CATEGORIES} "
            "{category, value} objects",
            "categories",
        )
    result: list[dict[str, str]] = []
    for item in raw:
        if (
            not isinstance(item, dict)
            or set(item) != {"category", "value"}
            or not all(isinstance(item[k], str) and 0 < len(item[k]) <= 100 for k in item)
        ):
            raise invalid_option(
                'each category is {"category": "<domain>", "value": "<value>"} (strings)',
                "categories",
            )
        if any(c["category"] == item["category"] for c in result):
            raise invalid_option(
                f"category {item['category']!r} is given twice; an account has one value "
                "per category",
                "categories",
            )
        result.append({"category": item["category"], "value": item["value"]})
    return tuple(result)


def option_balance(options: Mapping[str, Any], account_type: str) -> Decimal:
    raw = options.get("balance")
    if raw is None:
        return Decimal(0)
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise invalid_option("options.balance must be an integer or a decimal string", "balance")
    try:
        value = Decimal(str(raw))
    except ArithmeticError:
        raise invalid_option("options.balance must be a decimal number", "balance") from None
    if not value.is_finite() or value < 0:
        raise invalid_option("options.balance must be zero or more", "balance")
    if value and account_type != "DEMO":
        raise invalid_option(
            "options.balance is for DEMO accounts; fund a LIVE account with deposit "
            "(idempotent, audited)",
            "balance",
        )
    return value


def check_option_keys(options: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise invalid_option(f"unknown options {unknown}; DXtrade takes {sorted(allowed)}")


def currency_code(value: str | None) -> str:
    if value is None or not re.fullmatch(r"[A-Z]{3}", value.upper()):
        raise InvalidInput("currency must be a 3-letter ISO code", field=["currency"])
    return value.upper()


def login_base(email: str) -> str:
    local = email.partition("@")[0].lower()
    base = re.sub(r"[^a-z0-9_.-]+", "-", local).strip("-.") or "trader"
    return base[:40]
