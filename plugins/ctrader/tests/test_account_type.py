"""CTraderAccount is made lazily (a warm ``account { balance }`` works out one amount and
none of the trader object's extras), and every field answers what it answered when all
were made at once: from the trader object, without one (a replay), and from one whose
timestamps cannot be read."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from brokergraph_ctrader.schema import CTraderAccessRights, CTraderAccount, CTraderAccountKind
from brokergraph_ctrader.wire import account_from_trader

from gateway.contract import Account, AccountStatus
from gateway.contract.schema import AccountType, account_fields, encode_id

REGISTERED = datetime(2024, 4, 24, 23, 6, 40, tzinfo=UTC)  # 1714000000000 ms
CONNECTED = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


def _trader(**changes: Any) -> dict[str, Any]:
    trader: dict[str, Any] = {
        "login": 9000001,
        "depositCurrency": "USD",
        "moneyDigits": 2,
        "balance": 1234567,
        "equity": 1234000,
        "nonWithdrawableBonus": 0,
        "bonus": 50,
        "usedMargin": 1000,
        "freeMargin": 1233000,
        "accessRights": "FULL_ACCESS",
        "accountType": "HEDGED",
        "leverageInCents": 10000,
        "groupName": "Default",
        "brokerName": "DEMOBROKER",
        "swapFree": False,
        "registrationTimestamp": int(REGISTERED.timestamp() * 1000),
        "lastConnectionTimestamp": int(CONNECTED.timestamp() * 1000),
        "contactDetails": {"introducingBroker1": "IB-42", "introducingBroker2": ""},
    }
    trader.update(changes)
    return trader


def _model(**changes: Any) -> Account:
    return account_from_trader(_trader(**changes), "ctrader", is_live=False, trader_id="77")


def _read(account: CTraderAccount) -> dict[str, Any]:
    return {f.name: getattr(account, f.name) for f in dataclasses.fields(account) if f.init}


def test_a_balance_read_makes_only_the_balance() -> None:
    account = CTraderAccount.from_model(_model())
    assert account.balance is not None
    assert (account.balance.amount, account.balance.currency) == (Decimal("12345.67"), "USD")
    made = set(vars(account))
    assert {"id", "equity", "margin", "registered_at", "broker_name"}.isdisjoint(made)
    assert account.external_id == account.login == "9000001"  # the plain ones are there


def test_every_field_answers_as_before() -> None:
    account = CTraderAccount.from_model(_model())
    fields = _read(account)
    assert fields["id"] == encode_id("Account", "ctrader", "9000001")
    assert (fields["platform"], fields["number"], fields["currency"]) == (
        "ctrader",
        "9000001",
        "USD",
    )
    assert fields["status"] == AccountStatus.FULL_TRADING and fields["is_live"] is False
    assert (fields["group"], fields["leverage"], fields["trader_external_id"]) == (
        "Default",
        Decimal(100),
        "77",
    )
    money = {
        name: (fields[name].amount, fields[name].currency)
        for name in ("balance", "equity", "credit", "bonus", "margin", "free_margin")
    }
    assert money == {
        "balance": (Decimal("12345.67"), "USD"),
        "equity": (Decimal("12340.00"), "USD"),
        "credit": (Decimal("0.00"), "USD"),
        "bonus": (Decimal("0.50"), "USD"),
        "margin": (Decimal("10.00"), "USD"),
        "free_margin": (Decimal("12330.00"), "USD"),
    }
    assert str(fields["equity"].amount) == "12340.00"  # the currency's minor units
    assert fields["money_digits"] == 2
    assert fields["access_rights"] is CTraderAccessRights.FULL_ACCESS
    assert fields["account_type"] is CTraderAccountKind.HEDGED
    assert (fields["broker_name"], fields["swap_free"]) == ("DEMOBROKER", False)
    assert (fields["registered_at"], fields["last_connected_at"]) == (REGISTERED, CONNECTED)
    assert fields["introducing_brokers"] == ["IB-42"]
    # The same account made all at once (as a platform type may still make it).
    eager = CTraderAccount(
        **account_fields(_model()),
        login="9000001",
        **{name: make(_model()) for name, make in CTraderAccount.lazy_fields.items()},
    )
    assert eager == account and _read(eager) == fields


def test_without_a_trader_object_or_with_unreadable_timestamps() -> None:
    replayed = dataclasses.replace(_model(), raw=None)  # a replay keeps no payload
    fields = _read(CTraderAccount.from_model(replayed))
    extras = ("money_digits", "access_rights", "account_type", "broker_name", "swap_free")
    assert [fields[name] for name in extras] == [None] * 5
    assert fields["introducing_brokers"] is None and fields["last_connected_at"] is None
    assert fields["registered_at"] == REGISTERED  # the model's own creation time
    # One unreadable timestamp empties both; the registration falls back to the model's.
    odd = _read(CTraderAccount.from_model(_model(lastConnectionTimestamp="soon")))
    assert (odd["registered_at"], odd["last_connected_at"]) == (REGISTERED, None)
    odd = _read(CTraderAccount.from_model(_model(accessRights="NO_LOGIN", swapFree="yes")))
    assert odd["access_rights"] is CTraderAccessRights.NO_LOGIN and odd["swap_free"] is None


def test_a_type_must_give_or_defer_each_of_its_fields() -> None:
    # lazily() refuses a platform type one of whose fields would never be made.
    with pytest.raises(TypeError, match="login"):
        CTraderAccount.lazily(_model())
    assert issubclass(CTraderAccount, AccountType)
