"""API keys for server-to-server callers: ``Authorization: ApiKey bg_<id>_<secret>``.

The id is public (it names one stored row, and may appear in logs and listings);
the secret is 256 random bits, shown once when the key is made and stored only
as a salted scrypt hash.  256 random bits cannot be guessed whatever the hash, so
the scrypt cost is kept low: it is defence in depth for a leaked table, not
password stretching, and a bad secret for a known id should not cost a CPU.

Verified keys are remembered for a short time (:data:`DEFAULT_CACHE_TTL_SECONDS`)
so a busy caller does not read the store on every request; a revocation
therefore takes effect within that time in other processes (the ``brokergraph
api-key revoke`` command), and at once in the process that calls
:meth:`ApiKeyAuthenticator.revoke`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, NoReturn, Protocol

from gateway.auth._header import split_authorization_header
from gateway.auth._viewer import Role, Viewer
from gateway.errors import Unauthenticated

if TYPE_CHECKING:
    # Typing only: authentication stays importable without the store's SQLAlchemy.
    from gateway.store import ApiKeyRecord

__all__ = [
    "DEFAULT_CACHE_TTL_SECONDS",
    "ApiKeyAuthenticator",
    "ApiKeyStore",
    "NewApiKey",
    "create_api_key",
    "hash_api_key_secret",
    "verify_api_key_secret",
]

logger = logging.getLogger("gateway.auth")

API_KEY_PREFIX: Final = "bg_"
# The id is what gateway.store picks (16 lowercase hex digits); the secret is
# token_urlsafe(32): 43 base64url characters, which may themselves hold "_".
_KEY_SHAPE: Final = re.compile(r"bg_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_SECRET_BYTES: Final = 32

# scrypt at n=2**12, r=8 (4 MiB, ~10 ms here): see the module docstring.  The
# parameters are stored with each hash, so raising them later breaks no key.
_SCRYPT_N: Final = 2**12
_SCRYPT_R: Final = 8
_SCRYPT_P: Final = 1
_SALT_BYTES: Final = 16
_HASH_BYTES: Final = 32
_HASH_SCHEME: Final = "scrypt"
# A stored hash is trusted data, but bounds keep a corrupted row from costing minutes.
_MAX_SCRYPT_N: Final = 2**16

DEFAULT_CACHE_TTL_SECONDS: Final = 30.0
DEFAULT_CACHE_ENTRIES: Final = 1024

_REFUSED: Final = "invalid or revoked API key"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_api_key_secret(secret: str) -> str:
    """``scrypt$n$r$p$salt$hash`` of ``secret`` with a fresh random salt."""
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.scrypt(
        secret.encode("ascii"), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=_HASH_BYTES
    )
    return f"{_HASH_SCHEME}${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_api_key_secret(secret: str, stored: str) -> bool:
    """Whether ``secret`` hashes to ``stored``; compared in constant time."""
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != _HASH_SCHEME:
            return False
        cost, block, parallel = int(n), int(r), int(p)
        if not (1 < cost <= _MAX_SCRYPT_N and 0 < block <= 32 and 0 < parallel <= 4):
            return False
        expected_bytes = _unb64(expected)
        actual = hashlib.scrypt(
            secret.encode("ascii"),
            salt=_unb64(salt),
            n=cost,
            r=block,
            p=parallel,
            dklen=len(expected_bytes),
        )
    except (ValueError, binascii.Error, UnicodeEncodeError):
        return False
    return hmac.compare_digest(actual, expected_bytes)


class ApiKeyStore(Protocol):
    """What API keys need from the store; :class:`gateway.store.Store` is one."""

    async def create_api_key(
        self,
        *,
        secret_hash: str,
        role: str,
        partner_code: str | None = None,
        brokers: Collection[str] = (),
        name: str | None = None,
    ) -> str: ...

    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None: ...

    async def revoke_api_key(self, key_id: str) -> ApiKeyRecord | None: ...

    async def mark_api_key_used(self, key_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class NewApiKey:
    """A key just made: ``key`` is shown to its owner once and kept nowhere."""

    key_id: str
    key: str = field(repr=False)
    viewer: Viewer


def _subject(key_id: str) -> str:
    return f"api-key:{key_id}"


async def create_api_key(
    store: ApiKeyStore,
    *,
    role: Role,
    partner_code: str | None = None,
    brokers: Collection[str] = (),
    name: str | None = None,
) -> NewApiKey:
    """Make a key for the viewer described and store its hash; raise ``ValueError``
    (nothing stored) when the scope does not fit the role, as :class:`Viewer` does."""
    if isinstance(brokers, str):
        raise ValueError("brokers must be a collection of broker codes, not a string")
    # Checked before anything is stored, with the same rules every request meets.
    Viewer(
        subject=_subject("0" * 16), role=role, partner_code=partner_code, brokers=frozenset(brokers)
    )
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    secret_hash = await asyncio.to_thread(hash_api_key_secret, secret)
    key_id = await store.create_api_key(
        secret_hash=secret_hash,
        role=role.value,
        partner_code=partner_code,
        brokers=sorted(brokers),
        name=name,
    )
    viewer = Viewer(
        subject=_subject(key_id), role=role, partner_code=partner_code, brokers=frozenset(brokers)
    )
    return NewApiKey(key_id, f"{API_KEY_PREFIX}{key_id}_{secret}", viewer)


@dataclass(frozen=True, slots=True)
class _Verified:
    # A fast digest of the whole key: the cache never holds the key itself.
    digest: bytes = field(repr=False)
    viewer: Viewer
    expires_at: float


class ApiKeyAuthenticator:
    """Checks ``ApiKey`` credentials against the store; an :class:`Authenticator`.

    Keys verified in the last ``ttl_seconds`` are answered from a small LRU
    without reading the store; see the module docstring for what that means
    for revocation.
    """

    __slots__ = ("_cache", "_clock", "_forgotten", "_max_entries", "_store", "_ttl")

    def __init__(
        self,
        store: ApiKeyStore,
        *,
        ttl_seconds: float = DEFAULT_CACHE_TTL_SECONDS,
        max_entries: int = DEFAULT_CACHE_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_seconds < 0 or max_entries < 0:
            raise ValueError("ttl_seconds and max_entries must not be negative")
        self._store = store
        self._ttl = ttl_seconds
        self._max_entries = max_entries
        self._clock = clock
        self._cache: OrderedDict[str, _Verified] = OrderedDict()
        # Bumped by forget(): a check that began before a revocation must not cache
        # the key it read just before the revocation landed.
        self._forgotten = 0

    @property
    def ttl_seconds(self) -> float:
        return self._ttl

    async def viewer_from_key(self, key: str) -> Viewer:
        """The viewer a valid, unrevoked key speaks for; :class:`Unauthenticated` otherwise."""
        match = _KEY_SHAPE.fullmatch(key) if isinstance(key, str) else None
        if match is None:
            _refuse("malformed", None)
        key_id, secret = match.groups()
        digest = hashlib.sha256(key.encode("ascii")).digest()
        cached = self._cache.get(key_id)
        if cached is not None:
            if cached.expires_at > self._clock():
                if hmac.compare_digest(cached.digest, digest):
                    self._cache.move_to_end(key_id)
                    return cached.viewer
                # The id has exactly one secret, and this is not it.
                _refuse("wrong secret", key_id)
            del self._cache[key_id]
        generation = self._forgotten
        record = await self._store.get_api_key(key_id)
        if record is None:
            _refuse("unknown id", key_id)
        if record.revoked_at is not None:
            _refuse("revoked", key_id)
        # scrypt in a worker thread: the event loop keeps serving meanwhile.
        if not await asyncio.to_thread(verify_api_key_secret, secret, record.secret_hash):
            _refuse("wrong secret", key_id)
        try:
            viewer = Viewer(
                subject=_subject(key_id),
                role=Role(record.role),
                partner_code=record.partner_code,
                brokers=frozenset(record.brokers),
            )
        except ValueError:
            # Only a hand-edited row gets here; say so loudly, but refuse all the same.
            logger.warning("API key %s has an invalid role or scope in the store", key_id)
            _refuse("invalid scope", key_id)
        try:
            await self._store.mark_api_key_used(key_id)
        except Exception:
            # Bookkeeping only: a failed timestamp write must not refuse a valid caller.
            logger.warning("could not record the use of API key %s", key_id, exc_info=True)
        if generation == self._forgotten:
            self._remember(key_id, _Verified(digest, viewer, self._clock() + self._ttl))
        return viewer

    async def viewer_from_authorization_header(self, value: str | None) -> Viewer:
        """The viewer of an ``ApiKey <key>`` header (scheme case-insensitive)."""
        scheme, credentials = split_authorization_header(value)
        if scheme != "apikey":
            raise Unauthenticated("malformed Authorization header")
        return await self.viewer_from_key(credentials)

    def forget(self, key_id: str | None = None) -> None:
        """Drop ``key_id`` (every key when ``None``) from the cache of verified keys."""
        self._forgotten += 1
        if key_id is None:
            self._cache.clear()
        else:
            self._cache.pop(key_id, None)

    async def is_revoked(self, key_id: str) -> bool:
        """Whether the store says ``key_id`` is revoked (or gone), bypassing the cache.

        One read by primary key and no scrypt: cheap enough for a long-lived socket
        to ask periodically, so a revocation made in another process reaches it.
        """
        record = await self._store.get_api_key(key_id)
        if record is None or record.revoked_at is not None:
            self.forget(key_id)
            return True
        return False

    async def revoke(self, key_id: str) -> ApiKeyRecord | None:
        """Revoke ``key_id`` in the store and stop accepting it in this process at once.

        ``None`` when no such key exists.  Other processes notice within the TTL.
        """
        record = await self._store.revoke_api_key(key_id)
        self.forget(key_id)
        return record

    def _remember(self, key_id: str, verified: _Verified) -> None:
        if self._ttl <= 0 or self._max_entries == 0:
            return
        self._cache[key_id] = verified
        self._cache.move_to_end(key_id)
        while len(self._cache) > self._max_entries:
            self._cache.popitem(last=False)


def _refuse(reason: str, key_id: str | None) -> NoReturn:
    # The id is public and helps an operator; the key and its secret are never logged.
    logger.debug("API key refused: %s (id %s)", reason, key_id or "-")
    raise Unauthenticated(_REFUSED)
