"""Schema-driven fuzz: every Query and Mutation root field, every argument type, over HTTP.

One gateway serves the toy and all four vendors' sandboxes.  The fuzzer reads that
gateway's schema by introspection (so a field added tomorrow is fuzzed without touching
this file), and for each root field draws an operation: arguments of every type
(encoded ids of real seeded objects, other partners' ids, ids of the wrong type, junk;
strings with control characters, XML markup, 20 000 characters or any Unicode;
integers at the 32-bit edges; decimals as strings such as ``"NaN"`` and ``"1e400"``;
date-times; enums; nulls; lists) and a selection that reaches nested fields with
arguments (``deals(from:, to:)``, ``accountInformation(currencyCode:)`` ...) through
inline fragments on the concrete types.  The same operation is sent with its
arguments as variables and as literals, under an admin, a manager or a client token.

Whatever comes back must be a handled answer: no HTTP 5xx, every error has an
``extensions.code``, and no error (top level or a mutation payload's) is ``INTERNAL``.
Raw documents (random bytes, truncated operations, deep nesting) get no 5xx either.

The budget is fixed and the examples derandomized, so CI runs the same cases every
time in about half a minute.  A longer session, e.g. before a release::

    BROKERGRAPH_FUZZ_EXAMPLES=500 .venv/bin/pytest tests/test_fuzz_schema.py -p no:cacheprovider

(examples per root field; the raw-document test runs four times as many, and
``BROKERGRAPH_FUZZ_SEED=<int>`` explores other cases than CI's).
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import re
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, cast

import brokergraph_ctrader.plugin
import brokergraph_dxtrade.plugin
import brokergraph_qort.plugin
import brokergraph_qst.plugin
import httpx
import pytest
import pytest_asyncio
from brokergraph_ctrader.sandbox import CTraderSandbox
from brokergraph_dxtrade.sandbox import DxTradeSandbox
from brokergraph_qort.sandbox import QortSandbox
from brokergraph_qst.sandbox import QstSandbox
from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLUnionType,
    IntrospectionQuery,
    Undefined,
    build_client_schema,
    get_introspection_query,
    get_named_type,
    is_leaf_type,
)
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

import tests.toy.plugin
from gateway.graphql import build_schema
from gateway.graphql.ids import MAX_ID_LENGTH, encode_id
from gateway.plugins import load_plugins
from gateway.testing import TestGateway, open_test_gateway
from tests.toy.sandbox import ToySandbox

PLUGINS: Sequence[object] = (
    tests.toy.plugin,
    brokergraph_ctrader.plugin,
    brokergraph_dxtrade.plugin,
    brokergraph_qort.plugin,
    brokergraph_qst.plugin,
)
SANDBOXES = (ToySandbox, CTraderSandbox, DxTradeSandbox, QortSandbox, QstSandbox)
TOKENS = ("admin", "manager", "client")
ROOTS = ("query", "mutation")

#: Examples per root field (and four times as many raw documents); see the docstring.
EXAMPLES = int(os.environ.get("BROKERGRAPH_FUZZ_EXAMPLES", "20"))
FUZZ_SEED = int(os.environ.get("BROKERGRAPH_FUZZ_SEED", "0"))
#: Derandomized by default: CI runs the same cases on every run.
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=FUZZ_SEED == 0,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")
#: Depth of the nested selection below a root field (the gateway allows 12).
SELECTION_DEPTH = 3
INT32 = 2**31


def _root_fields(schema: GraphQLSchema) -> list[tuple[str, str]]:
    roots = {"query": schema.query_type, "mutation": schema.mutation_type}
    return [(root, name) for root, kind in roots.items() if kind for name in kind.fields]


#: The root fields the parametrized test runs, read from the schema these plugins build.
#: test_the_live_schema_has_no_field_the_fuzz_misses holds them equal to the live ones.
COLLECTED = _root_fields(
    build_schema(load_plugins(entry_points=False, extra=PLUGINS, strict=True))._schema
)


# -- the seeded objects, and the values a fuzzer draws ------------------------------


@dataclass(repr=False)  # a failure's report shows the example, not every seeded value
class Pools:
    """Real values read from the gateway at start: global ids by type, and strings; and
    the strategies built from them, by input type."""

    ids: dict[str, list[str]] = field(default_factory=dict)
    strings: set[str] = field(default_factory=set)
    strategies: dict[tuple[str, bool], st.SearchStrategy[Any]] = field(default_factory=dict)

    def harvest(self, value: Any, key: str = "") -> None:
        if isinstance(value, dict):
            for child_key, child in value.items():
                self.harvest(child, child_key)
        elif isinstance(value, list):
            for child in value:
                self.harvest(child, key)
        elif isinstance(value, str) and key in ("id", "accountId", "traderId"):
            type_name = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))[0]
            self.ids.setdefault(type_name, [])
            if value not in self.ids[type_name]:
                self.ids[type_name].append(value)
        elif isinstance(value, str):
            self.strings.add(value)


PARTNERS = "{ businessPartners(first: 20) { edges { node { id code } } } connectors { platform } }"
#: One partner's objects (the whole tree at once costs over the gateway's limit).
PARTNER = """query($code: String!) { businessPartner(code: $code) {
  id code name broker
  traders { id externalId login email }
  accounts { id externalId number currency group
    orders { id externalId symbol clientOrderId }
    positions { symbol accountId externalId } }
} }"""

XML_UNSAFE = ("<a>&amp;</a>", "]]>", "<![CDATA[x]]>", "&#0;", "\"'<>&", "<?xml?>")
CONTROL = "".join(map(chr, range(32))) + "\x7f\x85\u2028\u2029\ufeff"
#: Decimal texts the scalar takes: out of every platform's range, negative, zero,
#: exponents, 38 digits, Unicode digits and padding (Decimal() accepts both).
VALID_DECIMALS = (
    "1e400", "-1e400", "1E-400", "0", "-0", "-1", "0.1", "1.000000001", "  5  ", "1_000",
    "1e-7", "-0.00000001", "99999999999999999999999999999999999999", "९", "1" * 39,
)  # fmt: skip
REFUSED_DECIMALS = (
    "NaN",
    "-NaN",
    "sNaN",
    "Infinity",
    "-Infinity",
    "0x10",
    "",
    "1,5",
    "0." + "1" * 40,
)
VALID_DATES = (
    "2026-10-01T00:00:00Z", "2026-11-01T00:00:00+00:00", "2026-10-15T12:00:00+14:00",
    "1970-01-01T00:00:00Z", "1970-01-02T00:00:00Z", "8999-12-30T00:00:00Z",
    "8999-12-31T23:59:59.999999Z", "2026-10-01T00:00:00.123456Z", "1970-01-01T00:00:00-12:00",
)  # fmt: skip
#: Texts the Date scalar refuses: no such day, not ISO, a time, no text at all.
REFUSED_DAYS = ("2024-02-30", "2024-13-01", "24-01-01", "2024-01-01T00:00:00Z", "", "x", 20240101)

#: Naive, date-only, impossible, outside the scalar's years 1970-8999 (at datetime's edges).
REFUSED_DATES = (
    "2026-10-01T00:00:00", "2026-10-01", "2026-02-30T00:00:00Z", "yesterday", "",
    "0001-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59Z",
    "1969-12-31T23:59:59Z",
)  # fmt: skip
TIMEZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=14)), timezone(-timedelta(hours=12, minutes=30))]
)
JUNK: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
JSON_OBJECTS = st.dictionaries(st.text(max_size=8), JUNK, max_size=3)


def evil_strings(pools: Pools) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(sorted(pools.strings)),
        st.text(max_size=40),
        st.text(alphabet=CONTROL, min_size=1, max_size=10),
        st.sampled_from(XML_UNSAFE),
        st.builds("".join, st.lists(st.sampled_from([*XML_UNSAFE, *CONTROL, "A", "é"]))),
        st.integers(1, 20_000).map(lambda n: "x" * n),
        st.text(
            alphabet=st.characters(min_codepoint=0x80, exclude_categories=["Cs"]),
            min_size=1,
            max_size=20,
        ),
    )


def id_values(pools: Pools) -> st.SearchStrategy[str]:
    """Real ids of every type (so other partners' and wrong-typed ones too) and junk."""
    real = [i for ids in pools.ids.values() for i in ids]
    platforms = sorted(
        {p for p in pools.strings if p in {"toy", "ctrader", "dxtrade", "qort", "qst"}}
    )
    parts = st.one_of(st.sampled_from(sorted(pools.strings)), evil_strings(pools))
    return st.one_of(
        st.sampled_from(real),
        st.builds(
            lambda t, p, rest: encode_id(t, p, *rest),
            st.sampled_from(["Account", "Trader", "Order", "BusinessPartner", "cursor", "X"]),
            st.sampled_from([*platforms, "nowhere"]),
            st.lists(parts, max_size=3),
        ),
        st.builds(lambda raw: base64.urlsafe_b64encode(raw).decode(), st.binary(max_size=60)),
        st.sampled_from(
            [
                encode_id("Account"),
                base64.urlsafe_b64encode(b'{"a": 1}').decode(),
                base64.urlsafe_b64encode(b'["Account", 1, 2]').decode(),
                "x" * (MAX_ID_LENGTH + 1),
                "",
                "=",
            ]
        ),
        st.text(alphabet="ABCDEFabcdef0123456789_-=", max_size=80),
    )


def decimal_values(sloppy: bool) -> st.SearchStrategy[Any]:
    """Texts the Decimal scalar takes (``"1e400"`` and ``"-0"`` are finite) and, when
    sloppy, the ones it refuses (``"NaN"``, floats, 41 characters ...)."""
    valid = st.one_of(
        st.sampled_from(VALID_DECIMALS),
        st.decimals(allow_nan=False, allow_infinity=False, places=4).map(str),
        st.integers(-(10**20), 10**20).map(str),
    )
    if not sloppy:
        return valid
    return st.one_of(valid, st.sampled_from(REFUSED_DECIMALS), st.integers(), st.floats())


def scalar_values(name: str, pools: Pools, sloppy: bool) -> st.SearchStrategy[Any]:
    """Values for a scalar by name; a scalar missing here fails the run (a new one needs one)."""
    edges = [0, -1, 1, 100, 101, INT32 - 1, -INT32]
    int32 = st.one_of(st.sampled_from(edges), st.integers(-INT32, INT32 - 1))
    if sloppy:
        int32 = st.one_of(int32, st.sampled_from([INT32, -INT32 - 1, 2**53, 2**64]))
    dates = st.one_of(
        st.sampled_from(VALID_DATES),
        st.datetimes(
            min_value=datetime(1970, 1, 2), max_value=datetime(8999, 12, 30), timezones=TIMEZONES
        ).map(lambda d: d.isoformat()),
    )
    days = st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)).map(date.isoformat)
    table: dict[str, Callable[[], st.SearchStrategy[Any]]] = {
        "ID": lambda: id_values(pools),
        "String": lambda: evil_strings(pools),
        "Int": lambda: int32,
        "Float": lambda: st.one_of(st.floats(allow_nan=sloppy, allow_infinity=sloppy), int32),
        "Boolean": st.booleans,
        "Decimal": lambda: decimal_values(sloppy),
        "DateTime": lambda: st.one_of(dates, st.sampled_from(REFUSED_DATES)) if sloppy else dates,
        "Date": lambda: st.one_of(days, st.sampled_from(REFUSED_DAYS)) if sloppy else days,
        # Two levels written out: st.recursive's thread-local leaf budget made generation
        # inconsistent between runs of the async test (FlakyStrategyDefinition).
        "JSON": lambda: st.one_of(
            JUNK, st.dictionaries(st.text(max_size=8), st.one_of(JUNK, JSON_OBJECTS), max_size=3)
        ),
        "_Any": lambda: st.fixed_dictionaries(
            {"__typename": st.one_of(st.sampled_from(sorted(pools.ids)), st.text(max_size=12))},
            optional={"id": id_values(pools), "code": evil_strings(pools)},
        ),
    }
    if name not in table:
        raise LookupError(f"no fuzz strategy for scalar {name}: add one to scalar_values")
    return table[name]()


