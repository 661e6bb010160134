"""The HTTP client of DXtrade's two REST surfaces (vendor notes B2, B3, B5, B7).

* ``/dxweb/rest`` (DxRegister: users, accounts, cash, credit) and ``/dxsca-web``
  (trading and reporting reads) live on one host.  Each surface gets its own session
  (a :class:`~gateway.contract.TokenSession`): ``POST {surface}/login`` with
  ``{username, domain, password}`` gives a ``sessionToken`` and its lifetime in
  milliseconds, sent as ``Authorization: DXAPI <token>`` on every call.  A session
  close to its end is extended with ``POST {surface}/ping`` (falling back to a fresh
  login), and a 401 or 403 answered to a token we hold makes the client log in again
  once and repeat the call (that an ended session answers 401 is only inferred, B7; a
  host may answer 403): the call was refused, so repeating it is safe even for a write.
* Reads on ``/dxsca-web`` are limited to ``reads_per_second`` per session (10 by
  default, B7) by a small sliding-window limiter, so a batch of loader calls never
  trips the platform's 429.  A 429 that happens anyway is retried once for a read,
  after ``Retry-After``.
* Query parameters are kebab-case (``include-positions``, ``time-from``) and the
  ``clearingCode:accountCode`` path segment is URL-encoded (``default%3Aalice-usd``).
* Amounts travel as plain JSON numbers, exact both ways (``exact_json_dumps`` /
  ``exact_json_loads``: never through float).
* Vendor errors (dxweb ``{errorCode:int, errorMessage, errorId}``, dxsca ``{errorCode:str,
  description}``) become :mod:`gateway.contract` errors through one table, :data:`ERRORS`.
  The vendor's text is logged, never copied into a client-visible message.  The
  password and session tokens are never logged.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
import ssl
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import quote

import httpx

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
    UpstreamError,
    UpstreamRejected,
    UpstreamUnavailable,
    VendorError,
    VendorErrorTable,
    exact_json_dumps,
    exact_json_loads,
    transport_error,
    upstream_client,
)

__all__ = [
    "DXSCA",
    "DXWEB",
    "ERRORS",
    "DxTradeClient",
    "ReadLimiter",
    "Response",
    "account_segment",
    "segment",
]

PLATFORM = "dxtrade"
Surface = Literal["/dxweb/rest", "/dxsca-web"]
DXWEB: Final[Surface] = "/dxweb/rest"
DXSCA: Final[Surface] = "/dxsca-web"
#: Extend a session when less than this is left of it.
RENEW_MARGIN_SECONDS = 60.0
#: A session's lifetime when the platform does not say (a probe saw 30 minutes).
DEFAULT_SESSION_SECONDS = 1800.0
MAX_RETRY_AFTER_SECONDS = 5.0
LIMIT_WINDOW_SECONDS = 1.05
#: What DXtrade may answer to a session token it ended: 401 (B7, inferred) or 403.
SESSION_ENDED = frozenset({401, 403})

logger = logging.getLogger("brokergraph_dxtrade.client")


def segment(value: str) -> str:
    """One URL path segment, with ``/``, ``:`` and ``@`` encoded too."""
    return quote(value, safe="")


def account_segment(clearing_code: str, account_code: str) -> str:
    """The dxsca-web account id ``clearingCode:accountCode`` as a path segment (B1, B7)."""
    return segment(f"{clearing_code}:{account_code}")


# --------------------------------------------------------------------------- errors

_REFUSED_CREDENTIALS = VendorError(
    UpstreamRejected,
    "DXtrade refused the gateway's credentials (check the connector's username, "
    "domain and password)",
)

#: DXtrade's error answers (looked up by vendor code, then HTTP status).  The choices
#: worth a word:
#:
#: ======================  ==========================================================
#: 404                     NotFound (unknown user, account, or cash record)
#: 409                     Conflict (login/accountCode taken, cash ``{id}`` reused with
#:                         another body, ``orderCode`` reused)
#: 412                     Conflict (``If-Match`` ETag is stale: someone changed it)
#: 422 + ``30005``         InsufficientFunds (withdrawal above the withdrawable amount;
#:                         the vendor's only published code, B3/B7)
#: 400, other 422          InvalidInput (the platform refused the values)
#: 401                     UpstreamRejected: after one re-login the *gateway's* DXtrade
#:                         credential is still refused.  Not Unauthenticated/
#:                         PermissionDenied: those judge the GraphQL viewer, whose
#:                         rights the gateway already checked; an operator must fix the
#:                         connector's credential, and the client cannot.
#: 403                     UpstreamRejected, same reason (after one re-login too): the
#:                         CRM service account lacks a DXtrade permission (e.g.
#:                         register/update users).
#: 429                     RateLimited (``retryAfter`` from the header)
#: 5xx                     UpstreamUnavailable, outcome UNKNOWN: the platform may have
#:                         applied the request.  Money writes carry our client-generated
#:                         id, so a retry is deduplicated by DXtrade.
#: ======================  ==========================================================
#:
#: Every other answer is a refusal: nothing was applied.
ERRORS: Final = VendorErrorTable(
    platform=PLATFORM,
    vendor="DXtrade",
    codes={
        "30005": VendorError(
            InsufficientFunds,
            "DXtrade refused the debit: insufficient withdrawable balance; nothing moved",
        ),
    },
    statuses={
        400: VendorError(InvalidInput, "DXtrade refused the values of the {what}"),
        401: _REFUSED_CREDENTIALS,
        403: VendorError(
            UpstreamRejected,
            "DXtrade does not permit the gateway's service account to perform this {what}",
        ),
        404: VendorError(NotFound, "DXtrade does not know this {what}"),
        409: VendorError(
            Conflict,
            "DXtrade: the {what} conflicts with the platform's current state "
            "(duplicate code or id)",
        ),
        412: VendorError(
            Conflict,
            "DXtrade: the {what} was changed by someone else meanwhile (stale ETag); read it again",
        ),
        422: VendorError(InvalidInput, "DXtrade refused the values of the {what}"),
        429: VendorError(RateLimited, "DXtrade's rate limit was reached"),
    },
    server_error=VendorError(
        UpstreamUnavailable, "DXtrade failed to serve the {what}", outcome=Outcome.UNKNOWN
    ),
    fallback=VendorError(UpstreamError, "DXtrade answered {status} to the {what}"),
)


def _vendor_code(body: Any) -> int | str | None:
    if isinstance(body, Mapping):
        code = body.get("errorCode")
        if isinstance(code, int | str) and not isinstance(code, bool):
            return code
    return None


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
        verify: ssl.SSLContext | bool = True,
        behalf: tuple[str, str] | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        """``verify``: the TLS context checking DXtrade (``DxTradeSettings.ssl_context()``).
        ``behalf``: ``(login, domain)`` of the user whose sessions this client opens, on
        the service account's authority (see :meth:`on_behalf`); ``http``: a connection
        pool to share (then :meth:`close` leaves it open)."""
        self._username = username
        self._domain = domain
        self._password = password
        self._dxfeed_token = dxfeed_token
        self._dxfeed_url = (dxfeed_url or base_url).rstrip("/")
        self._behalf = behalf
        self._owns_http = http is None
        self._http = http or upstream_client(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout_seconds),
            headers={"Accept": "application/json"},
            follow_redirects=False,
            verify=verify,
        )
        # DXtrade extends a live session with a ping (B2) rather than opening another.
        self._sessions = {
            surface: TokenSession(
                functools.partial(self._login, surface),
                extend=functools.partial(self._ping, surface),
                renew_margin_seconds=RENEW_MARGIN_SECONDS,
            )
            for surface in (DXWEB, DXSCA)
        }
        # A little slack over the platform's one-second window absorbs network jitter.
        self.limiter = ReadLimiter(reads_per_second, window=LIMIT_WINDOW_SECONDS)

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    def on_behalf(self, login: str, domain: str) -> DxTradeClient:
        """A client whose sessions are ``login@domain``'s, opened by this client's service
        account (B2: DXtrade requires its LOGIN_ON_BEHALF permission).  It shares this
        client's connections and has a read budget of its own: DXtrade counts reads
        per session."""
        return DxTradeClient(
            base_url=str(self._http.base_url),
            username=self._username,
            domain=self._domain,
            password=self._password,
            reads_per_second=self.limiter.rate,
            dxfeed_url=self._dxfeed_url,
            dxfeed_token=self._dxfeed_token,
            behalf=(login, domain),
            http=self._http,
        )

    # -- sessions -----------------------------------------------------------------------

    async def _token(self, surface: Surface, *, stale: str | None = None) -> str:
        """A valid token of ``surface``; ``stale`` is a token the platform just refused."""
        return await self._sessions[surface].token(stale=stale)

    @staticmethod
    def _adopt(body: Any, what: str) -> IssuedToken:
        if not isinstance(body, Mapping) or not isinstance(body.get("sessionToken"), str):
            raise ProtocolError(f"DXtrade's {what} answer has no sessionToken")
        timeout_ms = body.get("timeout")
        try:
            lifetime = (
                float(timeout_ms) / 1000 if timeout_ms is not None else DEFAULT_SESSION_SECONDS
            )
        except (TypeError, ValueError):
            lifetime = DEFAULT_SESSION_SECONDS  # the PHP SDK types it as a string
        return IssuedToken(body["sessionToken"], expires_in=max(lifetime, 1.0))

    async def _login(self, surface: Surface) -> IssuedToken:
        headers: dict[str, str] = {}
        if self._behalf is None:
            payload = {
                "username": self._username,
                "domain": self._domain,
                "password": self._password,
            }
        else:
            # On behalf of a user: no password of theirs, our own credentials in the
            # header (how DXtrade names the caller is not documented; B2 only says
            # LOGIN_ON_BEHALF is needed).
            login, domain = self._behalf
            payload = {"username": login, "domain": domain}
            secret = f"{self._username}@{self._domain}:{self._password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(secret).decode()
        response = await self._send(
            "POST",
            f"{surface}/login",
            what="login",
            content=exact_json_dumps(payload),
            headers=headers,
        )
        if response.status_code != 200:
            body = _decode_error(response)
            logger.warning(
                "DXtrade %s login refused: status=%s code=%s",
                surface,
                response.status_code,
                _vendor_code(body),
            )
            self._sessions[surface].forget()
            raise ERRORS.error(code=_vendor_code(body), status=response.status_code, what="login")
        return self._adopt(_decode(response, "login"), "login")

    async def _ping(self, surface: Surface, token: str) -> IssuedToken | None:
        """Extend the session (B2); None on any failure, and the caller logs in afresh."""
        headers = {"Authorization": f"DXAPI {token}"}
        try:
            response = await self._send("POST", f"{surface}/ping", what="ping", headers=headers)
        except BrokerGraphError:
            return None
        if response.status_code != 200:
            return None
        try:
            body = exact_json_loads(response.content) if response.content else None
        except ValueError:
            body = None
        if isinstance(body, Mapping) and isinstance(body.get("sessionToken"), str):
            return self._adopt(body, "ping")
        # The ping answered without a token: the old one lives on.
        return IssuedToken(token, expires_in=DEFAULT_SESSION_SECONDS)

    # -- requests -----------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        url: str,
        *,
        what: str,
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
        except httpx.HTTPError as error:
            raise transport_error(error, platform=PLATFORM, vendor="DXtrade", what=what) from None

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
        read = method == "GET"
        content = None if body is None else exact_json_dumps(body)
        stale: str | None = None
        retried_rate = False
        while True:
            token = await self._token(surface, stale=stale)
            if read and surface == DXSCA:  # just before sending: the platform counts arrivals
                await self.limiter.acquire()
            headers = {"Authorization": f"DXAPI {token}"}
            if if_match is not None:
                headers["If-Match"] = if_match
            response = await self._send(
                method,
                f"{surface}{path}",
                what=what,
                content=content,
                params=params,
                headers=headers,
            )
            if response.status_code in SESSION_ENDED and stale is None:
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
        response = await self._send("GET", f"{self._dxfeed_url}{path}", what=what, headers=headers)
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
        raise ERRORS.error(
            code=_vendor_code(error_body),
            status=response.status_code,
            what=what,
            retry_after=_retry_after(response),
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
        return exact_json_loads(response.content)
    except ValueError:
        raise ProtocolError(
            f"DXtrade answered the {what} with something that is not JSON",
            details={"platform": PLATFORM, "status": response.status_code},
        ) from None


def _decode_error(response: httpx.Response) -> Any:
    try:
        return exact_json_loads(response.content) if response.content else None
    except ValueError:
        return None
