"""The HTTP client of DXtrade's two REST surfaces (vendor notes B2, B3, B5, B7).

* ``/dxweb/rest`` (DxRegister: users, accounts, cash, credit) and ``/dxsca-web``
  (trading and reporting reads) live on one host.  Each surface gets its own session:
  ``POST {surface}/login`` with ``{username, domain, password}`` gives a
  ``sessionToken`` and its lifetime in milliseconds, sent as ``Authorization: DXAPI
  <token>`` on every call.  A session close to its end is extended with ``POST
  {surface}/ping`` (falling back to a fresh login), and a 401 answered to a token we
  hold makes the client log in again once and repeat the call: the call was refused,
  so repeating it is safe even for a write.
* Reads on ``/dxsca-web`` are limited to ``reads_per_second`` per session (10 by
  default, B7) by a small sliding-window limiter, so a batch of loader calls never
  trips the platform's 429.  A 429 that happens anyway is retried once for a read,
  after ``Retry-After``.
* Query parameters are kebab-case (``include-positions``, ``time-from``) and the
  ``clearingCode:accountCode`` path segment is URL-encoded (``default%3Aalice-usd``).
* Amounts travel as plain JSON numbers: requests are encoded by :func:`dumps` (Decimal
  written exactly, never through float) and responses decoded with ``Decimal`` floats.
* Vendor errors (dxweb ``{errorCode:int, errorMessage, errorId}``, dxsca ``{errorCode:str,
  description}``) become :mod:`gateway.contract` errors through one table,
  :func:`error_for`.  The vendor's text is logged, never copied into a client-visible
  message.  The password and session tokens are never logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, Literal
from urllib.parse import quote

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
    "DXSCA",
    "DXWEB",
    "DxTradeClient",
    "ReadLimiter",
    "Response",
    "account_segment",
    "dumps",
    "error_for",
    "loads",
    "segment",
]

PLATFORM = "dxtrade"
Surface = Literal["/dxweb/rest", "/dxsca-web"]
DXWEB: Final[Surface] = "/dxweb/rest"
DXSCA: Final[Surface] = "/dxsca-web"
#: Extend a session when less than this is left of it.
RENEW_MARGIN_SECONDS = 60.0
#: The vendor's code for "insufficient balance" on a withdrawal (HTTP 422, B3/B7).
INSUFFICIENT_BALANCE = 30005
MAX_RETRY_AFTER_SECONDS = 5.0
LIMIT_WINDOW_SECONDS = 1.05

logger = logging.getLogger("brokergraph_dxtrade.client")


# --------------------------------------------------------------------------- encoding


def dumps(value: Any) -> bytes:
    """JSON with ``Decimal`` written as an exact number (``json`` would refuse it)."""
    return _encode(value).encode("utf-8")


def _encode(value: Any) -> str:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("a non-finite Decimal cannot be sent")
        return format(value, "f")
    if isinstance(value, Mapping):
        items = (f"{json.dumps(str(k))}:{_encode(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_encode(v) for v in value) + "]"
    return json.dumps(value)


def loads(content: bytes) -> Any:
    """JSON with every non-integer number as ``Decimal`` (money is never a float)."""
    return json.loads(content, parse_float=Decimal)


def segment(value: str) -> str:
    """One URL path segment, with ``/``, ``:`` and ``@`` encoded too."""
    return quote(value, safe="")


def account_segment(clearing_code: str, account_code: str) -> str:
    """The dxsca-web account id ``clearingCode:accountCode`` as a path segment (B1, B7)."""
    return segment(f"{clearing_code}:{account_code}")


# --------------------------------------------------------------------------- errors


def _vendor_code(body: Any) -> int | str | None:
    if isinstance(body, Mapping):
        code = body.get("errorCode")
        if isinstance(code, int | str) and not isinstance(code, bool):
            return code
    return None


def error_for(
    status: int, body: Any, *, what: str, retry_after: float | None = None
) -> BrokerGraphError:
    """The gateway error of a DXtrade error answer (``what`` names the call for the message).

    The table, and the choices worth a word:

    ======================  ==========================================================
    404                     NotFound (unknown user, account, or cash record)
    409                     Conflict (login/accountCode taken, cash ``{id}`` reused with
                            another body, ``orderCode`` reused)
    412                     Conflict (``If-Match`` ETag is stale: someone changed it)
    422 + ``30005``         InsufficientFunds (withdrawal above the withdrawable amount)
    400, other 422          InvalidInput (the platform refused the values)
    401                     UpstreamRejected: after one re-login the *gateway's* DXtrade
                            credential is still refused.  Not Unauthenticated/
                            PermissionDenied: those judge the GraphQL viewer, whose
                            rights the gateway already checked; an operator must fix the
                            connector's credential, and the client cannot.
    403                     UpstreamRejected, same reason: the CRM service account lacks a
                            DXtrade permission (e.g. register/update users).
    429                     RateLimited (``retryAfter`` from the header)
    5xx                     UpstreamUnavailable (not applied: money writes carry our
                            client-generated id, so a retry is deduplicated by DXtrade)
    ======================  ==========================================================
    """
    code = _vendor_code(body)
    details: dict[str, Any] = {"platform": PLATFORM, "status": status}
    if code is not None:
        details["vendorCode"] = code
    if status == 404:
        return NotFound(f"DXtrade does not know this {what}", details=details)
    if status in (409, 412):
        reason = (
            "was changed by someone else meanwhile (stale ETag); read it again"
            if status == 412
            else "conflicts with the platform's current state (duplicate code or id)"
        )
        return Conflict(f"DXtrade: the {what} {reason}", details=details)
    if status == 422 and str(code) == str(INSUFFICIENT_BALANCE):
        return InsufficientFunds(
            "DXtrade refused the debit: insufficient withdrawable balance; nothing moved",
            details=details,
        )
    if status in (400, 422):
        return InvalidInput(f"DXtrade refused the values of the {what}", details=details)
    if status == 401:
        return UpstreamRejected(
            "DXtrade refused the gateway's credentials (check the connector's username, "
            "domain and password)",
            details=details,
        )
    if status == 403:
        return UpstreamRejected(
            f"DXtrade does not permit the gateway's service account to perform this {what}",
            details=details,
        )
    if status == 429:
        return RateLimited("DXtrade's rate limit was reached", retry_after=retry_after)
    if status >= 500:
        return UpstreamUnavailable(f"DXtrade failed to serve the {what}", details=details)
    return UpstreamError(f"DXtrade answered {status} to the {what}", details=details)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


# --------------------------------------------------------------------------- limiter


class ReadLimiter:
    """At most ``rate`` acquisitions in any sliding ``window`` seconds (FIFO, fair)."""

    def __init__(self, rate: int, window: float = 1.0) -> None:
        if rate < 1:
            raise ValueError(f"rate must be >= 1, got {rate!r}")
        self.rate = rate
        self.window = window
        self._stamps: deque[float] = deque()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                while self._stamps and now - self._stamps[0] >= self.window:
                    self._stamps.popleft()
                if len(self._stamps) < self.rate:
                    self._stamps.append(now)
                    return
                await asyncio.sleep(self.window - (now - self._stamps[0]))


# --------------------------------------------------------------------------- sessions


@dataclass(slots=True)
class _Session:
    surface: Surface
    token: str | None = None
    expires_at: float = 0.0
    lock: asyncio.Lock | None = None


@dataclass(frozen=True, slots=True)
class Response:
    """A decoded 2xx answer: its status, JSON body (``None`` when empty) and ETag."""

    status: int
    body: Any
    etag: str | None


class DxTradeClient:
    """One DXtrade host: sessions on both surfaces, a read limiter, the error table."""

    def __init__(
        self,
        *,
        base_url: str,
        username: str,
        domain: str,
        password: str,
        timeout_seconds: float = 10.0,
        reads_per_second: int = 10,
        dxfeed_url: str | None = None,
        dxfeed_token: str | None = None,
    ) -> None:
        self._username = username
        self._domain = domain
        self._password = password
        self._dxfeed_token = dxfeed_token
        self._dxfeed_url = (dxfeed_url or base_url).rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout_seconds),
            headers={"Accept": "application/json"},
            follow_redirects=False,
        )
        self._sessions: dict[str, _Session] = {
            DXWEB: _Session(DXWEB),
            DXSCA: _Session(DXSCA),
        }
        # A little slack over the platform's one-second window absorbs network jitter.
        self.limiter = ReadLimiter(reads_per_second, window=LIMIT_WINDOW_SECONDS)

    async def close(self) -> None:
        await self._http.aclose()

    # -- sessions -----------------------------------------------------------------------

    async def _token(self, session: _Session, *, stale: str | None = None) -> str:
        """A valid token of ``session``; ``stale`` is a token the platform just refused."""
        if session.lock is None:
            session.lock = asyncio.Lock()
        async with session.lock:
            if session.token is not None and session.token != stale:
                if time.monotonic() < session.expires_at - RENEW_MARGIN_SECONDS:
                    return session.token
                if stale is None and time.monotonic() < session.expires_at:
                    await self._ping(session)
                    if session.token is not None:
                        return session.token
            await self._login(session)
            assert session.token is not None
            return session.token

    def _adopt(self, session: _Session, body: Any, what: str) -> None:
        if not isinstance(body, Mapping) or not isinstance(body.get("sessionToken"), str):
            raise ProtocolError(f"DXtrade's {what} answer has no sessionToken")
        timeout_ms = body.get("timeout")
        try:
            lifetime = float(timeout_ms) / 1000 if timeout_ms is not None else 1800.0
        except (TypeError, ValueError):
            lifetime = 1800.0  # the PHP SDK types it as a string; a probe saw 30 min
        session.token = body["sessionToken"]
        session.expires_at = time.monotonic() + max(lifetime, 1.0)

    async def _login(self, session: _Session) -> None:
        payload = {"username": self._username, "domain": self._domain, "password": self._password}
        response = await self._send("POST", f"{session.surface}/login", content=dumps(payload))
        if response.status_code != 200:
            body = _decode_error(response)
            logger.warning(
                "DXtrade %s login refused: status=%s code=%s",
                session.surface,
                response.status_code,
                _vendor_code(body),
            )
            session.token = None
            raise error_for(response.status_code, body, what="login")
        self._adopt(session, _decode(response, "login"), "login")

    async def _ping(self, session: _Session) -> None:
        """Extend the session (B2); on any failure the caller logs in afresh."""
        headers = {"Authorization": f"DXAPI {session.token}"}
        try:
            response = await self._send("POST", f"{session.surface}/ping", headers=headers)
        except BrokerGraphError:
            session.token = None
            return
        if response.status_code != 200:
            session.token = None
            return
        try:
            body = loads(response.content) if response.content else None
        except ValueError:
            body = None
        if isinstance(body, Mapping) and isinstance(body.get("sessionToken"), str):
            self._adopt(session, body, "ping")
        else:  # the ping answered without a token: the old one lives on
            session.expires_at = time.monotonic() + 1800.0

    # -- requests -----------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        url: str,
        *,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        sent = dict(headers or {})
        if content is not None:
            sent["Content-Type"] = "application/json"
        try:
            return await self._http.request(
                method, url, content=content, params=params, headers=sent
            )
        except httpx.TimeoutException:
            raise UpstreamTimeout(
                "DXtrade did not answer in time; a write's outcome is unknown until read back",
                details={"platform": PLATFORM},
            ) from None
        except httpx.HTTPError as error:
            raise UpstreamUnavailable(
                f"DXtrade cannot be reached ({type(error).__name__})",
                details={"platform": PLATFORM},
            ) from None

    async def call(
        self,
        surface: Surface,
        method: str,
        path: str,
        *,
        what: str,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        if_match: str | None = None,
    ) -> Response:
        """One authenticated call; ``path`` is relative to the surface (``/api/...``)."""
        session = self._sessions[surface]
        read = method == "GET"
        content = None if body is None else dumps(body)
        stale: str | None = None
        retried_rate = False
        while True:
            token = await self._token(session, stale=stale)
            if read and surface == DXSCA:  # just before sending: the platform counts arrivals
                await self.limiter.acquire()
            headers = {"Authorization": f"DXAPI {token}"}
            if if_match is not None:
                headers["If-Match"] = if_match
            response = await self._send(
                method, f"{surface}{path}", content=content, params=params, headers=headers
            )
            if response.status_code == 401 and stale is None:
                stale = token  # expired or revoked: log in again once and repeat
                continue
            if response.status_code == 429 and read and not retried_rate:
                retried_rate = True
                await asyncio.sleep(min(_retry_after(response) or 1.0, MAX_RETRY_AFTER_SECONDS))
                continue
            return self._result(response, what)

    async def dxfeed(self, path: str, *, what: str) -> Response:
        """A call on the dxFeed stand-in API (Bearer token, [D]: see the README)."""
        headers = {"Authorization": f"Bearer {self._dxfeed_token or ''}"}
        response = await self._send("GET", f"{self._dxfeed_url}{path}", headers=headers)
        return self._result(response, what)

    def _result(self, response: httpx.Response, what: str) -> Response:
        if 200 <= response.status_code < 300:
            body = _decode(response, what) if response.content else None
            return Response(response.status_code, body, response.headers.get("ETag"))
        error_body = _decode_error(response)
        logger.info(
            "DXtrade refused %s %s: status=%s code=%s id=%s",
            response.request.method,
            response.request.url.path,
            response.status_code,
            _vendor_code(error_body),
            error_body.get("errorId") if isinstance(error_body, Mapping) else None,
        )
        raise error_for(
            response.status_code, error_body, what=what, retry_after=_retry_after(response)
        )

    # -- helpers for the connector ------------------------------------------------------

    async def get(
        self,
        surface: Surface,
        path: str,
        *,
        what: str,
        params: Mapping[str, str] | None = None,
    ) -> Response:
        return await self.call(surface, "GET", path, what=what, params=params)

    @staticmethod
    def accounts_param(account_ids: Sequence[str]) -> dict[str, str]:
        """The batched form of dxsca-web reads: ``accounts=cc:a,cc:b`` (one call)."""
        return {"accounts": ",".join(account_ids)}


def _decode(response: httpx.Response, what: str) -> Any:
    try:
        return loads(response.content)
    except ValueError:
        raise ProtocolError(
            f"DXtrade answered the {what} with something that is not JSON",
            details={"platform": PLATFORM, "status": response.status_code},
        ) from None


def _decode_error(response: httpx.Response) -> Any:
    try:
        return loads(response.content) if response.content else None
    except ValueError:
        return None
