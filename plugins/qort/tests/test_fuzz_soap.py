"""Property-based (issue 7): malformed SOAP never crashes QORT's sandbox or connector.

* The sandbox's SOAP endpoint over real HTTP: random bytes, random XML, envelopes
  with unknown operations and elements (with a live token or without), deeply nested
  XML, DTD and entity tricks, wrong media types and oversized bodies are answered
  400/413/415 or with a documented ``soap:Fault`` (a ``QortError`` whose code is in
  the fault table; HTTP 500 is SOAP 1.1's status for a fault, never the sandbox's
  own INTERNAL "unexpected error"), and a refused request changes nothing (every
  table exported before and after, QUIK uploads, reports).
* The connector's fault and result mapping (``brokergraph_qort.client``), against a
  scripted QORT: any fault (known or unknown code, soap:Client or soap:Server, odd or
  missing detail) on Login or on an operation, and any per-record results of
  ImportRecords, surface as typed gateway errors (``BrokerGraphError``) only.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import pytest_asyncio
from brokergraph_qort.client import QortClient
from brokergraph_qort.errors import record_error
from brokergraph_qort.sandbox import QortSandbox
from brokergraph_qort.sandbox.faults import CODES
from brokergraph_qort.sandbox.operations import OPERATIONS
from brokergraph_qort.sandbox.soap import SOAP_ENV, TNS
from brokergraph_qort.sandbox.tables import TABLES
from brokergraph_qort.sandbox.wsdl import wsdl_for
from brokergraph_qort.settings import QortSettings
from hypothesis import HealthCheck, event, example, given, note, settings
from hypothesis import strategies as st

from gateway.contract import (
    BrokerGraphError,
    Conflict,
    InvalidInput,
    NotFound,
)
from gateway.contract.sandbox import sandbox_certificate

FUZZ = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
XML = "text/xml; charset=utf-8"
APP = ("brokergraph", "qort-pass", "brokergraph-gateway")
LIVE_TOKEN = "<live token>"  # replaced by the example's real token when sent

# --------------------------------------------------------------------------- envelopes


def _q(name: str) -> str:
    return f"{{{TNS}}}{name}"


def _soap(name: str) -> str:
    return f"{{{SOAP_ENV}}}{name}"


def envelope(*body: ET.Element, header: ET.Element | None = None) -> bytes:
    root = ET.Element(_soap("Envelope"))
    if header is not None:
        ET.SubElement(root, _soap("Header")).append(header)
    soap_body = ET.SubElement(root, _soap("Body"))
    soap_body.extend(body)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data


def element(
    tag: str, text: str | None = None, children: list[ET.Element] | None = None
) -> ET.Element:
    node = ET.Element(tag)
    node.text = text
    node.extend(children or [])
    return node


#: XML-safe texts (ElementTree escapes markup, not control characters).
xml_texts = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=30),
    st.sampled_from(
        [
            "",
            " ",
            "DEMO-001",
            "DEMO-001-01",
            "Firms",
            "Subaccs",
            "FirmAttributes",
            "NoSuchTable",
            "2",
            "4",
            "8",
            "16",
            "-1",
            "y",
            "NaN",
            "1e999999",
            "20261120",
            "99999999",
            "CSV",
            "pdf",
            "RPT-000001",
            "x" * 5000,
        ]
    ),
)
CHILD_NAMES = [
    "Token",
    "Table",
    "BOCode",
    "SubAccCode",
    "Leverage",
    "Amount",
    "Currency",
    "Date",
    "DateFrom",
    "DateTo",
    "Format",
    "ReportId",
    "Login",
    "Password",
    "AppName",
]
COLUMNS = sorted({c for table in TABLES.values() for c in table.columns})
names = st.one_of(
    st.sampled_from(CHILD_NAMES),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True),
)
namespaces = st.sampled_from([TNS, TNS, "", "urn:other", SOAP_ENV])


def _tag(namespace: str, name: str) -> str:
    return f"{{{namespace}}}{name}" if namespace else name


fields = st.builds(
    lambda n, v: element(_q("Field"), None, [element(_q("Name"), n), element(_q("Value"), v)]),
    st.one_of(st.sampled_from(COLUMNS), xml_texts),
    xml_texts,
)
records = st.builds(
    lambda et, fs: element(_q("Record"), None, [element(_q("ET_Const"), et), *fs]),
    st.sampled_from(["2", "4", "8", "0", "", "x", "3"]),
    st.lists(fields, max_size=4),
)
#: Mostly the live token (so the operations run), else an empty, unknown or junk one.
tokens = st.sampled_from([LIVE_TOKEN] * 5 + ["", "0" * 32, "not-a-token"])
leaves = st.one_of(
    st.builds(lambda t: element(_q("Token"), t), tokens),
    st.builds(lambda ns, n, t: element(_tag(ns, n), t), namespaces, names, xml_texts),
    fields,
    records,
)
children = st.recursive(
    leaves,
    lambda inner: st.builds(
        lambda ns, n, kids: element(_tag(ns, n), None, kids),
        namespaces,
        names,
        st.lists(inner, max_size=3),
    ),
    max_leaves=10,
)
operations = st.one_of(
    st.sampled_from(sorted(OPERATIONS)),
    st.from_regex(r"[A-Z][A-Za-z]{0,12}", fullmatch=True),
)
payloads = st.builds(
    lambda ns, op, suffix, kids: element(_tag(ns, op + suffix), None, kids),
    namespaces,
    operations,
    st.sampled_from(["Request", "Request", "Response", ""]),
    st.lists(children, max_size=6),
)
#: A known operation's request element holding a token (mostly live) and junk.
#: Each operation's children as the WSDL has them ("Record"/"Field": repeated).
OPERATION_CHILDREN = {
    "Login": ["Login", "Password", "AppName"],
    "Logout": ["Token"],
    "Ping": ["Token"],
    "ImportRecords": ["Token", "Table", "Record"],
    "ExportRecords": ["Token", "Table", "Field"],
    "GetFirmPacket": ["Token", "BOCode"],
    "UploadQuikLimits": ["Token", "BOCode"],
    "SetQuikLeverage": ["Token", "SubAccCode", "Leverage"],
    "CalcPitWithdrawal": ["Token", "SubAccCode", "Currency", "Amount", "Date"],
    "CalcPitPeriod": ["Token", "DateFrom", "DateTo", "BOCode", "SubAccCode"],
    "RequestClientReport": ["Token", "SubAccCode", "DateFrom", "DateTo", "Format"],
    "GetClientReport": ["Token", "ReportId"],
}
assert set(OPERATION_CHILDREN) == set(OPERATIONS)


_DATES = st.one_of(
    st.dates().map(lambda d: d.strftime("%Y%m%d")), st.sampled_from(["20260230", "0", "2026-01-01"])
)
_NUMBERS = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["0", "-1", "1", "2", "50", "100", "100.01", "1e999999", "NaN", " 5 "]),
)
#: Values each child plausibly holds (seeded codes, dates, numbers), else any text.
PLAUSIBLE: dict[str, st.SearchStrategy[str]] = {
    "BOCode": st.sampled_from(["DEMO-001", "DEMO-002", "OTHER-001", "NOPE-1"]),
    "SubAccCode": st.sampled_from(["DEMO-001-01", "DEMO-001-02", "DEMO-002-01", "X-01"]),
    "Table": st.sampled_from(sorted(TABLES)),
    "Leverage": _NUMBERS,
    "Amount": _NUMBERS,
    "Currency": st.sampled_from(["RUB", "USD", "EUR", ""]),
    "Date": _DATES,
    "DateFrom": _DATES,
    "DateTo": _DATES,
    "Format": st.sampled_from(["CSV", "PDF", "pdf", "XLS"]),
    "ReportId": st.sampled_from(["RPT-000001", "RPT-999999"]),
    "Login": st.sampled_from([APP[0], "backoffice"]),
    "Password": st.sampled_from([APP[1], "bo-pass", "wrong"]),
    "AppName": st.sampled_from([APP[2], "backoffice-tool", "other"]),
}


def _one_child(name: str, plausible: bool = False) -> st.SearchStrategy[ET.Element]:
    if name == "Token":
        return st.builds(
            lambda t: element(_q(name), t), st.just(LIVE_TOKEN) if plausible else tokens
        )
    if name == "Record":
        return records
    if name == "Field":
        return fields
    texts = PLAUSIBLE.get(name, xml_texts) if plausible else xml_texts
    return st.builds(lambda t: element(_q(name), t), texts)


@st.composite
def _children_called(draw: st.DrawFn, name: str) -> list[ET.Element]:
    """The children called ``name``: mostly one with any text; else none, several, or one
    holding elements instead of text."""
    shape = draw(st.integers(0, 9))
    if shape < 7:
        return [draw(_one_child(name))]
    if shape == 7:
        return []
    if shape == 8:
        return draw(st.lists(_one_child(name), min_size=2, max_size=3))
    return [element(_q(name), None, draw(st.lists(children, min_size=1, max_size=2)))]


@st.composite
def operation_payloads(draw: st.DrawFn, operation: str | None = None) -> ET.Element:
    """A known operation's request: its own children, plausible (a live token, seeded
    codes) except a few spoilt ones holding anything, plus maybe junk elements."""
    if operation is None:
        operation = draw(st.sampled_from(sorted(OPERATIONS)))
    names = OPERATION_CHILDREN[operation]
    spoilt = draw(st.sets(st.sampled_from(names)))
    kids: list[ET.Element] = []
    for name in names:
        if name in spoilt:
            kids += draw(_children_called(name))
        else:
            kids.append(draw(_one_child(name, plausible=True)))
    kids += draw(st.lists(children, max_size=2))
    return element(_q(f"{operation}Request"), None, draw(st.permutations(kids)))


envelopes = st.one_of(
    st.builds(lambda body: envelope(body), operation_payloads()),
    st.builds(
        lambda body, header: envelope(*body, header=header),
        st.lists(payloads, min_size=0, max_size=2),
        st.one_of(st.none(), children),
    ),
)
random_xml = st.recursive(
    st.builds(lambda ns, n, t: element(_tag(ns, n), t), namespaces, names, xml_texts),
    lambda inner: st.builds(
        lambda ns, n, kids: element(_tag(ns, n), None, kids),
        namespaces,
        names,
        st.lists(inner, max_size=4),
    ),
    max_leaves=12,
).map(lambda e: ET.tostring(e))

_ENV_OPEN = f'<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:q="{TNS}"><soap:Body>'.encode()
_ENV_CLOSE = b"</soap:Body></soap:Envelope>"
TRICKS = [
    # DTDs and entities, internal and external, and the billion laughs
    b'<!DOCTYPE e [<!ENTITY a "aaaa">]>' + _ENV_OPEN + b"<q:PingRequest><q:Token>&a;</q:Token>"
    b"</q:PingRequest>" + _ENV_CLOSE,
    b'<!DOCTYPE e [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">'
    b"]><e>&d;</e>",
    b'<!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]><e>&x;</e>',
    b'<!DOCTYPE e SYSTEM "http://127.0.0.1:9/evil.dtd"><e/>',
    b'<!DOCTYPE e [<!ENTITY % p SYSTEM "http://127.0.0.1:9/p.dtd"> %p;]><e/>',
    _ENV_OPEN + b"<q:PingRequest><q:Token>&undefined;</q:Token></q:PingRequest>" + _ENV_CLOSE,
    _ENV_OPEN + b"<q:PingRequest><q:Token>&#0;</q:Token></q:PingRequest>" + _ENV_CLOSE,
    # deep nesting, inside a known operation and bare
    _ENV_OPEN
    + b"<q:GetFirmPacketRequest>"
    + b"<q:x>" * 20_000
    + b"</q:x>" * 20_000
    + b"</q:GetFirmPacketRequest>"
    + _ENV_CLOSE,
    b"<a>" * 100_000 + b"</a>" * 100_000,
    # encodings expat does not know, or that lie
    b"<?xml version='1.0' encoding='ebcdic'?><e/>",
    b"<?xml version='1.0' encoding='utf-7'?><e/>",
    b"<?xml version='1.0' encoding='utf-32'?><e/>",
    b"<?xml version='1.0' encoding='utf-16'?><e/>",
    "<?xml version='1.0' encoding='utf-16'?><e/>".encode("utf-16"),
    b"\xef\xbb\xbf" + _ENV_OPEN + b"<q:PingRequest/>" + _ENV_CLOSE,
    b"<e>\xff\xfe</e>",
    b"",
    # processing instructions, comments, CDATA
    b"<?php evil() ?>" + _ENV_OPEN + b"<!-- c --><q:PingRequest><q:Token><![CDATA[&x;]]>"
    b"</q:Token></q:PingRequest>" + _ENV_CLOSE,
]


@dataclass(frozen=True)
class Fuzzed:
    body: bytes
    content_type: str | None = XML
    soap_action: str | None = None
    chunked: bool = False

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """Short (hypothesis prints a failing example whole and warns past 30 kB, which
        would hide the failure behind a 1 MB body); the test notes the body's start."""
        more = f"... ({len(self.body)} bytes)" if len(self.body) > 300 else ""
        printer.text(
            f"Fuzzed({self.body[:300]!r}{more}, content_type={self.content_type!r}, "
            f"soap_action={self.soap_action!r}, chunked={self.chunked})"
        )


