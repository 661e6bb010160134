"""Pickles sealed with an HMAC-SHA256 signature, for values that travel through Redis.

Redis is shared infrastructure, so anything read back from it is untrusted until its
signature verifies; only then is it unpickled.  The signature also covers a *context*
(the Redis key or channel), so a valid value copied under another key — another
viewer's scope — does not verify either.
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
from typing import Any

__all__ = ["MIN_SECRET_BYTES", "BadSignature", "Signer", "UnreadableValue"]

# 128 bits: shorter secrets can be brute-forced offline from one observed value.
MIN_SECRET_BYTES = 16

# The leading format byte leaves room for a later change of algorithm or key rotation
# without mistaking old values for forgeries.
_FORMAT = b"\x01"
_DIGEST_SIZE = hashlib.sha256().digest_size


class BadSignature(ValueError):
    """The value was not sealed with this secret for this context (forged or corrupt)."""


class UnreadableValue(ValueError):
    """The signature verified but the pickle could not be loaded (e.g. a class was
    renamed by a newer release while the value sat in Redis)."""


class Signer:
    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, bytes):
            raise TypeError("secret must be bytes")
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"secret must be at least {MIN_SECRET_BYTES} bytes long")
        self._secret = secret

    def seal(self, context: bytes, value: Any) -> bytes:
        payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        return _FORMAT + self._mac(context, payload) + payload

    def open(self, context: bytes, sealed: bytes) -> Any:
        head = len(_FORMAT) + _DIGEST_SIZE
        if len(sealed) < head or not sealed.startswith(_FORMAT):
            raise BadSignature("not a sealed value")
        mac, payload = sealed[len(_FORMAT) : head], sealed[head:]
        if not hmac.compare_digest(mac, self._mac(context, payload)):
            raise BadSignature("signature does not verify")
        try:
            # Safe only because the HMAC above proves a holder of the secret wrote it.
            return pickle.loads(payload)  # noqa: S301
        except Exception as error:
            # The type only: a pickle error message can quote bytes of the payload.
            raise UnreadableValue(f"cannot unpickle ({type(error).__name__})") from None

    def _mac(self, context: bytes, payload: bytes) -> bytes:
        # Length-prefixing the context keeps (context, payload) pairs unambiguous.
        mac = hmac.new(self._secret, len(context).to_bytes(4, "big"), hashlib.sha256)
        mac.update(context)
        mac.update(payload)
        return mac.digest()
