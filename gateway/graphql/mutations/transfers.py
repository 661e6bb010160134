"""Transfers between two accounts of one partner, run as a saga over the money path.

No connector offers a native transfer today, so every transfer is a saga: withdraw
from the source (key ``<key>:withdraw``), deposit to the target (``<key>:deposit``)
and, only when the deposit is refused (provably not applied), deposit the amount back
to the source (``<key>:compensate``).  Each step is an ordinary money write
(:func:`._write_path.write`): idempotent under its own key, audited, OUTCOME_UNKNOWN
when its answer is lost, settled by a same-key retry or the reconciler.

The saga's state lives in the store and moves forward only by a conditional update
that also appends its audit row, so money is always accounted for: a withdrawal is
followed by a deposit or a compensation, or the saga waits in ``*_UNKNOWN`` /
``COMPENSATING`` for a retry.  An unknown step is never compensated: it may have been
applied.  A retry with the same key returns the saga and drives it on from where it
stands; the money writes replay what already happened, so nothing moves twice.
The gateway also resumes a waiting saga by itself (:func:`resume_transfers`, run after
each reconciler round): exactly as a retry would, as the viewer who started it (kept
with the saga as ``request["acting"]``), one replica at a time.

State machine (step → outcome → state)::

    STARTED / WITHDRAW_UNKNOWN --withdraw ok--> WITHDRAWN     refused--> FAILED
    STARTED                    --withdraw ?---> WITHDRAW_UNKNOWN
    WITHDRAWN / DEPOSIT_UNKNOWN --deposit ok--> DEPOSITED     refused--> COMPENSATING
    WITHDRAWN                   --deposit ?---> DEPOSIT_UNKNOWN
    COMPENSATING --compensate ok--> COMPENSATED (otherwise stays, for a retry)

A definitive outcome wins over an unknown one written by a concurrent request, which is
why each move names every state it may come from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final, cast

import strawberry
from strawberry.types import Info

from gateway.auth import Role, Viewer
from gateway.connectors import Capability, family_of
from gateway.errors import (
    BrokerGraphError,
    IdempotencyConflict,
    InvalidInput,
    NotFound,
)
from gateway.graphql import access
from gateway.graphql.context import RequestContext, context_of
from gateway.graphql.errors import UserError, to_user_error
from gateway.graphql.mutations._inputs import MoneyMovementInput
from gateway.graphql.mutations._validate import check_amount, check_text, decode_account
from gateway.graphql.mutations._write_path import STAFF, audit_details, write
from gateway.graphql.mutations.money import DEPOSIT, MONEY, WITHDRAW, movement_reference
from gateway.graphql.types import Transfer, TransferState
from gateway.idempotency import check_idempotency_key
from gateway.services import GatewayServices
from gateway.store import AuditEntry, IdempotencyState, Store, TransferRecord

__all__ = [
    "TransferFundsInput",
    "TransferPayload",
    "TransfersMutation",
    "resume_transfer",
    "resume_transfers",
    "transfer_id",
]

logger = logging.getLogger("gateway.transfers")

S = TransferState

#: Codes of a step the platform (or the gateway, before sending) provably did not apply.
#: Anything else — OUTCOME_UNKNOWN, a claim still in flight, a platform out of reach —
#: may yet turn out applied, so the saga waits instead of compensating.
REFUSED: Final = frozenset(
    {
        "INVALID_INPUT",
        "NOT_FOUND",
        "CONFLICT",
        "INSUFFICIENT_FUNDS",
        "PERMISSION_DENIED",
        "CAPABILITY_NOT_SUPPORTED",
        "UPSTREAM_REJECTED",
    }
)

#: Longest client key: the step keys append at most ``:compensate`` and must stay valid.
MAX_KEY = 128 - len(":compensate")

#: The step each non-final state runs next.
_NEXT_STEP: Final[Mapping[TransferState, str]] = {
    S.STARTED: "WITHDRAW",
    S.WITHDRAW_UNKNOWN: "WITHDRAW",
    S.WITHDRAWN: "DEPOSIT",
    S.DEPOSIT_UNKNOWN: "DEPOSIT",
    S.COMPENSATING: "COMPENSATE",
}

#: States a saga waits in for a retry, which the gateway also resumes by itself.
WAITING: Final = frozenset({S.WITHDRAW_UNKNOWN, S.WITHDRAWN, S.DEPOSIT_UNKNOWN, S.COMPENSATING})
#: States whose step may have been applied: a refusal only counts once the step's own
#: claim holds the platform's answer (see :func:`_definitive`).
_UNKNOWN: Final = frozenset({S.WITHDRAW_UNKNOWN, S.DEPOSIT_UNKNOWN})
#: Sagas resumed per store read; a round goes on until none is left.
_PAGE = 100

#: (step, outcome) → (the states it may move from, the state it moves to).
_MOVES: Final[Mapping[tuple[str, str], tuple[frozenset[TransferState], TransferState]]] = {
    ("WITHDRAW", "ok"): (frozenset({S.STARTED, S.WITHDRAW_UNKNOWN}), S.WITHDRAWN),
    ("WITHDRAW", "refused"): (frozenset({S.STARTED, S.WITHDRAW_UNKNOWN}), S.FAILED),
    ("WITHDRAW", "unknown"): (frozenset({S.STARTED}), S.WITHDRAW_UNKNOWN),
    ("DEPOSIT", "ok"): (frozenset({S.WITHDRAWN, S.DEPOSIT_UNKNOWN}), S.DEPOSITED),
    ("DEPOSIT", "refused"): (frozenset({S.WITHDRAWN, S.DEPOSIT_UNKNOWN}), S.COMPENSATING),
    ("DEPOSIT", "unknown"): (frozenset({S.WITHDRAWN}), S.DEPOSIT_UNKNOWN),
    ("COMPENSATE", "ok"): (frozenset({S.COMPENSATING}), S.COMPENSATED),
    # Refused or unknown, the money is still owed to the source: the saga stays and a
    # retry (or an operator, reading the audit) finishes it.
    ("COMPENSATE", "refused"): (frozenset({S.COMPENSATING}), S.COMPENSATING),
    ("COMPENSATE", "unknown"): (frozenset({S.COMPENSATING}), S.COMPENSATING),
}


@strawberry.input
class TransferFundsInput:
    from_account_id: strawberry.ID
    to_account_id: strawberry.ID
    amount: Decimal = strawberry.field(description="In the accounts' currency; > 0.")
    idempotency_key: str = strawberry.field(
        description="Unique per source account (a UUID); a retry returns the transfer "
        "and drives it on from where it stands, moving nothing twice."
    )
    comment: str | None = None


@strawberry.type
class TransferPayload:
    transfer: Transfer | None = None
    replayed: bool = strawberry.field(
        default=False, description="True when this key had started a transfer before."
    )
    errors: list[UserError] = strawberry.field(default_factory=list)


def transfer_id(platform: str, account_id: str, key: str) -> str:
    """The saga's id: one per source account and client key (the store's claim)."""
    digest = hashlib.sha256(f"{platform}\0{account_id}\0{key}".encode()).hexdigest()
    return digest[:32]


@dataclasses.dataclass(frozen=True, slots=True)
class _Step:
    """Where a step sends its money write."""

    name: str
    account_id: str  # global id
    key: str
    deposit: bool


def _step(name: str, request: Mapping[str, Any]) -> _Step:
    key = request["idempotency_key"]
    if name == "WITHDRAW":
        return _Step(name, request["from_account_id"], f"{key}:withdraw", deposit=False)
    if name == "DEPOSIT":
        return _Step(name, request["to_account_id"], f"{key}:deposit", deposit=True)
    return _Step(name, request["from_account_id"], f"{key}:compensate", deposit=True)


async def _validate(ctx: RequestContext, input: TransferFundsInput) -> tuple[str, dict[str, Any]]:
    """The partner and the saga's request; fails before any write, with no upstream
    call for a foreign, unknown or unfunded account."""
    source = decode_account(input.from_account_id, "fromAccountId")
    target = decode_account(input.to_account_id, "toAccountId")
    owners = []
    # Access first: what a viewer may not see answers NOT_FOUND whatever else is wrong.
    for (platform, account_id), field in ((source, "fromAccountId"), (target, "toAccountId")):
        try:
            owners.append(await access.require_linked_account(ctx, platform, account_id))
        except NotFound as error:
            raise NotFound(error.message, field=[field]) from error
    if owners[0] != owners[1]:
        # Another partner's account is as invisible here as an unknown one.
        raise NotFound("account not found among the source's partner", field=["toAccountId"])
    if source == target:
        raise InvalidInput("the accounts must differ", field=["toAccountId"])
    amount = check_amount(input.amount)
    key = check_idempotency_key(input.idempotency_key)
    if len(key) > MAX_KEY:
        raise InvalidInput(
            f"idempotencyKey must be at most {MAX_KEY} characters for a transfer",
            field=["idempotencyKey"],
        )
    comment = check_text(input.comment, "comment") if input.comment else None
    for platform, _ in (source, target):
        ctx.services.registry.require(platform, Capability.FUNDING, family_of(Capability.FUNDING))
    accounts = [await ctx.loaders.accounts.load(side) for side in (source, target)]
    if accounts[0] is None or accounts[1] is None:
        raise NotFound("account not found on its platform", field=["fromAccountId"])
    currency = accounts[0].currency
    if accounts[1].currency != currency:
        raise InvalidInput(
            f"the accounts' currencies differ ({currency}, {accounts[1].currency}): "
            "a transfer does not convert",
            field=["toAccountId"],
        )
    viewer = ctx.require_viewer()
    return owners[0], {
        "from_account_id": str(input.from_account_id),
        "to_account_id": str(input.to_account_id),
        "amount": str(amount),
        "currency": currency,
        "idempotency_key": key,
        "comment": comment,
        # Who resumes the saga when the gateway does (not part of the request's identity).
        "acting": {
            "subject": viewer.subject,
            "role": viewer.role.value,
            "partner_code": viewer.partner_code,
            "brokers": sorted(viewer.brokers),
        },
    }


def _same_request(stored: Mapping[str, Any], request: Mapping[str, Any]) -> bool:
    """Whether a retry asks for the stored transfer, whoever sends it."""

    def strip(r: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in r.items() if k != "acting"}

    return strip(stored) == strip(request)


async def _unsettled(store: Store, step: _Step) -> bool:
    """Whether the step's money claim is still unknown (STARTED)."""
    platform, account_id = decode_account(strawberry.ID(step.account_id), "accountId")
    claim = await store.get_idempotent(f"{MONEY.scope}:{platform}:{account_id}", step.key)
    return claim is not None and claim.state is IdempotencyState.STARTED