#: Header values are latin-1 on the wire; control characters never pass HTTP parsing.
soap_actions = st.one_of(
    st.none(),
    st.sampled_from(sorted(OPERATIONS)),
    st.text(
        st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
        max_size=20,
    ),
)
content_types = st.sampled_from(
    [
        XML,
        XML,
        "text/xml",
        "TEXT/XML ; charset=latin-1",
        "application/soap+xml",
        "text/plain",
        "application/json",
        None,
    ]
)
_TOO_BIG = _ENV_OPEN + b"<q:x>" + b"a" * 1_000_100 + b"</q:x>"
#: Half are a known operation's envelope holding anything (they reach the operations).
operation_requests = st.builds(
    Fuzzed,
    st.builds(lambda body: envelope(body), operation_payloads()),
    st.sampled_from([XML, "text/xml"]),
)
other_requests = st.one_of(
    st.builds(Fuzzed, envelopes, st.sampled_from([XML, XML, "text/xml"]), soap_actions),
    st.builds(Fuzzed, envelopes, content_types, soap_actions),
    st.builds(Fuzzed, random_xml, content_types),
    st.builds(Fuzzed, st.binary(max_size=300), content_types),
    st.builds(Fuzzed, st.sampled_from(TRICKS), st.just(XML), soap_actions),
    # over the body limit: declared (413 unread) and chunked (413 while streaming)
    st.just(Fuzzed(_TOO_BIG)),
    st.just(Fuzzed(_TOO_BIG, chunked=True)),
)
requests = st.booleans().flatmap(lambda op: operation_requests if op else other_requests)


