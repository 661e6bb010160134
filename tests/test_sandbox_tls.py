"""Sandboxes speak TLS as the vendors do; connectors verify it and refuse plain URLs.

Every sandbox serves ``https://`` (``wss://``) with the process's one throwaway CA;
a client trusting that CA gets through, one trusting the system store does not.
``TlsSettings`` is the connectors' side: a plain ``http://``/``ws://`` URL stops the
connector at start unless ``allow_plaintext`` says otherwise.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import brokergraph_ctrader.plugin
import httpx
import pytest
from brokergraph_ctrader.sandbox import CTraderSandbox
from brokergraph_ctrader.settings import CTraderSettings
from brokergraph_dxtrade.settings import DxTradeSettings
from brokergraph_qort.settings import QortSettings
from brokergraph_qst.settings import QstSettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.contract import SettingsError, TlsSettings
from gateway.contract.sandbox import ASGIApp, AsgiSandbox, sandbox_certificate
from gateway.testing import open_test_gateway


class CountingSandbox(AsgiSandbox):
    """One counted write, to see over TLS whether a request was applied."""

    name: ClassVar[str] = "counting"
    display_name: ClassVar[str] = "the counting sandbox"

    def __init__(self) -> None:
        super().__init__()
        self.applied = 0

    def asgi_app(self) -> ASGIApp:
        async def write(request: Request) -> Response:
            self.applied += 1
            return JSONResponse({"applied": self.applied})

        return Starlette(routes=[Route("/write", write, methods=["POST"])])

    def connector_settings(self) -> Mapping[str, Any]:
        return {"url": self.url, **self.tls_settings()}


@dataclass(frozen=True, slots=True, kw_only=True)
class AcmeSettings(TlsSettings):
    url: str
    feed_url: str | None = None

    url_settings: ClassVar[tuple[str, ...]] = ("url", "feed_url")


def read(**section: Any) -> AcmeSettings:
    return AcmeSettings.from_section("acme", section)


async def test_a_sandbox_serves_https_that_only_its_ca_opens() -> None:
    async with CountingSandbox() as sandbox:
        assert sandbox.url.startswith("https://127.0.0.1:")
        settings = read(**sandbox.connector_settings())
        async with httpx.AsyncClient(base_url=sandbox.url, verify=settings.ssl_context()) as http:
            assert (await http.post("/write")).json() == {"applied": 1}
        # The system's trust store does not know the throwaway CA: a connector that
        # forgot its ca_file fails here as it would against a broker's private CA.
        async with httpx.AsyncClient(base_url=sandbox.url) as http:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await http.post("/write")
        # Plain HTTP to the TLS port is no request at all.
        plain = sandbox.url.replace("https://", "http://")
        async with httpx.AsyncClient(base_url=plain) as http:
            with pytest.raises(httpx.HTTPError):
                await http.post("/write")
        assert sandbox.applied == 1


async def test_the_knobs_work_over_tls() -> None:
    async with CountingSandbox() as sandbox:
        async with httpx.AsyncClient(
            base_url=sandbox.url, verify=sandbox.client_ssl_context()
        ) as http:
            sandbox.fail_next(1, 503)
            assert (await http.post("/write")).status_code == 503
            sandbox.drop_next(1, after_apply=True)
            with pytest.raises(httpx.RemoteProtocolError):
                await http.post("/write")
            assert (await http.post("/write")).json() == {"applied": 2}
        assert sandbox.applied == 2


async def test_one_ca_per_process_shared_by_every_sandbox() -> None:
    async with CountingSandbox() as first, CountingSandbox() as second:
        assert first.certificate is second.certificate is sandbox_certificate()
        assert first.tls_settings() == second.tls_settings()
        certificate = sandbox_certificate()
        assert certificate.client_context() is first.client_ssl_context()
        assert certificate.server_context() is certificate.server_context()
        assert certificate.key_file.parent.stat().st_mode & 0o077 == 0  # private directory


async def test_plain_http_only_when_asked_on_both_sides() -> None:
    sandbox = CountingSandbox()
    sandbox.plaintext = True
    async with sandbox:
        assert sandbox.url.startswith("http://127.0.0.1:")
        assert sandbox.certificate is None
        assert sandbox.tls_settings() == {"allow_plaintext": True}
        settings = read(**sandbox.connector_settings())
        async with httpx.AsyncClient(base_url=settings.url) as http:
            assert (await http.post("/write")).json() == {"applied": 1}


@pytest.mark.parametrize(
    ("section", "named"),
    [
        ({"url": "http://vendor.example"}, "[connectors.acme] url is plain http://"),
        ({"url": "ws://vendor.example/"}, "[connectors.acme] url is plain ws://"),
        (
            {"url": "https://vendor.example", "feed_url": "HTTP://feed.example"},
            "[connectors.acme] feed_url is plain http://",
        ),
        ({"url": "https://v.example", "ca_file": "/nonexistent/ca.pem"}, "is not a file"),
    ],
    ids=["http", "ws", "second-url", "missing-ca"],
)
def test_settings_refuse_a_plain_url_or_a_missing_ca(section: dict[str, Any], named: str) -> None:
    with pytest.raises(SettingsError) as refused:
        read(**section)
    assert named in str(refused.value)


def test_settings_refuse_contradictions_and_non_pem(tmp_path: Path) -> None:
    ca = str(sandbox_certificate().ca_file)
    with pytest.raises(SettingsError, match="ca_file is set but verify_tls is false"):
        read(url="https://v.example", ca_file=ca, verify_tls=False)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(SettingsError, match="holds no PEM certificate"):
        read(url="https://v.example", ca_file=str(junk))


def test_settings_defaults_verify_and_plain_urls_pass_when_allowed() -> None:
    default = read(url="https://vendor.example")
    assert (default.verify_tls, default.ca_file, default.allow_plaintext) == (True, None, False)
    context = default.ssl_context()
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, True)
    relaxed = read(url="https://vendor.example", verify_tls=False)
    assert relaxed.ssl_context().verify_mode == ssl.CERT_NONE
    allowed = read(url="http://127.0.0.1:9", feed_url="ws://127.0.0.1:9", allow_plaintext=True)
    assert allowed.url == "http://127.0.0.1:9"
    # A URL-less value (a local file) is not a URL to refuse.
    assert read(url="https://v.example", feed_url="/etc/feed.wsdl").feed_url == "/etc/feed.wsdl"


async def test_a_connector_given_a_plain_url_refuses_to_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The gateway keeps running, the connector is DOWN with the reason, nothing is sent."""
    caplog.set_level(logging.ERROR)
    async with CTraderSandbox() as sandbox:
        plain = {"ctrader": {"url": sandbox.url.replace("https://", "http://")}}
        async with open_test_gateway(
            brokergraph_ctrader.plugin, [sandbox], tmp_path, connector_settings=plain
        ) as gateway:
            data = await gateway.data("{ connectors { name health { status } } }")
        assert data["connectors"] == [{"name": "ctrader", "health": {"status": "DOWN"}}]
        assert not sandbox.calls
    assert "[connectors.ctrader] url is plain http:// (no TLS)" in caplog.text


@pytest.mark.parametrize(
    ("settings", "section", "key"),
    [
        (CTraderSettings, {"login": 1, "password": "p", "broker_name": "B"}, "reporting_url"),
        (DxTradeSettings, {"username": "u", "password": "p"}, "dxfeed_url"),
        (QortSettings, {"login": "u", "password": "p"}, "endpoint"),
        (QstSettings, {"username": "u", "password": "p", "client_unique_id": "c"}, "url"),
    ],
)
def test_every_connector_refuses_a_plain_url_it_dials(
    settings: type[TlsSettings], section: dict[str, Any], key: str
) -> None:
    secure = "wss://v.example/" if settings is QstSettings else "https://v.example"
    settings.from_section("x", {"url": secure, **section})  # the TLS URL is fine
    plain = "ws://v.example/" if settings is QstSettings else "http://v.example"
    with pytest.raises(SettingsError, match=f"{key} is plain"):
        settings.from_section("x", {"url": secure, **section, key: plain})
    allowed = settings.from_section(
        "x", {"url": secure, **section, key: plain, "allow_plaintext": True}
    )
    assert allowed.ssl_context().verify_mode == ssl.CERT_REQUIRED
