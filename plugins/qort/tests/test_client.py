"""The QORT client and its one shared session: against the real sandbox over HTTP,
and the session's rules on their own with a scripted backend."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from decimal import Decimal

import httpx
import pytest
from brokergraph_qort.client import ET_DELETE, ET_INSERT, ET_UPDATE, QortClient
from brokergraph_qort.errors import QortFault, RecordError, record_error
from brokergraph_qort.sandbox import QortSandbox
from brokergraph_qort.session import LoginResult, QortSession
from brokergraph_qort.settings import QortSettings

from gateway.contract import (
    Conflict,
    InvalidInput,
    NotFound,
    SettingsError,
    UpstreamBusy,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)

SOAP_LOGIN = """<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
               xmlns:q="urn:brokergraph:qort:v1">
  <soap:Body><q:LoginRequest><q:Login>{login}</q:Login><q:Password>{password}</q:Password>
  <q:AppName>{app}</q:AppName></q:LoginRequest></soap:Body>
</soap:Envelope>"""


async def raw_login(sandbox: QortSandbox, app: str = "backoffice-tool") -> httpx.Response:
    """A second application logging in with a hand-written envelope (not our client)."""
    login, password = {"backoffice-tool": ("backoffice", "bo-pass")}[app]
    body = SOAP_LOGIN.format(login=login, password=password, app=app)
    async with httpx.AsyncClient(verify=sandbox.client_ssl_context()) as http:
        return await http.post(
            f"{sandbox.url}/qort",
            content=body.encode(),
            headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": "Login"},
        )


# --------------------------------------------------------------------------- the session, scripted


class ScriptedBackend:
    """Login/Logout/Ping whose answers a test decides."""

    def __init__(self) -> None:
        self.logins = 0
        self.logouts: list[str] = []
        self.pings = 0
        self.refuse_with: str | None = None
        self.login_delay = 0.0

    async def login(self) -> LoginResult:
        self.logins += 1
        await asyncio.sleep(self.login_delay)
        if self.refuse_with:
            raise QortFault(self.refuse_with, "refused", operation="Login")
        return LoginResult(f"token-{self.logins}", 900)

    async def logout(self, token: str) -> None:
        self.logouts.append(token)

    async def ping(self, token: str) -> float | None:
        self.pings += 1
        return 900


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_concurrent_requests_share_one_login() -> None:
    backend = ScriptedBackend()
    backend.login_delay = 0.05
    session = QortSession(backend)
    tokens = await asyncio.gather(*(session.token() for _ in range(50)))
    assert set(tokens) == {"token-1"}
    assert backend.logins == 1
    await session.close()
    assert backend.logouts == ["token-1"]


async def test_invalid_token_logs_in_again_once() -> None:
    backend = ScriptedBackend()
    session = QortSession(backend)
    seen: list[str] = []

    async def expires_once(token: str) -> str:
        seen.append(token)
        if len(seen) == 1:
            raise QortFault("INVALID_TOKEN", "expired", operation="Ping")
        return token

    assert await session.run(expires_once) == "token-2"
    assert seen == ["token-1", "token-2"]

    async def always_invalid(token: str) -> str:
        raise QortFault("INVALID_TOKEN", "expired", operation="Ping")

    with pytest.raises(QortFault):  # the repeat fails too: no third attempt
        await session.run(always_invalid)
    assert backend.logins == 3


async def test_invalidating_an_old_token_keeps_the_new_one() -> None:
    backend = ScriptedBackend()
    session = QortSession(backend)
    first = await session.token()
    session.invalidate(first)
    second = await session.token()
    session.invalidate(first)  # a late failure of a request that used the old token
    assert await session.token() == second
    assert backend.logins == 2


async def test_busy_fails_fast_then_cools_down() -> None:
    backend, clock = ScriptedBackend(), FakeClock()
    backend.refuse_with = "BUSY"
    session = QortSession(backend, busy_cooldown_seconds=5, clock=clock)
    with pytest.raises(UpstreamBusy, match="another application"):
        await session.token()
    for _ in range(10):  # no retry storm: nothing reaches QORT during the cool-down
        with pytest.raises(UpstreamBusy) as raised:
            await session.token()
    assert backend.logins == 1
    assert raised.value.details["retryAfter"] == 5
    clock.now += 5.1
    backend.refuse_with = None
    assert await session.token() == "token-2"


async def test_refused_credentials_are_upstream_rejected() -> None:
    backend = ScriptedBackend()
    backend.refuse_with = "INVALID_CREDENTIALS"
    session = QortSession(backend)
    with pytest.raises(UpstreamRejected, match="login, password and app_name"):
        await session.token()


async def test_keepalive_pings_while_connected() -> None:
    backend = ScriptedBackend()
    session = QortSession(backend, keepalive=True, keepalive_seconds=0.02)
    await session.token()
    for _ in range(100):
        if backend.pings >= 2:
            break
        await asyncio.sleep(0.02)
    await session.close()
    assert backend.pings >= 2
    assert backend.logins == 1


# --------------------------------------------------------------------------- against the sandbox


async def test_one_session_for_concurrent_calls(client: QortClient, sandbox: QortSandbox) -> None:
    packets = await asyncio.gather(*(client.get_firm_packet("DEMO-001") for _ in range(20)))
    assert all(p is not None and p.firm["BOCode"] == "DEMO-001" for p in packets)
    assert sandbox.calls["Login"] == 1
    assert sandbox.calls["GetFirmPacket"] == 20


async def test_expired_token_logs_in_again(client: QortClient, sandbox: QortSandbox) -> None:
    await client.get_firm_packet("DEMO-001")
    sandbox.force_expire_tokens()
    assert await client.get_firm_packet("DEMO-002") is not None
    assert sandbox.calls["Login"] == 2


async def test_a_second_application_is_locked_out_while_connected(
    make_settings: Callable[..., QortSettings], sandbox: QortSandbox
) -> None:
    gateway = QortClient(make_settings(keepalive=False))
    await gateway.connect()
    response = await raw_login(sandbox)
    assert response.status_code == 500
    assert b"<Code>BUSY</Code>" in response.content.replace(b"tns:", b"")
    await gateway.close()  # logs out: QORT is free again
    response = await raw_login(sandbox)
    assert response.status_code == 200, response.text


async def test_the_gateway_fails_fast_while_another_application_holds_qort(
    make_settings: Callable[..., QortSettings], sandbox: QortSandbox
) -> None:
    assert (await raw_login(sandbox)).status_code == 200
    gateway = QortClient(make_settings(keepalive=False, busy_cooldown_seconds=30))
    try:
        with pytest.raises(UpstreamBusy, match="another application"):
            await gateway.get_firm_packet("DEMO-001")
        logins = sandbox.calls["Login"]
        for _ in range(5):
            with pytest.raises(UpstreamBusy):
                await gateway.get_firm_packet("DEMO-001")
        assert sandbox.calls["Login"] == logins, "no login attempts during the cool-down"
        assert sandbox.calls["GetFirmPacket"] == 0
    finally:
        await gateway.close()


async def test_a_restarted_gateway_takes_over_or_waits_for_the_old_session(
    make_settings: Callable[..., QortSettings], sandbox: QortSandbox
) -> None:
    """Whether QORT lets the holder's own second login in is not published [I].  The
    sandbox's reading: a restarted gateway takes over at once (the old token dies).  The
    strict one (``relogin_replaces`` off): it is UPSTREAM_BUSY until the old session
    ends, then gets in — the connector is correct under both."""
    old = QortClient(make_settings(keepalive=False))
    restarted = QortClient(make_settings(keepalive=False))
    try:
        await old.connect()
        assert await restarted.get_firm_packet("DEMO-001") is not None
        assert sandbox.calls["Login"] == 2
    finally:
        await old.close()  # its dead token needs no logout
        await restarted.close()

    sandbox.sessions.relogin_replaces = False
    old = QortClient(make_settings(keepalive=False))
    restarted = QortClient(make_settings(keepalive=False, busy_cooldown_seconds=30))
    packets = sandbox.calls["GetFirmPacket"]
    try:
        await old.connect()
        with pytest.raises(UpstreamBusy, match="another application"):
            await restarted.get_firm_packet("DEMO-001")
        await old.close()  # logs out (an expiry frees QORT the same way)
        fresh = QortClient(make_settings(keepalive=False))
        try:
            assert await fresh.get_firm_packet("DEMO-001") is not None
        finally:
            await fresh.close()
        assert sandbox.calls["GetFirmPacket"] == packets + 1  # none while BUSY
    finally:
        await old.close()
        await restarted.close()


async def test_keepalive_holds_the_session(
    make_settings: Callable[..., QortSettings], sandbox: QortSandbox
) -> None:
    sandbox.token_ttl_seconds = 1
    sandbox.reset()
    gateway = QortClient(make_settings(keepalive_seconds=0.2))
    try:
        await gateway.connect()
        await asyncio.sleep(1.5)  # longer than the token's lifetime
        assert await gateway.get_firm_packet("DEMO-001") is not None
        assert sandbox.calls["Login"] == 1
        assert sandbox.calls["Ping"] >= 3
    finally:
        await gateway.close()
        sandbox.token_ttl_seconds = 900
        sandbox.reset()


async def test_the_wsdl_is_loaded_once(sandbox: QortSandbox) -> None:
    gets: list[str] = []

    async def count(request: httpx.Request) -> None:
        if request.method == "GET":
            gets.append(str(request.url))

    http = httpx.AsyncClient(event_hooks={"request": [count]}, verify=sandbox.client_ssl_context())
    qort = QortClient(QortSettings.from_section("qort", sandbox.connector_settings()), http=http)
    try:
        for code in ("DEMO-001", "DEMO-002", "OTHER-001"):
            assert await qort.get_firm_packet(code) is not None
    finally:
        await qort.close()
    assert gets == [f"{sandbox.url}/qort?wsdl"]


async def test_the_password_is_never_logged(
    make_settings: Callable[..., QortSettings], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    gateway = QortClient(make_settings(keepalive=False))
    try:
        await gateway.connect()
        await gateway.get_firm_packet("DEMO-001")
    finally:
        await gateway.close()
    assert "qort-pass" not in caplog.text
    assert "qort-pass" not in repr(gateway.settings)


# --------------------------------------------------------------------------- the error table


async def test_faults_map_to_gateway_errors(client: QortClient, sandbox: QortSandbox) -> None:
    with pytest.raises(InvalidInput, match="QORT: unknown table 'Nope'") as raised:
        await client.export_records("Nope")
    assert raised.value.details["vendorCode"] == "VALIDATION"
    with pytest.raises(NotFound, match="no firm with BOCode 'NOPE'"):
        await client.upload_quik_limits("NOPE")
    assert await client.get_firm_packet("NOPE") is None
    with pytest.raises(Conflict, match="run enableTrading first") as conflict:
        await client.set_quik_leverage("DEMO-001-01", Decimal(10))
    assert conflict.value.details["vendorCode"] == "LEVERAGE_WITHOUT_UPLOAD"
    sandbox.fail_next(1)
    with pytest.raises(UpstreamUnavailable, match="QORT: the QORT server failed"):
        await client.get_firm_packet("DEMO-001")
    assert await client.get_firm_packet("DEMO-001") is not None


async def test_slow_qort_times_out(
    make_settings: Callable[..., QortSettings], sandbox: QortSandbox
) -> None:
    impatient = QortClient(make_settings(keepalive=False, timeout_seconds=0.2))
    try:
        await impatient.connect()
        sandbox.latency_seconds = 1.0
        with pytest.raises(UpstreamTimeout, match=r"\(GetFirmPacket\) did not answer in time"):
            await impatient.get_firm_packet("DEMO-001")
    finally:
        sandbox.latency_seconds = 0.0
        await impatient.close()


async def test_wrong_credentials_and_unreachable_qort(
    make_settings: Callable[..., QortSettings],
) -> None:
    stranger = QortClient(make_settings(password="wrong", keepalive=False))
    try:
        with pytest.raises(UpstreamRejected, match="INVALID_CREDENTIALS"):
            await stranger.get_firm_packet("DEMO-001")
    finally:
        await stranger.close()
    nowhere = QortClient(make_settings(url="https://127.0.0.1:9", keepalive=False))
    try:
        with pytest.raises(UpstreamUnavailable, match="cannot be reached"):
            await nowhere.get_firm_packet("DEMO-001")
    finally:
        await nowhere.close()


async def test_per_record_errors_carry_the_error_log(client: QortClient) -> None:
    firm = {"Name": "X", "FirmShortName": "X"}
    errors = await client.import_records(
        "Firms",
        [
            (ET_INSERT, {"BOCode": "DEMO-001", **firm}),
            (ET_INSERT, {"BOCode": "NEW-REC-1", **firm}),
            (ET_INSERT, {"BOCode": "bad code!", **firm}),
        ],
    )
    assert [(e.index, e.key) for e in errors] == [(0, "DEMO-001"), (2, "bad code!")]
    assert errors[0].error_log == "duplicate BOCode DEMO-001 in Firms"
    assert "BOCode must be a code" in errors[1].error_log
    packet = await client.get_firm_packet("NEW-REC-1")  # the good record was applied
    assert packet is not None
    errors = await client.import_records(
        "Subaccs", [(ET_INSERT, {"SubAccCode": "NEW-REC-1-01", "OwnerFirm_BOCode": "NO-FIRM"})]
    )
    assert errors[0].error_log == "unknown OwnerFirm_BOCode NO-FIRM"
    missing = await client.import_records("Firms", [(ET_UPDATE, {"BOCode": "NO-FIRM", **firm})])
    assert missing[0].error_log == "no Firms record with BOCode NO-FIRM"
    assert not await client.import_records("Firms", [(ET_DELETE, {"BOCode": "NEW-REC-1"})])


def test_record_errors_are_classified() -> None:
    duplicate = record_error([RecordError("Firms", 0, "duplicate BOCode A-1 in Firms", "A-1")])
    assert isinstance(duplicate, Conflict)
    assert duplicate.field == ("code",)
    assert duplicate.message == "QORT refused the record: Firms: duplicate BOCode A-1 in Firms"
    gone = [RecordError("Firms", 0, "no Firms record with BOCode A-1", "A-1")]
    assert isinstance(record_error(gone, missing_is_not_found="A-1"), NotFound)
    assert isinstance(record_error(gone), InvalidInput)  # an insert naming a missing code
    reference = record_error([RecordError("Subaccs", 0, "unknown OwnerFirm_BOCode B-2")])
    assert isinstance(reference, InvalidInput)
    assert reference.field == ("code",)
    value = record_error([RecordError("Firms", 0, "INN must have 10 or 12 digits, not 5")])
    assert isinstance(value, InvalidInput)
    assert value.field == ("taxId",)
    assert value.details["records"] == [
        {"table": "Firms", "index": 0, "errorLog": "INN must have 10 or 12 digits, not 5"}
    ]


async def test_https_with_the_ca_and_plain_http_only_when_allowed(sandbox: QortSandbox) -> None:
    """QORT's module is HTTPS-only (ARQA): the connector verifies it against ``ca_file``
    (the broker's CA; here the sandbox's), and speaks plain HTTP only if told to."""
    assert sandbox.url.startswith("https://")
    section = {k: v for k, v in sandbox.connector_settings().items() if k != "ca_file"}
    untrusted = QortClient(QortSettings.from_section("qort", {**section, "keepalive": False}))
    try:  # the system's trust store does not know the broker's CA
        with pytest.raises(UpstreamUnavailable, match="cannot be reached"):
            await untrusted.get_firm_packet("DEMO-001")
    finally:
        await untrusted.close()
    assert not sandbox.calls

    plain = QortSandbox()
    plain.plaintext = True
    async with plain:
        assert plain.url.startswith("http://")
        with pytest.raises(SettingsError, match=r"\[connectors.qort\] url is plain http://"):
            QortSettings.from_section("qort", {**section, "url": plain.url})
        allowed = QortClient(
            QortSettings.from_section("qort", {**plain.connector_settings(), "keepalive": False})
        )
        try:
            assert await allowed.get_firm_packet("DEMO-001") is not None
        finally:
            await allowed.close()


def test_settings_are_checked() -> None:
    read = functools.partial(QortSettings.from_section, "qort")
    with pytest.raises(ValueError, match=r"\[connectors.qort\] unknown keys \['colour'\]"):
        read({"url": "https://x", "login": "a", "password": "b", "colour": 1})
    with pytest.raises(ValueError, match="password is required"):
        read({"url": "https://x", "login": "a"})
    for key in ("url", "endpoint", "wsdl"):  # every URL the connector dials
        section = {"url": "https://x", "login": "a", "password": "b", key: "http://x/qort"}
        with pytest.raises(SettingsError, match=f"{key} is plain http://"):
            read(section)
    local = read({"url": "https://x", "login": "a", "password": "b", "wsdl": "/etc/qort.wsdl"})
    assert local.wsdl_location == "/etc/qort.wsdl"  # a local WSDL file is no URL
    settings = read({"url": "https://qort/", "login": "a", "password": "b"})
    assert (settings.endpoint_url, settings.wsdl_location) == (
        "https://qort/qort",
        "https://qort/qort?wsdl",
    )


async def test_waiters_share_a_failed_login() -> None:
    class Down(ScriptedBackend):
        async def login(self) -> LoginResult:
            self.logins += 1
            await asyncio.sleep(0.05)
            raise UpstreamUnavailable("QORT is unreachable")

    backend = Down()
    session = QortSession(backend)
    results = await asyncio.gather(*(session.token() for _ in range(20)), return_exceptions=True)
    assert all(isinstance(r, UpstreamUnavailable) for r in results)
    assert backend.logins == 1, "one attempt for the whole wave of requests"
    with pytest.raises(UpstreamUnavailable):  # a later request tries again
        await session.token()
    assert backend.logins == 2
