"""No document makes the gateway answer 5xx, and every refusal carries a code.

Property-based, over HTTP against the real gateway: documents built from nested
and duplicated fragments (cycles and doubling chains included), aliases,
directives (known, unknown, misused) and deep selections.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.graphql.cost import COST_CEILING

FUZZ = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FRAGMENTS = 4

aliases = st.sampled_from(["", "a: ", "b: ", "__typename: ", "x1: "])
directives = st.sampled_from(
    ["", " @include(if: true)", " @skip(if: true)", " @nope", " @include(if: 1)", " @skip"]
)
leaves = st.sampled_from(["role", "subject", "__typename", "code", "name", "externalId", "nope"])
parents = st.sampled_from(
    [
        "viewer",
        "me",
        'businessPartner(code: "DEMO-001")',
        "businessPartners(first: 3)",
        "businessPartners(first: -1)",
        "edges",
        "node",
        "accounts",
        "__schema",
        "_service",
    ]
)
spreads = st.integers(0, FRAGMENTS - 1).map(lambda i: f"...F{i}")


def _field(parts: tuple[str, str, str]) -> str:
    return "".join(parts)


def _parent(parts: tuple[str, str, str, list[str]]) -> str:
    alias, name, directive, children = parts
    return f"{alias}{name}{directive} {{ {' '.join(children)} }}"


selections = st.recursive(
    st.one_of(st.tuples(aliases, leaves, directives).map(_field), spreads),
    lambda children: st.tuples(
        aliases, parents, directives, st.lists(children, min_size=1, max_size=4)
    ).map(_parent),
    max_leaves=25,
)


#: A corner of the schema, so that many generated documents are valid and run.
TYPED: dict[str, dict[str, str | None]] = {
    "Query": {
        "viewer": "ViewerInfo",
        "me": "BusinessPartner",
        'businessPartner(code: "DEMO-001")': "BusinessPartner",
        "__typename": None,
    },
    "ViewerInfo": {"role": None, "subject": None, "brokers": None},
    "BusinessPartner": {"code": None, "name": None, "accounts": "Account"},
    "Account": {"externalId": None, "platform": None, "__typename": None},
}
valid_directives = st.sampled_from(["", "", " @include(if: true)", " @skip(if: false)"])


@st.composite
def typed(draw: st.DrawFn, type_name: str = "Query", depth: int = 0) -> str:
    """A selection set on ``type_name`` that validates (aliases may still conflict)."""
    fields = TYPED[type_name]
    chosen = draw(st.lists(st.sampled_from(sorted(fields)), min_size=1, max_size=3))
    parts = []
    for name in chosen:
        alias = draw(st.sampled_from(["", "", "a: ", "b: "]))
        child = fields[name]
        inner = f" {{ {draw(typed(child, depth + 1))} }}" if child and depth < 3 else ""
        if child and not inner:
            inner = " { __typename }"
        parts.append(f"{alias}{name}{draw(valid_directives)}{inner}")
    if draw(st.booleans()):
        parts.append(f"... on {type_name} {{ __typename }}")
    return " ".join(parts)


@st.composite
def valid_documents(draw: st.DrawFn) -> str:
    """A typed operation using a typed fragment, spread once or twice."""
    spread = " ...T" * draw(st.integers(0, 2))
    fragment = f" fragment T on Query {{ {draw(typed())} }}" if spread else ""
    return f"{{ {draw(typed())}{spread} }}{fragment}"


@st.composite
def documents(draw: st.DrawFn) -> str:
    """An operation, up to FRAGMENTS fragments (spreading each other freely: cycles,
    duplicates) and, sometimes, a chain of up to 60 self-doubling fragments."""
    operation = " ".join(draw(st.lists(selections, min_size=1, max_size=5)))
    fragments = []
    for i in range(draw(st.integers(0, FRAGMENTS))):
        body = " ".join(draw(st.lists(selections, min_size=1, max_size=3)))
        fragments.append(f"fragment F{i} on Query {{ {body} }}")
    levels = draw(st.sampled_from([0, 0, 2, 21, 60]))
    if levels:
        operation += f" ...D{levels - 1}"
        fragments.append("fragment D0 on Query { viewer { role } }")
        fragments += [
            f"fragment D{i} on Query {{ ...D{i - 1} ...D{i - 1} }}" for i in range(1, levels)
        ]
    depth = draw(st.sampled_from([0, 0, 15, 300]))
    if depth:
        operation += " " + "viewer { " * depth + "role" + " }" * depth
    return f"{{ {operation} }} " + " ".join(fragments)


@FUZZ
@given(query=st.one_of(valid_documents(), documents()), token=st.sampled_from(["client", "admin"]))
async def test_no_document_makes_a_5xx_and_every_refusal_is_coded(
    gateway: Any, query: str, token: str
) -> None:
    status, body = await gateway.query(query, token=token)
    assert status < 500, (status, body)
    assert isinstance(body, dict), body
    errors = body.get("errors", [])
    if body.get("data") is None:
        assert errors, body  # refused: and says why
    for error in errors:
        code = error.get("extensions", {}).get("code")
        assert code is not None and code != "INTERNAL", error


async def test_sixty_nested_doubling_fragments_are_refused(gateway: Any) -> None:
    fragments = ["fragment F0 on Query { viewer { role } }"]
    fragments += [f"fragment F{i} on Query {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, 60)]
    status, body = await gateway.query("{ ...F59 } " + " ".join(fragments))
    assert status == 400, body
    assert [e["extensions"]["code"] for e in body["errors"]] == ["TOO_MANY_REPEATED_FIELDS"]


async def test_a_cost_beyond_64_bits_is_answered_as_a_json_safe_number(gateway: Any) -> None:
    """2**53 - 1 at most: the JSON encoder refuses integers past 64 bits (a 500 before)."""
    huge = "9" * 30
    query = (
        f"{{ businessPartners(first: {huge}) {{ edges {{ node {{ accounts(first: {huge}) "
        f"{{ positions {{ symbol }} }} }} }} }} }}"
    )
    status, body = await gateway.query(query)
    assert status == 400, body
    costly = [e for e in body["errors"] if e["extensions"]["code"] == "QUERY_TOO_COSTLY"]
    assert costly[0]["extensions"]["cost"] == COST_CEILING
    assert all("code" in e["extensions"] for e in body["errors"])


async def test_body_and_batch_limits_are_coded(gateway: Any) -> None:
    limits = gateway.services.settings.limits
    headers = {"Authorization": f"Bearer {gateway.tokens['client']}"}
    big = {"query": "{ viewer { role } }" + " " * limits.max_body_bytes}
    response = await gateway.http.post(gateway.graphql_url, json=big, headers=headers)
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    batch = [{"query": "{ viewer { role } }"}] * (limits.max_batch + 1)
    response = await gateway.http.post(gateway.graphql_url, json=batch, headers=headers)
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BATCH_TOO_LARGE"