async def _definitive(info: Info[Any, Any], step: _Step) -> bool:
    """Whether a refusal of a step retried after an unknown outcome is the platform's
    answer to the step: not while the step's claim is still unknown (STARTED) — then
    the retry was refused before it was sent (say, the account became unreadable) and
    the first attempt may still have been applied, so the saga must not compensate."""
    return not await _unsettled(context_of(info).services.store, step)


async def _run_step(
    info: Info[Any, Any],
    step: _Step,
    request: Mapping[str, Any],
    saga_id: str,
    *,
    from_unknown: bool,
) -> dict[str, Any]:
    """Send the step's money write; its outcome as the saga records it."""
    comment = request.get("comment") or f"transfer {saga_id}"
    movement = MoneyMovementInput(
        account_id=strawberry.ID(step.account_id),
        amount=Decimal(request["amount"]),
        idempotency_key=step.key,
        comment=comment,
    )
    operation = "deposit" if step.deposit else "withdraw"
    payload = await write(
        info,
        movement,
        operation,
        target=step.account_id,
        authorise=STAFF,
        validate=DEPOSIT if step.deposit else WITHDRAW,
        once=MONEY,
        reference=movement_reference,
    )
    code = payload.errors[0].code.value if payload.errors else None
    outcome = "ok" if code is None else "refused" if code in REFUSED else "unknown"
    if outcome == "refused" and from_unknown and not await _definitive(info, step):
        outcome = "unknown"
    return {
        "step": step.name,
        "account_id": step.account_id,
        "idempotency_key": step.key,
        "outcome": outcome,
        "error_code": code,
        "external_id": payload.operation.external_id if payload.operation else None,
        "at": datetime.now(UTC).isoformat(),
    }