# --------------------------------------------------------------------------- the sandbox


def snapshot(sandbox: QortSandbox) -> Any:
    """Everything a request could change: every table's rows, QUIK uploads, reports."""
    tables = {name: sandbox.store.export(name, []) for name in TABLES}
    return tables, dict(sandbox.quik.uploaded_on), sorted(sandbox.reports._reports)


async def _login(http: httpx.AsyncClient, url: str) -> str:
    login, password, app = APP
    body = envelope(
        element(
            _q("LoginRequest"),
            None,
            [
                element(_q("Login"), login),
                element(_q("Password"), password),
                element(_q("AppName"), app),
            ],
        )
    )
    response = await http.post(url, content=body, headers={"Content-Type": XML})
    assert response.status_code == 200, response.text
    token = ET.fromstring(response.content).find(f".//{_q('Token')}")
    assert token is not None and token.text
    return token.text


def _chunks(body: bytes) -> Callable[[], AsyncIterator[bytes]]:
    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    return stream


def _fault(response: httpx.Response) -> tuple[str, str, str]:
    """faultcode, QortError Code and Message of a fault answer (asserting its shape)."""
    root = ET.fromstring(response.content)
    fault = root.find(f"{_soap('Body')}/{_soap('Fault')}")
    assert fault is not None, response.text
    error = fault.find(f"detail/{_q('QortError')}")
    assert error is not None, response.text
    return (
        fault.findtext("faultcode") or "",
        error.findtext(_q("Code")) or "",
        error.findtext(_q("Message")) or "",
    )


