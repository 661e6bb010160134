"""DXtrade's typed provisioning options (``createTrader(input: {…, dxtrade: {…}})``,
``openAccount``/``reactivateTrader(newAccount)`` with ``dxtrade``), end to end over real
sockets: what they say reaches the account the sandbox stores; a category DXtrade's list
does not hold is INVALID_INPUT on ``dxtrade.categories`` with no write (the list itself
is read at most once per ``category_cache_seconds``); a host serving no list leaves the
documented domains as the check."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import brokergraph_dxtrade.plugin
import httpx
import pytest
import pytest_asyncio
from brokergraph_dxtrade.sandbox import DxTradeSandbox

from gateway.testing import TestGateway, open_test_gateway

from .conftest import ruled, trader_gid

CATEGORY_LIST = "GET /dxweb/rest/api/register/category"
REG = "/dxweb/rest/api/register"
ADMIN = ("crm-admin@default", "crm-pass")

CREATE = """
mutation($input: CreateTraderInput!) { createTrader(input: $input) {
  trader { id }
  accounts { externalId status ... on DxTradeAccount {
    accountType accountCashType categories { category value } } }
  errors { code message field }
} }"""

OPEN = """
mutation($input: OpenAccountInput!) { openAccount(input: $input) {
  account { externalId ... on DxTradeAccount { accountType categories { category value } } }
  errors { code message field }
} }"""

REACTIVATE = """
mutation($input: ReactivateTraderInput!) { reactivateTrader(input: $input) {
  errors { code message field }
} }"""


def _create(dxtrade: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    login = f"typed-{uuid.uuid4().hex[:8]}"
    fields: dict[str, Any] = {
        "platform": "dxtrade",
        "partnerCode": "DEMO-001",
        "email": f"{login}@example.com",
        "currency": "USD",
        **extra,
    }
    if dxtrade is not None:
        fields["dxtrade"] = {"login": login, **dxtrade}
    return {"input": fields}


def _errors(result: dict[str, Any], field: str) -> list[tuple[str, list[str]]]:
    return [(e["code"], e["field"]) for e in result["data"][field]["errors"]]


def _calls(sandbox: DxTradeSandbox) -> dict[str, int]:
    return {key: n for key, n in sandbox.calls.items() if n}


async def test_typed_options_reach_the_account_dxtrade_stores(
    dx_gateway: TestGateway, dx_sandbox: DxTradeSandbox
) -> None:
    categories = [
        {"category": "Trading", "value": "Financials Only"},
        {"category": "TRADE_TYPE", "value": "FUTURES"},
    ]
    typed = {
        "accountType": "DEMO",
        "type": "CLIENT",
        "status": "CLOSE_ONLY",
        "accountCashType": "CASH",
        "categories": categories,
        "balance": "2500.50",
    }
    result = await dx_gateway.query(CREATE, _create(typed, isLive=False))
    payload = result["data"]["createTrader"]
    assert payload["errors"] == [], payload
    (account,) = payload["accounts"]
    assert (account["accountType"], account["accountCashType"]) == ("DEMO", "CASH")
    made = dx_sandbox.state.account(*account["externalId"].split(":", 1))
    assert (made.type, made.status, made.account_type, made.cash_type) == (
        "CLIENT",
        "CLOSE_ONLY",
        "DEMO",
        "CASH",
    )
    assert made.categories == categories
    assert str(made.balance) == "2500.50"

    # openAccount takes the account's options (DxTradeAccountOptions), typed too.
    opened = await dx_gateway.query(
        OPEN,
        {
            "input": {
                "traderId": payload["trader"]["id"],
                "currency": "EUR",
                "dxtrade": {
                    "accountType": "LIVE",
                    "status": "NO_TRADING",
                    "categories": [{"category": "Margining", "value": "Standard Margining"}],
                },
            }
        },
    )
    assert opened["data"]["openAccount"]["errors"] == [], opened
    second = dx_sandbox.state.account(
        *opened["data"]["openAccount"]["account"]["externalId"].split(":", 1)
    )
    assert (second.account_type, second.status, second.currency) == ("LIVE", "NO_TRADING", "EUR")
    assert second.categories == [{"category": "Margining", "value": "Standard Margining"}]


async def test_a_category_dxtrade_does_not_list_is_refused_with_no_write(
    dx_gateway: TestGateway, dx_sandbox: DxTradeSandbox
) -> None:
    for categories in (
        [{"category": "Trading", "value": "Crypto"}],  # a value the list does not hold
        [{"category": "Leverage", "value": "1:500"}],  # a domain it does not hold
        [  # a domain twice
            {"category": "Trading", "value": "CFD"},
            {"category": "Trading", "value": "Financials Only"},
        ],
    ):
        before = dict(dx_sandbox.calls)
        result = await dx_gateway.query(CREATE, _create({"categories": categories}))
        assert _errors(result, "createTrader") == [("INVALID_INPUT", ["dxtrade", "categories"])], (
            categories
        )
        made = {k: n - before.get(k, 0) for k, n in _calls(dx_sandbox).items()}
        # Only the category list may have been read (once per category_cache_seconds).
        assert {k: n for k, n in made.items() if n} in ({}, {CATEGORY_LIST: 1}), made

    # The list is kept: a second refusal costs no call at all.
    before = dict(dx_sandbox.calls)
    bad = {"categories": [{"category": "Trading", "value": "Crypto"}]}
    result = await dx_gateway.query(CREATE, _create(bad))
    assert _errors(result, "createTrader") == [("INVALID_INPUT", ["dxtrade", "categories"])]
    assert dict(dx_sandbox.calls) == before


async def test_typed_options_are_checked_before_any_call(
    dx_gateway: TestGateway, dx_sandbox: DxTradeSandbox
) -> None:
    before = dict(dx_sandbox.calls)
    # Contradicting isLive, a LIVE balance, both typed and JSON, another platform's input.
    cases: list[tuple[dict[str, Any], list[str]]] = [
        (_create({"accountType": "LIVE"}, isLive=False), ["dxtrade", "accountType"]),
        (_create({"accountType": "LIVE", "balance": "10"}), ["dxtrade", "balance"]),
        (_create({"login": "x"}, options={"login": "y"}), ["options"]),
        (_create({"accountType": "DEMO"}, platform="ctrader"), ["dxtrade"]),
    ]
    for variables, field in cases:
        result = await dx_gateway.query(CREATE, variables)
        assert _errors(result, "createTrader") == [("INVALID_INPUT", field)], variables
    # A value DXtrade does not have never gets past GraphQL's own validation.
    refused = await dx_gateway.query(CREATE, _create({"status": "TERMINATED"}))
    assert refused["data"] is None
    (error,) = refused["errors"]
    assert error["extensions"]["code"] == "INVALID_INPUT"
    assert "TERMINATED" in error["message"]
    # newAccount's options are reported under newAccount.
    reactivated = await dx_gateway.query(
        REACTIVATE,
        {
            "input": {
                "traderId": trader_gid("alice@default"),
                "newAccount": {
                    "currency": "USD",
                    "dxtrade": {"categories": [{"category": "Trading", "value": "Crypto"}]},
                },
            }
        },
    )
    assert _errors(reactivated, "reactivateTrader") == [
        ("INVALID_INPUT", ["newAccount", "dxtrade", "categories"])
    ]
    made = {k: n - before.get(k, 0) for k, n in _calls(dx_sandbox).items()}
    assert {k: n for k, n in made.items() if n} in ({}, {CATEGORY_LIST: 1}), made


async def test_the_json_options_still_work(
    dx_gateway: TestGateway, dx_sandbox: DxTradeSandbox
) -> None:
    login = f"json-{uuid.uuid4().hex[:8]}"
    variables = _create(
        options={"login": login, "categories": [{"category": "Trading", "value": "CFD"}]}
    )
    result = await dx_gateway.query(CREATE, variables)
    (account,) = result["data"]["createTrader"]["accounts"]
    made = dx_sandbox.state.account(*account["externalId"].split(":", 1))
    assert made.categories == [{"category": "Trading", "value": "CFD"}]
    bad = _create(options={"categories": [{"category": "Trading", "value": "Crypto"}]})
    result = await dx_gateway.query(CREATE, bad)
    assert _errors(result, "createTrader") == [("INVALID_INPUT", ["options", "categories"])]


# A host without the category list: its own sandbox and a gateway keeping no list.


@pytest_asyncio.fixture(scope="module")
async def listless(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[TestGateway, DxTradeSandbox]]:
    async with DxTradeSandbox() as sandbox:
        directory = tmp_path_factory.mktemp("dx-listless")
        async with open_test_gateway(
            brokergraph_dxtrade.plugin,
            [sandbox],
            directory,
            connector_settings={"dxtrade": {"category_cache_seconds": 0.001}},
        ) as gateway:
            yield gateway, sandbox


@pytest.mark.parametrize("missing", [404, 405, 400])
async def test_without_a_category_list_the_documented_domains_are_the_check(
    listless: tuple[TestGateway, DxTradeSandbox], missing: int
) -> None:
    gateway, sandbox = listless
    with ruled(sandbox, category_route=missing, unknown_categories="keep"):
        before = dict(sandbox.calls)
        bad = {"categories": [{"category": "Leverage", "value": "1:500"}]}
        result = await gateway.query(CREATE, _create(bad))
        assert _errors(result, "createTrader") == [("INVALID_INPUT", ["dxtrade", "categories"])]
        made = {k: n - before.get(k, 0) for k, n in _calls(sandbox).items()}
        assert {k: n for k, n in made.items() if n} == {CATEGORY_LIST: 1}
        # A documented domain passes with any value: DXtrade judges it on create.
        fine = {"categories": [{"category": "Trading", "value": "Crypto"}]}
        result = await gateway.query(CREATE, _create(fine))
        assert result["data"]["createTrader"]["errors"] == [], result
        (account,) = result["data"]["createTrader"]["accounts"]
        made_account = sandbox.state.account(*account["externalId"].split(":", 1))
        assert made_account.categories == [{"category": "Trading", "value": "Crypto"}]


# The sandbox's side, over HTTP.


async def test_the_sandbox_lists_its_categories_and_refuses_others_as_ruled(
    dx_sandbox: DxTradeSandbox,
) -> None:
    verify = dx_sandbox.client_ssl_context()
    async with httpx.AsyncClient(
        base_url=dx_sandbox.url, timeout=10, verify=verify, auth=ADMIN
    ) as http:
        listed = (await http.get(f"{REG}/category")).json()
        assert {"category": "TRADE_TYPE", "values": [{"value": "FUTURES"}]} in listed
        assert {c["category"] for c in listed} >= {"Trading", "Margining", "Commissions"}

        def account(code: str, value: str) -> dict[str, Any]:
            return {
                "clearingCode": "default",
                "accountCode": code,
                "currency": "USD",
                "categories": [{"category": "Trading", "value": value}],
            }

        for unknown, status in (("refuse", 400), ("keep", 200)):
            code = f"cat-{uuid.uuid4().hex[:8]}"
            with ruled(dx_sandbox, unknown_categories=unknown):
                made = await http.post(
                    f"{REG}/client/default/bob/account", json=account(code, "Crypto")
                )
            assert made.status_code == status, made.text
            assert (("default", code) in dx_sandbox.state.accounts) is (status == 200)
        for missing in (404, 405, 400):
            with ruled(dx_sandbox, category_route=missing):
                assert (await http.get(f"{REG}/category")).status_code == missing
