"""RS*/ES* JSON Web Tokens, verified with configured public keys: a PEM file, a JWKS
file, or a JWKS fetched from an identity provider's URL.

Only asymmetric algorithms are accepted here, and each key verifies only the
algorithms its own type allows, so a token that says ``HS256`` can never be
checked with a public key used as an HMAC secret (algorithm confusion).  Key
files are read once, at start-up: rotating keys means restarting, which also
means a key removed from the file is refused at once.  A JWKS URL
(:class:`RemoteJwks`) is fetched at start-up and again when its copy is older than
its cache lifetime, or when a token names a ``kid`` it does not hold (a rotation) —
at most once per refetch interval, however many such tokens arrive.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from gateway.auth._decode import (
    REFUSED,
    check_token_shape,
    refuse,
    unverified_header,
    verified_viewer,
)
from gateway.auth._header import split_authorization_header
from gateway.auth._viewer import Viewer
from gateway.errors import Unauthenticated

__all__ = [
    "PUBLIC_KEY_ALGORITHMS",
    "PublicKey",
    "PublicKeyJwtAuthenticator",
    "PublicKeySettings",
    "PublicKeys",
    "RemoteJwks",
    "UnknownKeyId",
    "check_jwks_url",
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
#: One JWKS fetch waits at most this long (start-up included).
_JWKS_TIMEOUT_SECONDS: Final = 5.0


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


def check_jwks_url(url: str) -> str:
    """``url`` if keys may be fetched from it: ``https://``, or ``http://`` to a loopback
    host only (an identity provider's sidecar or a test), never plain HTTP across a
    network, where anyone on the path could swap the keys."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    if scheme == "https" and host:
        return url
    if scheme == "http" and host and _is_loopback(host):
        return url
    raise ValueError(
        f"jwks_url {url!r} must be an https:// URL (plain http:// only to a loopback host)"
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class UnknownKeyId(Unauthenticated):
    """A token names a ``kid`` the keys do not hold; the caller sees only :data:`REFUSED`.

    ``refresh``, when set, fetches the keys again (bounded by the key source) and
    answers whether the ``kid`` is known now, so the token can be checked once more.
    """

    def __init__(self, refresh: Callable[[], Awaitable[bool]] | None = None) -> None:
        super().__init__(REFUSED)
        self.refresh = refresh


class RemoteJwks:
    """The JWK Set an identity provider publishes at ``url``, kept current.

    Fetched once when built (a failure then is a configuration error), again in the
    background when the copy is older than ``cache_seconds``, and on demand by
    :meth:`refresh_for` when a token names an unknown ``kid`` — but never more often
    than once per ``refetch_seconds``, so a flood of tokens with invented ``kid``
    values costs the provider one request per interval.  A failed refresh keeps the
    keys held (and is logged); a key the provider withdrew is refused once a fetch
    no longer lists it.
    """

    __slots__ = (
        "_attempted_at",
        "_background",
        "_cache_seconds",
        "_clock",
        "_fetched_at",
        "_keys",
        "_lock",
        "_refetch_seconds",
        "_verify",
        "fetches",
        "url",
    )

    def __init__(
        self,
        url: str,
        *,
        cache_seconds: float = 300.0,
        refetch_seconds: float = 30.0,
        verify: Any = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if cache_seconds <= 0 or refetch_seconds <= 0:
            raise ValueError("jwks_cache_seconds and jwks_refetch_seconds must be positive")
        self.url = check_jwks_url(url)
        self._cache_seconds = cache_seconds
        self._refetch_seconds = refetch_seconds
        #: httpx's ``verify``: True (the system's CAs) or an ``ssl.SSLContext``.
        self._verify = verify
        self._clock = clock
        self._lock = asyncio.Lock()
        self._background: asyncio.Task[None] | None = None
        #: Fetches attempted, for tests and metrics.
        self.fetches = 0
        self._attempted_at = clock()
        self._keys = self._fetch()
        self._fetched_at = self._attempted_at

    @property
    def source(self) -> str:
        return f"JWKS at {self.url}"

    def _fetch(self) -> PublicKeys:
        """One GET of the JWKS; ``ValueError`` naming the URL when it yields no keys."""
        self.fetches += 1
        self._attempted_at = self._clock()
        where = self.source
        try:
            with (
                httpx.Client(verify=self._verify, timeout=_JWKS_TIMEOUT_SECONDS) as client,
                client.stream("GET", self.url, headers={"Accept": "application/json"}) as answer,
            ):
                if answer.status_code != 200:
                    raise ValueError(f"{where} answered HTTP {answer.status_code}")
                body = bytearray()
                for chunk in answer.iter_bytes():
                    body += chunk
                    if len(body) > _MAX_FILE_BYTES:
                        raise ValueError(f"{where} is too large to be a key set")
        except httpx.HTTPError as error:
            raise ValueError(f"{where} cannot be fetched ({type(error).__name__})") from None
        try:
            jwks = json.loads(bytes(body))
        except json.JSONDecodeError:
            raise ValueError(f"{where} is not valid JSON") from None
        return PublicKeys.from_jwks(jwks, where=where)

    async def _refetch(self) -> None:
        """Fetch in a worker thread; keep the keys held when it fails."""
        try:
            keys = await asyncio.to_thread(self._fetch)
        except ValueError as error:
            logger.warning("%s; keeping the %d keys held", error, len(self._keys))
            return
        self._keys = keys
        self._fetched_at = self._clock()

    def _may_fetch(self) -> bool:
        return self._clock() - self._attempted_at >= self._refetch_seconds

    async def refresh_for(self, kid: object) -> bool:
        """Fetch again for an unknown ``kid`` (if the interval allows); is it known now?"""
        async with self._lock:
            # Another request's fetch may have brought it while this one waited.
            if self._keys.select(kid) is None and self._may_fetch():
                await self._refetch()
        return self._keys.select(kid) is not None

    def _refresh_in_background(self) -> None:
        if self._clock() - self._fetched_at < self._cache_seconds or not self._may_fetch():
            return
        if self._background is not None and not self._background.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a synchronous caller): the next request on one refreshes
        self._background = loop.create_task(self._refresh_stale())

    async def _refresh_stale(self) -> None:
        async with self._lock:
            if self._may_fetch():
                await self._refetch()

    def select(self, kid: object) -> PublicKey | None:
        """The key for ``kid`` from the copy held; an old copy is refreshed meanwhile."""
        self._refresh_in_background()
        return self._keys.select(kid)

    def __iter__(self) -> Iterator[PublicKey]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


@dataclass(frozen=True, slots=True)
class PublicKeySettings:
    """How RS*/ES* tokens are checked.  ``algorithms`` never holds HS* or ``none``."""

    keys: PublicKeys | RemoteJwks
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
        kid = header.get("kid")
        keys = settings.keys
        key = keys.select(kid)
        if key is None:
            logger.debug("token refused: unknown kid")
            if isinstance(keys, RemoteJwks):
                # The provider may have rotated: the caller may refresh and try once more.
                raise UnknownKeyId(lambda: keys.refresh_for(kid))
            raise UnknownKeyId()
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
        try:
            return self.viewer_from_token(credentials)
        except UnknownKeyId as unknown:
            if unknown.refresh is None or not await unknown.refresh():
                raise
        return self.viewer_from_token(credentials)