#: The live token of the sandbox's current session; None: reset and log in first.
_session: dict[QortSandbox, str] = {}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """One client for the module (a new one per example costs ~40 ms of TLS set-up)."""
    trust = sandbox_certificate().client_context()  # the sandboxes' CA
    async with httpx.AsyncClient(timeout=30, verify=trust) as client:
        yield client


async def exchange(sandbox: QortSandbox, http: httpx.AsyncClient, request: Fuzzed) -> None:
    """Send ``request`` (with a live token where it says so) and check the answer: an
    accepted known operation, or a documented fault that changed nothing.  The sandbox
    is re-seeded (and logged in again) only after an accepted request: a refused one
    changes nothing, which is what this checks."""
    url = f"{sandbox.url}/qort"
    token = _session.get(sandbox)
    if token is None:
        sandbox.reset()
        token = _session[sandbox] = await _login(http, url)
    body = request.body.replace(LIVE_TOKEN.encode(), token.encode())
    body = body.replace(
        LIVE_TOKEN.replace("<", "&lt;").replace(">", "&gt;").encode(), token.encode()
    )
    note(repr(body[:2000]))
    headers: dict[bytes, bytes] = {}
    if request.content_type is not None:
        headers[b"Content-Type"] = request.content_type.encode()
    if request.soap_action is not None:
        headers[b"SOAPAction"] = f'"{request.soap_action}"'.encode("latin-1")
    before = snapshot(sandbox)
    content: Any = _chunks(body)() if request.chunked else body
    response = await http.post(url, content=content, headers=headers)
    after = snapshot(sandbox)
    event(f"HTTP {response.status_code}")
    assert response.headers["content-type"].startswith("text/xml"), response.headers
    if response.status_code == 200:
        _session.pop(sandbox, None)  # it may have changed anything (a Logout, a new firm)
        # Accepted: one <Op>Response of a known operation.
        soap_body = ET.fromstring(response.content).find(_soap("Body"))
        assert soap_body is not None and len(soap_body) == 1, response.text
        answered = soap_body[0].tag.removeprefix(f"{{{TNS}}}").removesuffix("Response")
        assert answered in OPERATIONS, answered
        return
    faultcode, code, message = _fault(response)
    event(f"fault {code}")
    assert code in CODES and code != "INTERNAL", (code, message)
    assert faultcode == f"soap:{CODES[code]}"
    assert message.strip()
    assert response.status_code in (400, 413, 415, 500), response.status_code
    assert after == before, "a refused request changed the sandbox's state"


