"""The immutable values the store hands out; rows never leak past the store."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
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
    #: Settled as never applied: the platform provably holds nothing under the key and
    #: the claim outlived its lease.  A retry of the same request takes it over and sends.
    NOT_APPLIED = "NOT_APPLIED"


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
class UnsettledClaim:
    """A claim left STARTED with what settling it needs (``recovery``, as the write
    path stored it) and the time before which no replica may take it (``check_after``)."""

    claim: IdempotencyRecord
    recovery: dict[str, Any]
    check_after: datetime


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the append-only audit log.

    ``outcome``: ``ok``, ``error``, ``replayed``, ``unknown`` (the write may have been
    applied, its answer was lost), and for such a write later settled without its
    client, ``settled`` (the platform shows it applied) or ``not_applied``.
    """

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


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """A stored API key: who it speaks for, never the key itself.

    ``role``, ``partner_code`` and ``brokers`` describe the viewer the key
    authenticates as; ``secret_hash`` is the salted hash to check a presented
    secret against (kept out of ``repr`` so a printed record shows no hash).
    """

    key_id: str
    name: str | None
    role: str
    partner_code: str | None
    brokers: tuple[str, ...]
    secret_hash: str = field(repr=False)
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class TransferRecord:
    """A transfer saga as stored: its state, the request it runs, its settled steps.

    ``request`` and each of ``steps`` are JSON objects the saga's code writes and reads;
    the store only keeps them and moves ``state`` forward atomically.
    """

    transfer_id: str
    partner_code: str
    state: str
    request: dict[str, Any]
    steps: list[dict[str, Any]]
    created_at: datetime
    updated_at: datetime
