"""The HTTP client of cTrader WebServices (``/v2/webserv/…``) and cTID (``/cid/ctid/…``).

* Authentication: ``POST /v2/webserv/managers/token`` with the manager login and the
  lowercase MD5 hex of its password gives a ``webservToken``, sent as ``?token=`` on
  every other call (A2).  The token never expires but dies when the manager password
  changes: a 403 answered to a token we hold makes the client fetch a new token
  once and repeat the call (the call was refused, so repeating it is safe).  One
  :class:`~gateway.contract.TokenSession` makes concurrent requests share one login.
* Every request says ``Accept: application/json``: without it the server answers XML.
* The two CSV grids come back as text; everything else is JSON.
* Vendor errors (``{"error": {"errorCode", "description"}}``) become
  :mod:`gateway.contract` errors through one table, :data:`ERRORS` (a
  :class:`~gateway.contract.VendorErrorTable`); transport failures through
  :func:`~gateway.contract.transport_error`.  The vendor's ``description`` is never
  copied into a client-visible message.
* Bodies are written and read with exact decimals (``exact_json_dumps`` /
  ``exact_json_loads``): money never passes through a float.
* The Reporting API's balance/bonus-history snapshots (:mod:`brokergraph_ctrader.reporting`,
  protobuf, no token: the IP allow-list is their guard) are read with
  :meth:`WebServicesClient.snapshot`, at most 2 at once (cTrader's limit per server)
  and with at least 20 s to answer.
* The token travels in the URL, so the client adds a filter to the ``httpx`` logger
  that blanks ``token=…`` in its request lines, and no error or log of ours carries
  a URL; the manager password is only ever held as its MD5 hash and never logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import ssl
from collections.abc import Mapping
from typing import Any

import httpx

from brokergraph_ctrader.reporting import HistoryEntry, decode_snapshot
from gateway.contract import (
    BrokerGraphError,
    Conflict,
    InsufficientFunds,
    InvalidInput,
    IssuedToken,
    NotFound,
    Outcome,
    ProtocolError,
    RateLimited,
    TokenSession,
    UpstreamRejected,
    UpstreamUnavailable,
    VendorError,
    VendorErrorTable,
    exact_json_dumps,
    exact_json_loads,
    transport_error,
    upstream_client,
)

__all__ = ["ERRORS", "WebServicesClient", "error_for", "md5_hex"]

PLATFORM = "ctrader"
TOKEN_PATH = "/v2/webserv/managers/token"
#: The Reporting API serves at most 2 snapshot requests at once and asks for a
#: timeout of at least 20 s (vendor notes A9).
SNAPSHOT_CONCURRENCY = 2
SNAPSHOT_TIMEOUT_SECONDS = 20.0


def md5_hex(secret: str) -> str:
    """The lowercase MD5 hex digest cTrader wants for every password (A2, A8)."""
    return hashlib.md5(secret.encode("utf-8"), usedforsecurity=False).hexdigest()


#: cTrader's error answers (``{"error": {"errorCode", "description"}}``) as data.
#: Every ``errorCode`` below is a refusal: cTrader applied nothing (NOT_APPLIED).
#: Codes absent here fall back on the HTTP status.  Choices worth a word:
#:
#: * ``NOT_ENOUGH_RIGHTS`` is UpstreamRejected, not PermissionDenied: it judges the
#:   gateway's *manager* credential (its groups and brokers), not the GraphQL viewer,
#:   whose rights the gateway already checked.  Telling a client "permission denied"
#:   would send them to the wrong person; an operator must widen the manager's scope.
#: * ``TRADER_GROUP_NOT_FOUND`` names the field ``group``; the connector checks
#:   groups before writing, so it only shows if a group vanished meanwhile.
#: * Any 5xx is UpstreamUnavailable with outcome UNKNOWN, writes included: a 5xx
#:   after the request was sent does not mean cTrader did nothing.  Money writes
#:   carry our idempotency key as ``externalId``, but that cTrader answers a repeated
#:   ``externalId`` with the first operation is only *inferred* in the vendor notes
#:   (``../shared/vendors/``, tagged [I]); the sandbox does it, nothing relies on it
#:   for safety.
#: * The vendor's ``description`` is never copied into a client-visible message;
#:   ``details.vendorCode`` carries the code (``HTTP_<status>`` when there is none).
ERRORS = VendorErrorTable(
    platform=PLATFORM,
    vendor="cTrader",
    codes={
        "TRADER_NOT_FOUND": VendorError(NotFound, "cTrader has no such trader", "accountId"),
        "NOT_ENOUGH_MONEY": VendorError(
            InsufficientFunds, "cTrader refused the debit: not enough free funds", "amount"
        ),
        "CHANGE_BALANCE_BAD_AMOUNT": VendorError(
            InvalidInput,
            "cTrader refused the amount (it must be > 0 and fit the account)",
            "amount",
        ),
        "INVALID_REQUEST": VendorError(InvalidInput, "cTrader refused the request as invalid"),
        "TRADER_GROUP_NOT_FOUND": VendorError(InvalidInput, "cTrader has no such group", "group"),
        "CH_BROKER_NOT_FOUND": VendorError(
            InvalidInput, "cTrader does not know the configured broker (brokerName)", "brokerName"
        ),
        "CH_PLANT_INVALID": VendorError(
            InvalidInput, "the broker (brokerName) is not on this cTrader plant", "brokerName"
        ),
        "WRONG_PASSWORD": VendorError(
            InvalidInput, "the trader password does not match", "password"
        ),
        "CH_EMAIL_ALREADY_EXISTS": VendorError(
            Conflict, "cTrader already has a user with this email"
        ),
        "TRADER_ALREADY_LINKED": VendorError(Conflict, "the trader is already linked to a user"),
        "NOT_ENOUGH_RIGHTS": VendorError(
            UpstreamRejected, "cTrader refused the gateway's manager (rights, groups or IP)"
        ),
        "REQUEST_FREQUENCY_EXCEEDED": VendorError(
            RateLimited, "cTrader's hourly write limit is reached; retry later", retry_after=60.0
        ),
    },
    # For codes the table does not name (UNKNOWN_ERROR, none at all …).
    statuses={
        404: VendorError(NotFound, "cTrader refused the {what} ({status})"),
        429: VendorError(RateLimited, "cTrader refused the {what} ({status})", retry_after=60.0),
    },
    server_error=VendorError(
        UpstreamUnavailable, "cTrader failed ({status})", outcome=Outcome.UNKNOWN
    ),
    fallback=VendorError(UpstreamRejected, "cTrader refused the {what} ({status})"),
)


def error_for(status: int, code: str | None) -> BrokerGraphError:
    """The gateway error for a cTrader error answer (``code`` may be unknown or absent)."""
    return ERRORS.error(code=code or f"HTTP_{status}", status=status)


class _RedactToken(logging.Filter):
    """Blanks ``token=…`` in records of the ``httpx`` logger (it logs every URL)."""

    PATTERN = re.compile(r"(token=)[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(
                self.PATTERN.sub(r"\1***", str(a)) if "token=" in str(a) else a
                for a in (record.args if isinstance(record.args, tuple) else (record.args,))
            )
        if isinstance(record.msg, str) and "token=" in record.msg:
            record.msg = self.PATTERN.sub(r"\1***", record.msg)
        return True


def _install_redaction() -> None:
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactToken) for f in logger.filters):
        logger.addFilter(_RedactToken())


class WebServicesClient:
    """One manager session (one token) on one cTrader server, shared by all requests."""

    def __init__(
        self,
        base_url: str,
        *,
        manager_login: int,
        manager_password: str,
        timeout_seconds: float = 10.0,
        max_connections: int = 20,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        """``verify``: the TLS context checking cTrader (``CTraderSettings.ssl_context()``)."""
        self._base_url = base_url.rstrip("/")
        self._verify = verify
        self._login = manager_login
        self._password_hash = md5_hex(manager_password)
        self._timeout = timeout_seconds
        self._max_connections = max_connections
        self._http: httpx.AsyncClient | None = None
        # The token never expires on its own (A2): no expiry, renewed only when refused.
        self._session = TokenSession(self._issue_token)
        self._snapshots = asyncio.Semaphore(SNAPSHOT_CONCURRENCY)
        #: Upstream requests sent (token calls included), for tests and metrics.
        self.requests_sent = 0

    async def start(self) -> None:
        _install_redaction()
        self._http = upstream_client(
            base_url=self._base_url,
            timeout=self._timeout,
            headers={"Accept": "application/json"},
            limits=httpx.Limits(max_connections=self._max_connections),
            verify=self._verify,
        )

    async def close(self) -> None:
        self._session.forget()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- transport -----------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        body: Mapping[str, Any] | None,
    ) -> httpx.Response:
        if self._http is None:
            raise UpstreamUnavailable("the cTrader connector is not started")
        headers = {"Content-Type": "application/json"} if body is not None else None
        content = exact_json_dumps(body) if body is not None else None
        self.requests_sent += 1
        try:
            return await self._http.request(
                method, path, params=params, content=content, headers=headers
            )
        except httpx.TransportError as error:
            # Never the URL: its query carries the token.
            raise transport_error(error, platform=PLATFORM, vendor="cTrader") from None

    @staticmethod
    def _error(response: httpx.Response) -> BrokerGraphError:
        code: str | None = None
        try:
            data = response.json()
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            value = data["error"].get("errorCode")
            code = value if isinstance(value, str) else None
        return error_for(response.status_code, code)

    async def _issue_token(self) -> IssuedToken:
        body = {"login": self._login, "hashedPassword": self._password_hash}
        response = await self._send("POST", TOKEN_PATH, None, body)
        if not response.is_success:
            error = self._error(response)
            if response.status_code < 500:
                raise UpstreamRejected(
                    "cTrader refused the manager credentials",
                    details={"platform": PLATFORM, "vendorCode": error.details["vendorCode"]},
                )
            raise error
        token = _json(response).get("webservToken") if response.content else None
        if not isinstance(token, str) or not token:
            raise ProtocolError("cTrader's token answer has no webservToken")
        return IssuedToken(token)

    async def token(self, *, stale: str | None = None) -> str:
        """The manager token; ``stale`` names one that was refused, to fetch a new one."""
        return await self._session.token(stale=stale)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        text: bool = False,
    ) -> Any:
        """One call with the token; the decoded JSON (None when empty), or the text grid."""
        token = await self.token()
        response = await self._send(method, path, {**(params or {}), "token": token}, body)
        if response.status_code == 403:
            # A stale token (manager password changed) and a real refusal look alike:
            # fetch a token once and repeat; a second 403 is a real refusal.
            fresh = await self.token(stale=token)
            response = await self._send(method, path, {**(params or {}), "token": fresh}, body)
        if not response.is_success:
            raise self._error(response)
        if text:
            media = response.headers.get("content-type", "")
            if "xml" in media:
                raise ProtocolError("cTrader answered XML where a CSV grid was expected")
            return response.text
        if not response.content or not response.content.strip():
            return None
        return _json(response)

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        return await self.request("GET", path, params=params)

    async def get_text(self, path: str, params: Mapping[str, str] | None = None) -> str:
        result: str = await self.request("GET", path, params=params, text=True)
        return result

    async def snapshot(
        self, base_url: str, path: str, params: Mapping[str, str]
    ) -> list[HistoryEntry]:
        """One Reporting API history snapshot from ``base_url`` (no token)."""
        if self._http is None:
            raise UpstreamUnavailable("the cTrader connector is not started")
        timeout = max(self._timeout, SNAPSHOT_TIMEOUT_SECONDS)
        async with self._snapshots:
            self.requests_sent += 1
            try:
                response = await self._http.get(
                    base_url.rstrip("/") + path, params=params, timeout=timeout
                )
            except httpx.TransportError as error:
                raise transport_error(error, platform=PLATFORM, vendor="cTrader") from None
        if not response.is_success:
            raise self._error(response)
        if "protobuf" not in response.headers.get("content-type", ""):
            raise ProtocolError("cTrader's Reporting API answered something other than protobuf")
        try:
            return decode_snapshot(response.content)
        except ValueError:
            raise ProtocolError("cTrader's Reporting API answered a malformed snapshot") from None

    async def post(self, path: str, body: Mapping[str, Any]) -> Any:
        return await self.request("POST", path, body=body)

    async def patch(self, path: str, body: Mapping[str, Any]) -> Any:
        return await self.request("PATCH", path, body=body)


def _json(response: httpx.Response) -> Any:
    media = response.headers.get("content-type", "")
    if "xml" in media:
        raise ProtocolError("cTrader answered XML although JSON was asked for")
    try:
        # Numbers with a fraction stay exact: no float ever enters the connector.
        return exact_json_loads(response.content)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than json allows
        raise ProtocolError("cTrader answered something that is not JSON") from None
