"""The deterministic seed: the shared contract's users, accounts and dxFeed subscriptions,
plus a few positions, working orders and cash transfers for the dxsca-web reads.

Prices never move: ``QUOTES`` are the marks every open P&L and margin is computed at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal as D

from brokergraph_dxtrade.sandbox.model import (
    Account,
    Client,
    Order,
    Position,
    Subscription,
    Transfer,
)
from brokergraph_dxtrade.sandbox.wire import at

ADMIN_LOGIN, ADMIN_DOMAIN, ADMIN_PASSWORD = "crm-admin", "default", "crm-pass"
ALICE_FEED_ID = "6ddbec14-dd36-4358-adbb-80421d044ba3"

#: Marks (mid prices) of the seeded instruments, in USD per unit.
QUOTES: dict[str, D] = {
    "EUR/USD": D("1.08500"),
    "GBP/USD": D("1.26500"),
    "XAU/USD": D("2340.00"),
    "US500": D("5250.0"),
}


#: The category list (``GET /api/register/category``): Deriv's production values (B4,
#: observed D5) and the XT example's TRADE_TYPE (verified D2).
CATEGORIES: dict[str, tuple[str, ...]] = {
    "Trading": ("CFD", "Financials Only", "Synthetics Only"),
    "AutoExecution": ("Bbook",),
    "Commissions": ("Zero Commissions",),
    "Financing": ("Standard Swaps",),
    "Limits": ("Standard Limits",),
    "Margining": ("Standard Margining",),
    "Spreads": ("Standard Spreads",),
    "TRADE_TYPE": ("FUTURES",),
}


@dataclass
class Seed:
    clients: list[Client] = field(default_factory=list)
    accounts: list[Account] = field(default_factory=list)
    positions: list[Position] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)
    transfers: list[Transfer] = field(default_factory=list)
    feeds: dict[str, list[Subscription]] = field(default_factory=dict)


def seed() -> Seed:
    created = at("2024-01-02T09:00:00Z")
    clients = [
        Client(
            "default",
            "alice",
            "alice-pass",
            "crm",
            full_name="Alice Anders",
            email="alice@example.com",
            dx_feed_account_id=ALICE_FEED_ID,
            created=created,
        ),
        Client(
            "default",
            "bob",
            "bob-pass",
            "xt",
            full_name="Bob Brown",
            email="bob@example.com",
            created=created,
        ),
        Client("default", "carol", "carol-pass", "single", full_name="Carol Chen", created=created),
    ]
    accounts = [
        Account("default", "alice-usd", ("default", "alice"), "USD", D("25000.00"),
                registered=created),
        Account("default", "bob-usd", ("default", "bob"), "USD", D("10000.00"),
                registered=created),
        Account("default", "carol-usd", ("default", "carol"), "USD", D("5000.00"),
                registered=created),
    ]  # fmt: skip
    for account in accounts:
        account.categories = [
            {"category": "Trading", "value": "CFD"},
            {"category": "Margining", "value": "Standard Margining"},
        ]
    opened = at("2024-03-04T10:15:00Z")
    positions = [
        Position("default:alice-usd", "alice-p-1", "EUR/USD", "BUY", D(100000), D("1.08000"),
                 D("0.02"), opened),
        Position("default:alice-usd", "alice-p-2", "XAU/USD", "SELL", D(10), D("2350.00"),
                 D("0.05"), opened),
        Position("default:bob-usd", "bob-p-1", "GBP/USD", "SELL", D(50000), D("1.27000"),
                 D("0.02"), opened),
        Position("default:bob-usd", "bob-p-2", "US500", "BUY", D(2), D("5300.0"),
                 D("0.05"), opened),
        Position("default:carol-usd", "carol-p-1", "EUR/USD", "SELL", D(20000), D("1.09000"),
                 D("0.02"), opened),
    ]  # fmt: skip
    issued = at("2024-03-05T08:30:00Z")
    orders = [
        Order("default:alice-usd", 1001, "alice-o-1", "EUR/USD", "BUY", "LIMIT", D(50000),
              D("1.07500"), "GTC", issued),
        Order("default:alice-usd", 1002, "alice-o-2", "XAU/USD", "SELL", "STOP", D(5),
              D("2300.00"), "GTC", issued),
        Order("default:bob-usd", 1003, "bob-o-1", "GBP/USD", "SELL", "LIMIT", D(30000),
              D("1.28000"), "DAY", issued),
        Order("default:carol-usd", 1004, "carol-o-1", "US500", "BUY", "LIMIT", D(1),
              D("5100.0"), "GTC", issued),
    ]  # fmt: skip
    # The market orders that opened the positions: the order history (deals) of B5.
    for number, p in enumerate(positions, start=901):
        orders.append(
            Order(p.account, number, f"{p.code}-open", p.symbol, p.side, "MARKET", p.quantity,
                  p.open_price, "IOC", opened, "COMPLETED", opened, p.code)
        )  # fmt: skip
    rows = [  # account, kind, signed value, comment, time — each account sums to its balance
        ("default:alice-usd", "DEPOSIT", "20000.00", "Initial deposit", "2024-01-10T09:00:00Z"),
        ("default:alice-usd", "DEPOSIT", "6000.00", "Top-up", "2024-02-01T09:00:00Z"),
        ("default:alice-usd", "WITHDRAWAL", "-1000.00", "Payout", "2024-03-01T09:00:00Z"),
        ("default:bob-usd", "DEPOSIT", "10250.00", "Initial deposit", "2024-01-15T09:00:00Z"),
        ("default:bob-usd", "COMMISSION", "-250.00", None, "2024-03-04T10:15:00Z"),
        ("default:carol-usd", "DEPOSIT", "5000.00", "Initial deposit", "2024-02-20T09:00:00Z"),
        ("default:carol-usd", "FINANCING", "-20.00", "Swap", "2024-03-05T00:00:00Z"),
        ("default:carol-usd", "ADJUSTMENT", "20.00", "Swap refund", "2024-03-06T09:00:00Z"),
    ]
    transfers = [
        Transfer(acc, f"seed-{i}", kind, D(value), "USD", comment, at(time), f"tx-{i}")
        for i, (acc, kind, value, comment, time) in enumerate(rows, start=1)
    ]
    feeds = {ALICE_FEED_ID: [Subscription("CME Globex Top of Book", "2027-01-31", True)]}
    return Seed(clients, accounts, positions, orders, transfers, feeds)
