"""Property-based (issue 7): cTrader's decoders never crash on what arrives.

* The CSV grids (``csvwire``: openPositions, closedPositions) and the rows' models
  (``wire``): arbitrary text, and grids with valid headers in any order, extra or
  missing columns, rows of the wrong width and cells holding anything (empty,
  ``"abc"``, ``"1e400"``, huge, unicode, quoted commas) parse to the exact models
  when the data is valid, and otherwise to models that pass the kit's checkers or a
  ``ProtocolError`` — never another exception.
* Trader objects (``wire.account_from_trader``) with any JSON value in any field, and
  any bytes as a JSON answer (``client._json``): an Account that passes
  ``check_account``, or a ``ProtocolError``.
* The sandbox's changebalance / changebonus over real HTTP with random JSON and XML
  bodies (deeply nested, entity tricks, huge exponents): a 4xx with the documented
  error body and no money moved, never a 5xx; a 200 only for a valid request, which
  moves exactly the amount asked.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
import pytest_asyncio
from brokergraph_ctrader.client import _json
from brokergraph_ctrader.csvwire import (
    CLOSED_POSITION_COLUMNS,
    OPEN_POSITION_COLUMNS,
    ClosedDealRow,
    OpenPositionRow,
    parse_closed_positions,
    parse_open_positions,
)
from brokergraph_ctrader.money import from_scaled
from brokergraph_ctrader.sandbox import CTraderSandbox
from brokergraph_ctrader.sandbox.errors import STATUS
from brokergraph_ctrader.sandbox.state import State
from brokergraph_ctrader.wire import account_from_trader, deal_from_row, position_from_row
from hypothesis import HealthCheck, event, example, given, note, settings
from hypothesis import strategies as st

from gateway.contract import ProtocolError
from gateway.testing import check_account, check_deal, check_position

FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
HTTP_FUZZ = settings(FUZZ, max_examples=80)
PLATFORM = "ctrader"
WEBSERV = "/v2/webserv"
JSON = "application/json"

# --------------------------------------------------------------------------- cells

#: Cells that are wrong, or right in an unusual way ("1e400" is a finite number).
ODD_CELLS = [
    "",
    " ",
    "abc",
    "1e400",
    "-1E+999999999",
    "1e9999999999999999999",
    "NaN",
    "Infinity",
    "-",
    "1,5",
    "0x10",
    "\u0661\u0662",
    "BUYY",
    "buy",
    "2026-13-01T00:00:00.000",
    "2026-02-30T25:61:00",
    "9999-12-31T23:59:59.999Z",
    '"quoted, comma"',
    "line\nbreak",
    "\x00",
    "9" * 5000,
    "x" * 200_000,  # beyond the csv module's field limit
]
junk = st.one_of(st.sampled_from(ODD_CELLS), st.text(max_size=30))
decimals = st.decimals(
    min_value=Decimal("-1e12"), max_value=Decimal("1e12"), places=8, allow_nan=False
).map(str)
moments = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1)).flatmap(
    lambda d: st.sampled_from(
        [
            d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}",
            d.strftime("%Y-%m-%dT%H:%M:%S"),
            d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z",
        ]
    )
)
VALID_CELLS: Mapping[str, st.SearchStrategy[str]] = {
    "login": st.integers(1, 10**9).map(str),
    "positionId": st.integers(1, 10**12).map(str),
    "dealId": st.integers(1, 10**12).map(str),
    "openTimestamp": moments,
    "closeTimestamp": moments,
    "direction": st.sampled_from(["BUY", "SELL", "buy", "Sell"]),
    "symbol": st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ.,\"' é", min_size=1, max_size=12).filter(
        lambda s: bool(s.strip())
    ),
    "usedMargin": st.one_of(st.just(""), decimals),
}
EXTRA_COLUMNS = ["bookType", "stake", "spreadBetting", "depositConversionRate", "usdConversionRate"]


def valid_cell(column: str) -> st.SearchStrategy[str]:
    return VALID_CELLS.get(column, decimals)


@st.composite
def grids(draw: st.DrawFn, required: tuple[str, ...]) -> tuple[str, bool, list[dict[str, str]]]:
    """A CSV grid: its text, whether it must parse, and the valid rows it holds.

    The header is the required columns (one maybe missing) and extras, in any order;
    a row is valid, has junk cells, or has the wrong width."""
    columns = list(required)
    missing = draw(st.one_of(st.none(), st.sampled_from(columns)))
    if missing is not None:
        columns.remove(missing)
    names = st.text(st.characters(exclude_categories=["Cc", "Cs"]), max_size=8)
    extras = draw(st.lists(st.one_of(st.sampled_from(EXTRA_COLUMNS), names), max_size=3))
    columns = draw(st.permutations(columns + [e for e in extras if e not in columns]))
    header = [draw(st.sampled_from([c, f" {c}", f"{c} "])) for c in columns]
    stripped = [c.strip() for c in columns]  # the parser strips header names
    parsable = missing is None and len(set(stripped)) == len(stripped) and "" not in stripped
    lines: list[list[str]] = [header]
    expected: list[dict[str, str]] = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["valid", "valid", "junk", "wide", "short"]))
        cells = {c: draw(valid_cell(c)) for c in columns}
        if kind == "junk":
            spoilt = draw(st.lists(st.sampled_from(columns), min_size=1, max_size=3))
            for column in spoilt:
                cells[column] = draw(junk)
        line = [cells[c] for c in columns]
        if kind == "wide":
            line += draw(st.lists(junk, min_size=1, max_size=2))
        elif kind == "short" and line:
            line = line[: draw(st.integers(0, len(line) - 1))]
        lines.append(line)
        if kind == "valid":
            expected.append(cells)
        elif kind in ("wide", "short") and any(x.strip() for x in line):
            parsable = False  # a row of the wrong width (unless it reads as a blank line)
        elif kind == "junk":
            parsable = False  # maybe
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
    writer.writerows(lines)
    text = draw(st.sampled_from(["", "\ufeff"])) + out.getvalue()
    return text, parsable, expected


def _timestamp(text: str) -> datetime:
    value = text.strip().removesuffix("Z")
    pattern = "%Y-%m-%dT%H:%M:%S.%f" if "." in value else "%Y-%m-%dT%H:%M:%S"
    return datetime.strptime(value, pattern).replace(tzinfo=UTC)


def _check_open(rows: list[OpenPositionRow]) -> None:
    for row in rows:
        check_position(position_from_row(row, PLATFORM), PLATFORM)


def _check_closed(rows: list[ClosedDealRow]) -> None:
    for row in rows:
        check_deal(deal_from_row(row, PLATFORM, "USD"), PLATFORM)


@FUZZ
@given(text=st.one_of(st.text(), st.text().map(lambda t: ",".join(OPEN_POSITION_COLUMNS) + t)))
def test_arbitrary_text_as_open_positions(text: str) -> None:
    try:
        rows = parse_open_positions(text)
    except ProtocolError:
        return
    _check_open(rows)


@FUZZ
@given(text=st.one_of(st.text(), st.text().map(lambda t: ",".join(CLOSED_POSITION_COLUMNS) + t)))
def test_arbitrary_text_as_closed_positions(text: str) -> None:
    try:
        rows = parse_closed_positions(text)
    except ProtocolError:
        return
    _check_closed(rows)


@FUZZ
@given(grid=grids(OPEN_POSITION_COLUMNS))
def test_open_position_grids(grid: tuple[str, bool, list[dict[str, str]]]) -> None:
    text, parsable, expected = grid
    note(repr(text[:3000]))
    try:
        rows = parse_open_positions(text)
    except ProtocolError:
        assert not parsable, "a valid openPositions grid was refused"
        return
    _check_open(rows)
    if parsable:
        assert len(rows) == len(expected)
        for row, cells in zip(rows, expected, strict=True):
            assert (row.login, row.position_id, row.symbol) == (
                cells["login"],
                cells["positionId"],
                cells["symbol"].strip(),
            )
            assert row.opened_at == _timestamp(cells["openTimestamp"])
            assert row.direction == cells["direction"].upper()
            assert row.entry_price == Decimal(cells["entryPrice"])
            assert row.volume == Decimal(cells["volume"])
            assert (row.commission, row.swap) == (
                Decimal(cells["commission"]),
                Decimal(cells["swap"]),
            )
            margin = cells.get("usedMargin", "")
            assert row.used_margin == (Decimal(margin) if margin else None)


@FUZZ
@given(grid=grids(CLOSED_POSITION_COLUMNS))
def test_closed_position_grids(grid: tuple[str, bool, list[dict[str, str]]]) -> None:
    text, parsable, expected = grid
    note(repr(text[:3000]))
    try:
        rows = parse_closed_positions(text)
    except ProtocolError:
        assert not parsable, "a valid closedPositions grid was refused"
        return
    _check_closed(rows)
    if parsable:
        assert len(rows) == len(expected)
        for row, cells in zip(rows, expected, strict=True):
            assert (row.login, row.position_id, row.deal_id) == (
                cells["login"],
                cells["positionId"],
                cells["dealId"],
            )
            assert (row.opened_at, row.closed_at) == (
                _timestamp(cells["openTimestamp"]),
                _timestamp(cells["closeTimestamp"]),
            )
            for name, value in (
                ("entry_price", "entryPrice"),
                ("close_price", "closePrice"),
                ("volume", "volume"),
                ("commission", "commission"),
                ("swap", "swap"),
                ("pnl", "pnl"),
            ):
                assert getattr(row, name) == Decimal(cells[value]), name


# --------------------------------------------------------------------------- trader JSON

#: What JSON can hold after ``json.loads(parse_float=Decimal)``: NaN/Infinity literals
#: come back as floats, big exponents as Decimals, big integers as ints.
json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([10**40, -(10**30), 2**63, 10**4000, 10**17, -(10**17)]),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.sampled_from([Decimal("1E+400"), Decimal("1E+999999999"), Decimal("-1E-999999999")]),
    st.sampled_from([float("nan"), float("inf"), 1.5]),
    st.text(max_size=20),
    st.sampled_from(["00", "-0", "12", "\u0661\u0662", "\u00b2", "9" * 5000, "USD", ""]),
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
_STATE = State(3, lambda: datetime(2026, 11, 20, tzinfo=UTC))
#: Trader objects exactly as the sandbox answers them (fiat and BTC).
TRADERS = [_STATE.wire(_STATE.traders[login]) for login in (9000001, 9000004)]
TRADER_KEYS = sorted({key for trader in TRADERS for key in trader})
_DELETE = object()


#: The fields the decoder reads: most spoilt fields are among them.
READ_KEYS = [
    "login",
    "depositCurrency",
    "moneyDigits",
    "balance",
    "equity",
    "nonWithdrawableBonus",
    "bonus",
    "usedMargin",
    "freeMargin",
    "accessRights",
    "leverageInCents",
    "groupName",
    "registrationTimestamp",
]


#: Values that broke decoders before: huge integers and exponents, NaN, odd digits.
NASTY = [
    10**40,
    -(10**30),
    2**63,
    10**4000,
    Decimal("1E+400"),
    Decimal("1E+999999999"),
    float("nan"),
    float("inf"),
    "9" * 5000,
    "\u00b2",
    "\u0661\u0662",
    "",
    None,
    True,
    [],
    {},
    -1,
]


@FUZZ
@given(
    base=st.sampled_from(TRADERS),
    changes=st.dictionaries(
        st.one_of(st.sampled_from(READ_KEYS), st.sampled_from(TRADER_KEYS), st.text(max_size=5)),
        st.one_of(st.sampled_from(NASTY), json_values, st.just(_DELETE)),
        max_size=3,
    ),
)
@example(base=TRADERS[0], changes={"leverageInCents": 10**40})
@example(base=TRADERS[1], changes={"registrationTimestamp": 10**30})
@example(base=TRADERS[0], changes={"registrationTimestamp": Decimal("1E+999999999")})
@example(base=TRADERS[1], changes={"login": Decimal("1E+999999999")})
def test_trader_objects_with_arbitrary_values(
    base: dict[str, Any], changes: dict[str, Any]
) -> None:
    data = dict(base)
    for key, value in changes.items():
        if value is _DELETE:
            data.pop(key, None)
        else:
            data[key] = value
    note(repr(data)[:3000])
    try:
        account = account_from_trader(data, PLATFORM, is_live=False, trader_id="1001")
    except ProtocolError:
        assert changes, "a trader exactly as cTrader sends it was refused"
        return
    check_account(account, PLATFORM)
    if not changes:
        assert account.id == str(base["login"])
        assert account.balance is not None
        assert account.balance.amount == from_scaled(base["balance"], base["moneyDigits"])


@FUZZ
@given(
    content=st.one_of(
        st.binary(max_size=200),
        json_values.map(lambda v: json.dumps(v, default=str).encode()),
        st.integers(1, 5_000).map(lambda n: b"[" * n + b"]" * n),
        st.integers(1, 3_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    )
)
@example(content=b"[" * 5_000)  # past json's recursion limit (a failure prints it whole)
def test_any_json_answer_decodes_or_is_a_protocol_error(content: bytes) -> None:
    response = httpx.Response(200, content=content, headers={"content-type": JSON})
    with contextlib.suppress(ProtocolError):  # any other exception fails the property
        _json(response)


# --------------------------------------------------------------------------- the sandbox

BALANCE_TYPES = {
    "DEPOSIT": ("balance", 1),
    "WITHDRAW": ("balance", -1),
    "DEPOSIT_NONWITHDRAWABLE_BONUS": ("nonWithdrawableBonus", 1),
    "WITHDRAW_NONWITHDRAWABLE_BONUS": ("nonWithdrawableBonus", -1),
}
BONUS_TYPES = {"DEPOSIT": ("bonus", 1), "WITHDRAW": ("bonus", -1)}
#: A trader of each money scale (USD: 2 digits, BTC: 8), one unknown, and junk paths.
LOGINS = ["9000001", "9000004", "9999999", "abc", "-1", "1e3", "9" * 30]
NUMBER_LITERALS = [
    "1e1000000",
    "-1e1000000",
    "1E+999999999",
    "1e-999999999",
    "100.001",
    "0.00000001",
    "5",
    "0",
    "-5",
    "1" + "0" * 5000,
    "12.5",
]


def _literal(value: Any) -> str:
    return json.dumps(value, default=str)


literals = st.one_of(
    json_values.map(_literal),
    st.sampled_from(NUMBER_LITERALS),
    st.sampled_from(LOGINS).map(_literal),
    st.sampled_from(list(BALANCE_TYPES)).map(_literal),
)


@st.composite
def near_valid(draw: st.DrawFn, login: str, operation: str) -> tuple[bytes, str | None]:
    """A body of ``operation`` with maybe a field or two spoilt, missing or added, as raw
    JSON text (number literals like ``1e1000000`` reach the server as written) or as
    XML; and its content type."""
    types = BALANCE_TYPES if operation == "changebalance" else BONUS_TYPES
    fields = {
        "login": login,
        "type": draw(st.sampled_from(list(types))),
        "preciseAmount": draw(st.sampled_from(["10", "0.5", "1.25", "3.5"])),
        "comment": "fuzz",
    }
    as_xml = draw(st.booleans())
    spoilt: dict[str, str | None] = {}
    for name in draw(st.lists(st.sampled_from([*fields, "externalId", "source", "x"]), max_size=2)):
        spoilt[name] = draw(st.one_of(xml_texts if as_xml else literals, st.none()))
    if as_xml:
        root = ET.Element(operation)
        for name, text in {**fields, **spoilt}.items():
            if text is not None:
                ET.SubElement(root, name).text = text
        return ET.tostring(root), draw(st.sampled_from(["application/xml", "text/xml", None]))
    literal: dict[str, str | None] = {name: _literal(value) for name, value in fields.items()}
    literal["login"] = login if login.isdigit() else _literal(login)
    literal["preciseAmount"] = draw(st.sampled_from([fields["preciseAmount"], '"3.5"']))
    literal.update(spoilt)
    text = ",".join(f"{json.dumps(k)}:{v}" for k, v in literal.items() if v is not None)
    return ("{" + text + "}").encode(), draw(st.sampled_from([JSON, "text/plain", None]))


XML_TRICKS = [
    b'<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">]><r><login>&a;</login></r>',
    b'<!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><r><comment>&c;</comment></r>',
    b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r><comment>&x;</comment></r>',
    b"<r><login>&undefined;</login></r>",
    b"<r><type>DEPOSIT</type><preciseAmount>1</preciseAmount><type>WITHDRAW</type></r>",
    b"<r>" + b"<a>" * 2000 + b"</a>" * 2000 + b"</r>",  # deeper than the recursion limit
    b"<r" * 1000,
    b"<?xml version='1.0' encoding='ebcdic'?><r/>",
    b"<?xml version='1.0' encoding='utf-7'?><r/>",
    b"<?xml version='1.0' encoding='utf-32'?><r/>",
    b"<r><login><x>1</x></login></r>",
]
xml_names = st.one_of(
    st.sampled_from(["login", "type", "preciseAmount", "externalId", "comment", "x"]),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,8}", fullmatch=True),
)
xml_texts = st.one_of(
    st.sampled_from([*NUMBER_LITERALS, *BALANCE_TYPES, *LOGINS]),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=20),
)


def _element(name: str, text: str, children: list[ET.Element]) -> ET.Element:
    element = ET.Element(name)
    element.text = text
    element.extend(children)
    return element


def _element_of(name: str, children: list[ET.Element]) -> ET.Element:
    return _element(name, "", children)


xml_trees: st.SearchStrategy[ET.Element] = st.recursive(
    st.builds(
        lambda name, text: _element(name, text, []),
        xml_names,
        xml_texts,
    ),
    lambda inner: st.builds(_element_of, xml_names, st.lists(inner, max_size=4)),
    max_leaves=8,
)


def bodies(login: str, operation: str) -> st.SearchStrategy[tuple[bytes, str | None]]:
    """Half near-valid bodies (so some are accepted), half anything."""
    anything = st.one_of(
        st.binary(max_size=200),
        json_values.map(lambda v: _literal(v).encode()),
        xml_trees.map(lambda e: ET.tostring(e)),
        st.sampled_from(XML_TRICKS),
        st.integers(1, 5_000).map(lambda n: b"[" * n + b"]" * n),
    )
    content_types = st.sampled_from([JSON, "application/xml", "text/plain", None])
    return st.one_of(near_valid(login, operation), st.tuples(anything, content_types))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def fuzz_sandbox() -> AsyncIterator[CTraderSandbox]:
    """A sandbox of this module's own: every example resets it, and the hourly write
    limit is out of the way."""
    sandbox = CTraderSandbox(rate_limit_per_hour=10**9)
    await sandbox.start()
    try:
        yield sandbox
    finally:
        await sandbox.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def sandbox_http(fuzz_sandbox: CTraderSandbox) -> AsyncIterator[httpx.AsyncClient]:
    verify = fuzz_sandbox.client_ssl_context()
    async with httpx.AsyncClient(base_url=fuzz_sandbox.url, timeout=30, verify=verify) as http:
        password_md5 = hashlib.md5(b"manager-pass").hexdigest()
        token = await http.post(
            f"{WEBSERV}/managers/token",
            json={"login": 30017, "hashedPassword": password_md5},
            headers={"Accept": JSON},
        )
        assert token.status_code == 200, token.text
        http.params = {"token": token.json()["webservToken"]}
        yield http


async def _money(http: httpx.AsyncClient, login: str) -> dict[str, int] | None:
    """The trader's balance, credit and bonus (scaled), or None when there is none."""
    if not login.isdigit():
        return None
    response = await http.get(f"{WEBSERV}/traders/{login}", headers={"Accept": JSON})
    if response.status_code in (400, 404):  # not a login (19+ digits), no such trader
        return None
    assert response.status_code == 200, response.text
    trader = response.json()
    return {k: trader[k] for k in ("balance", "nonWithdrawableBonus", "bonus", "moneyDigits")}