def input_values(type_: GraphQLInputType, pools: Pools, sloppy: bool) -> st.SearchStrategy[Any]:
    """Values of ``type_``: well-typed ones reach the resolvers (then the connectors);
    sloppy ones also break the type (null for non-null, junk, unknown fields) and test
    the refusals before execution.  Built once per type (Hypothesis caches by identity)."""
    key = (str(type_), sloppy)
    if key not in pools.strategies:
        pools.strategies[key] = _input_values(type_, pools, sloppy)
    return pools.strategies[key]


def _input_values(type_: GraphQLInputType, pools: Pools, sloppy: bool) -> st.SearchStrategy[Any]:
    nullable = not isinstance(type_, GraphQLNonNull)
    named = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
    typed: st.SearchStrategy[Any]
    if isinstance(named, GraphQLList):
        item = input_values(named.of_type, pools, sloppy)
        # One item more than the gateway's lists take (100), and a bare item (coerced).
        typed = st.one_of(st.lists(item, max_size=4), item, item.map(lambda v: [v] * 101))
    elif isinstance(named, GraphQLInputObjectType):
        fields = {n: input_values(f.type, pools, sloppy) for n, f in named.fields.items()}
        required = {
            n: fields[n] for n, f in named.fields.items() if isinstance(f.type, GraphQLNonNull)
        }
        optional = {n: v for n, v in fields.items() if n not in required}
        if sloppy:
            optional["unknownField"] = JUNK
        typed = st.fixed_dictionaries(required, optional=optional)
    elif isinstance(named, GraphQLEnumType):
        typed = st.sampled_from(sorted(named.values))
        if sloppy:
            typed = st.one_of(typed, st.sampled_from(["nope", "buy", ""]))
    else:
        assert isinstance(named, GraphQLScalarType), named
        typed = scalar_values(named.name, pools, sloppy)
    if sloppy:
        return st.one_of(typed, typed, typed, typed, st.none(), JUNK)
    return st.one_of(typed, typed, st.none()) if nullable else typed