async def _drive(
    info: Info[Any, Any], record: TransferRecord, settled_by: str | None = None
) -> TransferRecord:
    """Run the saga's next steps until it is final or waits; each step at most once
    per request, so an unknown outcome ends this request rather than looping.
    ``settled_by`` names who resumed it when no client request did (in its audit)."""
    ctx = context_of(info)
    store = ctx.services.store
    viewer = ctx.require_viewer()
    tried: set[str] = set()
    while (state := TransferState(record.state)) in _NEXT_STEP:
        name = _NEXT_STEP[state]
        if name in tried:
            break
        tried.add(name)
        done = await _run_step(
            info,
            _step(name, record.request),
            record.request,
            record.transfer_id,
            from_unknown=state in _UNKNOWN,
        )
        sources, target = _MOVES[(name, done["outcome"])]
        audit = AuditEntry(
            id=None,
            at=datetime.now(UTC),
            actor=viewer.subject,
            role=viewer.role.value,
            operation="transferFunds",
            target=Transfer.from_record(record).id,
            outcome={"ok": "ok", "refused": "error"}.get(done["outcome"], "unknown"),
            error_code=done["error_code"],
            upstream_ref=done["external_id"],
            idempotency_key=record.request["idempotency_key"],
            details={
                "transfer_id": record.transfer_id,
                "step": name,
                "from_state": state.value,
                "state": target.value,
                **({} if settled_by is None else {"settled_by": settled_by}),
            },
        )
        await store.advance_transfer(
            record.transfer_id,
            {source.value for source in sources},
            target.value,
            [*record.steps, done],
            audit,
        )
        # Moved by us or by a concurrent request: go on from what is stored.
        fresh = await store.get_transfer(record.transfer_id)
        assert fresh is not None  # sagas are never deleted
        record = fresh
    return record


