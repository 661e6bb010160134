"""The immutable values the store hands out; rows never leak past the store."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class PartnerRecord:
    """The gateway's own anchor for a partner: links and scoping hang off ``code``."""

    code: str
    broker: str | None
    display_name: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Link:
    """One platform object (``kind`` is ``"trader"`` or ``"account"``) owned by a partner."""

    partner_code: str
    platform: str
    kind: str
    external_id: str
    trader_id: str | None
    created_at: datetime


class IdempotencyState(enum.Enum):
    STARTED = "STARTED"
    COMPLETED = "COMPLETED"


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    scope: str
    key: str
    operation: str
    request_hash: str
    state: IdempotencyState
    response: dict[str, Any] | None
    created_at: datetime
    completed_at: datetime | None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the append-only audit log; ``outcome`` is ``ok``, ``error`` or ``replayed``."""

    id: int | None
    at: datetime
    actor: str
    role: str
    operation: str
    target: str | None
    outcome: str
    error_code: str | None
    upstream_ref: str | None
    idempotency_key: str | None
    details: dict[str, Any]