# -- operations: drawn once, sent with variables and with literals ------------------


@dataclass
class Operation:
    root: str
    #: The document, with ``@@0@@``, ``@@1@@`` ... where the argument values go.
    template: str
    arguments: list[tuple[GraphQLInputType, Any]]

    def with_variables(self) -> tuple[str, dict[str, Any]]:
        header = ", ".join(f"$v{i}: {t}" for i, (t, _) in enumerate(self.arguments))
        document = SLOT.sub(lambda m: f"$v{m[1]}", self.template)
        if header:
            document = document.replace(self.root, f"{self.root} Fuzz({header})", 1)
        return document, {f"v{i}": v for i, (_, v) in enumerate(self.arguments)}

    def with_literals(self) -> str:
        return SLOT.sub(lambda m: literal(*reversed(self.arguments[int(m[1])])), self.template)


SLOT = re.compile(r"@@(\d+)@@")


def literal(value: Any, type_: GraphQLInputType | None) -> str:
    """``value`` written as a GraphQL literal of ``type_`` (junk stays junk)."""
    named = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else json.dumps(str(value))
    if isinstance(value, list):
        item = named.of_type if isinstance(named, GraphQLList) else None
        return "[" + ", ".join(literal(v, item) for v in value) + "]"
    if isinstance(named, GraphQLList):
        return literal(value, named.of_type)
    if isinstance(value, dict):
        fields = named.fields if isinstance(named, GraphQLInputObjectType) else {}
        return (
            "{"
            + ", ".join(
                f"{k}: {literal(v, fields[k].type if k in fields else None)}"
                for k, v in value.items()
                if NAME.fullmatch(k)
            )
            + "}"
        )
    text = str(value)
    if isinstance(named, GraphQLEnumType) and NAME.fullmatch(text):
        return text
    return json.dumps(text).replace("\x7f", "\\u007f")