@FUZZ
@given(request=requests)
@example(request=Fuzzed(TRICKS[8]))  # deep nesting inside an operation
@example(request=Fuzzed(TRICKS[9]))  # deep nesting, bare
@example(request=Fuzzed(TRICKS[10]))  # an encoding Python does not know
@example(request=Fuzzed(TRICKS[11]))  # a multi-byte encoding expat refuses
async def test_sandbox_refuses_malformed_soap_without_a_state_change(
    module_sandbox: QortSandbox, http: httpx.AsyncClient, request: Fuzzed
) -> None:
    await exchange(module_sandbox, http, request)


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
@settings(FUZZ, max_examples=25)
@given(data=st.data())
async def test_sandbox_operation_with_arbitrary_children(
    module_sandbox: QortSandbox, http: httpx.AsyncClient, operation: str, data: st.DataObject
) -> None:
    """Each operation's own children holding anything (missing, doubled, nested)."""
    payload = data.draw(operation_payloads(operation), label="payload")
    await exchange(module_sandbox, http, Fuzzed(envelope(payload)))


# --------------------------------------------------------------------------- the connector

ENDPOINT = "https://qort.test/qort"


@dataclass(frozen=True)
class Fault:
    """A scripted fault: faultcode, the detail's Code and Message (None: left out)."""

    faultcode: str
    code: str | None
    message: str | None
    status: int = 500
    detail: bool = True

    def render(self) -> bytes:
        fault = ET.Element(_soap("Fault"))
        ET.SubElement(fault, "faultcode").text = self.faultcode
        ET.SubElement(fault, "faultstring").text = self.message or "fault"
        if self.detail:
            error = ET.SubElement(ET.SubElement(fault, "detail"), _q("QortError"))
            if self.code is not None:
                ET.SubElement(error, _q("Code")).text = self.code
            if self.message is not None:
                ET.SubElement(error, _q("Message")).text = self.message
        return envelope(fault)

    @property
    def well_formed(self) -> bool:
        """A fault the table can read: soap:Client/Server and a Code and Message."""
        return (
            self.faultcode in ("soap:Client", "soap:Server")
            and self.detail
            and bool(self.code and self.code.strip())
            and bool(self.message and self.message.strip())
            and self.status == 500
        )


