"""RS*/ES* bearer tokens: PEM and JWKS keys, kid selection, algorithm confusion, settings."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from gateway.auth import (
    Authenticator,
    AuthenticatorChain,
    JwtAuthenticator,
    JwtSettings,
    PublicKeyJwtAuthenticator,
    PublicKeys,
    PublicKeySettings,
    Role,
)
from gateway.config import AuthSettings, ConfigError, Secret, load_settings
from gateway.errors import Unauthenticated
from gateway.services import jwt_verifiers

SECRET = "test-secret-0123456789abcdef-0123456789"
REFUSED = "invalid or expired token"

# Generated once: RSA key generation is the slow part of this module.
RSA_A = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_B = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_P256 = ec.generate_private_key(ec.SECP256R1())


def _pem(private_key: Any) -> bytes:
    public: bytes = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return public


def _jwk(private_key: Any, kid: str, **extra: Any) -> dict[str, Any]:
    algorithm = RSAAlgorithm if isinstance(private_key, rsa.RSAPrivateKey) else ECAlgorithm
    jwk: dict[str, Any] = algorithm.to_jwk(private_key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, **extra}


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


def _sign(private_key: Any, algorithm: str = "RS256", kid: str | None = None, **claims: Any) -> str:
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(_claims(**claims), private_key, algorithm=algorithm, headers=headers)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _hs256_with(secret: bytes, **header: Any) -> str:
    """An HS256 token whose HMAC key is ``secret``: the algorithm-confusion forgery."""
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT", **header}).encode())
    body = _b64(json.dumps(_claims()).encode())
    signature = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(signature)}"


def _refused(auth: Any, token: str) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as info:
        auth.viewer_from_token(token)
    assert info.value.message == REFUSED
    assert not token or token not in str(info.value)
    assert info.value.__cause__ is None
    return info.value


PEM_AUTH = PublicKeyJwtAuthenticator(PublicKeySettings(keys=PublicKeys.from_pem(_pem(RSA_A))))
JWKS = {"keys": [_jwk(RSA_A, "a"), _jwk(RSA_B, "b"), _jwk(EC_P256, "ec")]}
JWKS_AUTH = PublicKeyJwtAuthenticator(
    PublicKeySettings(keys=PublicKeys.from_jwks(JWKS), algorithms=("RS256", "ES256"))
)


# --- a PEM public key -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"role": "client", "partner": "BP-1"}, ("BP-1", frozenset())),
        ({"role": "manager", "brokers": ["wl-b", "wl-a"]}, (None, frozenset({"wl-a", "wl-b"}))),
        ({"role": "admin", "jti": "t-1"}, (None, frozenset())),
    ],
    ids=["client", "manager", "admin"],
)
async def test_rs256_with_a_pem_key_gives_the_viewer(
    claims: dict[str, Any], expected: tuple[Any, ...]
) -> None:
    token = _sign(RSA_A, **claims)
    viewer = PEM_AUTH.viewer_from_token(token)
    assert (viewer.subject, viewer.role.value) == ("user-1", claims["role"])
    assert (viewer.partner_code, viewer.brokers) == expected
    authenticator: Authenticator = PEM_AUTH
    assert await authenticator.viewer_from_authorization_header(f"Bearer {token}") == viewer


def test_pem_key_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "public.pem"
    path.write_bytes(_pem(RSA_A))
    auth = PublicKeyJwtAuthenticator(PublicKeySettings(keys=PublicKeys.from_pem_file(path)))
    assert auth.viewer_from_token(_sign(RSA_A)).role is Role.ADMIN


def test_a_pem_key_does_not_consult_kid() -> None:
    # One key, nothing to select: an IdP that always sends kid still works.
    assert PEM_AUTH.viewer_from_token(_sign(RSA_A, kid="whatever")).role is Role.ADMIN


def test_token_signed_by_another_key_refused() -> None:
    _refused(PEM_AUTH, _sign(RSA_B))


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": int(datetime.now(UTC).timestamp()) - 3600},
        {"iss": "someone-else"},
        {"aud": "another-service"},
        {"iss": None},
        {"aud": None},
        {"exp": None},
        {"role": "client"},  # no partner
    ],
    ids=["expired", "wrong-issuer", "wrong-audience", "no-iss", "no-aud", "no-exp", "no-scope"],
)
def test_bad_claims_refused(claims: dict[str, Any]) -> None:
    _refused(PEM_AUTH, _sign(RSA_A, **claims))
    _refused(JWKS_AUTH, _sign(RSA_A, kid="a", **claims))


def test_configured_issuer_and_audience_are_checked() -> None:
    auth = PublicKeyJwtAuthenticator(
        PublicKeySettings(keys=PublicKeys.from_pem(_pem(RSA_A)), issuer="idp", audience="gw")
    )
    assert auth.viewer_from_token(_sign(RSA_A, iss="idp", aud="gw")).role is Role.ADMIN
    _refused(auth, _sign(RSA_A))


# --- a JWKS: keys selected by kid --------------------------------------------------------


def test_jwks_selects_the_key_by_kid() -> None:
    assert JWKS_AUTH.viewer_from_token(_sign(RSA_A, kid="a", sub="via-a")).subject == "via-a"
    assert JWKS_AUTH.viewer_from_token(_sign(RSA_B, kid="b", sub="via-b")).subject == "via-b"
    assert JWKS_AUTH.viewer_from_token(_sign(EC_P256, "ES256", kid="ec")).role is Role.ADMIN


def test_jwks_key_of_another_kid_refused() -> None:
    # Signed by B but naming A: the named key decides, and it does not match.
    _refused(JWKS_AUTH, _sign(RSA_B, kid="a"))


@pytest.mark.parametrize("kid", ["unknown", "", None, "A"])
def test_unknown_or_missing_kid_refused(kid: str | None) -> None:
    _refused(JWKS_AUTH, _sign(RSA_A, kid=kid))


def test_kid_that_is_not_a_string_refused() -> None:
    head = _b64(json.dumps({"alg": "RS256", "kid": 1}).encode())
    body = _b64(json.dumps(_claims()).encode())
    signature = RSAAlgorithm(RSAAlgorithm.SHA256).sign(f"{head}.{body}".encode(), RSA_A)
    _refused(JWKS_AUTH, f"{head}.{body}.{_b64(signature)}")


def test_algorithm_must_match_the_selected_key() -> None:
    # ES256 naming an RSA key, RS256 naming the EC key: refused before any signature check.
    _refused(JWKS_AUTH, _sign(EC_P256, "ES256", kid="a"))
    _refused(JWKS_AUTH, _sign(RSA_A, kid="ec"))


def test_jwk_alg_narrows_what_its_key_verifies() -> None:
    keys = PublicKeys.from_jwks({"keys": [_jwk(RSA_A, "a", alg="RS512")]})
    auth = PublicKeyJwtAuthenticator(PublicKeySettings(keys=keys, algorithms=("RS256", "RS512")))
    assert auth.viewer_from_token(_sign(RSA_A, "RS512", kid="a")).role is Role.ADMIN
    _refused(auth, _sign(RSA_A, "RS256", kid="a"))


def test_jwks_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(JWKS), encoding="utf-8")
    keys = PublicKeys.from_jwks_file(path)
    assert sorted(str(key.kid) for key in keys) == ["a", "b", "ec"]
    auth = PublicKeyJwtAuthenticator(PublicKeySettings(keys=keys))
    assert auth.viewer_from_token(_sign(RSA_B, kid="b")).role is Role.ADMIN
    # ES256 is not configured here, so the EC key's tokens are refused.
    _refused(auth, _sign(EC_P256, "ES256", kid="ec"))


# --- algorithm confusion and unsigned tokens --------------------------------------------


@pytest.mark.parametrize("auth", [PEM_AUTH, JWKS_AUTH], ids=["pem", "jwks"])
def test_hs256_signed_with_the_public_key_refused(auth: PublicKeyJwtAuthenticator) -> None:
    # The classic attack: HMAC keyed with the public key's PEM (or its JWK).
    for secret in (_pem(RSA_A), json.dumps(_jwk(RSA_A, "a")).encode()):
        _refused(auth, _hs256_with(secret, kid="a"))


def test_hs256_refused_when_only_rs256_is_configured(tmp_path: Path) -> None:
    path = tmp_path / "public.pem"
    path.write_bytes(_pem(RSA_A))
    settings = load_settings(
        environ={},
        overrides={"auth": {"algorithms": ["RS256"], "jwt_public_key_file": str(path)}},
    )
    chain = AuthenticatorChain(jwt_verifiers(settings.auth))
    assert chain.viewer_from_token(_sign(RSA_A)).role is Role.ADMIN
    _refused(chain, _hs256_with(_pem(RSA_A)))
    _refused(chain, jwt.encode(_claims(), SECRET, algorithm="HS256"))
    with pytest.raises(RuntimeError, match="jwt_secret"):
        chain.issue(subject="x", role=Role.ADMIN)


@pytest.mark.parametrize("alg", ["none", "None", "RS384", "PS256", "ES256", "HS512", ""])
def test_algorithms_not_configured_refused(alg: str) -> None:
    head = _b64(json.dumps({"alg": alg}).encode())
    body = _b64(json.dumps(_claims()).encode())
    signature = RSAAlgorithm(RSAAlgorithm.SHA256).sign(f"{head}.{body}".encode(), RSA_A)
    _refused(PEM_AUTH, f"{head}.{body}.{_b64(signature)}")
    _refused(PEM_AUTH, f"{head}.{body}.")


@pytest.mark.parametrize("token", ["", "a.b", "a.b.c", "x" * 10_000, "e30.e30.e30"])
def test_malformed_tokens_refused(token: str) -> None:
    _refused(PEM_AUTH, token)
    _refused(JWKS_AUTH, token)


def test_refusal_is_logged_without_the_token(caplog: pytest.LogCaptureFixture) -> None:
    token = _sign(RSA_A, kid="unknown")
    expired = _sign(RSA_A, kid="a", exp=1)
    with caplog.at_level(logging.DEBUG, logger="gateway.auth"):
        _refused(JWKS_AUTH, token)
        _refused(JWKS_AUTH, expired)
    assert "unknown kid" in caplog.text
    assert "ExpiredSignatureError" in caplog.text
    assert token not in caplog.text and expired not in caplog.text


# --- the chain: HS* and RS* side by side ---------------------------------------------------


async def test_chain_routes_each_algorithm_to_its_own_keys() -> None:
    hs = JwtAuthenticator(JwtSettings(secret=SECRET))
    chain = AuthenticatorChain([hs, JWKS_AUTH])
    hs_token = chain.issue(subject="demo", role=Role.ADMIN)
    assert (await chain.viewer_from_authorization_header(f"Bearer {hs_token}")).subject == "demo"
    rs_token = _sign(RSA_A, kid="a", sub="idp-user")
    viewer = await chain.viewer_from_authorization_header(f"bearer {rs_token}")
    assert viewer.subject == "idp-user"
    # Still no confusion: HS256 keyed with a public key never meets the public keys.
    _refused(chain, _hs256_with(_pem(RSA_A), kid="a"))
    # No API-key authenticator configured: the scheme is refused like an unknown one.
    with pytest.raises(Unauthenticated, match="malformed"):
        await chain.viewer_from_authorization_header("ApiKey bg_0_x")


def test_chain_refuses_verifiers_sharing_an_algorithm() -> None:
    with pytest.raises(ValueError, match="same algorithm"):
        AuthenticatorChain([PEM_AUTH, JWKS_AUTH])


# --- loading keys ----------------------------------------------------------------------


def _private_pem(private_key: Any) -> bytes:
    pem: bytes = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_private_pem(RSA_A), "private key"),
        (b"not a key", "not a PEM public key"),
        (SECRET.encode(), "not a PEM public key"),
        (_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)), "1024-bit"),
        (_pem(ec.generate_private_key(ec.SECP256K1())), "curve"),
    ],
    ids=["private", "junk", "secret", "short-rsa", "secp256k1"],
)
def test_bad_pem_refused(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PublicKeys.from_pem(data)


def _jwks_with(*keys: dict[str, Any]) -> dict[str, Any]:
    return {"keys": list(keys)}


@pytest.mark.parametrize(
    ("jwks", "message"),
    [
        ([], "keys"),
        ({"keys": {}}, "keys"),
        (_jwks_with(), "no RSA or EC"),
        (_jwks_with({**_jwk(RSA_A, "a"), "kid": None}), "no kid"),
        (_jwks_with(_jwk(RSA_A, "a"), _jwk(RSA_B, "a")), "twice"),
        (_jwks_with({"kty": "oct", "kid": "s", "k": _b64(SECRET.encode())}), "symmetric"),
        (_jwks_with(RSAAlgorithm.to_jwk(RSA_A, as_dict=True) | {"kid": "p"}), "private"),
        (_jwks_with({"kty": "RSA", "kid": "bad", "n": "AQAB"}), "not a valid RSA"),
        (_jwks_with(_jwk(EC_P256, "ec", alg="ES384")), "cannot verify"),
        (_jwks_with(_jwk(RSA_A, "enc", use="enc")), "no RSA or EC"),
        ({"keys": ["not a key"]}, "not a JSON object"),
    ],
    ids=[
        "not-an-object",
        "keys-not-a-list",
        "empty",
        "no-kid",
        "duplicate-kid",
        "oct",
        "private",
        "bad-rsa",
        "alg-vs-curve",
        "only-enc",
        "junk-entry",
    ],
)
def test_bad_jwks_refused(jwks: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PublicKeys.from_jwks(jwks)


def test_jwks_skips_keys_it_does_not_verify_with(caplog: pytest.LogCaptureFixture) -> None:
    jwks = _jwks_with(
        _jwk(RSA_A, "enc", use="enc"),
        _jwk(RSA_A, "ps", alg="PS256"),
        {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": _b64(b"0" * 32)},
        _jwk(RSA_B, "b", use="sig"),
    )
    with caplog.at_level(logging.INFO, logger="gateway.auth"):
        keys = PublicKeys.from_jwks(jwks)
    assert [key.kid for key in keys] == ["b"]
    assert caplog.text.count("skipped") == 3


@pytest.mark.parametrize(
    ("content", "message"), [(None, "cannot be read"), ("{", "not valid JSON")]
)
def test_unreadable_jwks_file_refused(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "jwks.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        PublicKeys.from_jwks_file(path)


@pytest.mark.parametrize("algorithms", [("HS256",), ("RS256", "HS256"), ("none",), ()])
def test_public_key_settings_refuse_non_public_key_algorithms(algorithms: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="algorithm"):
        PublicKeySettings(keys=PublicKeys.from_pem(_pem(RSA_A)), algorithms=algorithms)


def test_public_key_settings_need_a_key_for_an_algorithm() -> None:
    with pytest.raises(ValueError, match="can verify RS256"):
        PublicKeySettings(keys=PublicKeys.from_pem(_pem(EC_P256)))


# --- configuration ---------------------------------------------------------------------


def _auth(**values: Any) -> AuthSettings:
    return load_settings(environ={}, overrides={"auth": values}).auth


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"algorithms": []}, "at least one"),
        ({"algorithms": ["none"]}, "'none' is not supported"),
        ({"algorithms": ["rs256"], "jwks_file": "k"}, "'rs256' is not supported"),
        ({"jwks_file": "k"}, "jwks_file is set but algorithms lists no public-key"),
        ({"jwt_public_key_file": "k"}, "jwt_public_key_file is set but"),
        ({"algorithms": ["RS256"]}, "neither jwt_public_key_file nor jwks_file"),
        (
            {"algorithms": ["RS256"], "jwks_file": "k", "jwt_public_key_file": "p"},
            "not both",
        ),
        ({"algorithms": ["HS256", "RS256"], "jwks_file": "k"}, "jwt_secret is not set"),
        ({"algorithms": ["RS256"], "jwks_file": "k", "jwt_secret": SECRET}, "no HS"),
        ({"jwt_secret": ""}, "must not be empty"),
        ({"algorithms": ["RS256"], "jwks_file": ""}, "must not be empty"),
        ({"issuer": ""}, "issuer"),
        ({"api_keys": "yes"}, "true or false"),
    ],
)
def test_auth_settings_combinations_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        _auth(**values)
    assert SECRET not in str(info.value)


def test_auth_settings_defaults_and_environment() -> None:
    default = _auth()
    assert default.algorithms == ("HS256",) and default.api_keys is True
    assert default.jwt_public_key_file is None and default.jwks_file is None
    settings = load_settings(
        environ={
            "BROKERGRAPH_AUTH__ALGORITHMS": '["RS256", "ES256"]',
            "BROKERGRAPH_AUTH__JWKS_FILE": "/etc/brokergraph/jwks.json",
            "BROKERGRAPH_AUTH__API_KEYS": "false",
        }
    )
    assert settings.auth.public_key_algorithms == ("RS256", "ES256")
    assert settings.auth.hmac_algorithms == ()
    assert settings.auth.api_keys is False
    both = _auth(algorithms=["HS256", "RS256"], jwt_secret=SECRET, jwks_file="k")
    assert both.jwt_secret == Secret(SECRET)


def test_jwt_verifiers_read_the_key_files(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(JWKS), encoding="utf-8")
    auth = _auth(algorithms=["HS256", "ES256"], jwt_secret=SECRET, jwks_file=str(path))
    hs, es = jwt_verifiers(auth)
    assert hs.algorithms == {"HS256"} and es.algorithms == {"ES256"}
    with pytest.raises(ConfigError, match="cannot be read"):
        jwt_verifiers(_auth(algorithms=["RS256"], jwks_file=str(tmp_path / "missing.json")))
    with pytest.raises(ConfigError, match="at least 32 bytes") as info:
        jwt_verifiers(_auth(jwt_secret="too-short-a-secret"))
    assert "too-short-a-secret" not in str(info.value)
    path.write_text(json.dumps({"keys": [_jwk(EC_P256, "ec")]}), encoding="utf-8")
    only_ec = _auth(algorithms=["RS256"], jwks_file=str(path))
    with pytest.raises(ConfigError, match="can verify RS256"):
        jwt_verifiers(only_ec)