@st.composite
def operations(
    draw: st.DrawFn, schema: GraphQLSchema, pools: Pools, root: str, name: str
) -> Operation:
    root_type = schema.query_type if root == "query" else schema.mutation_type
    assert root_type is not None
    drawing = Drawing(draw, schema, pools, sloppy=draw(st.integers(0, 3), label="sloppy") == 0)
    selection = drawing.field(name, root_type.fields[name], 0)
    return Operation(root, f"{root} {{ {selection} }}", drawing.arguments)


@dataclass
class Drawing:
    """One operation being drawn: its argument slots so far."""

    draw: st.DrawFn
    schema: GraphQLSchema
    pools: Pools
    sloppy: bool
    arguments: list[tuple[GraphQLInputType, Any]] = field(default_factory=list)

    def field(self, name: str, field_: GraphQLField, depth: int) -> str:
        """``name(args) { selection }``; required arguments always, optional ones by chance."""
        args = []
        for arg_name, arg in field_.args.items():
            required = isinstance(arg.type, GraphQLNonNull) and arg.default_value is Undefined
            if not required and self.draw(st.booleans()):
                continue
            value = self.draw(input_values(arg.type, self.pools, self.sloppy), label=arg_name)
            self.arguments.append((arg.type, value))
            args.append(f"{arg_name}: @@{len(self.arguments) - 1}@@")
        call = f"{name}({', '.join(args)})" if args else name
        selection = self.selection(field_.type, depth + 1)
        return f"{call} {selection}" if selection else call

    def selection(self, type_: GraphQLOutputType, depth: int) -> str:
        """A few fields of ``type_``, fields with arguments first; up to three concrete types of
        an interface or union through an inline fragment."""
        named = get_named_type(type_)
        if is_leaf_type(named):
            return ""
        if isinstance(named, GraphQLInterfaceType | GraphQLUnionType):
            possible = list(self.schema.get_possible_types(named))
            chosen = self.draw(st.lists(st.sampled_from(possible), unique=True, max_size=3))
            fragments = [f"... on {t.name} {self.selection(t, depth)}" for t in chosen]
            return "{ __typename " + " ".join(fragments) + " }"
        assert isinstance(named, GraphQLObjectType), named
        names = sorted(named.fields)
        if depth >= SELECTION_DEPTH:
            # Deep enough: leaves only (an object field would need a selection of its own).
            names = [n for n in names if is_leaf_type(get_named_type(named.fields[n].type))]
        with_args = [n for n in names if named.fields[n].args]
        # A payload's typed errors are always read: an INTERNAL there is what we hunt.
        picked = [n for n in ("errors", "code") if n in names]
        if with_args:
            picked += self.draw(st.lists(st.sampled_from(with_args), unique=True, max_size=2))
        picked += self.draw(st.lists(st.sampled_from(names), unique=True, max_size=3))
        parts = [self.field(n, named.fields[n], depth) for n in dict.fromkeys(picked)]
        return "{ __typename " + " ".join(parts) + " }"


