"""Parsing of the HTTP ``Authorization`` header, shared by every authenticator."""

from __future__ import annotations

from gateway.errors import Unauthenticated

__all__ = ["MAX_CREDENTIALS_LENGTH", "split_authorization_header"]

# Far above any token we issue; bounds the work an anonymous caller can cause
# before a signature is checked.
MAX_CREDENTIALS_LENGTH = 8192

_MISSING = "authentication required"
_MALFORMED = "malformed Authorization header"


def split_authorization_header(value: str | None) -> tuple[str, str]:
    """Return ``(scheme, credentials)`` of ``value``, the scheme lower-cased.

    Raises :class:`Unauthenticated` when the header is missing or is not exactly a
    scheme and one credentials word; the message never repeats the header.
    """
    if value is None or not value.strip():
        raise Unauthenticated(_MISSING)
    if len(value) > MAX_CREDENTIALS_LENGTH + 64:
        raise Unauthenticated(_MALFORMED)
    parts = value.split()
    if len(parts) != 2:
        raise Unauthenticated(_MALFORMED)
    scheme, credentials = parts
    return scheme.lower(), credentials
