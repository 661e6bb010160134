"""Secrets never reach a log record: URL query strings, JWTs, API keys, passwords.

uvicorn logs a WebSocket's path *with* its query string at INFO, and a query
string may carry a token; our own modules and libraries may log a header or a
URL at DEBUG.  Rather than trust every call site, :func:`install_redaction` wraps the
log-record factory, so every record of every logger is redacted once, when it is
made, before any handler (or pytest's ``caplog``) sees it:

* the query string of any URL (``/graphql?token=…`` → ``/graphql?[redacted]``; any
  ``word?rest`` is cut alike: over-redacting a question is cheaper than a leak);
* JWT-looking strings (``eyJ…``), the value after ``Bearer``/``ApiKey``/``Basic``,
  the secret half of an API key (``bg_<id>_…``: the public id stays, it helps an
  operator), values of ``password=``/``token:``-like fields, and any long opaque
  mixed-case base64url run (a lone JWT signature, say);
* every configured secret (JWT secret, connector passwords), by value
  (:func:`register_secrets`).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import fields
from typing import Any, Final

from gateway.config import Secret, Settings

__all__ = ["REDACTED", "RedactingFilter", "install_redaction", "redact", "register_secrets"]

REDACTED: Final = "[redacted]"

_PATTERNS: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    # A query string after a path: /graphql?token=… (uvicorn's access and WebSocket lines).
    # Matched from the "?" (a lookbehind, not a scan of the path), so the work stays
    # linear in the message whatever a client puts in a logged path.
    (re.compile(r"(?<=[^\s?\"'#<>=])\?[^\s\"'#<>]+"), f"?{REDACTED}"),
    # A WebSocket frame's payload as the websockets library logs it at DEBUG: cut to
    # its head and tail, so no pattern below could recognise the token it carries.
    (
        re.compile(r"^([<>] (?:TEXT|BINARY) ).*?((?: \[\d+ bytes?\])?)$", re.DOTALL),
        rf"\1{REDACTED}\2",
    ),
    # The password of a URL's user info: postgresql://user:…@host.
    (re.compile(r"(://[^\s:/@]+:)[^\s@/]+@"), rf"\1{REDACTED}@"),
    # Credentials after an Authorization scheme, whatever their shape.
    (re.compile(r"(?i)\b(bearer|apikey|basic)(\s+)[^\s\"',;}\]]+"), rf"\1\2{REDACTED}"),
    # A compact JWS or any two of its parts.
    (
        re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*)?"),
        REDACTED,
    ),
    (re.compile(r"\b(bg_[0-9a-f]{16}_)[A-Za-z0-9_-]+"), rf"\1{REDACTED}"),
    (
        re.compile(
            r"(?i)((?:password|passwd|secret|token|api[_-]?key|authorization)[\"']?\s*[:=]\s*[\"']?)"
            r"[^\s\"',&;}\]]+"
        ),
        rf"\1{REDACTED}",
    ),
    # Long opaque runs with both cases: a signature or key secret on its own.  Hex ids
    # (uuids, key ids) are single-case and stay readable.
    (
        re.compile(
            r"(?<![A-Za-z0-9_-])(?=[A-Za-z0-9_-]*[A-Z])(?=[A-Za-z0-9_-]*[a-z])"
            r"[A-Za-z0-9_-]{32,}(?![A-Za-z0-9_-])"
        ),
        REDACTED,
    ),
)

# Shorter values would redact ordinary words; no real secret is this short.
_MIN_SECRET_LENGTH: Final = 8
_secrets: set[str] = set()
_lock = threading.Lock()


def register_secrets(settings: Settings) -> None:
    """Redact every :class:`Secret` of ``settings`` by value from now on."""
    _add(secret.reveal() for secret in _secrets_in(settings))


def _secrets_in(value: Any) -> Iterable[Secret]:
    if isinstance(value, Secret):
        yield value
    elif hasattr(value, "__dataclass_fields__"):
        for item in fields(value):
            yield from _secrets_in(getattr(value, item.name))
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _secrets_in(item)


def _add(values: Iterable[str]) -> None:
    with _lock:
        _secrets.update(v for v in values if len(v) >= _MIN_SECRET_LENGTH)


def redact(text: str) -> str:
    """``text`` with every secret the module describes replaced by ``[redacted]``."""
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites a record's message (and traceback) redacted; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: keep its template, drop its arguments
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FILTER: Final = RedactingFilter()


def install_redaction() -> None:
    """Redact every log record made in this process from now on (idempotent)."""
    with _lock:
        current = logging.getLogRecordFactory()
        if getattr(current, "_brokergraph_redacting", False):
            return

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = current(*args, **kwargs)
            _FILTER.filter(record)
            return record

        factory._brokergraph_redacting = True  # type: ignore[attr-defined]
        logging.setLogRecordFactory(factory)