# -- the gateway under fuzz ----------------------------------------------------------


@dataclass(repr=False)
class Fleet:
    gateway: TestGateway
    schema: GraphQLSchema
    pools: Pools


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def fleet(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Fleet]:
    """The toy and the four vendors' sandboxes behind one gateway (no per-viewer budget:
    the fuzz is one viewer's flood, and 429 would only hide what it looks for)."""
    async with contextlib.AsyncExitStack() as stack:
        sandboxes = [await stack.enter_async_context(cls()) for cls in SANDBOXES]
        gateway = await stack.enter_async_context(
            open_test_gateway(
                PLUGINS,
                sandboxes,
                tmp_path_factory.mktemp("fuzz-schema"),
                limits={"requests_per_viewer_per_second": 0},
            )
        )
        introspected = await gateway.data(get_introspection_query())
        schema = build_client_schema(cast(IntrospectionQuery, introspected))
        pools = Pools()
        partners = await gateway.data(PARTNERS)
        pools.harvest(partners)
        for edge in partners["businessPartners"]["edges"]:
            # Some reads fail by design (orders where a platform has none): keep the rest.
            pools.harvest((await gateway.query(PARTNER, {"code": edge["node"]["code"]}))["data"])
        yield Fleet(gateway, schema, pools)


def coded_errors(body: Any, seen: str) -> Iterator[str]:
    """Every error's code in a response body (top level and typed payload errors);
    fails on an error without one."""
    for answer in body if isinstance(body, list) else [body]:
        assert isinstance(answer, dict), seen
        for error in answer.get("errors") or ():
            code = (error.get("extensions") or {}).get("code")
            assert isinstance(code, str) and code, f"an error without a code\n{seen}"
            yield code
        yield from payload_codes(answer.get("data"))


