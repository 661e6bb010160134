"""The one write path of the core mutations: authorise → validate → idempotency → dispatch → audit.

A mutation states its path in one call of :func:`write`::

    return await write(
        info, input, "withdraw", target=input.account_id,
        authorise=STAFF, validate=_WITHDRAW, once=MONEY, reference=_reference,
    )

* **authorise**: the viewer must hold one of these roles (none named: any viewer);
* **validate**: checks the input, then resolves what it names — the account must be
  linked to a partner the viewer may see, the platform must declare the capability —
  so a bad or foreign id fails here, before any upstream call;
* **idempotency** (``once``, money and order writes): the upstream call runs at most
  once per key (:func:`gateway.idempotency.run_once`), a retry replays the first result,
  and a claim left open (outcome unknown) is settled by reading the platform where the
  connector offers ``Once.find`` (money: ``find_movement``) — by a same-key retry or,
  with no retry, by the background reconciler (:mod:`gateway.reconciler`) — else
  re-driven only when the connector dedupes by the key;
* **dispatch**: the upstream call and its bookkeeping (links, cache invalidation);
* **audit**: one audit row whatever the outcome (``ok``, ``replayed``, ``error``, or
  ``unknown`` when the write may have been applied but its answer was lost).  A
  domain error anywhere becomes a typed error in the payload, never a GraphQL error.

A failure after the request may have reached the platform is OUTCOME_UNKNOWN, never
UPSTREAM_UNAVAILABLE ("not delivered"): see :func:`gateway.errors.may_have_applied`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar, overload

import strawberry
from strawberry.types import Info

from gateway.auth import Role
from gateway.config import is_secret_key
from gateway.errors import BrokerGraphError, OutcomeUnknown, may_have_applied
from gateway.graphql.context import RequestContext, context_of
from gateway.graphql.errors import UserError, to_user_error, user_error_from_dict
from gateway.graphql.loaders import account_period_prefixes, cache_key
from gateway.idempotency import IdempotentResult, outcome_unknown, run_once
from gateway.reconciler import Recovery, platform_settler
from gateway.serialization import from_jsonable, to_jsonable
from gateway.store import AuditEntry

__all__ = [
    "ADMIN",
    "STAFF",
    "AccountWrite",
    "Once",
    "invalidate_account",
    "send",
    "write",
]

logger = logging.getLogger("gateway.write_path")

STAFF = (Role.MANAGER, Role.ADMIN)
ADMIN = (Role.ADMIN,)


class Payload(Protocol):
    errors: list[UserError]


class Keyed(Protocol):
    """A request that carries its idempotency key (MoneyMovement, PlaceOrderRequest ...)."""

    @property
    def idempotency_key(self) -> str: ...


In = TypeVar("In")  # the mutation's input
R = TypeVar("R")  # what validate hands to dispatch
P = TypeVar("P", bound=Payload)
M = TypeVar("M")  # the model an upstream call returns
Q = TypeVar("Q")  # the request an upstream call takes
K = TypeVar("K", bound=Keyed)


@dataclasses.dataclass(frozen=True, slots=True)
class AccountWrite(Generic[Q, M]):
    """A validated write to one account: the request and the connector method taking it."""

    platform: str
    account_id: str
    request: Q
    send: Callable[[Q], Awaitable[M]]
    #: The write's own settling read (given when it was claimed), for a write whose
    #: record is not an account's history (provisioning): its result, or None when the
    #: platform provably holds none.  Unset: ``Once.find``'s, if any.
    settle: Callable[[datetime], Awaitable[M | None]] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Once(Generic[M, P]):
    """The idempotency step of a family of writes.

    ``scope`` prefixes the key's scope (``money:<platform>:<account>``); ``model`` is
    the stored result's type, rebuilt on a replay; ``present`` makes the payload of a
    result, its errors and whether it was a replay.  ``find`` names the optional
    ``@read`` connector method that settles an unknown outcome: called as
    ``find(account_id, idempotency_key, since)``, it returns the platform's record of
    the key's write (a ``model``) or None when the platform provably has none.
    """

    scope: str
    model: type[M]
    present: Callable[[M | None, list[UserError], bool], P]
    find: str | None = None


def _no_reference(payload: Any) -> None:
    return None


@overload
async def write(
    info: Info[Any, Any],
    input: In,
    operation: str,
    *,
    target: str | None,
    validate: Callable[[RequestContext, In], Awaitable[R]],
    dispatch: Callable[[RequestContext, R], Awaitable[P]],
    payload: Callable[..., P],
    authorise: Sequence[Role] = (),
    reference: Callable[[P], str | None] = _no_reference,
) -> P: ...


@overload
async def write(
    info: Info[Any, Any],
    input: In,
    operation: str,
    *,
    target: str | None,
    validate: Callable[[RequestContext, In], Awaitable[AccountWrite[K, M]]],
    once: Once[M, P],
    authorise: Sequence[Role] = (),
    reference: Callable[[P], str | None] = _no_reference,
) -> P: ...


async def write(
    info: Info[Any, Any],
    input: Any,
    operation: str,
    *,
    target: str | None,
    validate: Callable[[RequestContext, Any], Awaitable[Any]],
    dispatch: Callable[[RequestContext, Any], Awaitable[Any]] | None = None,
    payload: Callable[..., Any] | None = None,
    once: Once[Any, Any] | None = None,
    authorise: Sequence[Role] = (),
    reference: Callable[[Any], str | None] = _no_reference,
) -> Any:
    """Run ``operation``'s write path for ``input`` (see the module docstring)."""
    ctx = context_of(info)
    viewer = ctx.require_viewer()

    def audit_row(result: Any, outcome: str, error_code: str | None) -> AuditEntry:
        return AuditEntry(
            id=None,
            at=datetime.now(UTC),
            actor=viewer.subject,
            role=viewer.role.value,
            operation=operation,
            target=target,
            outcome=outcome,
            error_code=error_code,
            upstream_ref=reference(result) if not result.errors else None,
            idempotency_key=getattr(input, "idempotency_key", None),
            details=audit_details(input),
        )

    def audit_of(result: Any) -> AuditEntry:
        """The audit row of a payload the path produced."""
        replayed = bool(getattr(result, "replayed", False))
        code = result.errors[0].code.value if result.errors else None
        return audit_row(result, "replayed" if replayed else "error" if code else "ok", code)

    try:
        if authorise:
            viewer.require_role(*authorise)
        checked = await validate(ctx, input)
        if once is not None:
            result, audited = await _once(ctx, operation, once, checked, target, audit_of)
        else:
            assert dispatch is not None  # the overloads require dispatch without once
            result, audited = await _dispatch(ctx, dispatch, checked), False
        entry = None if audited else audit_of(result)
    except BrokerGraphError as error:
        errors = [to_user_error(error)]
        if once is not None:
            result = once.present(None, errors, False)
        else:
            assert payload is not None  # the overloads require payload without once
            result = payload(errors=errors)
        outcome = "unknown" if isinstance(error, OutcomeUnknown) else "error"
        entry = audit_row(result, outcome, error.code)
    ctx.loaders.forget_reads()  # the payload, and any later mutation, reads what is now
    if entry is not None:  # not yet written with the idempotency claim's completion
        await ctx.services.store.append_audit(entry)
    return result