#: Faults as QORT sends them: a fault code of the table (or not), any message.
well_formed_faults = st.builds(
    Fault,
    st.sampled_from(["soap:Client", "soap:Server"]),
    st.one_of(st.sampled_from(sorted(CODES)), st.sampled_from(sorted(CODES)), xml_texts),
    st.one_of(st.sampled_from(["x", "no firm with BOCode 'DEMO-9'"]), xml_texts),
)
#: And anything else: other fault codes, no detail, no Code or Message, odd statuses.
odd_faults = st.builds(
    Fault,
    st.sampled_from(["soap:Client", "soap:Server", "Client", "soap:Receiver", "", "soap:"]),
    st.one_of(st.sampled_from(sorted(CODES)), xml_texts, st.none()),
    st.one_of(xml_texts, st.none()),
    st.sampled_from([500, 200, 400]),
    st.booleans(),
)
faults = st.one_of(well_formed_faults, well_formed_faults, odd_faults)


def _response(name: str, items: list[ET.Element]) -> bytes:
    return envelope(element(_q(f"{name}Response"), None, items))


def _ok(operation: str) -> bytes:
    answers = {
        "Login": [element(_q("Token"), "t0k3n"), element(_q("ExpiresInSeconds"), "900")],
        "Logout": [element(_q("Ok"), "true")],
        "Ping": [element(_q("Ok"), "true"), element(_q("ExpiresInSeconds"), "900")],
    }
    return _response(operation, answers[operation])


@dataclass
class ScriptedQort:
    """A QORT behind ``httpx.MockTransport``: the WSDL, then answers by SOAPAction."""

    login: list[Fault | None]
    operation: list[bytes | Fault]
    calls: list[str] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, content=wsdl_for(ENDPOINT), headers={"content-type": XML})
        action = request.headers.get("soapaction", "").strip('"')
        self.calls.append(action)
        if action in ("Login", "Logout", "Ping"):
            scripted = self.login.pop(0) if action == "Login" and self.login else None
            if scripted is None:
                return httpx.Response(200, content=_ok(action), headers={"content-type": XML})
            return httpx.Response(
                scripted.status, content=scripted.render(), headers={"content-type": XML}
            )
        answer = self.operation.pop(0) if len(self.operation) > 1 else self.operation[0]
        if isinstance(answer, Fault):
            return httpx.Response(
                answer.status, content=answer.render(), headers={"content-type": XML}
            )
        return httpx.Response(200, content=answer, headers={"content-type": XML})

    def client(self) -> QortClient:
        settings = QortSettings.from_section(
            "qort", {"url": "https://qort.test", "login": "u", "password": "p", "keepalive": False}
        )
        http = httpx.AsyncClient(transport=httpx.MockTransport(self.handle))
        return QortClient(settings, http=http)