def payload_codes(data: Any) -> Iterator[str]:
    if isinstance(data, dict):
        if isinstance(data.get("code"), str) and data.get("__typename", "").endswith("Error"):
            yield data["code"]
        for value in data.values():
            yield from payload_codes(value)
    elif isinstance(data, list):
        for value in data:
            yield from payload_codes(value)


async def send(fleet: Fleet, body: Mapping[str, Any], token: str) -> httpx.Response:
    # Encoded here: httpx refuses NaN and Infinity, which a client may still send.
    return await fleet.gateway.http.post(
        fleet.gateway.graphql_url,
        content=json.dumps(body).encode(),
        headers={
            "Authorization": f"Bearer {fleet.gateway.tokens[token]}",
            "Content-Type": "application/json",
        },
    )


def assert_handled(response: httpx.Response, sent: Any) -> None:
    seen = f"HTTP {response.status_code}: {response.text[:3000]}\nsent: {json.dumps(sent)[:3000]}"
    # 413: 101 copies of a 20 000-character string are over the body limit, as designed.
    assert response.status_code in (200, 400, 413), seen
    codes = set(coded_errors(response.json(), seen))
    assert "INTERNAL" not in codes, seen


# -- the tests -----------------------------------------------------------------------


async def test_the_live_schema_has_no_field_the_fuzz_misses(fleet: Fleet) -> None:
    """The parametrized fields are the live ones, and every argument type has a strategy
    (a new scalar fails here, not silently)."""
    assert sorted(_root_fields(fleet.schema)) == sorted(COLLECTED)
    for scalar in argument_scalars(fleet.schema):
        for sloppy in (False, True):
            scalar_values(scalar, fleet.pools, sloppy)


def argument_scalars(schema: GraphQLSchema) -> set[str]:
    """The scalars any argument can hold, input objects followed."""
    found: set[str] = set()
    seen: set[str] = set()

    def visit(type_: GraphQLInputType) -> None:
        named = get_named_type(type_)
        if named.name in seen:
            return
        seen.add(named.name)
        if isinstance(named, GraphQLScalarType):
            found.add(named.name)
        elif isinstance(named, GraphQLInputObjectType):
            for input_field in named.fields.values():
                visit(input_field.type)

    for type_ in schema.type_map.values():
        if isinstance(type_, GraphQLObjectType | GraphQLInterfaceType):
            for output_field in type_.fields.values():
                for arg in output_field.args.values():
                    visit(arg.type)
    return found


@pytest.mark.parametrize(("root", "name"), COLLECTED, ids=[n for _, n in COLLECTED])
@seed(FUZZ_SEED)
@FUZZ
@given(data=st.data())
async def test_root_field_survives_fuzzed_arguments(
    fleet: Fleet, root: str, name: str, data: st.DataObject
) -> None:
    operation = data.draw(operations(fleet.schema, fleet.pools, root, name), label="operation")
    token = data.draw(st.sampled_from(TOKENS), label="token")
    document, variables = operation.with_variables()
    sent: Any = {"query": document, "variables": variables}
    assert_handled(await send(fleet, sent, token), sent)
    sent = {"query": operation.with_literals()}
    assert_handled(await send(fleet, sent, token), sent)