async def _dispatch(
    ctx: RequestContext, dispatch: Callable[[RequestContext, Any], Awaitable[Any]], checked: Any
) -> Any:
    """Run a keyless write; a failure after it may have arrived is OUTCOME_UNKNOWN.

    Only dispatch is wrapped: validate sends nothing, so its failures stay as they are.
    """
    try:
        return await dispatch(ctx, checked)
    except BrokerGraphError as error:
        if may_have_applied(error):
            raise outcome_unknown(error, keyed=False) from error
        raise


async def _once(
    ctx: RequestContext,
    operation: str,
    once: Once[M, P],
    checked: AccountWrite[K, M],
    target: str | None,
    audit_of: Callable[[P], AuditEntry],
) -> tuple[P, bool]:
    """Send ``checked`` at most once per key; a replay returns the first result.

    The request is fingerprinted without its key, so the same key with a different
    request is refused as IDEMPOTENCY_CONFLICT.  With a finder, the claim keeps what
    the background reconciler needs to settle it if its outcome is lost.  The payload
    comes with whether its audit row (``audit_of``) was written with the claim's
    completion — one transaction for both.
    """
    presented: dict[bool, P] = {}

    def present(result: IdempotentResult) -> P:
        if result.replayed not in presented:
            if result.error is not None:
                error = user_error_from_dict(dict(result.error))
                presented[result.replayed] = once.present(None, [error], result.replayed)
            else:
                model = from_jsonable(once.model, result.value)
                presented[result.replayed] = once.present(model, [], result.replayed)
        return presented[result.replayed]

    async def upstream() -> Any:
        return to_jsonable(await checked.send(checked.request))

    request = {k: v for k, v in to_jsonable(checked.request).items() if k != "idempotency_key"}
    connector = ctx.services.registry.require_any(checked.platform)
    lease = ctx.services.settings.limits.idempotency_lease_seconds
    key = checked.request.idempotency_key
    settle = platform_settler(
        ctx.services.registry, checked.platform, checked.account_id, key, once.find
    )
    if checked.settle is not None:
        settle = _own_settle(checked.settle)
    redrive = connector.idempotent_writes or settle is not None
    viewer = ctx.require_viewer()
    recovery = (
        None
        if once.find is None
        else Recovery(
            checked.platform,
            checked.account_id,
            once.find,
            target,
            viewer.subject,
            viewer.role.value,
            request,
        ).to_json()
    )
    try:
        result = await run_once(
            ctx.services.store,
            scope=f"{once.scope}:{checked.platform}:{checked.account_id}",
            key=key,
            operation=operation,
            request=request,
            call=upstream,
            redrive_after=lease if redrive else None,
            settle=settle,
            recovery=recovery,
            audit=lambda result: audit_of(present(result)),
        )
    except OutcomeUnknown:
        # It may have been applied: what is cached about the account may be stale now.
        await _invalidate_after_write(ctx, operation, checked.platform, checked.account_id)
        raise
    if not result.replayed:
        await _invalidate_after_write(ctx, operation, checked.platform, checked.account_id)
    return present(result), result.audited


