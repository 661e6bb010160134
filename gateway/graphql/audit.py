"""``auditTrail``: what staff and the gateway did to one partner, from the audit log.

Staff only (manager, admin): a client is refused with PERMISSION_DENIED, and a partner
outside a manager's broker scope is NOT_FOUND, as everywhere else.  The trail is every
audit row whose target is the partner (its code), one of its linked traders or
accounts, an order on one of those accounts, or one of its transfers — each write,
whatever its outcome (``ok``, ``error``, ``replayed``, ``unknown``, and ``settled`` /
``not_applied`` when the reconciler settled an unknown one).  Rows about an object
that was since unlinked from the partner no longer show here.  Newest first, a page
at a time; the cursor holds the last row's time and id, so a page follows on however
many rows were appended since.
"""

from __future__ import annotations

import base64
import enum
import json
from collections.abc import Collection
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import strawberry
from strawberry.types import Info

from gateway.auth import Role
from gateway.errors import InvalidInput
from gateway.graphql import access
from gateway.graphql.context import RequestContext, context_of
from gateway.graphql.ids import decode_id, encode_id
from gateway.graphql.types import Connection, connection
from gateway.store import AuditEntry as AuditRow

__all__ = ["AuditEntry", "AuditOutcome", "audit_trail"]


@strawberry.enum(description="How an audited write ended.")
class AuditOutcome(enum.Enum):
    OK = "ok"
    ERROR = "error"
    REPLAYED = strawberry.enum_value(
        "replayed", description="A retry with a used key: the first result, nothing sent."
    )
    UNKNOWN = strawberry.enum_value(
        "unknown", description="It may have been applied; its answer was lost."
    )
    SETTLED = strawberry.enum_value(
        "settled", description="An unknown write, later found applied on the platform."
    )
    NOT_APPLIED = strawberry.enum_value(
        "not_applied", description="An unknown write, later found never applied."
    )
    OTHER = strawberry.enum_value("other", description="An outcome this version does not know.")


@strawberry.type(description="One audited write (a line of the append-only audit log).")
class AuditEntry:
    at: datetime
    actor: str = strawberry.field(description="Who did it: the viewer's subject.")
    role: str
    action: str = strawberry.field(description="The mutation's name (deposit, createTrader …).")
    target_id: strawberry.ID | None = strawberry.field(
        description="The global id of what it touched (node(id) reads it), when known."
    )
    target_type: str | None = strawberry.field(
        description="BusinessPartner, Trader, Account, Order or Transfer."
    )
    target_external_id: str | None = strawberry.field(
        description="The platform's own id of the target (for a partner: its code)."
    )
    outcome: AuditOutcome
    error_code: str | None
    upstream_ref: str | None = strawberry.field(
        description="The platform's reference of what it made (operation, trader …)."
    )
    idempotency_key: str | None
    amount: Decimal | None = strawberry.field(
        description="The amount asked for, in the account's currency, where there is one."
    )
    settled_by: str | None = strawberry.field(
        description="Who settled an unknown outcome without a client retry (reconciler)."
    )

    @classmethod
    def from_row(cls, row: AuditRow) -> AuditEntry:
        target_type, target_id, external = _target(row.target)
        try:
            outcome = AuditOutcome(row.outcome)
        except ValueError:
            outcome = AuditOutcome.OTHER
        return cls(
            at=row.at,
            actor=row.actor,
            role=row.role,
            action=row.operation,
            target_id=target_id,
            target_type=target_type,
            target_external_id=external,
            outcome=outcome,
            error_code=row.error_code,
            upstream_ref=row.upstream_ref,
            idempotency_key=row.idempotency_key,
            amount=_amount(row.details),
            settled_by=_text(row.details.get("settled_by")),
        )