#: The README's error table (fault code -> gateway error code); the oracle.
README_FAULTS = {
    "VALIDATION": "INVALID_INPUT",
    "NOT_FOUND": "NOT_FOUND",
    "BUSY": "UPSTREAM_BUSY",
    "INVALID_TOKEN": "UPSTREAM_REJECTED",  # when the repeat with a new token fails too
    "LEVERAGE_WITHOUT_UPLOAD": "CONFLICT",
    "REPORT_NOT_READY": "CONFLICT",
    "INVALID_CREDENTIALS": "UPSTREAM_REJECTED",
    "APP_NOT_ALLOWED": "UPSTREAM_REJECTED",
    "INTERNAL": "UPSTREAM_UNAVAILABLE",
    "TOO_MANY_REQUESTS": "RATE_LIMITED",
}


def _expected(fault: Fault) -> str | None:
    """The gateway error code of a well-formed operation fault (None: not predicted).
    A code outside the table: QORT's failure (soap:Server) or a refusal (soap:Client)."""
    if not fault.well_formed or fault.code is None:
        return None
    code = fault.code.strip()
    if code in README_FAULTS:
        return README_FAULTS[code]
    return "UPSTREAM_UNAVAILABLE" if fault.faultcode.endswith("Server") else "UPSTREAM_REJECTED"


OPERATION_CALLS: dict[str, Callable[[QortClient], Any]] = {
    "GetFirmPacket": lambda c: c.get_firm_packet("DEMO-001"),
    "ExportRecords": lambda c: c.export_records("Firms", BOCode="DEMO-001"),
    "UploadQuikLimits": lambda c: c.upload_quik_limits("DEMO-001"),
    "GetClientReport": lambda c: c.get_client_report("RPT-000001"),
}


@FUZZ
@given(
    login_fault=st.one_of(st.none(), st.none(), faults),
    operation_faults=st.lists(faults, min_size=1, max_size=2),
    operation=st.sampled_from(sorted(OPERATION_CALLS)),
)
@example(
    login_fault=Fault("soap:Client", "VALIDATION", "bad"),
    operation_faults=[Fault("soap:Client", "X", "y")],
    operation="ExportRecords",
)
async def test_connector_maps_any_fault_to_a_typed_error(
    login_fault: Fault | None, operation_faults: list[Fault], operation: str
) -> None:
    qort = ScriptedQort(login=[login_fault], operation=list(operation_faults))
    client = qort.client()
    try:
        # connect(): what the connector's start() calls, and catches as BrokerGraphError only
        try:
            await client.connect()
        except BrokerGraphError as error:
            event(f"connect: {error.code}")
        outcome: Any
        try:
            outcome = await OPERATION_CALLS[operation](client)
        except BrokerGraphError as error:  # anything else fails the property
            outcome = error
    finally:
        await client.close()
    if not isinstance(outcome, BrokerGraphError):
        # Only GetFirmPacket answers NOT_FOUND with None; every other fault raises.
        assert operation == "GetFirmPacket" and outcome is None, outcome
        return
    event(f"{operation}: {type(outcome).__name__}")
    if login_fault is None:
        first = operation_faults[0]
        if first.well_formed and (first.code or "").strip() == "INVALID_TOKEN":
            first = operation_faults[-1]  # logged in again and repeated once
        expected = _expected(first)
        if expected is not None:
            assert outcome.code == expected, (outcome, first)
            assert outcome.details.get("vendorCode") == (first.code or "").strip()