def _own_settle(
    read: Callable[[datetime], Awaitable[Any | None]],
) -> Callable[[datetime], Awaitable[Any | None]]:
    async def settle(claimed_at: datetime) -> Any | None:
        found = await read(claimed_at)
        return None if found is None else to_jsonable(found)

    return settle


async def send(ctx: RequestContext, checked: AccountWrite[Q, M]) -> M:
    """Dispatch a write that needs no key, then drop the account's cached reads."""
    try:
        result = await checked.send(checked.request)
    except BrokerGraphError as error:
        if may_have_applied(error):  # it may have been applied: the cache may be stale
            await _invalidate_after_write(ctx, "write", checked.platform, checked.account_id)
        raise
    await _invalidate_after_write(ctx, "write", checked.platform, checked.account_id)
    return result


async def _invalidate_after_write(
    ctx: RequestContext, operation: str, platform: str, account_id: str
) -> None:
    """Invalidate after a write the platform has applied, whatever happens.

    The write is done: failing here would report a completed write as failed and skip
    its audit row.  The cache keeps (and retries) invalidations Redis refuses; anything
    else that goes wrong is logged, and the entries expire by their TTL.
    """
    try:
        await invalidate_account(ctx, platform, account_id)
    except Exception:
        logger.exception(
            "cache invalidation after %s on %s account %s failed; its entries expire by TTL",
            operation,
            platform,
            account_id,
        )


async def invalidate_account(ctx: RequestContext, platform: str, account_id: str) -> None:
    """Forget every cached read a write to the account can change: its state and history."""
    cache = ctx.services.cache
    await cache.delete(
        cache_key("account", platform, account_id),
        cache_key("positions", platform, account_id),
        cache_key("orders", platform, account_id),
    )
    # Deals, balance operations and analytics are cached per period: drop every period.
    for prefix in account_period_prefixes(platform, account_id):
        await cache.delete_prefix(prefix)


def audit_details(value: Any) -> dict[str, Any]:
    """The input as stored in the audit log: secrets removed, Decimals as strings."""
    data = to_jsonable(value) if dataclasses.is_dataclass(value) else {}
    return {
        k: ("***" if is_secret_key(k) else v)
        for k, v in data.items()
        if v is not strawberry.UNSET  # an omitted optional input field
    }
