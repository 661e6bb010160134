"""The HTTP client of cTrader WebServices (``/v2/webserv/…``) and cTID (``/cid/ctid/…``).

* Authentication: ``POST /v2/webserv/managers/token`` with the manager login and the
  lowercase MD5 hex of its password gives a ``webservToken``, sent as ``?token=`` on
  every other call (A2).  The token never expires but dies when the manager password
  changes: a 403 answered to a token we hold makes the client fetch a new token
  once and repeat the call (the call was refused, so repeating it is safe).
* Every request says ``Accept: application/json``: without it the server answers XML.
* The two CSV grids come back as text; everything else is JSON.
* Vendor errors (``{"error": {"errorCode", "description"}}``) become
  :mod:`gateway.contract` errors through one table, :data:`ERRORS`.  The vendor's
  ``description`` is never copied into a client-visible message.
* The token travels in the URL, so the client adds a filter to the ``httpx`` logger
  that blanks ``token=…`` in its request lines; the manager password is only ever
  held as its MD5 hash and never logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from gateway.contract import (
    BrokerGraphError,
    Conflict,
    InsufficientFunds,
    InvalidInput,
    NotFound,
    ProtocolError,
    RateLimited,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)

__all__ = [
    "ERRORS",
    "WebServicesClient",
    "error_for",
    "md5_hex",
]

PLATFORM = "ctrader"
TOKEN_PATH = "/v2/webserv/managers/token"


def md5_hex(secret: str) -> str:
    """The lowercase MD5 hex digest cTrader wants for every password (A2, A8)."""
    return hashlib.md5(secret.encode("utf-8"), usedforsecurity=False).hexdigest()


@dataclass(frozen=True, slots=True)
class ErrorRule:
    error: type[BrokerGraphError]
    message: str
    field: str | None = None


#: cTrader ``errorCode`` -> our error.  Codes absent here fall back on the HTTP status
#: (:data:`STATUS_ERRORS`).  Choices worth a word:
#:
#: * ``NOT_ENOUGH_RIGHTS`` is UpstreamRejected, not PermissionDenied: it judges the
#:   gateway's *manager* credential (its groups and brokers), not the GraphQL viewer,
#:   whose rights the gateway already checked.  Telling a client "permission denied"
#:   would send them to the wrong person; an operator must widen the manager's scope.
#: * ``TRADER_GROUP_NOT_FOUND`` names the field ``group``; the connector checks
#:   groups before writing, so it only shows if a group vanished meanwhile.
#: * A 5xx is UpstreamUnavailable even for writes: money writes carry our idempotency
#:   key as ``externalId`` and cTrader answers a repeat with the first operation, so
#:   letting the caller retry cannot move money twice.
ERRORS: Mapping[str, ErrorRule] = {
    "TRADER_NOT_FOUND": ErrorRule(NotFound, "cTrader has no such trader", "accountId"),
    "NOT_ENOUGH_MONEY": ErrorRule(
        InsufficientFunds, "cTrader refused the debit: not enough free funds", "amount"
    ),
    "CHANGE_BALANCE_BAD_AMOUNT": ErrorRule(
        InvalidInput, "cTrader refused the amount (it must be > 0 and fit the account)", "amount"
    ),
    "INVALID_REQUEST": ErrorRule(InvalidInput, "cTrader refused the request as invalid"),
    "TRADER_GROUP_NOT_FOUND": ErrorRule(InvalidInput, "cTrader has no such group", "group"),
    "CH_BROKER_NOT_FOUND": ErrorRule(
        InvalidInput, "cTrader does not know the configured broker (brokerName)", "brokerName"
    ),
    "CH_PLANT_INVALID": ErrorRule(
        InvalidInput, "the broker (brokerName) is not on this cTrader plant", "brokerName"
    ),
    "WRONG_PASSWORD": ErrorRule(InvalidInput, "the trader password does not match", "password"),
    "CH_EMAIL_ALREADY_EXISTS": ErrorRule(Conflict, "cTrader already has a user with this email"),
    "TRADER_ALREADY_LINKED": ErrorRule(Conflict, "the trader is already linked to a user"),
    "NOT_ENOUGH_RIGHTS": ErrorRule(
        UpstreamRejected, "cTrader refused the gateway's manager (rights, groups or IP)"
    ),
    "REQUEST_FREQUENCY_EXCEEDED": ErrorRule(
        RateLimited, "cTrader's hourly write limit is reached; retry later"
    ),
}

#: HTTP status -> our error, for codes the table does not name (UNKNOWN_ERROR …).
STATUS_ERRORS: Mapping[int, type[BrokerGraphError]] = {
    400: UpstreamRejected,
    401: UpstreamRejected,
    403: UpstreamRejected,
    404: NotFound,
    429: RateLimited,
}


def error_for(status: int, code: str | None) -> BrokerGraphError:
    """The gateway error for a cTrader error answer (``code`` may be unknown or absent)."""
    details: dict[str, Any] = {"platform": PLATFORM, "vendorCode": code or f"HTTP_{status}"}
    rule = ERRORS.get(code or "")
    if rule is not None:
        field = [rule.field] if rule.field else None
        if rule.error is RateLimited:
            return RateLimited(rule.message, retry_after=60.0, field=field, details=details)
        return rule.error(rule.message, field=field, details=details)
    if status >= 500:
        return UpstreamUnavailable(f"cTrader failed ({status})", details=details)
    cls = STATUS_ERRORS.get(status, UpstreamError)
    return cls(f"cTrader refused the request ({status})", details=details)


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


def dumps(body: Mapping[str, Any]) -> bytes:
    """JSON with ``Decimal`` values written as exact number literals (never via float)."""
    literals: dict[str, str] = {}

    def encode(value: Any) -> Any:
        if isinstance(value, Decimal):
            marker = f"@@{uuid.uuid4().hex}@@"
            literals[marker] = format(value, "f")
            return marker
        if isinstance(value, Mapping):
            return {k: encode(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [encode(v) for v in value]
        return value

    text = json.dumps(encode(body), separators=(",", ":"))
    for marker, literal in literals.items():
        text = text.replace(f'"{marker}"', literal)
    return text.encode("utf-8")


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
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._login = manager_login
        self._password_hash = md5_hex(manager_password)
        self._timeout = timeout_seconds
        self._max_connections = max_connections
        self._http: httpx.AsyncClient | None = None
        self._token: str | None = None
        self._token_lock = asyncio.Lock()
        #: Upstream requests sent (token calls included), for tests and metrics.
        self.requests_sent = 0

    async def start(self) -> None:
        _install_redaction()
        self._http = httpx.AsyncClient(
            base_url=self._base_url,
            timeout=self._timeout,
            headers={"Accept": "application/json"},
            limits=httpx.Limits(max_connections=self._max_connections),
        )

    async def close(self) -> None:
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
        content = dumps(body) if body is not None else None
        self.requests_sent += 1
        try:
            return await self._http.request(
                method, path, params=params, content=content, headers=headers
            )
        except httpx.TimeoutException:
            raise UpstreamTimeout(
                "cTrader did not answer in time", details={"platform": PLATFORM}
            ) from None
        except httpx.TransportError:
            raise UpstreamUnavailable(
                "cTrader cannot be reached", details={"platform": PLATFORM}
            ) from None

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

    async def token(self, *, stale: str | None = None) -> str:
        """The manager token; ``stale`` names one that was refused, to fetch a new one."""
        async with self._token_lock:
            if self._token is not None and self._token != stale:
                return self._token
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
            self._token = token
            return token

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
        return json.loads(response.content, parse_float=Decimal)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than json allows
        raise ProtocolError("cTrader answered something that is not JSON") from None