async def _transfer_funds(info: Info[Any, Any], input: TransferFundsInput) -> TransferPayload:
    ctx = context_of(info)
    viewer = ctx.require_viewer()
    try:
        viewer.require_role(*STAFF)
        partner, request = await _validate(ctx, input)
        source = decode_account(input.from_account_id, "fromAccountId")
        saga_id = transfer_id(*source, request["idempotency_key"])
        record, created = await ctx.services.store.begin_transfer(
            saga_id, partner, S.STARTED.value, request
        )
        if not _same_request(record.request, request):
            raise IdempotencyConflict(
                "idempotencyKey was used for a different transfer", field=["idempotencyKey"]
            )
        record = await _drive(info, record)
    except BrokerGraphError as error:
        await ctx.services.store.append_audit(
            AuditEntry(
                id=None,
                at=datetime.now(UTC),
                actor=viewer.subject,
                role=viewer.role.value,
                operation="transferFunds",
                target=None,
                outcome="error",
                error_code=error.code,
                upstream_ref=None,
                idempotency_key=input.idempotency_key,
                details=audit_details(input),
            )
        )
        return TransferPayload(errors=[to_user_error(error)])
    ctx.loaders.forget_reads()
    return TransferPayload(transfer=Transfer.from_record(record), replayed=not created)


@dataclasses.dataclass(frozen=True, slots=True)
class _Detached:
    """What the write path reads of a resolver's ``Info`` (its context), for a saga
    the gateway resumes with no GraphQL request."""

    context: RequestContext


def _acting(record: TransferRecord) -> Viewer | None:
    """The viewer who started the saga; None for a saga stored without one."""
    acting = record.request.get("acting")
    if not isinstance(acting, Mapping):
        return None
    return Viewer(
        subject=str(acting["subject"]),
        role=Role(acting["role"]),
        partner_code=acting.get("partner_code"),
        brokers=frozenset(acting.get("brokers") or ()),
    )


async def resume_transfer(
    services: GatewayServices, record: TransferRecord, settled_by: str
) -> TransferRecord:
    """Drive ``record`` on exactly as a same-key retry by its own viewer would."""
    viewer = _acting(record)
    if viewer is None:
        logger.warning(
            "transfer %s has no acting viewer: only a retry resumes it", record.transfer_id
        )
        return record
    ctx = RequestContext(services=services, account_types={}, viewer=viewer)
    try:
        return await _drive(cast("Info[Any, Any]", _Detached(ctx)), record, settled_by)
    except BrokerGraphError as error:  # e.g. the store refused: the saga waits as it is
        logger.warning("resuming transfer %s failed: %s", record.transfer_id, error.code)
        return record


async def _next_step_in_flight(store: Store, record: TransferRecord) -> bool:
    """Whether the saga's next step still holds a STARTED claim (a request in flight, or
    an outcome the claim reconciler has not settled yet): resuming it now would only be
    answered "in flight" — an ``IDEMPOTENCY_CONFLICT`` audit row each round."""
    name = _NEXT_STEP.get(TransferState(record.state))
    return name is not None and await _unsettled(store, _step(name, record.request))


async def resume_transfers(
    services: GatewayServices, *, older_than: datetime, hold: timedelta, settled_by: str
) -> int:
    """Resume every saga waiting in :data:`WAITING` since before ``older_than``, each
    by the one replica whose hold on it (a conditional update) succeeds; how many."""
    resumed = 0
    seen: set[str] = set()
    while True:
        page = await services.store.waiting_transfers(
            {state.value for state in WAITING}, updated_before=older_than, limit=_PAGE
        )
        fresh = [record for record in page if record.transfer_id not in seen]
        for record in fresh:
            seen.add(record.transfer_id)
            if await _next_step_in_flight(services.store, record):
                continue  # its claim is settled first; a later round moves the saga on
            if await services.store.hold_transfer(record, datetime.now(UTC) + hold):
                await resume_transfer(services, record, settled_by)
                resumed += 1
        if len(page) < _PAGE or not fresh:
            return resumed


@strawberry.type
class TransfersMutation:
    @strawberry.mutation(
        description="Move money between two accounts of one partner (same currency) as "
        "a saga: withdraw, deposit, and pay the source back if the deposit is refused.  "
        "A step whose outcome is unknown is never undone: retry the same key."
    )
    async def transfer_funds(
        self, info: Info[Any, Any], input: TransferFundsInput
    ) -> TransferPayload:
        return await _transfer_funds(info, input)
