"""The sandbox's records (users, accounts, positions, orders, transfers, dxFeed subscriptions)
and their dxweb (DxRegister) JSON shapes (B4, B6)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from brokergraph_dxtrade.sandbox.wire import iso

CLIENT_STATUSES = ("ONLINE", "OFFLINE", "DISABLED")
CLIENT_TYPES = ("CLIENT", "OTHER")
ACCOUNT_STATUSES = ("FULL_TRADING", "CLOSE_ONLY", "NO_TRADING", "TERMINATED", "EXPIRED")
TERMINAL_STATUSES = ("TERMINATED", "EXPIRED")
ACCOUNT_TYPES = ("CLIENT", "OFFSET", "REFERENCE")
ACCOUNT_KINDS = ("DEMO", "LIVE")  # the ``accountType`` field
CASH_TYPES = ("MARGIN", "CASH")
CASH_KINDS = ("deposit", "withdrawal", "adjustment")

#: Profile fields of a Client that the sandbox stores and echoes without a rule of its own.
PROFILE_FIELDS = (
    "birthPlace",
    "birthDate",
    "citizenship",
    "phone",
    "insuranceNumber",
    "company",
    "contractDate",
    "location",
    "document",
    "comments",
)

#: single feed (nothing to manage), DxTradeXT (email only, dxFeed account made at the first
#: login) or CRM (the CRM passes ``dxFeedAccountId``) — seed 004 §1.
FeedMode = Literal["single", "xt", "crm"]


@dataclass
class Subscription:
    name: str
    end_date: str
    active: bool = True

    def wire(self) -> dict[str, Any]:
        return {"name": self.name, "endDate": self.end_date, "active": self.active}


@dataclass
class Client:
    domain: str
    login: str
    password: str | None
    mode: FeedMode
    status: str = "ONLINE"
    type: str = "CLIENT"
    full_name: str | None = None
    email: str | None = None
    broker_code: str = "root_broker"
    dx_feed_account_id: str | None = None
    created: datetime | None = None
    last_login: datetime | None = None
    groups: list[str] = field(default_factory=list)
    user_metadata: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)
    password_expiry: int | None = None
    password_reset: bool = False
    version: int = 1

    @property
    def key(self) -> tuple[str, str]:
        return (self.domain, self.login)

    @property
    def username(self) -> str:
        return f"{self.login}@{self.domain}"

    @property
    def etag(self) -> str:
        return f'"{self.login}@{self.domain}.v{self.version}"'


@dataclass
class Account:
    clearing_code: str
    account_code: str
    owner: tuple[str, str] | None
    currency: str
    balance: Decimal
    credit: Decimal = Decimal(0)
    status: str = "FULL_TRADING"
    type: str = "CLIENT"
    account_type: str = "LIVE"
    cash_type: str = "MARGIN"
    broker_code: str = "root_broker"
    categories: list[dict[str, str]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    expiration_date: str | None = None
    registered: datetime | None = None
    version: int = 1

    @property
    def key(self) -> tuple[str, str]:
        return (self.clearing_code, self.account_code)

    @property
    def id(self) -> str:
        """The dxsca-web account id, ``clearingCode:accountCode`` (B1)."""
        return f"{self.clearing_code}:{self.account_code}"

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


@dataclass
class Position:
    account: str  # "clearingCode:accountCode"
    code: str
    symbol: str
    side: str
    quantity: Decimal
    open_price: Decimal
    margin_rate: Decimal
    opened: datetime


@dataclass
class Order:
    account: str
    order_id: int
    code: str
    symbol: str
    side: str
    type: str
    quantity: Decimal
    price: Decimal
    tif: str
    issued: datetime
    status: str = "WORKING"
    #: A COMPLETED order: when it filled (all at ``price``) and the position it opened.
    completed: datetime | None = None
    position_code: str | None = None


@dataclass
class Transfer:
    """A dxsca-web CashTransfer with its one cash transaction."""

    account: str
    code: str
    kind: str  # DEPOSIT, WITHDRAWAL, ADJUSTMENT, COMMISSION, FINANCING, ...
    value: Decimal  # signed
    currency: str
    comment: str | None
    at: datetime
    transaction_code: str


@dataclass
class CashOp:
    """An admin deposit/withdrawal/adjustment, keyed by the client-generated id."""

    kind: str
    id: str
    account: Account
    currency: str
    amount: Decimal
    description: str | None
    at: datetime

    def fingerprint(self) -> tuple[str, str, Decimal, str | None]:
        return (self.kind, self.currency, self.amount, self.description)

    def wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "clearingCode": self.account.clearing_code,
            "accountCode": self.account.account_code,
            "currency": self.currency,
            "amount": self.amount,
            "description": self.description,
            "transactionTime": iso(self.at),
        }


def account_wire(account: Account) -> dict[str, Any]:
    return {
        "clearingCode": account.clearing_code,
        "accountCode": account.account_code,
        "brokerCode": account.broker_code,
        "type": account.type,
        "status": account.status,
        "accountCashType": account.cash_type,
        "expirationDate": account.expiration_date,
        "accountType": account.account_type,
        "currency": account.currency,
        "balance": account.balance,
        "credit": account.credit,
        "categories": [dict(c) for c in account.categories],
        "metadata": dict(account.metadata),
    }


def client_wire(client: Client, accounts: list[Account]) -> dict[str, Any]:
    return {
        "domain": client.domain,
        "login": client.login,
        "fullName": client.full_name,
        "email": client.email,
        "brokerCode": client.broker_code,
        "type": client.type,
        "status": client.status,
        "passwordExpiry": client.password_expiry,
        "passwordReset": client.password_reset,
        "createdDateTime": iso(client.created),
        "lastLogin": iso(client.last_login),
        "groups": list(client.groups),
        "userMetadata": dict(client.user_metadata),
        "dxFeedAccountId": client.dx_feed_account_id,
        **client.profile,
        "accounts": [account_wire(a) for a in accounts],
    }
