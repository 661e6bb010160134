"""gateway.auth: token verification, header parsing and the viewer's data scope."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.auth import (
    Authenticator,
    JwtAuthenticator,
    JwtSettings,
    Role,
    Viewer,
    api_key_id,
    bearer_expiry,
)
from gateway.errors import PermissionDenied, Unauthenticated

SECRET = "test-secret-0123456789abcdef-0123456789"
OTHER_SECRET = "another-secret-0123456789abcdef-012345"

AUTH = JwtAuthenticator(JwtSettings(secret=SECRET))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _craft(
    header: dict[str, Any],
    payload: dict[str, Any],
    *,
    secret: str | None = SECRET,
    digest: Callable[..., Any] = hashlib.sha256,
    signature: bytes | None = None,
) -> str:
    """A compact JWS built by hand, so no library can refuse to build a bad one."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    if signature is None:
        signature = (
            b""
            if secret is None
            else hmac.new(secret.encode(), signing_input.encode(), digest).digest()
        )
    return f"{signing_input}.{_b64(signature)}"


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(datetime.now(UTC).timestamp())
    claims: dict[str, Any] = {
        "iss": "brokergraph",
        "aud": "brokergraph",
        "sub": "user-1",
        "role": "admin",
        "iat": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not None}


def _refused(call: Callable[[], object], *secrets_: str) -> Unauthenticated:
    """Assert ``call`` raises Unauthenticated that leaks none of ``secrets_``."""
    with pytest.raises(Unauthenticated) as info:
        call()
    error = info.value
    shown = f"{error} {error!r} {error.to_dict()} {error.extensions}"
    for secret in (*secrets_, SECRET):
        if secret:
            assert secret not in shown
    # No chained library error, so no traceback repeats token-derived details.
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__
    return error


