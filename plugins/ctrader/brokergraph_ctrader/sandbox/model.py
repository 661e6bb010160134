"""The sandbox's entities: managers, groups, users (cTIDs), traders, links, positions, deals.

Money held by a trader is a scaled integer (``10**moneyDigits``), as on the wire;
position and deal amounts are ``Decimal`` units, as in the CSV grids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from brokergraph_ctrader.sandbox.money import money_digits


@dataclass(frozen=True, slots=True)
class Manager:
    login: int
    password_md5: str
    allowed_groups: frozenset[str]
    disabled_brokers: frozenset[str]

    def sees(self, group_name: str, broker_name: str) -> bool:
        """A manager sees a trader of an allowed group and a broker not disabled for it."""
        return group_name in self.allowed_groups and broker_name not in self.disabled_brokers


@dataclass(frozen=True, slots=True)
class Group:
    id: int
    name: str
    description: str

    def wire(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "description": self.description}


@dataclass(slots=True)
class User:
    user_id: int
    email: str
    nickname: str
    preferred_language: str
    created_ms: int
    status: str = "CTID_NEW"

    def wire(self) -> dict[str, Any]:
        return {
            "userId": self.user_id,
            "nickname": self.nickname,
            "email": self.email,
            "preferredLanguage": self.preferred_language,
            "utcCreateTimestamp": self.created_ms,
            "status": self.status,
        }


@dataclass(slots=True)
class Trader:
    """A trading account; field names follow the wire (A4.3), money is scaled."""

    login: int
    group_name: str
    deposit_currency: str
    broker_name: str
    access_rights: str
    account_type: str
    leverage_in_cents: int
    password_md5: str
    registration_ms: int
    last_update_ms: int
    balance: int = 0
    bonus: int = 0
    #: "credit" in the docs' words.
    non_withdrawable_bonus: int = 0
    total_margin_calculation_type: str = "MAX"
    contact_details: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    last_name: str | None = None
    description: str | None = None
    max_leverage: int | None = None
    is_limited_risk: bool = False
    limited_risk_margin_calculation_strategy: str | None = None
    send_own_statement: bool = False
    send_statement_to_broker: bool = False
    swap_free: bool = False
    account_lifetime_type: str | None = None
    last_connection_ms: int | None = None
    sub_account_of: int | None = None
    min_equity_daily: int = 0
    max_equity_daily: int = 0

    @property
    def money_digits(self) -> int:
        return money_digits(self.deposit_currency)


@dataclass(frozen=True, slots=True)
class Link:
    ctid_trader_account_id: int
    user_id: int
    login: int
    broker_name: str
    environment_name: str


@dataclass(frozen=True, slots=True)
class Position:
    """An open position; commission and swap so far are in USD, used margin in deposit
    currency."""

    position_id: int
    login: int
    symbol: str
    direction: str
    volume: Decimal
    entry_price: Decimal
    opened_at: datetime
    commission: Decimal
    swap: Decimal
    used_margin: Decimal
    book_type: str = "BOOK_B"


@dataclass(frozen=True, slots=True)
class ClosingDeal:
    """One closing deal (a CSV row of closedPositions); pnl is net, in deposit currency."""

    deal_id: int
    position_id: int
    login: int
    symbol: str
    direction: str
    volume: Decimal
    entry_price: Decimal
    close_price: Decimal
    opened_at: datetime
    closed_at: datetime
    commission: Decimal
    swap: Decimal
    pnl: Decimal
    deposit_conversion_rate: Decimal
    usd_conversion_rate: Decimal
    book_type: str = "BOOK_B"