@FUZZ
@given(
    code=st.sampled_from(sorted(CODES)),
    faultcode=st.sampled_from(["soap:Client", "soap:Server"]),
    message=st.one_of(st.sampled_from(["x", "no firm with BOCode 'DEMO-9'"]), xml_texts),
    operation=st.sampled_from(sorted(OPERATION_CALLS)),
)
async def test_connector_maps_each_qort_fault_code_per_the_readme(
    code: str, faultcode: str, message: str, operation: str
) -> None:
    """Every fault code of the table, on any operation, as the README's table says."""
    fault = Fault(faultcode, code, message)
    qort = ScriptedQort(login=[None], operation=[fault])
    client = qort.client()
    outcome: Any
    try:
        outcome = await OPERATION_CALLS[operation](client)
    except BrokerGraphError as error:  # anything else fails the property
        outcome = error
    finally:
        await client.close()
    if code == "NOT_FOUND" and operation == "GetFirmPacket":
        assert outcome is None  # a batch read's unknown partner
        return
    assert isinstance(outcome, BrokerGraphError), outcome
    if fault.well_formed:
        assert outcome.code == README_FAULTS[code], (code, outcome)
        assert outcome.details.get("vendorCode") == code
    if code == "INVALID_TOKEN":
        assert qort.calls.count("Login") == 2, qort.calls  # logged in again, repeated once


ERROR_LOGS = [
    "duplicate BOCode DEMO-001 in Firms",
    "no Firms record with BOCode FZ-0",
    "unknown OwnerFirm_BOCode 'Y'",
    "bad value of INN (12 digits expected) [Firms]",
    "*** unexpected value ***",
    "already exists: FZ-0 (",
]
#: Per-record results: IsProcessed anything (3 done, 4 error), ErrorLog anything.
record_results = st.builds(
    lambda aid, state, log, system_id: element(
        _q("RecordResult"),
        None,
        [
            element(_q("Aid"), aid),
            element(_q("IsProcessed"), state),
            *([] if log is None else [element(_q("ErrorLog"), log)]),
            *([] if system_id is None else [element(_q("SystemID"), system_id)]),
        ],
    ),
    st.one_of(st.integers(-(2**63), 2**63 - 1).map(str), xml_texts),
    st.one_of(st.sampled_from(["3", "4", "3", "4", "0", "-1", "2147483647"]), xml_texts),
    st.one_of(st.none(), xml_texts, st.sampled_from(ERROR_LOGS)),
    st.one_of(st.none(), st.integers(0, 2**40).map(str), xml_texts),
)


@st.composite
def record_answers(draw: st.DrawFn) -> tuple[int, list[ET.Element]]:
    """How many records are sent, and the results QORT answers (mostly one per record)."""
    count = draw(st.integers(1, 3))
    answered = draw(st.one_of(st.just(count), st.integers(0, 4)))
    return count, draw(st.lists(record_results, min_size=answered, max_size=answered))


@FUZZ
@given(answer=record_answers())
async def test_connector_maps_any_record_results_to_typed_errors(
    answer: tuple[int, list[ET.Element]],
) -> None:
    count, results = answer
    qort = ScriptedQort(login=[None], operation=[_response("ImportRecords", results)])
    client = qort.client()
    records = [(2, {"BOCode": f"FZ-{n}", "Name": "Fuzz"}) for n in range(count)]
    try:
        try:
            errors = await client.import_records("Firms", records)
        except BrokerGraphError as error:
            event(f"import: {error.code}")
            return
        assert len(results) == count, "a result count that differs must be refused"
        states = [r.findtext(_q("IsProcessed")) for r in results]
        assert len(errors) == sum(1 for s in states if s is None or s.strip() != "3")
        if errors:
            mapped = record_error(errors, missing_is_not_found="FZ-0")
            event(f"records: {type(mapped).__name__}")
            assert isinstance(mapped, Conflict | NotFound | InvalidInput), mapped
    finally:
        await client.close()
