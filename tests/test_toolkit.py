"""The connector toolkit in the contract: each piece on its own, over real sockets."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import AsyncIterator, Mapping
from decimal import Decimal
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.contract import (
    Conflict,
    ConnectorSettings,
    InsufficientFunds,
    IssuedToken,
    NotFound,
    Outcome,
    RateLimited,
    Secret,
    SettingsError,
    TokenSession,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
    VendorError,
    VendorErrorTable,
    exact_json_dumps,
    exact_json_loads,
    may_have_arrived,
    setting,
    transport_error,
)
from gateway.contract.sandbox import ASGIApp, AsgiSandbox

# --------------------------------------------------------------------------- vendor errors

TABLE = VendorErrorTable(
    platform="acme",
    codes={
        "NO_MONEY": VendorError(InsufficientFunds, "acme refused the {what}: no money", "amount"),
        "30005": VendorError(InsufficientFunds, "acme: not withdrawable"),
        "SLOW_DOWN": VendorError(RateLimited, "acme's limit is reached", retry_after=60.0),
    },
    patterns=[(r"order .* not found", VendorError(NotFound, "{text}"))],
    statuses={409: VendorError(Conflict, "acme: the {what} conflicts")},
)


def test_a_vendor_code_wins_over_the_status_and_names_the_field() -> None:
    error = TABLE.error(code="NO_MONEY", status=409, what="withdrawal")
    assert isinstance(error, InsufficientFunds)
    assert error.message == "acme refused the withdrawal: no money"
    assert error.field == ("amount",)
    assert error.details == {"platform": "acme", "vendorCode": "NO_MONEY", "status": 409}


def test_numeric_codes_match_their_text_form() -> None:
    assert isinstance(TABLE.error(code=30005, status=422), InsufficientFunds)


def test_patterns_match_the_vendor_text_and_may_quote_it() -> None:
    error = TABLE.error(text="Order   42 not\nfound")
    assert isinstance(error, NotFound)
    assert error.message == "Order 42 not found"


def test_statuses_then_5xx_then_the_fallback() -> None:
    assert isinstance(TABLE.error(status=409, what="account"), Conflict)
    server = TABLE.error(status=502, what="deposit")
    assert isinstance(server, UpstreamUnavailable)
    assert server.message == "acme failed to serve the deposit"
    assert TABLE.rule_for(status=502).outcome is Outcome.UNKNOWN
    refused = TABLE.error(status=418)
    assert isinstance(refused, UpstreamRejected)
    assert TABLE.rule_for(status=418).outcome is Outcome.NOT_APPLIED


def test_messages_name_the_vendor_and_details_the_platform_id() -> None:
    table = VendorErrorTable(platform="acme", vendor="ACME Corp")
    error = table.error(status=503, what="deposit")
    assert error.message == "ACME Corp failed to serve the deposit"
    assert error.details["platform"] == "acme"
    lost = transport_error(TimeoutError(), platform="acme", vendor="ACME Corp", what="deposit")
    assert lost.message == "ACME Corp (deposit) did not answer in time"
    assert lost.details == {"platform": "acme", "outcome": "UNKNOWN"}  # it may have arrived


def test_rate_limits_carry_a_pause_from_the_answer_or_the_rule() -> None:
    default = TABLE.error(code="SLOW_DOWN")
    assert isinstance(default, RateLimited) and default.retry_after == 60.0
    told = TABLE.error(code="SLOW_DOWN", retry_after=3.0)
    assert isinstance(told, RateLimited) and told.retry_after == 3.0


# --------------------------------------------------------------------------- exact JSON


def test_exact_json_keeps_every_digit_both_ways() -> None:
    body = {"amount": Decimal("0.1"), "big": Decimal("12345678901234567890.123456789"), "n": 3}
    text = exact_json_dumps(body)
    assert text == b'{"amount":0.1,"big":12345678901234567890.123456789,"n":3}'
    assert exact_json_loads(text) == body
    assert exact_json_loads(b"[1.10]") == [Decimal("1.10")]
    with pytest.raises(ValueError, match="non-finite"):
        exact_json_dumps({"x": Decimal("NaN")})


# --------------------------------------------------------------------------- token session


async def test_concurrent_callers_share_one_login_and_a_refused_token_is_replaced_once() -> None:
    issued: list[str] = []

    async def issue() -> IssuedToken:
        await asyncio.sleep(0.01)  # a real login takes a round trip
        issued.append(f"t{len(issued) + 1}")
        return IssuedToken(issued[-1])

    session = TokenSession(issue)
    tokens = await asyncio.gather(*(session.token() for _ in range(20)))
    assert set(tokens) == {"t1"} and session.logins == 1
    # Twenty requests learn at once that t1 was refused: one new login, not twenty.
    renewed = await asyncio.gather(*(session.token(stale="t1") for _ in range(20)))
    assert set(renewed) == {"t2"} and session.logins == 2
    # A refusal of an older token does not throw away the newer one.
    assert await session.token(stale="t1") == "t2" and session.logins == 2


async def test_a_token_is_renewed_ahead_of_its_expiry() -> None:
    now = [1000.0]
    count = 0

    async def issue() -> IssuedToken:
        nonlocal count
        count += 1
        return IssuedToken(f"t{count}", expires_in=100.0)

    session = TokenSession(issue, renew_margin_seconds=10.0, clock=lambda: now[0])
    assert await session.token() == "t1"
    now[0] += 89.0
    assert await session.token() == "t1"
    now[0] += 2.0  # inside the margin
    assert await session.token() == "t2"
    session.forget()
    assert session.current is None
    assert await session.token() == "t3"


async def test_a_live_token_is_extended_and_a_refused_or_expired_one_is_not() -> None:
    now = [0.0]
    extended: list[str] = []
    answer: list[IssuedToken | None] = []

    async def issue() -> IssuedToken:
        return IssuedToken(f"login{session.logins}", expires_in=100.0)

    async def extend(token: str) -> IssuedToken | None:
        extended.append(token)
        return answer.pop(0)

    session = TokenSession(issue, extend=extend, renew_margin_seconds=10.0, clock=lambda: now[0])
    assert await session.token() == "login0" and session.logins == 1
    now[0] = 95.0  # inside the margin, still alive: a ping keeps it
    answer.append(IssuedToken("login0", expires_in=100.0))
    assert await session.token() == "login0"
    assert (extended, session.logins, session.expires_at) == (["login0"], 1, 195.0)
    now[0] = 190.0  # the platform refuses the ping: log in
    answer.append(None)
    assert await session.token() == "login1" and session.logins == 2
    assert await session.token(stale="login1") == "login2"  # refused: never extended
    now[0] = 1000.0  # expired: never extended
    assert await session.token() == "login3"
    assert extended == ["login0", "login0"] and session.logins == 4


# --------------------------------------------------------------------------- settings


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AcmeSettings(ConnectorSettings):
    url: str
    password: str
    login: int
    timeout_seconds: float = 10.0
    lookback_days: int = setting(90, minimum=-1)
    leverage: Decimal = Decimal(100)
    live: bool = True
    broker: str | None = None


def test_settings_coerce_by_annotation_and_reveal_secrets() -> None:
    settings = AcmeSettings.from_section(
        "acme",
        {
            "url": " http://x ",
            "password": Secret("pw"),
            "login": "42",
            "lookback_days": 0,
            "leverage": "50.5",
        },
    )
    assert settings.url == "http://x"
    assert settings.password == "pw"
    assert settings.login == 42
    assert settings.lookback_days == 0
    assert settings.leverage == Decimal("50.5")
    assert settings.timeout_seconds == 10.0
    assert settings.broker is None


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"url": "u", "password": "p", "login": 1, "timout_seconds": 3}, "unknown keys"),
        ({"url": "u", "password": "p"}, r"\[connectors.acme\] login is required"),
        ({"url": "", "password": "p", "login": 1}, r"\[connectors.acme\] url must be"),
        ({"url": "u", "password": "p", "login": 1.5}, "whole number"),
        ({"url": "u", "password": "p", "login": 1, "timeout_seconds": 0}, "> 0"),
        ({"url": "u", "password": "p", "login": 1, "live": "yes"}, "true or false"),
        ({"url": "u", "password": "p", "login": True}, "number"),
    ],
)
def test_bad_settings_are_refused_by_key(section: Mapping[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        AcmeSettings.from_section("acme", section)


def test_a_refused_secret_is_never_echoed() -> None:
    with pytest.raises(SettingsError) as caught:
        AcmeSettings.from_section("acme", {"url": "u", "password": Secret(""), "login": 1})
    assert "password" in str(caught.value)


# --------------------------------------------------------------------------- sandbox + transport


class CounterSandbox(AsgiSandbox):
    """A vendor whose one write is counted, so a test can see whether it was applied."""

    name = "acme"
    display_name = "the acme sandbox"
    plaintext = True  # these tests call it with bare clients; tests/test_sandbox_tls.py has TLS

    def __init__(self) -> None:
        super().__init__()
        self.applied = 0

    def asgi_app(self) -> ASGIApp:
        async def write(request: Request) -> Response:
            self.applied += 1
            return JSONResponse({"applied": self.applied})

        return Starlette(routes=[Route("/write", write, methods=["POST"])])

    def failure_body(self, status: int) -> tuple[bytes, str]:
        return b"<fault>busy</fault>", "text/xml"

    def reset_state(self) -> None:
        self.applied = 0

    def connector_settings(self) -> Mapping[str, Any]:
        return {"url": self.url}


@pytest.fixture
async def sandbox() -> AsyncIterator[CounterSandbox]:
    async with CounterSandbox() as served:
        yield served


async def test_fail_next_answers_the_vendor_failure_and_applies_nothing(
    sandbox: CounterSandbox,
) -> None:
    sandbox.fail_next(2, status=502)
    async with httpx.AsyncClient(base_url=sandbox.url) as client:
        first = await client.post("/write")
        second = await client.post("/write")
        third = await client.post("/write")
    assert (first.status_code, first.text, first.headers["content-type"]) == (
        502,
        "<fault>busy</fault>",
        "text/xml",
    )
    assert second.status_code == 502
    assert third.json() == {"applied": 1}
    assert sandbox.applied == 1


@pytest.mark.parametrize("after_apply", [False, True])
async def test_a_dropped_answer_may_have_arrived_and_reads_as_unavailable(
    sandbox: CounterSandbox, after_apply: bool
) -> None:
    sandbox.drop_next(1, after_apply=after_apply)
    async with httpx.AsyncClient(base_url=sandbox.url) as client:
        with pytest.raises(httpx.TransportError) as caught:
            await client.post("/write")
        after = await client.post("/write")
    assert sandbox.applied == (2 if after_apply else 1)
    assert after.status_code == 200
    assert may_have_arrived(caught.value)
    error = transport_error(caught.value, platform="acme", what="withdrawal")
    assert isinstance(error, UpstreamUnavailable)
    assert error.message.startswith("acme (withdrawal) cannot be reached (")


async def test_latency_and_reset(sandbox: CounterSandbox) -> None:
    sandbox.latency_seconds = 0.5
    sandbox.fail_next(5)
    sandbox.drop_next(5)
    async with httpx.AsyncClient(base_url=sandbox.url, timeout=0.1) as client:
        with pytest.raises(httpx.ReadTimeout) as caught:
            await client.post("/write")
    assert may_have_arrived(caught.value)
    timeout = transport_error(caught.value, platform="acme")
    assert isinstance(timeout, UpstreamTimeout)
    assert timeout.message == "acme did not answer in time"
    sandbox.reset()
    async with httpx.AsyncClient(base_url=sandbox.url) as client:
        assert (await client.post("/write")).json() == {"applied": 1}


async def test_a_refused_connection_never_arrived() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError) as caught:
            await client.post(f"http://127.0.0.1:{port}/write")
    assert not may_have_arrived(caught.value)
    assert isinstance(transport_error(caught.value, platform="acme"), UpstreamUnavailable)


async def test_a_stopped_sandbox_has_no_url() -> None:
    with pytest.raises(RuntimeError, match="the acme sandbox is not started"):
        _ = CounterSandbox().url