#: Documents to cut short or wrap: one of each kind of operation.
RAW_SEEDS = (
    "{ viewer { role } businessPartners(first: 2) { edges { node { code } } } }",
    'query Q($id: ID!) { account(id: $id) { id number deals(from: "2026-10-01T00:00:00Z",'
    ' to: "2026-10-02T00:00:00Z") { externalId } } }',
    'mutation { deposit(input: {accountId: "x", amount: "1", idempotencyKey: "k"}) '
    "{ errors { code } } }",
    "fragment F on Query { viewer { role } } query { ...F }",
    "subscription { toyTicks(count: 2) }",
)
NESTINGS = (
    ("{ viewer ", "{ role ", "}"),
    ("{ ", "", "}"),
    ("{ nodes(ids: ", "[", "]"),
    ("query { viewer { ...F } } fragment F on ViewerInfo { ", "... on ViewerInfo { ", "}"),
    ("{ __typename ", "@skip(if: false) ", ""),
    ("{ ", "a: __typename ", ""),
)


DEEP = "@@deep@@"


def nested(prefix: str, step: str, close: str, depth: int) -> str:
    return prefix + step * depth + close * depth + ("]) { id } }" if "[" in step else "}")


@st.composite
def raw_requests(draw: st.DrawFn) -> tuple[str, dict[str, str], bytes | str]:
    """(method, headers, body or query string) with a document that is cut, nested deep,
    random, or no GraphQL request at all."""
    document = draw(
        st.one_of(
            st.builds(lambda d, n: d[:n], st.sampled_from(RAW_SEEDS), st.integers(0, 160)),
            st.tuples(st.sampled_from(NESTINGS), st.integers(1, 5000)).map(
                lambda t: nested(*t[0], t[1])
            ),
            st.text(max_size=200),
            st.text(alphabet='{}()[]:$@!."\\ \n#,=&|', max_size=300),
        )
    )
    variables = draw(st.one_of(st.none(), st.just({"id": DEEP}), JUNK))
    body: Any = {"query": document, "variables": variables}
    if draw(st.booleans()):
        body["operationName"] = draw(JUNK)
    if draw(st.integers(0, 4)) == 0:
        body = [body] * draw(st.integers(0, 12))
    # Variables nested thousands deep: written out, as Python's json cannot.
    depth = draw(st.integers(1, 5000))
    encoded = json.dumps(body).replace(f'"{DEEP}"', "[" * depth + "]" * depth).encode()
    payload: bytes | str = draw(
        st.one_of(
            st.just(encoded),
            st.integers(0, len(encoded)).map(lambda n: encoded[:n]),
            st.binary(max_size=300),
            st.just(document),
        )
    )
    content_type = draw(
        st.sampled_from(
            ["application/json", "application/json; charset=latin-1", "text/plain",
             "application/graphql", "multipart/form-data; boundary=x", ""]
        )
    )  # fmt: skip
    accept = draw(
        st.sampled_from(["", "*/*", "application/graphql-response+json", "text/html", "x/y;q=x"])
    )
    headers = {k: v for k, v in (("Content-Type", content_type), ("Accept", accept)) if v}
    if isinstance(payload, str) and len(payload) > 4000:
        payload = encoded  # a URL that long is refused by httpx before it is sent
    method = "GET" if isinstance(payload, str) else "POST"
    return method, headers, payload


@seed(FUZZ_SEED)
@settings(FUZZ, max_examples=EXAMPLES * 4)
@given(request=raw_requests(), token=st.sampled_from([*TOKENS, None, "garbage"]))
async def test_raw_documents_never_get_a_5xx(
    fleet: Fleet, request: tuple[str, dict[str, str], bytes | str], token: str | None
) -> None:
    method, headers, payload = request
    gateway = fleet.gateway
    if token is not None:
        headers["Authorization"] = f"Bearer {gateway.tokens.get(token, token)}"
    if isinstance(payload, str):
        response = await gateway.http.get(
            gateway.graphql_url, params={"query": payload}, headers=headers
        )
    else:
        response = await gateway.http.post(gateway.graphql_url, content=payload, headers=headers)
    seen = f"HTTP {response.status_code}: {response.text[:2000]}\nsent: {method} {payload[:2000]!r}"
    assert response.status_code < 500, seen
    if response.headers.get("content-type", "").endswith("json"):
        assert "INTERNAL" not in set(coded_errors(response.json(), seen)), seen