def _target(target: str | None) -> tuple[str | None, strawberry.ID | None, str | None]:
    """A target's type, global id and native id: a global id as given, else a code."""
    if target is None:
        return None, None, None
    try:
        type_name, parts = decode_id(target)
    except InvalidInput:
        return "BusinessPartner", strawberry.ID(encode_id("BusinessPartner", target)), target
    return type_name, strawberry.ID(target), parts[-1]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _amount(details: dict[str, Any]) -> Decimal | None:
    """The input's amount (a reconciler's row keeps the input under ``request``)."""
    request = details.get("request")
    value = details.get("amount", request.get("amount") if isinstance(request, dict) else None)
    if not isinstance(value, str):
        return None
    try:
        return Decimal(value)
    except InvalidOperation:
        return None


def _order_prefix(platform: str, account_id: str) -> str:
    """The stored text every Order id on the account starts with.

    A global id is base64url of JSON, so only a prefix of whole 3-byte groups encodes to
    a fixed text: ids of a few other accounts (``"12"`` and ``"123"``) may share it.
    """
    head = json.dumps(["Order", platform, account_id], separators=(",", ":"), ensure_ascii=False)
    raw = head[:-1].encode() + b","
    return base64.urlsafe_b64encode(raw[: len(raw) // 3 * 3]).decode()


def _on_accounts(row: AuditRow, exact: Collection[str], accounts: set[tuple[str, str]]) -> bool:
    """Whether a row the query matched is the partner's: exactly, or an order on one of
    its accounts (a prefix match may admit another account's order)."""
    if row.target in exact:
        return True
    try:
        type_name, parts = decode_id(row.target or "")
    except InvalidInput:
        return False
    return type_name == "Order" and len(parts) == 3 and (parts[0], parts[1]) in accounts


def _before(after: str | None) -> tuple[datetime, int] | None:
    if after is None:
        return None
    _, parts = decode_id(after, "cursor", field="after")
    try:
        (at, row_id) = parts
        return datetime.fromisoformat(at), int(row_id)
    except ValueError:
        raise InvalidInput("not an audit trail cursor", field=["after"]) from None


def _cursor(row: AuditRow) -> str:
    return encode_id("cursor", row.at.isoformat(), str(row.id))


async def _targets(ctx: RequestContext, partner_code: str) -> tuple[set[str], set[tuple[str, str]]]:
    """What the partner's rows name exactly, and its accounts (for their orders)."""
    store = ctx.services.store
    exact = {partner_code, encode_id("BusinessPartner", partner_code)}
    accounts: set[tuple[str, str]] = set()
    for link in await store.links_of_partner(partner_code):
        if link.kind == "account":
            exact.add(encode_id("Account", link.platform, link.external_id))
            accounts.add((link.platform, link.external_id))
        elif link.kind == "trader":
            exact.add(encode_id("Trader", link.platform, link.external_id))
    exact.update(
        encode_id("Transfer", t) for t in await store.transfer_ids_of_partner(partner_code)
    )
    return exact, accounts


async def audit_trail(
    info: Info[Any, Any],
    partner_code: str,
    first: int = 50,
    after: str | None = None,
) -> Connection[AuditEntry]:
    ctx = context_of(info)
    ctx.require_viewer().require_role(Role.MANAGER, Role.ADMIN)
    limit = ctx.services.settings.limits.max_page_size
    if not 1 <= first <= limit:
        raise InvalidInput(f"`first` must be between 1 and {limit}", field=["first"])
    before = _before(after)
    await access.require_partner(ctx, partner_code)
    exact, accounts = await _targets(ctx, partner_code)
    prefixes = {_order_prefix(platform, account) for platform, account in accounts}
    kept: list[AuditRow] = []
    # One more than the page tells whether another follows; rows a prefix admitted for
    # another partner's account are dropped, so read on until the page is full.
    while len(kept) <= first:
        want = first + 1 - len(kept)
        rows = await ctx.services.store.audit_trail(
            targets=exact, target_prefixes=prefixes, before=before, limit=want
        )
        kept += [row for row in rows if _on_accounts(row, exact, accounts)]
        if len(rows) < want:
            break
        before = (rows[-1].at, rows[-1].id or 0)
    page = kept[:first]
    nodes = [(_cursor(row), AuditEntry.from_row(row)) for row in page]
    more = len(kept) > first
    return connection(nodes, nodes[-1][0] if more else None)
