"""``QortSandbox``: the QORT web-services module on a local port (SOAP 1.1 over HTTPS).

HTTPS like the module (ARQA: data is sent over HTTPS), with the process's sandbox
certificate; ``connector_settings`` hand the connector its CA (``ca_file``).  Plain
HTTP only when ``plaintext`` is set before start.

GET ``/qort?wsdl`` (or ``/qort/service.wsdl``) serves the WSDL; POST ``/qort`` takes
SOAP requests, dispatched by the body element (``<Op>Request``), which must agree
with the SOAPAction header when one is given.  Knobs for tests: the standard ones of
:class:`AsgiSandbox` (``latency_seconds``, ``fail_next(n)`` — answered with QORT's
soap:Server ``INTERNAL`` fault —, ``drop_next(n)``, ``reset()``, which re-seeds), and
QORT's own: ``calls`` (a Counter by operation name), ``today`` (the sandbox clock's
date), ``force_expire_tokens()``, ``relogin_replaces`` (off: the holder's own second
login is BUSY too, the strict reading of "one application at a time") and
``throttle_next(n, retry_after_seconds)``: the next ``n`` SOAP calls are answered HTTP 429
with a soap:Server ``TOO_MANY_REQUESTS`` fault (and ``RetryAfter``) without reaching the
service.  [I] Whether and how QORT throttles is not public; this is the shape we assume.
``pit_by_subaccount`` (on): CalcPitPeriod narrows to a SubAccCode; off, it ignores it
and answers the firm's whole PIT ([I]: not public whether QORT can narrow it).
``check_attribute_types`` (on): FirmAttributes values are refused (IsProcessed=4) unless
they fit their FirmAttributeDefs type; off, QORT stores any text ([I]: the Data model
extension module's API is not public, definitions table and types included).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from brokergraph_qort.sandbox.faults import QortFault
from brokergraph_qort.sandbox.operations import OPERATIONS, Operations
from brokergraph_qort.sandbox.quik import Quik
from brokergraph_qort.sandbox.reports import Reports
from brokergraph_qort.sandbox.sessions import ALLOWED_APPLICATIONS, Sessions
from brokergraph_qort.sandbox.soap import envelope, fault_envelope, parse_request
from brokergraph_qort.sandbox.store import Store
from brokergraph_qort.sandbox.tax import Pit
from brokergraph_qort.sandbox.wsdl import wsdl_for
from gateway.contract.sandbox import ASGIApp, AsgiSandbox, DemoLink

__all__ = ["MAX_BODY_BYTES", "QortSandbox"]

logger = logging.getLogger(__name__)

#: Largest SOAP request accepted (413 with a VALIDATION fault above it).
MAX_BODY_BYTES = 1_000_000
_XML = "text/xml; charset=utf-8"
_APP = "brokergraph-gateway"


class QortSandbox(AsgiSandbox):
    """The seeded QORT web service on 127.0.0.1; ``reset()`` re-seeds it."""

    name: ClassVar[str] = "qort"
    display_name: ClassVar[str] = "the QORT sandbox"

    def __init__(
        self,
        *,
        latency_seconds: float = 0.0,
        token_ttl_seconds: int = 900,
        report_delay_seconds: float = 0.5,
        relogin_replaces: bool = True,
    ) -> None:
        super().__init__(latency_seconds=latency_seconds)
        self.token_ttl_seconds = token_ttl_seconds
        self._relogin_replaces = relogin_replaces
        self.report_delay_seconds = report_delay_seconds
        #: Largest request body accepted, in bytes.
        self.max_body_bytes = MAX_BODY_BYTES
        #: Calls per operation name that reached the service (fail_next answers before it).
        self.calls: Counter[str] = Counter()
        self._throttles: list[float] = []
        self.reset_state()

    # -- knobs -------------------------------------------------------------------------

    def reset_state(self) -> None:
        """Re-seed the data, end every session, clear the clock and the counters."""
        #: The sandbox clock's date (None: today in UTC); drives the same-day upload rule.
        self.today: date | None = None
        self.calls.clear()
        self._throttles.clear()
        self.sessions = Sessions(self.token_ttl_seconds, relogin_replaces=self._relogin_replaces)
        self.store = Store()
        self.quik = Quik(self.store, self.current_date)
        self.reports = Reports(self.store, self.report_delay_seconds, self.current_date)
        self.operations = Operations(
            sessions=self.sessions,
            store=self.store,
            quik=self.quik,
            pit=Pit(self.store),
            reports=self.reports,
        )

    def current_date(self) -> date:
        return self.today if self.today is not None else datetime.now(UTC).date()

    def failure_body(self, status: int) -> tuple[bytes, str]:
        """``fail_next`` answers as QORT does when it fails: a soap:Server INTERNAL fault."""
        return fault_envelope(QortFault("INTERNAL", "the QORT server failed (fail_next)")), _XML

    @property
    def pit_by_subaccount(self) -> bool:
        """[I] CalcPitPeriod narrows to a SubAccCode (off: ignores it); reset: on."""
        return self.operations.pit.by_subaccount

    @pit_by_subaccount.setter
    def pit_by_subaccount(self, value: bool) -> None:
        self.operations.pit.by_subaccount = value

    @property
    def check_attribute_types(self) -> bool:
        """[I] FirmAttributes values are checked against their declared type; reset: on."""
        return self.store.check_attribute_types

    @check_attribute_types.setter
    def check_attribute_types(self, value: bool) -> None:
        self.store.check_attribute_types = value

    def throttle_next(self, n: int = 1, retry_after_seconds: float = 1.0) -> None:
        """The next ``n`` SOAP calls answer 429 TOO_MANY_REQUESTS and apply nothing."""
        self._throttles.extend([retry_after_seconds] * n)

    def force_expire_tokens(self) -> None:
        """Every live token expires now; the service is free for any application."""
        self.sessions.expire_all()

    # -- the Sandbox contract -----------------------------------------------------------

    def asgi_app(self) -> ASGIApp:
        return Starlette(routes=self._routes())

    def connector_settings(self) -> Mapping[str, Any]:
        login, password = ALLOWED_APPLICATIONS[_APP]
        return {
            "url": self.url,
            "login": login,
            "password": password,
            "app_name": _APP,
            **self.tls_settings(),
        }

    def demo_links(self) -> Sequence[DemoLink]:
        return [
            DemoLink("DEMO-001", "account", "DEMO-001-01"),
            DemoLink("DEMO-001", "account", "DEMO-001-02"),
            DemoLink("DEMO-002", "account", "DEMO-002-01"),
            DemoLink("OTHER-001", "account", "OTHER-001-01"),
        ]

    # -- HTTP --------------------------------------------------------------------------

    def _routes(self) -> list[Route]:
        return [
            Route("/qort", self._get_wsdl, methods=["GET"]),
            Route("/qort/service.wsdl", self._wsdl, methods=["GET"]),
            Route("/qort", self._soap, methods=["POST"]),
        ]

    async def _get_wsdl(self, request: Request) -> Response:
        if "wsdl" not in request.query_params:
            return PlainTextResponse("GET /qort?wsdl for the WSDL; POST SOAP 1.1 here", 404)
        return await self._wsdl(request)

    async def _wsdl(self, request: Request) -> Response:
        endpoint = f"{request.url.scheme}://{request.url.netloc}/qort"
        return Response(wsdl_for(endpoint), media_type=_XML)

    async def _soap(self, request: Request) -> Response:
        try:
            body = await self._read_body(request)
            operation, payload = parse_request(body)
            if operation not in OPERATIONS:
                raise QortFault("VALIDATION", f"unknown operation {operation!r}", http_status=400)
            action = request.headers.get("soapaction", "").strip().strip('"')
            if action and action.rpartition("/")[2] != operation:
                raise QortFault(
                    "VALIDATION",
                    f"SOAPAction {action!r} does not match the body element {operation}Request",
                    http_status=400,
                )
            if self._throttles:
                pause = self._throttles.pop(0)
                raise QortFault(
                    "TOO_MANY_REQUESTS",
                    f"too many requests: retry in {pause:g} s (throttle_next)",
                    http_status=429,
                    retry_after_seconds=pause,
                )
            self.calls[operation] += 1
            response = self.operations.call(operation, payload)
        except QortFault as fault:
            headers = (
                {"Retry-After": f"{fault.retry_after_seconds:g}"}
                if fault.retry_after_seconds is not None
                else None
            )
            return Response(
                fault_envelope(fault), fault.http_status, headers=headers, media_type=_XML
            )
        except Exception:
            logger.exception("QORT sandbox: unexpected error")
            internal = QortFault("INTERNAL", "unexpected error in the QORT sandbox")
            return Response(fault_envelope(internal), 500, media_type=_XML)
        return Response(envelope(response), media_type=_XML)

    async def _read_body(self, request: Request) -> bytes:
        """The body, refused (413) past ``max_body_bytes`` without reading the rest."""
        media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type != "text/xml":
            raise QortFault("VALIDATION", "SOAP 1.1 requests are text/xml", http_status=415)
        too_big = QortFault(
            "VALIDATION", f"the request is larger than {self.max_body_bytes} bytes", http_status=413
        )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            raise too_big
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.max_body_bytes:
                raise too_big
        return bytes(body)
