"""RS*/ES* JSON Web Tokens, verified with configured public keys: a PEM file or a JWKS file.

Only asymmetric algorithms are accepted here, and each key verifies only the
algorithms its own type allows, so a token that says ``HS256`` can never be
checked with a public key used as an HMAC secret (algorithm confusion).  Key
files are read once, at start-up: rotating keys means restarting, which also
means a key removed from the file is refused at once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from gateway.auth._decode import check_token_shape, refuse, unverified_header, verified_viewer
from gateway.auth._header import split_authorization_header
from gateway.auth._viewer import Viewer
from gateway.errors import Unauthenticated

__all__ = [
    "PUBLIC_KEY_ALGORITHMS",
    "PublicKey",
    "PublicKeyJwtAuthenticator",
    "PublicKeySettings",
    "PublicKeys",
]

logger = logging.getLogger("gateway.auth")

_RSA_ALGORITHMS: Final = frozenset({"RS256", "RS384", "RS512"})
# An EC key is bound to one curve and so to one algorithm (RFC 7518 §3.4).
_EC_ALGORITHM_BY_CURVE: Final = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
PUBLIC_KEY_ALGORITHMS: Final = _RSA_ALGORITHMS | frozenset(_EC_ALGORITHM_BY_CURVE.values())

# NIST SP 800-131A; PyJWT would also refuse shorter keys, but on every request.
_MIN_RSA_BITS: Final = 2048
# A key file is a few kilobytes; anything far larger is a wrong path.
_MAX_FILE_BYTES: Final = 1_000_000
# JWK members that only private or symmetric keys have (RFC 7518 §6.2.2, §6.3.2, §6.4).
_PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

AnyPublicKey = RSAPublicKey | EllipticCurvePublicKey


@dataclass(frozen=True, slots=True)
class PublicKey:
    """One verification key and the token algorithms it may verify."""

    kid: str | None
    key: AnyPublicKey = field(repr=False)
    algorithms: frozenset[str]


def _public_key(kid: str | None, key: object, declared: object, where: str) -> PublicKey:
    """``key`` with the algorithms it may verify: its type decides, a JWK's ``alg`` narrows."""
    verified: AnyPublicKey
    if isinstance(key, RSAPublicKey):
        if key.key_size < _MIN_RSA_BITS:
            raise ValueError(f"{where} is a {key.key_size}-bit RSA key; at least 2048 are needed")
        verified, possible = key, _RSA_ALGORITHMS
    elif isinstance(key, EllipticCurvePublicKey):
        curve_algorithm = _EC_ALGORITHM_BY_CURVE.get(key.curve.name)
        if curve_algorithm is None:
            raise ValueError(f"{where} is on curve {key.curve.name}, which is not supported")
        verified, possible = key, frozenset({curve_algorithm})
    else:
        raise ValueError(f"{where} is not an RSA or EC public key")
    if declared is None:
        return PublicKey(kid, verified, possible)
    if not isinstance(declared, str) or declared not in possible:
        raise ValueError(f"{where} declares alg {declared!r}, which its key cannot verify")
    return PublicKey(kid, verified, frozenset({declared}))


def _read(path: str | Path, what: str) -> bytes:
    file = Path(path)
    try:
        if file.stat().st_size > _MAX_FILE_BYTES:
            raise ValueError(f"{what} {file} is too large to be a key file")
        return file.read_bytes()
    except OSError as error:
        raise ValueError(f"{what} {file} cannot be read: {error.strerror}") from None


class PublicKeys:
    """The configured verification keys: one from a PEM file, or a JWKS selected by ``kid``."""

    __slots__ = ("_by_kid", "_single", "source")

    def __init__(
        self, *, single: PublicKey | None = None, by_kid: Mapping[str, PublicKey] | None = None
    ) -> None:
        if (single is None) == (not by_kid):
            raise ValueError("give one PEM key or a non-empty JWKS, not both or neither")
        self._single = single
        self._by_kid = dict(by_kid or {})
        self.source = "PEM public key" if single is not None else "JWKS"

    @classmethod
    def from_pem(cls, data: bytes, *, where: str = "the PEM public key") -> PublicKeys:
        if b"PRIVATE KEY" in data:
            # The gateway only verifies; a signing key on its disk is one more place to leak.
            raise ValueError(f"{where} holds a private key; configure the public key only")
        try:
            key = load_pem_public_key(data)
        except (ValueError, TypeError):
            raise ValueError(
                f"{where} is not a PEM public key (-----BEGIN PUBLIC KEY-----)"
            ) from None
        return cls(single=_public_key(None, key, None, where))

    @classmethod
    def from_pem_file(cls, path: str | Path) -> PublicKeys:
        return cls.from_pem(_read(path, "public key file"), where=f"public key file {path}")

    @classmethod
    def from_jwks(cls, jwks: object, *, where: str = "the JWKS") -> PublicKeys:
        """Keys of a JWK Set (RFC 7517 §5); every key needs a distinct ``kid``.

        Keys not meant for verifying RS*/ES* signatures (``use: enc``, other key
        types or algorithms) are skipped with a log line; symmetric or private
        keys are refused outright, since their mere presence is a mistake.
        """
        if not isinstance(jwks, Mapping) or not isinstance(jwks.get("keys"), list):
            raise ValueError(f'{where} must be a JSON object with a "keys" list')
        by_kid: dict[str, PublicKey] = {}
        seen: set[str] = set()
        for index, jwk in enumerate(jwks["keys"]):
            if not isinstance(jwk, Mapping):
                raise ValueError(f"{where}: key #{index} is not a JSON object")
            kid = jwk.get("kid")
            if not isinstance(kid, str) or not kid:
                raise ValueError(f"{where}: key #{index} has no kid; keys are selected by kid")
            if kid in seen:
                raise ValueError(f"{where}: kid {kid!r} appears twice")
            seen.add(kid)
            if jwk.get("kty") == "oct":
                raise ValueError(f"{where}: key {kid!r} is a symmetric (oct) key, not a public key")
            if _PRIVATE_MEMBERS & set(jwk):
                raise ValueError(f"{where}: key {kid!r} holds private key material")
            key = _jwk_key(jwk, kid, where)
            if key is not None:
                by_kid[kid] = key
        if not by_kid:
            raise ValueError(f"{where} holds no RSA or EC signature key")
        return cls(by_kid=by_kid)

    @classmethod
    def from_jwks_file(cls, path: str | Path) -> PublicKeys:
        where = f"JWKS file {path}"
        try:
            jwks = json.loads(_read(path, "JWKS file"))
        except json.JSONDecodeError:
            raise ValueError(f"{where} is not valid JSON") from None
        return cls.from_jwks(jwks, where=where)

    def select(self, kid: object) -> PublicKey | None:
        """The key for a token's ``kid`` header; ``None`` when it names no key.

        A PEM file has one key and no ids, so ``kid`` is not consulted; a JWKS
        needs the token's ``kid`` to name one of its keys.
        """
        if self._single is not None:
            return self._single
        return self._by_kid.get(kid) if isinstance(kid, str) else None

    def __iter__(self) -> Iterator[PublicKey]:
        if self._single is not None:
            yield self._single
        yield from self._by_kid.values()

    def __len__(self) -> int:
        return len(self._by_kid) or 1