def _run_sync(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends (the JWT check awaits nothing) without a loop.

    Keeps the refusal helpers and the Hypothesis properties synchronous.
    """
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    coroutine.close()
    raise AssertionError("the coroutine suspended")


# --- round trip ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (
            {"role": Role.CLIENT, "partner_code": "BP-1"},
            {"partner_code": "BP-1", "brokers": frozenset()},
        ),
        (
            {"role": Role.MANAGER, "brokers": ["wl-b", "wl-a"]},
            {"partner_code": None, "brokers": frozenset({"wl-a", "wl-b"})},
        ),
        ({"role": Role.ADMIN}, {"partner_code": None, "brokers": frozenset()}),
    ],
    ids=["client", "manager", "admin"],
)
async def test_issue_then_verify_roundtrip(
    kwargs: dict[str, Any], expected: dict[str, Any]
) -> None:
    token = AUTH.issue(subject="user-1", **kwargs)
    viewer = AUTH.viewer_from_token(token)
    assert viewer.subject == "user-1"
    assert viewer.role is kwargs["role"]
    assert viewer.partner_code == expected["partner_code"]
    assert viewer.brokers == expected["brokers"]
    assert viewer.token_id  # issue() always sets a jti for the audit log
    assert await AUTH.viewer_from_authorization_header(f"Bearer {token}") == viewer


def test_issued_token_claims() -> None:
    now = datetime.now(UTC)
    token = AUTH.issue(
        subject="m", role=Role.MANAGER, brokers={"b2", "b1"}, ttl_seconds=120, now=now
    )
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="brokergraph")
    assert header["alg"] == "HS256"
    assert claims["iss"] == "brokergraph"
    assert claims["brokers"] == ["b1", "b2"]
    assert claims["exp"] - claims["iat"] == 120
    assert "partner" not in claims


def test_each_token_has_its_own_id() -> None:
    first = AUTH.viewer_from_token(AUTH.issue(subject="a", role=Role.ADMIN))
    second = AUTH.viewer_from_token(AUTH.issue(subject="a", role=Role.ADMIN))
    assert first.token_id != second.token_id


def test_jti_is_optional() -> None:
    viewer = AUTH.viewer_from_token(_craft({"alg": "HS256", "typ": "JWT"}, _claims()))
    assert viewer.token_id is None
    assert viewer.role is Role.ADMIN


def test_scope_claims_of_other_roles_are_ignored() -> None:
    token = _craft({"alg": "HS256"}, _claims(role="manager", brokers=["wl-a"], partner="BP-9"))
    viewer = AUTH.viewer_from_token(token)
    assert viewer.partner_code is None
    assert viewer.brokers == frozenset({"wl-a"})


async def test_authenticator_protocol() -> None:
    authenticator: Authenticator = AUTH
    token = AUTH.issue(subject="x", role=Role.ADMIN)
    viewer = await authenticator.viewer_from_authorization_header(f"bEaReR {token}")
    assert viewer.role is Role.ADMIN


@pytest.mark.parametrize("role", [Role.CLIENT, Role.MANAGER])
def test_issue_refuses_a_viewer_without_scope(role: Role) -> None:
    with pytest.raises(ValueError, match="needs"):
        AUTH.issue(subject="x", role=role)


def test_issue_refuses_naive_now_and_bad_ttl() -> None:
    with pytest.raises(ValueError, match="timezone"):
        AUTH.issue(subject="x", role=Role.ADMIN, now=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="ttl"):
        AUTH.issue(subject="x", role=Role.ADMIN, ttl_seconds=0)
    with pytest.raises(ValueError, match="brokers"):
        AUTH.issue(subject="x", role=Role.MANAGER, brokers="wl-a")


# --- refused tokens -------------------------------------------------------------------


def test_expired_token_refused() -> None:
    past = datetime.now(UTC) - timedelta(hours=1)
    token = AUTH.issue(subject="x", role=Role.ADMIN, ttl_seconds=60, now=past)
    _refused(lambda: AUTH.viewer_from_token(token), token)


def test_leeway_applies_to_expiry() -> None:
    # Expired 10 s ago: inside the 30 s leeway.
    now = datetime.now(UTC) - timedelta(seconds=70)
    token = AUTH.issue(subject="x", role=Role.ADMIN, ttl_seconds=60, now=now)
    assert AUTH.viewer_from_token(token).subject == "x"
    strict = JwtAuthenticator(JwtSettings(secret=SECRET, leeway_seconds=0))
    _refused(lambda: strict.viewer_from_token(token), token)


def test_token_issued_in_the_future_refused() -> None:
    future = datetime.now(UTC) + timedelta(hours=1)
    token = AUTH.issue(subject="x", role=Role.ADMIN, now=future)
    _refused(lambda: AUTH.viewer_from_token(token), token)


@pytest.mark.parametrize(
    "settings",
    [
        JwtSettings(secret=OTHER_SECRET),
        JwtSettings(secret=SECRET, issuer="someone-else"),
        JwtSettings(secret=SECRET, audience="another-service"),
    ],
    ids=["wrong-secret", "wrong-issuer", "wrong-audience"],
)
def test_token_from_elsewhere_refused(settings: JwtSettings) -> None:
    token = JwtAuthenticator(settings).issue(subject="x", role=Role.ADMIN)
    _refused(lambda: AUTH.viewer_from_token(token), token, OTHER_SECRET)


@pytest.mark.parametrize("claim", ["exp", "sub", "iss", "aud", "role"])
def test_missing_required_claim_refused(claim: str) -> None:
    token = _craft({"alg": "HS256"}, _claims(**{claim: None}))
    _refused(lambda: AUTH.viewer_from_token(token), token)


@pytest.mark.parametrize(
    "overrides",
    [
        {"role": "superuser"},
        {"role": "ADMIN"},
        {"role": ["admin"]},
        {"role": "client"},  # without partner
        {"role": "client", "partner": ""},
        {"role": "client", "partner": 42},
        {"role": "manager"},  # without brokers
        {"role": "manager", "brokers": []},
        {"role": "manager", "brokers": "wl-a"},
        {"role": "manager", "brokers": ["wl-a", 7]},
        {"role": "manager", "brokers": ["wl-a,wl-b"]},
        {"role": "manager", "brokers": [""]},
        {"sub": ""},
        {"sub": 17},
        {"jti": 5},
        {"exp": "tomorrow"},
        {"exp": 1e400},
        {"aud": ["other"]},
    ],
    ids=repr,
)
def test_bad_claims_refused(overrides: dict[str, Any]) -> None:
    token = _craft({"alg": "HS256"}, _claims(**overrides))
    _refused(lambda: AUTH.viewer_from_token(token), token)


def test_audience_list_containing_ours_accepted() -> None:
    token = _craft({"alg": "HS256"}, _claims(aud=["crm", "brokergraph"]))
    assert AUTH.viewer_from_token(token).role is Role.ADMIN


def test_tampered_payload_refused() -> None:
    client = AUTH.issue(subject="x", role=Role.CLIENT, partner_code="BP-1")
    header, _, signature = client.split(".")
    forged_payload = _b64(json.dumps(_claims(role="admin")).encode())
    forged = f"{header}.{forged_payload}.{signature}"
    _refused(lambda: AUTH.viewer_from_token(forged), forged)


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", ""])
@pytest.mark.parametrize("signature", ["empty", "garbage", "hmac"])
def test_alg_none_refused(alg: str, signature: str) -> None:
    header = {"alg": alg, "typ": "JWT"}
    if signature == "empty":
        token = _craft(header, _claims(), secret=None)
    elif signature == "garbage":
        token = _craft(header, _claims(), signature=b"not-a-signature")
    else:
        # Even a correct HMAC does not make an "alg: none" header acceptable.
        token = _craft(header, _claims())
    _refused(lambda: AUTH.viewer_from_token(token), token)


def test_alg_header_missing_refused() -> None:
    token = _craft({"typ": "JWT"}, _claims())
    _refused(lambda: AUTH.viewer_from_token(token), token)


def test_hs512_refused_when_only_hs256_allowed() -> None:
    # Correctly signed with the right secret: only the algorithm is wrong.
    token = _craft({"alg": "HS512"}, _claims(), digest=hashlib.sha512)
    _refused(lambda: AUTH.viewer_from_token(token), token)
    long_secret = SECRET * 2
    both = JwtAuthenticator(JwtSettings(secret=long_secret, algorithms=("HS256", "HS512")))
    token = _craft({"alg": "HS512"}, _claims(), secret=long_secret, digest=hashlib.sha512)
    assert both.viewer_from_token(token).role is Role.ADMIN


def test_refusal_is_logged_without_the_token(caplog: pytest.LogCaptureFixture) -> None:
    token = AUTH.issue(subject="x", role=Role.ADMIN, now=datetime.now(UTC) - timedelta(days=1))
    with caplog.at_level(logging.DEBUG, logger="gateway.auth"):
        _refused(lambda: AUTH.viewer_from_token(token), token)
    assert "ExpiredSignatureError" in caplog.text
    assert token not in caplog.text
    assert SECRET not in caplog.text


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "....",
        "eyJhbGciOiJIUzI1NiJ9.e30=.c2ln",
        "eyJhbGciOiJIUzI1NiJ9.!!!.c2ln",
        "x" * 10_000,
    ],
)
def test_malformed_token_refused(token: str) -> None:
    error = _refused(lambda: AUTH.viewer_from_token(token), token)
    assert error.message == "invalid or expired token"


# --- the Authorization header -------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "authentication required"),
        ("", "authentication required"),
        ("   ", "authentication required"),
        ("Basic dXNlcjpwYXNz", "malformed Authorization header"),
        ("Bearer", "malformed Authorization header"),
        ("Bearer ", "malformed Authorization header"),
        ("Bearer a b", "malformed Authorization header"),
        ("Token abc.def.ghi", "malformed Authorization header"),
        ("Bearer not-a-jwt", "invalid or expired token"),
    ],
)
def test_bad_authorization_header(value: str | None, message: str) -> None:
    error = _refused(lambda: _run_sync(AUTH.viewer_from_authorization_header(value)))
    assert error.message == message
    assert error.code == "UNAUTHENTICATED"


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
async def test_bearer_scheme_is_case_insensitive(scheme: str) -> None:
    token = AUTH.issue(subject="x", role=Role.ADMIN)
    assert (await AUTH.viewer_from_authorization_header(f"{scheme} {token}")).subject == "x"
    assert (await AUTH.viewer_from_authorization_header(f"  {scheme}   {token} ")).subject == "x"


def test_basic_scheme_with_a_valid_token_refused() -> None:
    token = AUTH.issue(subject="x", role=Role.ADMIN)
    _refused(lambda: _run_sync(AUTH.viewer_from_authorization_header(f"Basic {token}")), token)


# --- settings -----------------------------------------------------------------------


def test_short_secret_refused_without_echo() -> None:
    short = "hunter2-too-short"
    with pytest.raises(ValueError, match="at least 32 bytes") as info:
        JwtSettings(secret=short)
    assert short not in str(info.value)


def test_hs512_needs_a_longer_secret() -> None:
    with pytest.raises(ValueError, match="at least 64 bytes for HS512") as info:
        JwtSettings(secret=SECRET, algorithms=("HS256", "HS512"))
    assert SECRET not in str(info.value)


@pytest.mark.parametrize("algorithms", [(), ("none",), ("HS256", "RS256"), ("hs256",)])
def test_unsupported_algorithms_refused(algorithms: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="algorithm"):
        JwtSettings(secret=SECRET, algorithms=algorithms)


def test_secret_that_looks_like_a_key_refused() -> None:
    jwk_like = '{"kty": "oct", "k": "0123456789abcdef0123456789abcdef"}'
    with pytest.raises(ValueError, match="looks like a key") as info:
        JwtSettings(secret=jwk_like)
    assert jwk_like not in str(info.value)


def test_settings_repr_hides_the_secret() -> None:
    settings = JwtSettings(secret=SECRET)
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)


def test_settings_accept_a_list_of_algorithms() -> None:
    settings = JwtSettings(secret=SECRET, algorithms=["HS256"])  # type: ignore[arg-type]
    assert settings.algorithms == ("HS256",)
    assert hash(settings) == hash(JwtSettings(secret=SECRET))


def test_negative_leeway_refused() -> None:
    with pytest.raises(ValueError, match="leeway"):
        JwtSettings(secret=SECRET, leeway_seconds=-1)


# --- Viewer ---------------------------------------------------------------------------

CLIENT = Viewer(subject="c", role=Role.CLIENT, partner_code="BP-1")
MANAGER = Viewer(subject="m", role=Role.MANAGER, brokers=frozenset({"wl-a", "wl-b"}))
ADMIN = Viewer(subject="a", role=Role.ADMIN)


@pytest.mark.parametrize(
    ("viewer", "partner_code", "partner_broker", "visible"),
    [
        (ADMIN, "BP-1", "wl-a", True),
        (ADMIN, "BP-2", None, True),
        (CLIENT, "BP-1", "wl-a", True),
        (CLIENT, "BP-1", None, True),
        (CLIENT, "BP-2", "wl-a", False),
        (CLIENT, "bp-1", None, False),
        (MANAGER, "BP-1", "wl-a", True),
        (MANAGER, "BP-7", "wl-b", True),
        (MANAGER, "BP-1", "wl-c", False),
        (MANAGER, "BP-1", None, False),  # no broker: admin only
        (MANAGER, "BP-1", "", False),
    ],
)
def test_can_see_partner(
    viewer: Viewer, partner_code: str, partner_broker: str | None, visible: bool
) -> None:
    assert viewer.can_see_partner(partner_code, partner_broker) is visible


def test_require_role() -> None:
    ADMIN.require_role(Role.ADMIN)
    MANAGER.require_role(Role.MANAGER, Role.ADMIN)
    CLIENT.require_role(Role.CLIENT, Role.MANAGER, Role.ADMIN)
    with pytest.raises(PermissionDenied, match="admin") as info:
        MANAGER.require_role(Role.ADMIN)
    assert not isinstance(info.value, Unauthenticated)
    assert info.value.code == "PERMISSION_DENIED"
    with pytest.raises(PermissionDenied):
        CLIENT.require_role(Role.MANAGER, Role.ADMIN)
    with pytest.raises(PermissionDenied):
        ADMIN.require_role()


def test_scope_key() -> None:
    assert ADMIN.scope_key == "admin"
    assert CLIENT.scope_key == "client:BP-1"
    assert MANAGER.scope_key == "manager:wl-a,wl-b"
    # Stable: same scope, other subject, other construction order.
    same = Viewer(subject="m2", role=Role.MANAGER, brokers=frozenset({"wl-b", "wl-a"}))
    assert same.scope_key == MANAGER.scope_key
    assert Viewer(subject="a2", role=Role.ADMIN).scope_key == ADMIN.scope_key
    keys = {
        ADMIN.scope_key,
        CLIENT.scope_key,
        MANAGER.scope_key,
        Viewer(subject="c", role=Role.CLIENT, partner_code="BP-2").scope_key,
        Viewer(subject="m", role=Role.MANAGER, brokers=frozenset({"wl-a"})).scope_key,
        Viewer(subject="c", role=Role.CLIENT, partner_code="admin").scope_key,
    }
    assert len(keys) == 6


def test_scope_key_survives_a_token_round_trip() -> None:
    token = AUTH.issue(subject="m", role=Role.MANAGER, brokers=["wl-b", "wl-a"])
    assert AUTH.viewer_from_token(token).scope_key == MANAGER.scope_key


@pytest.mark.parametrize(
    "kwargs",
    [
        {"role": Role.CLIENT},
        {"role": Role.CLIENT, "partner_code": ""},
        {"role": Role.CLIENT, "partner_code": "BP-1", "brokers": frozenset({"wl-a"})},
        {"role": Role.MANAGER},
        {"role": Role.MANAGER, "brokers": frozenset({"wl-a"}), "partner_code": "BP-1"},
        {"role": Role.MANAGER, "brokers": frozenset({"wl-a,wl-b"})},
        {"role": Role.MANAGER, "brokers": frozenset({""})},
        {"role": Role.ADMIN, "partner_code": "BP-1"},
        {"role": Role.ADMIN, "brokers": frozenset({"wl-a"})},
        {"role": "admin"},
    ],
    ids=repr,
)
def test_viewer_refuses_an_inconsistent_scope(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies per rule
        Viewer(subject="x", **kwargs)


def test_viewer_refuses_empty_subject() -> None:
    with pytest.raises(ValueError, match="subject"):
        Viewer(subject="", role=Role.ADMIN)


def test_viewer_normalises_brokers_to_frozenset() -> None:
    viewer = Viewer(subject="m", role=Role.MANAGER, brokers={"wl-a"})  # type: ignore[arg-type]
    assert isinstance(viewer.brokers, frozenset)
    assert hash(viewer) == hash(Viewer(subject="m", role=Role.MANAGER, brokers=frozenset({"wl-a"})))


# --- property: nothing but Unauthenticated ------------------------------------------


@given(st.text(max_size=300))
def test_arbitrary_token_raises_only_unauthenticated(token: str) -> None:
    with pytest.raises(Unauthenticated) as info:
        AUTH.viewer_from_token(token)
    # A fixed message, so nothing of the input can be echoed.
    assert info.value.message == "invalid or expired token"


@given(st.one_of(st.none(), st.text(max_size=300), st.text(max_size=300).map("Bearer ".__add__)))
def test_arbitrary_header_raises_only_unauthenticated(value: str | None) -> None:
    with pytest.raises(Unauthenticated) as info:
        _run_sync(AUTH.viewer_from_authorization_header(value))
    assert info.value.message in {
        "authentication required",
        "malformed Authorization header",
        "invalid or expired token",
    }


_B64_SEGMENT = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
    min_size=1,
    max_size=80,
)


@given(_B64_SEGMENT, _B64_SEGMENT, _B64_SEGMENT)
def test_token_shaped_junk_raises_only_unauthenticated(head: str, body: str, sig: str) -> None:
    with pytest.raises(Unauthenticated):
        AUTH.viewer_from_token(f"{head}.{body}.{sig}")


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)


@given(
    header_extra=st.dictionaries(st.sampled_from(["alg", "typ", "kid", "b64", "crit"]), _JSON),
    claims_extra=st.dictionaries(
        st.sampled_from(
            ["sub", "role", "partner", "brokers", "jti", "exp", "iat", "nbf", "aud", "iss"]
        ),
        _JSON | st.sampled_from(["client", "manager", "admin", "brokergraph"]),
    ),
)
def test_correctly_signed_junk_gives_a_viewer_or_unauthenticated(
    header_extra: dict[str, Any], claims_extra: dict[str, Any]
) -> None:
    # Signed with the real secret, so every claim check past the signature runs.
    token = _craft({"alg": "HS256", **header_extra}, {**_claims(), **claims_extra})
    outcome: Viewer | Unauthenticated
    try:
        outcome = AUTH.viewer_from_token(token)
    except Unauthenticated as error:
        outcome = error
    if isinstance(outcome, Unauthenticated):
        assert outcome.message == "invalid or expired token"
    else:
        assert isinstance(outcome, Viewer)


def test_bearer_expiry_and_api_key_id_read_only_their_own_scheme() -> None:
    authenticator = JwtAuthenticator(JwtSettings(secret=SECRET))
    now = datetime.now(UTC)
    token = authenticator.issue(subject="s", role=Role.ADMIN, ttl_seconds=60, now=now)
    assert bearer_expiry(f"Bearer {token}") == int(now.timestamp()) + 60
    key = "bg_0123456789abcdef_" + "A" * 43
    assert api_key_id(f"ApiKey {key}") == "0123456789abcdef"
    for other in (f"ApiKey {key}", "Bearer not-a-jwt", None, ""):
        assert bearer_expiry(other) is None
    for other in (f"Bearer {token}", "ApiKey nonsense", None):
        assert api_key_id(other) is None