def _error_code(response: httpx.Response, wants_json: bool) -> str:
    """The documented error body's code (JSON, or XML without Accept: application/json)."""
    if wants_json:
        error = response.json()["error"]
        assert set(error) == {"errorCode", "description"}, error
        assert isinstance(error["description"], str)
        code: str = error["errorCode"]
        return code
    root = ET.fromstring(response.content)
    assert root.tag == "error", response.text
    assert root.findtext("description") is not None
    return root.findtext("errorCode") or ""


def _requested(body: bytes) -> tuple[str, Decimal]:
    """The type and amount of a request the sandbox accepted (it must have both)."""
    if body.lstrip().startswith(b"<"):
        root = ET.fromstring(body)
        return (root.findtext("type") or "").strip(), Decimal(root.findtext("preciseAmount") or "")
    data = json.loads(body, parse_float=Decimal)
    return str(data["type"]), Decimal(str(data["preciseAmount"]))


@HTTP_FUZZ
@given(
    data=st.data(),
    login=st.one_of(st.sampled_from(LOGINS[:2]), st.sampled_from(LOGINS)),
    operation=st.sampled_from(["changebalance", "changebonus"]),
    wants_json=st.booleans(),
)
async def test_sandbox_money_changes_refuse_bad_bodies(
    fuzz_sandbox: CTraderSandbox,
    sandbox_http: httpx.AsyncClient,
    data: st.DataObject,
    login: str,
    operation: str,
    wants_json: bool,
) -> None:
    fuzz_sandbox.reset()
    body, content_type = data.draw(bodies(login, operation), label="body")
    before = await _money(sandbox_http, login)
    headers = {"Accept": JSON if wants_json else "application/xml"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = await sandbox_http.post(
        f"{WEBSERV}/traders/{login}/{operation}", content=body, headers=headers
    )
    after = await _money(sandbox_http, login)
    event(f"HTTP {response.status_code}")
    assert response.status_code < 500, response.text
    if response.status_code != 200:
        code = _error_code(response, wants_json)
        assert STATUS.get(code) == response.status_code, (code, response.status_code)
        assert after == before, "a refused change moved money"
        return
    # Accepted: the request was valid, and exactly its amount moved.
    assert before is not None and after is not None
    kind, amount = _requested(body)
    key, sign = (BALANCE_TYPES if operation == "changebalance" else BONUS_TYPES)[kind]
    scaled = amount.scaleb(before["moneyDigits"])
    assert after[key] - before[key] == sign * scaled, (kind, amount, before, after)
    assert {k: v for k, v in after.items() if k != key} == {
        k: v for k, v in before.items() if k != key
    }


NASTY_BODIES = [
    *XML_TRICKS,
    b"[" * 5_000 + b"]" * 5_000,
    b'{"login":' * 3_000 + b"1" + b"}" * 3_000,
    b'{"login": 1e1000000, "type": "DEPOSIT", "preciseAmount": 1}',
]


@pytest.mark.parametrize("body", NASTY_BODIES, ids=range(len(NASTY_BODIES)))
@pytest.mark.parametrize("wants_json", [True, False], ids=["json", "xml"])
async def test_sandbox_refuses_each_known_nasty_body(
    fuzz_sandbox: CTraderSandbox, sandbox_http: httpx.AsyncClient, body: bytes, wants_json: bool
) -> None:
    """Every trick above, always (the property draws them at random): a documented 4xx
    within the client's timeout, and no money moved."""
    fuzz_sandbox.reset()
    before = await _money(sandbox_http, "9000001")
    response = await sandbox_http.post(
        f"{WEBSERV}/traders/9000001/changebalance",
        content=body,
        headers={"Accept": JSON if wants_json else "application/xml"},
    )
    assert 400 <= response.status_code < 500, response.text
    code = _error_code(response, wants_json)
    assert STATUS.get(code) == response.status_code, code
    assert await _money(sandbox_http, "9000001") == before