def _jwk_key(jwk: Mapping[str, Any], kid: str, where: str) -> PublicKey | None:
    kty, use, alg = jwk.get("kty"), jwk.get("use"), jwk.get("alg")
    skip = None
    if use is not None and use != "sig":
        skip = f"use {use!r}"
    elif kty not in ("RSA", "EC"):
        skip = f"key type {kty!r}"
    elif alg is not None and alg not in PUBLIC_KEY_ALGORITHMS:
        skip = f"alg {alg!r}"
    if skip is not None:
        logger.info("%s: key %r skipped (%s is not verified here)", where, kid, skip)
        return None
    parser = RSAAlgorithm if kty == "RSA" else ECAlgorithm
    try:
        key = parser.from_jwk(dict(jwk))
    except (jwt.InvalidKeyError, ValueError, TypeError, KeyError):
        raise ValueError(f"{where}: key {kid!r} is not a valid {kty} public key") from None
    return _public_key(kid, key, alg, f"{where}: key {kid!r}")


@dataclass(frozen=True, slots=True)
class PublicKeySettings:
    """How RS*/ES* tokens are checked.  ``algorithms`` never holds HS* or ``none``."""

    keys: PublicKeys
    issuer: str = "brokergraph"
    audience: str = "brokergraph"
    leeway_seconds: int = 30
    algorithms: tuple[str, ...] = ("RS256",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "algorithms", tuple(self.algorithms))
        if not self.algorithms:
            raise ValueError("JWT algorithms must not be empty")
        for algorithm in self.algorithms:
            if algorithm not in PUBLIC_KEY_ALGORITHMS:
                raise ValueError(
                    f"JWT algorithm {algorithm!r} cannot be verified with a public key; use "
                    + ", ".join(sorted(PUBLIC_KEY_ALGORITHMS))
                )
        if not self.issuer or not self.audience:
            raise ValueError("JWT issuer and audience must not be empty")
        if self.leeway_seconds < 0:
            raise ValueError("JWT leeway_seconds must not be negative")
        if not any(key.algorithms & set(self.algorithms) for key in self.keys):
            raise ValueError(
                f"no key of the {self.keys.source} can verify " + ", ".join(self.algorithms)
            )


class PublicKeyJwtAuthenticator:
    """Verifies RS*/ES* bearer tokens with configured public keys; an :class:`Authenticator`."""

    __slots__ = ("_settings",)

    def __init__(self, settings: PublicKeySettings) -> None:
        self._settings = settings

    @property
    def settings(self) -> PublicKeySettings:
        return self._settings

    @property
    def algorithms(self) -> frozenset[str]:
        """The ``alg`` header values this authenticator verifies (never HS*)."""
        return frozenset(self._settings.algorithms)

    def viewer_from_token(self, token: str) -> Viewer:
        """The viewer a valid token names; :class:`Unauthenticated` otherwise."""
        settings = self._settings
        token = check_token_shape(token)
        header = unverified_header(token)
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in settings.algorithms:
            refuse("algorithm not allowed")
        key = settings.keys.select(header.get("kid"))
        if key is None:
            refuse("unknown kid")
        if algorithm not in key.algorithms:
            refuse("algorithm does not match the key")
        # One algorithm, the one this key allows: PyJWT cannot fall back to another.
        return verified_viewer(
            token,
            key.key,
            algorithms=(algorithm,),
            issuer=settings.issuer,
            audience=settings.audience,
            leeway_seconds=settings.leeway_seconds,
        )

    async def viewer_from_authorization_header(self, value: str | None) -> Viewer:
        """The viewer of a ``Bearer <token>`` header (scheme case-insensitive)."""
        scheme, credentials = split_authorization_header(value)
        if scheme != "bearer":
            raise Unauthenticated("malformed Authorization header")
        return self.viewer_from_token(credentials)
