"""A vendor's error answers as a table: code, text pattern or HTTP status → our error.

Every platform reports failure its own way (cTrader ``errorCode`` strings, DXtrade
numeric codes with an HTTP status, QORT fault classes, QST free text).  A connector
writes its vendor's table once, as data, and :meth:`VendorErrorTable.error` turns
an answer into a :class:`~gateway.errors.BrokerGraphError`.  Each rule also says
what the answer means for the request — whether the platform certainly applied
nothing (a refusal) or may have (a server failure after the request arrived) —
so the write path can report "not delivered" or "unknown" truthfully: the error
of an UNKNOWN rule carries ``details.outcome = "UNKNOWN"``, which the write path
turns into OUTCOME_UNKNOWN for a write (a read keeps the rule's class).

Lookup order: vendor code, then text pattern (first match), then HTTP status,
then any 5xx, then the table's fallback.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import (
    OUTCOME_DETAIL,
    OUTCOME_UNKNOWN_VALUE,
    BrokerGraphError,
    RateLimited,
    UpstreamRejected,
    UpstreamUnavailable,
)

__all__ = ["Outcome", "VendorError", "VendorErrorTable"]


class Outcome(enum.Enum):
    """What an error answer says about the request that caused it."""

    #: The platform refused the request: nothing was applied.
    NOT_APPLIED = "NOT_APPLIED"
    #: The request reached the platform and may have been applied (e.g. a 5xx).
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True, slots=True)
class VendorError:
    """One rule: the error class, a client-safe message and the input field at fault.

    ``message`` may name ``{platform}`` (the table's ``vendor`` name), ``{what}`` (the
    call), ``{text}`` (the vendor's own text, trimmed) and ``{status}``;
    ``retry_after`` is the default pause for ``RateLimited``.
    """

    error: type[BrokerGraphError]
    message: str
    field: str | None = None
    outcome: Outcome = Outcome.NOT_APPLIED
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class VendorErrorTable:
    """A vendor's error table; see the module docstring for the lookup order."""

    platform: str
    codes: Mapping[str, VendorError] = field(default_factory=dict)
    patterns: Sequence[tuple[str, VendorError]] = ()
    statuses: Mapping[int, VendorError] = field(default_factory=dict)
    server_error: VendorError = VendorError(
        UpstreamUnavailable, "{platform} failed to serve the {what}", outcome=Outcome.UNKNOWN
    )
    fallback: VendorError = VendorError(UpstreamRejected, "{platform} refused the {what}")
    #: The vendor's name as clients read it ("cTrader"); ``platform`` is the id in details.
    vendor: str | None = None
    _compiled: tuple[tuple[re.Pattern[str], VendorError], ...] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        compiled = tuple((re.compile(p, re.IGNORECASE), rule) for p, rule in self.patterns)
        object.__setattr__(self, "_compiled", compiled)

    def rule_for(
        self, *, code: str | int | None = None, text: str = "", status: int | None = None
    ) -> VendorError:
        """The rule an answer falls under (see the lookup order above)."""
        if code is not None and str(code) in self.codes:
            return self.codes[str(code)]
        flat = " ".join(text.split())  # vendors wrap their texts; patterns see one line
        for pattern, rule in self._compiled:
            if flat and pattern.search(flat):
                return rule
        if status is not None:
            if status in self.statuses:
                return self.statuses[status]
            if status >= 500:
                return self.server_error
        return self.fallback

    def error(
        self,
        *,
        code: str | int | None = None,
        text: str = "",
        status: int | None = None,
        what: str = "request",
        retry_after: float | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> BrokerGraphError:
        """The error for one answer; details carry the platform, vendor code and status."""
        rule = self.rule_for(code=code, text=text, status=status)
        trimmed = " ".join(text.split())[:300]
        facts: dict[str, Any] = {"platform": self.platform, **(details or {})}
        if code is not None:
            facts.setdefault("vendorCode", code)
        if status is not None:
            facts.setdefault("status", status)
        if rule.outcome is Outcome.UNKNOWN:
            facts[OUTCOME_DETAIL] = OUTCOME_UNKNOWN_VALUE
        message = rule.message.format(
            platform=self.vendor or self.platform,
            what=what,
            text=trimmed or "no reason given",
            status=status,
        )
        field_path = [rule.field] if rule.field else None
        if issubclass(rule.error, RateLimited):
            pause = retry_after if retry_after is not None else rule.retry_after
            return rule.error(message, retry_after=pause, field=field_path, details=facts)
        return rule.error(message, field=field_path, details=facts)
