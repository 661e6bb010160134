"""Provisioning mutations: traders and their accounts on a trading platform.

What a flow creates is linked to the partner even when the flow stops midway, so
nothing is orphaned; the payload lists the steps and a token to resume with.

Platform identities belong to one partner.  Before a createTrader writes anything,
the connector names the identities it would reuse or bind (cTrader's user by
e-mail, a dxFeed account: :class:`~gateway.connectors.VendorIdentity`); one linked
to another partner, or held by a trader of another partner, refuses the request,
and the others are claimed for the request's partner first, so two partners racing
for one identity cannot both go ahead.  A deactivation that would change such an
identity (cancel a shared dxFeed account's subscriptions) is refused the same way.
A resume token is bound to the partner, and the scope (its broker), it was issued
for: only a viewer who could have started the flow may resume it or be told it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

import strawberry
from strawberry.types import Info

from gateway import models
from gateway.config import is_secret_key
from gateway.connectors import (
    Capability,
    CreateTraderRequest,
    DeactivateTraderRequest,
    OpenAccountRequest,
    ProvisioningResult,
    ReactivateTraderRequest,
    TraderProvisioning,
    UpdateAccountRequest,
    VendorIdentity,
)
from gateway.errors import (
    BrokerGraphError,
    Conflict,
    InvalidInput,
    NotFound,
    UpstreamError,
    error_class_for,
    may_have_applied,
)
from gateway.graphql import access
from gateway.graphql.context import RequestContext, context_of
from gateway.graphql.errors import ErrorCode, UserError, to_user_error
from gateway.graphql.loaders import cache_key
from gateway.graphql.mutations._inputs import (
    CreateTraderInput,
    DeactivateTraderInput,
    NewAccountInput,
    OpenAccountInput,
    ReactivateTraderInput,
    UpdateAccountInput,
)
from gateway.graphql.mutations._payloads import (
    AccountPayload,
    ProvisioningPayload,
    ProvisioningStep,
)
from gateway.graphql.mutations._validate import (
    check_amount,
    check_text,
    decode_account,
    decode_trader,
)
from gateway.graphql.mutations._write_path import (
    STAFF,
    AccountWrite,
    Once,
    invalidate_account,
    send,
    write,
)
from gateway.graphql.platform_options import (
    PlatformOptions,
    chosen_options,
    extend_input,
    options_errors,
    specialised_by,
)
from gateway.graphql.types import Trader, account_type
from gateway.idempotency import check_idempotency_key

__all__ = ["ProvisioningMutation", "provisioning_mutation"]


def provisioning_mutation(options: PlatformOptions) -> type:
    """The provisioning root type whose inputs carry ``options``' typed platform fields
    (``createTrader(input: {…, dxtrade: {…}})``; see :mod:`gateway.graphql.platform_options`)."""
    create_input = extend_input(CreateTraderInput, options.trader)
    open_input = extend_input(OpenAccountInput, options.account)
    new_account = extend_input(NewAccountInput, options.account)
    reactivate_input = (
        ReactivateTraderInput
        if new_account is NewAccountInput
        else extend_input(ReactivateTraderInput, {}, new_account=new_account)
    )

    async def create_trader(self: Any, info: Info[Any, Any], input: Any) -> ProvisioningPayload:
        if input.idempotency_key is not None:
            return await write(
                info,
                input,
                "createTrader",
                target=input.partner_code,
                authorise=STAFF,
                validate=_keyed_new_trader,
                once=_creation_once(context_of(info)),
                reference=_trader_reference,
            )
        return await write(
            info,
            input,
            "createTrader",
            target=input.partner_code,
            authorise=STAFF,
            validate=_new_trader,
            dispatch=_create_trader,
            payload=ProvisioningPayload,
            reference=_trader_reference,
        )

    async def open_account(self: Any, info: Info[Any, Any], input: Any) -> AccountPayload:
        if input.idempotency_key is not None:
            return await write(
                info,
                input,
                "openAccount",
                target=input.trader_id,
                authorise=STAFF,
                validate=_keyed_new_account,
                once=_opening_once(context_of(info)),
                reference=_account_reference,
            )
        return await write(
            info,
            input,
            "openAccount",
            target=input.trader_id,
            authorise=STAFF,
            validate=_new_account,
            dispatch=_open_account,
            payload=AccountPayload,
            reference=_account_reference,
        )

    async def update_account(
        self: Any, info: Info[Any, Any], input: UpdateAccountInput
    ) -> AccountPayload:
        return await write(
            info,
            input,
            "updateAccount",
            target=input.account_id,
            authorise=STAFF,
            validate=_account_change,
            dispatch=_update_account,
            payload=AccountPayload,
        )

    async def deactivate_trader(
        self: Any, info: Info[Any, Any], input: DeactivateTraderInput
    ) -> ProvisioningPayload:
        return await write(
            info,
            input,
            "deactivateTrader",
            target=input.trader_id,
            authorise=STAFF,
            validate=_visible_trader,
            dispatch=_deactivate_trader,
            payload=ProvisioningPayload,
        )

    async def reactivate_trader(self: Any, info: Info[Any, Any], input: Any) -> ProvisioningPayload:
        return await write(
            info,
            input,
            "reactivateTrader",
            target=input.trader_id,
            authorise=STAFF,
            validate=_reactivation,
            dispatch=_reactivate_trader,
            payload=ProvisioningPayload,
        )

    # The inputs are this install's, so the resolvers' annotations are set here (the
    # module's ``from __future__ import annotations`` made them strings).
    for resolver, input_type in (
        (create_trader, create_input),
        (open_account, open_input),
        (reactivate_trader, reactivate_input),
    ):
        resolver.__annotations__["input"] = input_type
    namespace = {
        "create_trader": strawberry.mutation(
            resolver=create_trader,
            description="Create a trader (and its accounts) and link them to a partner.",
        ),
        "open_account": strawberry.mutation(resolver=open_account),
        "update_account": strawberry.mutation(
            resolver=update_account,
            description="Change leverage, access rights or group of an account.",
        ),
        "deactivate_trader": strawberry.mutation(resolver=deactivate_trader),
        "reactivate_trader": strawberry.mutation(resolver=reactivate_trader),
    }
    mutation: type = strawberry.type(type("ProvisioningMutation", (), namespace))
    return mutation


#: The provisioning root type without platform options; the schema rebuilds it for an
#: install whose plugins contribute some.
ProvisioningMutation = provisioning_mutation(PlatformOptions())
specialised_by(ProvisioningMutation, provisioning_mutation)


# --------------------------------------------------------------------------- validate


class _NamesTrader(Protocol):
    @property
    def trader_id(self) -> str: ...


NT = TypeVar("NT", bound=_NamesTrader)


@dataclass(frozen=True, slots=True)
class _OfTrader(Generic[NT]):
    """The input and the trader it names, which the viewer may see."""

    input: NT
    platform: str
    trader_id: str
    owner: str | None  # the partner it is linked to; None: unlinked, seen by an admin
    #: The platform options (typed or JSON) and the input field they came in.
    options: dict[str, Any] = field(default_factory=dict)
    options_field: str = "options"


async def _visible_trader(ctx: RequestContext, input: NT) -> _OfTrader[NT]:
    platform, trader_id = decode_trader(input.trader_id)
    owner = await access.require_trader(ctx, platform, trader_id)
    return _OfTrader(input, platform, trader_id, owner)


async def _new_account(ctx: RequestContext, input: OpenAccountInput) -> _OfTrader[OpenAccountInput]:
    platform, _ = decode_trader(input.trader_id)
    options, came_in = chosen_options(input, platform, input.options)
    if input.leverage is not None:
        check_amount(input.leverage, field="leverage")
    trader = await _visible_trader(ctx, input)
    return replace(trader, options=options, options_field=came_in)


async def _reactivation(
    ctx: RequestContext, input: ReactivateTraderInput
) -> _OfTrader[ReactivateTraderInput]:
    platform, _ = decode_trader(input.trader_id)
    new = input.new_account
    options, came_in = (
        ({}, "options")
        if new is None
        else chosen_options(new, platform, new.options, path=("newAccount",))
    )
    trader = await _visible_trader(ctx, input)
    return replace(trader, options=options, options_field=came_in)


@dataclass(frozen=True, slots=True)
class _NewTrader:
    input: CreateTraderInput
    email: str
    broker: str | None  # the partner's broker: the scope a resume token is bound to
    options: dict[str, Any]  # typed or JSON, checked for the platform
    options_field: str  # the input field they came in: "options" or the platform's


async def _new_trader(ctx: RequestContext, input: CreateTraderInput) -> _NewTrader:
    options, came_in = chosen_options(input, input.platform, input.options)
    partner = await access.require_partner(ctx, input.partner_code)
    email = check_text(input.email, "email", max_length=254)
    if "@" not in email:
        raise InvalidInput("email is not an address", field=["email"])
    if input.leverage is not None:
        check_amount(input.leverage, field="leverage")
    new = _NewTrader(input, email, partner.broker, options, came_in)
    if input.resume_token is not None and not await _may_resume(
        ctx, new, check_text(input.resume_token, "resumeToken", max_length=200)
    ):
        # The same answer whether the token is unknown or another partner's.
        raise NotFound("no unfinished createTrader has this resume token", field=["resumeToken"])
    return new


async def _account_change(
    ctx: RequestContext, input: UpdateAccountInput
) -> AccountWrite[UpdateAccountRequest, models.Account]:
    platform, account_id = decode_account(input.account_id)
    if input.leverage is None and input.status is None and input.group is None:
        raise InvalidInput("nothing to change", field=["leverage"])
    if input.leverage is not None:
        check_amount(input.leverage, field="leverage")
    await access.require_linked_account(ctx, platform, account_id)
    provisioning = _provisioning(ctx, platform)
    request = UpdateAccountRequest(
        account_id=account_id, leverage=input.leverage, status=input.status, group=input.group
    )
    return AccountWrite(platform, account_id, request, provisioning.update_account)


# --------------------------------------------------------------------------- dispatch


def _provisioning(ctx: RequestContext, platform: str) -> TraderProvisioning:
    registry = ctx.services.registry
    return registry.require(platform, Capability.TRADER_PROVISIONING, TraderProvisioning)


def _creation_request(new: _NewTrader, idempotency_key: str | None) -> CreateTraderRequest:
    input = new.input
    return CreateTraderRequest(
        partner_code=input.partner_code,
        email=new.email,
        name=input.name,
        password=input.password,
        group=input.group,
        currency=input.currency,
        leverage=input.leverage,
        is_live=input.is_live,
        options=new.options,
        resume_token=input.resume_token,
        idempotency_key=idempotency_key,
    )


async def _create_trader(ctx: RequestContext, new: _NewTrader) -> ProvisioningPayload:
    """A createTrader without a key: as the platform's flow goes (see the connector)."""
    result = await _create(ctx, new, _creation_request(new, None))
    return _provisioning_payload(ctx, result)


async def _create(
    ctx: RequestContext, new: _NewTrader, request: CreateTraderRequest
) -> ProvisioningResult:
    """Identities claimed, the connector's flow run, and what it made linked."""
    input = new.input
    provisioning = _provisioning(ctx, input.platform)
    with options_errors(new.options_field):
        identities = await provisioning.creation_identities(request)
    claimed = await _claim_identities(ctx, input.platform, input.partner_code, identities)
    try:
        with options_errors(new.options_field):
            result = await provisioning.create_trader(request)
    except BrokerGraphError as error:
        if not may_have_applied(error):
            await _release(ctx, input.platform, claimed)
        token = error.details.get("resumeToken") if isinstance(error, Conflict) else None
        if isinstance(token, str) and not await _may_resume(ctx, new, token):
            # The connector found another flow for this request (its e-mail, say)
            # and would hand out its token: only to whoever could have started it.
            raise Conflict(
                "an unfinished createTrader stands in the way of this one", field=["email"]
            ) from None
        raise
    await _created(ctx, new, result)
    return result


async def _created(ctx: RequestContext, new: _NewTrader, result: ProvisioningResult) -> None:
    """The bookkeeping of what a createTrader made (sent now, or read back by its key)."""
    await _link_result(ctx, new.input.partner_code, result)
    if result.trader is not None:  # an existing user's new account: its list changed
        await _invalidate_trader(ctx, result.trader.platform, result.trader.id)
    await _keep_resume_token(ctx, new, result)


# --------------------------------------------------------------------------- idempotency
#
# With an idempotencyKey, createTrader and openAccount take the core write path's
# idempotency (scope ``provisioning:<platform>:<partner or trader>``): a retry of a
# finished one replays its payload (a flow that stopped midway: with its resume token)
# and sends nothing; one in flight, or the key with another request, is
# IDEMPOTENCY_CONFLICT; an attempt whose answer was lost is OUTCOME_UNKNOWN and its
# same-key retry settles it by reading the platform (the connector's
# ``find_created_trader``/``find_opened_account``, from what it recorded under the
# key) — found, it is linked and replayed; provably absent (and older than the lease),
# it is sent again with the same key.


def _kept(raw: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """A platform record as the idempotency record keeps it: without secrets (a
    platform echoing a password or its hash must not leave it in the store)."""
    return None if raw is None else {k: v for k, v in raw.items() if not is_secret_key(k)}


@dataclass(frozen=True, slots=True, kw_only=True)
class _Provisioned:
    """A createTrader's result as its idempotency record keeps it: the models' ``raw``
    (which the record's JSON leaves out) beside them, so a replay answers alike."""

    result: ProvisioningResult
    trader_raw: Mapping[str, Any] | None = None
    account_raws: Sequence[Mapping[str, Any] | None] = ()

    @classmethod
    def of(cls, result: ProvisioningResult) -> _Provisioned:
        return cls(
            result=result,
            trader_raw=None if result.trader is None else _kept(result.trader.raw),
            account_raws=[_kept(a.raw) for a in result.accounts],
        )

    def restored(self) -> ProvisioningResult:
        r = self.result
        trader = None if r.trader is None else replace(r.trader, raw=self.trader_raw)
        raws = list(self.account_raws) + [None] * (len(r.accounts) - len(self.account_raws))
        accounts = [replace(a, raw=raw) for a, raw in zip(r.accounts, raws, strict=False)]
        return replace(r, trader=trader, accounts=accounts)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Opened:
    """An openAccount's account as its idempotency record keeps it (as _Provisioned)."""

    account: models.Account
    account_raw: Mapping[str, Any] | None = None

    @classmethod
    def of(cls, account: models.Account) -> _Opened:
        return cls(account=account, account_raw=_kept(account.raw))

    def restored(self) -> models.Account:
        return replace(self.account, raw=self.account_raw)


def _trader_reference(payload: ProvisioningPayload) -> str | None:
    return payload.trader.external_id if payload.trader else None


def _account_reference(payload: AccountPayload) -> str | None:
    return payload.account.external_id if payload.account else None


def _creation_once(ctx: RequestContext) -> Once[_Provisioned, ProvisioningPayload]:
    def present(
        found: _Provisioned | None, errors: list[UserError], replayed: bool
    ) -> ProvisioningPayload:
        if found is None:
            return ProvisioningPayload(errors=errors, replayed=replayed)
        return replace(_provisioning_payload(ctx, found.restored()), replayed=replayed)

    return Once(scope="provisioning", model=_Provisioned, present=present)


def _opening_once(ctx: RequestContext) -> Once[_Opened, AccountPayload]:
    def present(found: _Opened | None, errors: list[UserError], replayed: bool) -> AccountPayload:
        if found is None:
            return AccountPayload(errors=errors, replayed=replayed)
        return AccountPayload(account=account_type(ctx, found.restored()), replayed=replayed)

    return Once(scope="provisioning", model=_Opened, present=present)


def _reads_back(ctx: RequestContext, platform: str, method: str) -> bool:
    """Whether the platform's connector can read a keyed provisioning write back."""
    connector = ctx.services.registry.require_any(platform)
    return getattr(type(connector), method, None) is not getattr(TraderProvisioning, method)


async def _keyed_new_trader(
    ctx: RequestContext, input: CreateTraderInput
) -> AccountWrite[Any, _Provisioned]:  # a CreateTraderRequest, its key set
    key = check_idempotency_key(input.idempotency_key or "")
    new = await _new_trader(ctx, input)
    provisioning = _provisioning(ctx, input.platform)
    request = _creation_request(new, key)

    async def create(request: CreateTraderRequest) -> _Provisioned:
        return _Provisioned.of(await _create(ctx, new, request))

    settle: Callable[[datetime], Awaitable[_Provisioned | None]] | None = None
    if _reads_back(ctx, input.platform, "find_created_trader"):

        async def read_back(claimed_at: datetime) -> _Provisioned | None:
            found = await provisioning.find_created_trader(request)
            if found is None:
                return None
            await _created(ctx, new, found)
            return _Provisioned.of(found)

        settle = read_back
    # A resume is its own write: the same key with the token continues the flow its
    # first attempt stopped, once, instead of replaying that stop.
    scope = input.partner_code + (f":{input.resume_token}" if input.resume_token else "")
    return AccountWrite(input.platform, scope, request, create, settle)


async def _keyed_new_account(
    ctx: RequestContext, input: OpenAccountInput
) -> AccountWrite[Any, _Opened]:  # an OpenAccountRequest, its key set
    key = check_idempotency_key(input.idempotency_key or "")
    trader = await _new_account(ctx, input)
    provisioning = _provisioning(ctx, trader.platform)
    request = replace(_opening_request(trader), idempotency_key=key)

    async def open_(request: OpenAccountRequest) -> _Opened:
        with options_errors(trader.options_field):
            account = await provisioning.open_account(request)
        await _opened(ctx, trader, account)
        return _Opened.of(account)

    settle: Callable[[datetime], Awaitable[_Opened | None]] | None = None
    if _reads_back(ctx, trader.platform, "find_opened_account"):

        async def read_back(claimed_at: datetime) -> _Opened | None:
            found = await provisioning.find_opened_account(request)
            if found is None:
                return None
            await _opened(ctx, trader, found)
            return _Opened.of(found)

        settle = read_back
    return AccountWrite(trader.platform, trader.trader_id, request, open_, settle)


# --------------------------------------------------------------------------- identities


def _identity_key(identity: VendorIdentity) -> str:
    """The identity's ``external_id`` among the store's links of kind ``identity``."""
    return f"{identity.kind}:{identity.id}"


def _foreign(platform: str, identity: VendorIdentity) -> Conflict:
    # Says neither who owns the identity nor what it is linked to: the viewer may not
    # know the other partner exists.
    return Conflict(
        f"this {platform} {identity.kind} is in use outside this business partner "
        "and cannot be used for it",
        field=list(identity.field) or None,
    )


async def _check_identities(
    ctx: RequestContext, platform: str, owner: str | None, identities: Sequence[VendorIdentity]
) -> None:
    """Conflict when an identity, or a trader holding it, is linked to a partner other
    than ``owner`` (``None``: an unlinked trader, so any linked one is another's)."""
    store = ctx.services.store
    for identity in identities:
        owners = await store.owners(platform, "identity", [_identity_key(identity)])
        owners += await store.owners(platform, "trader", list(identity.holders))
        if any(found is not None and found != owner for found in owners):
            raise _foreign(platform, identity)


async def _claim_identities(
    ctx: RequestContext, platform: str, partner_code: str, identities: Sequence[VendorIdentity]
) -> list[str]:
    """Check, then link every identity to the partner before the flow writes anything;
    the keys this call linked (a failed flow that created nothing releases them)."""
    await _check_identities(ctx, platform, partner_code, identities)
    store = ctx.services.store
    claimed: list[str] = []
    for identity in identities:
        key = _identity_key(identity)
        try:
            if await store.claim(partner_code, platform, "identity", key):
                claimed.append(key)
        except Conflict:  # another partner claimed it since the check
            await _release(ctx, platform, claimed)
            raise _foreign(platform, identity) from None
    return claimed


async def _release(ctx: RequestContext, platform: str, claimed: Sequence[str]) -> None:
    for key in claimed:
        await ctx.services.store.unlink(platform, "identity", key)


# --------------------------------------------------------------------------- resume tokens

_RESUME_KIND = "gateway-resume-token"


def _resume_key(platform: str, token: str) -> str:
    return f"gateway:resume:{platform}:{token}"


async def _may_resume(ctx: RequestContext, new: _NewTrader, token: str) -> bool:
    """Whether ``token`` was issued to this partner, in a scope the viewer may act in."""
    bound = await ctx.services.store.get_flow(_resume_key(new.input.platform, token))
    if bound is None or bound.get("partnerCode") != new.input.partner_code:
        return False
    if bound.get("done") and new.input.idempotency_key is None:
        return False  # kept only so a keyed resume's retry replays (see below)
    broker = bound.get("broker")
    return ctx.require_viewer().can_see_partner(
        new.input.partner_code, broker if isinstance(broker, str) else None
    )


async def _keep_resume_token(
    ctx: RequestContext, new: _NewTrader, result: ProvisioningResult
) -> None:
    """Bind a new resume token to the partner and scope; forget a used one when done."""
    store = ctx.services.store
    platform = new.input.platform
    if result.resume_token is not None:
        await store.save_flow(
            _resume_key(platform, result.resume_token),
            _RESUME_KIND,
            {"partnerCode": new.input.partner_code, "broker": new.broker},
        )
    used = new.input.resume_token
    if used is not None and used != result.resume_token:
        if new.input.idempotency_key is None:
            await store.delete_flow(_resume_key(platform, used))
        else:  # a retry of this keyed resume is answered by its replay: still bound
            await store.save_flow(
                _resume_key(platform, used),
                _RESUME_KIND,
                {"partnerCode": new.input.partner_code, "broker": new.broker, "done": True},
            )


def _opening_request(trader: _OfTrader[OpenAccountInput]) -> OpenAccountRequest:
    input = trader.input
    return OpenAccountRequest(
        trader_id=trader.trader_id,
        currency=check_text(input.currency, "currency", max_length=12).upper(),
        group=input.group,
        leverage=input.leverage,
        is_live=input.is_live,
        options=trader.options,
    )


async def _open_account(ctx: RequestContext, trader: _OfTrader[OpenAccountInput]) -> AccountPayload:
    request = _opening_request(trader)
    with options_errors(trader.options_field):
        account = await _provisioning(ctx, trader.platform).open_account(request)
    await _opened(ctx, trader, account)
    return AccountPayload(account=account_type(ctx, account))


async def _opened(
    ctx: RequestContext, trader: _OfTrader[OpenAccountInput], account: models.Account
) -> None:
    await _invalidate_trader(ctx, trader.platform, trader.trader_id)
    if trader.owner is not None:
        await ctx.services.store.link(
            trader.owner, trader.platform, "account", account.id, trader_id=trader.trader_id
        )


async def _update_account(
    ctx: RequestContext, change: AccountWrite[UpdateAccountRequest, models.Account]
) -> AccountPayload:
    return AccountPayload(account=account_type(ctx, await send(ctx, change)))


async def _deactivate_trader(
    ctx: RequestContext, trader: _OfTrader[DeactivateTraderInput]
) -> ProvisioningPayload:
    provisioning = _provisioning(ctx, trader.platform)
    request = DeactivateTraderRequest(
        trader_id=trader.trader_id,
        cancel_market_data_subscriptions=trader.input.cancel_market_data_subscriptions,
    )
    # Cancelling a dxFeed account's subscriptions locks out every trader using it.
    identities = await provisioning.deactivation_identities(request)
    await _check_identities(ctx, trader.platform, trader.owner, identities)
    result = await provisioning.deactivate_trader(request)
    await _invalidate_trader(ctx, trader.platform, trader.trader_id)
    for account in result.accounts:
        await invalidate_account(ctx, trader.platform, account.id)
    return _provisioning_payload(ctx, result)


async def _reactivate_trader(
    ctx: RequestContext, trader: _OfTrader[ReactivateTraderInput]
) -> ProvisioningPayload:
    provisioning = _provisioning(ctx, trader.platform)
    new = trader.input.new_account
    request = ReactivateTraderRequest(
        trader_id=trader.trader_id,
        new_account=None
        if new is None
        else OpenAccountRequest(
            trader_id=trader.trader_id,
            currency=check_text(new.currency, "currency", max_length=12).upper(),
            group=new.group,
            leverage=new.leverage,
            is_live=new.is_live,
            options=trader.options,
        ),
    )
    with options_errors(trader.options_field, path=("newAccount",)):
        result = await provisioning.reactivate_trader(request)
    await _invalidate_trader(ctx, trader.platform, trader.trader_id)
    if trader.owner is not None:
        await _link_result(ctx, trader.owner, result)
    return _provisioning_payload(ctx, result)


async def _invalidate_trader(ctx: RequestContext, platform: str, trader_id: str) -> None:
    await ctx.services.cache.delete(
        cache_key("trader", platform, trader_id),
        cache_key("trader-accounts", platform, trader_id),
        cache_key("md-subscriptions", platform, trader_id),
    )


async def _link_result(ctx: RequestContext, partner_code: str, result: ProvisioningResult) -> None:
    """Record what a flow created, even when it stopped midway, so nothing is orphaned."""
    store = ctx.services.store
    try:
        if result.trader is not None:
            await store.link(partner_code, result.trader.platform, "trader", result.trader.id)
        for account in result.accounts:
            await store.link(
                partner_code, account.platform, "account", account.id, trader_id=account.trader_id
            )
    except Conflict:
        # The store's message names the other partner's object; the identity checks
        # should have stopped the flow before it got here.
        raise Conflict(
            "the flow reached a trader or account of another business partner; "
            "nothing more was linked"
        ) from None


def _step_code(code: str | None) -> ErrorCode | None:
    """A step's code as the schema's enum (a code the core does not know: none)."""
    return ErrorCode[code] if code is not None and code in ErrorCode.__members__ else None


def _provisioning_payload(ctx: RequestContext, result: ProvisioningResult) -> ProvisioningPayload:
    errors: list[UserError] = []
    if not result.complete:
        failed = next((s for s in result.steps if not s.succeeded), None)
        where = f"at step {failed.name!r}" if failed else "midway"
        detail = f": {failed.message}" if failed and failed.message else ""
        then = "; send resumeToken to continue" if result.resume_token else ""
        # The step's own code (RATE_LIMITED…), so a client need not parse the message.
        error_class = error_class_for(failed.code) if failed and failed.code else UpstreamError
        errors.append(
            to_user_error(
                error_class(f"the flow stopped {where}{detail}; what was created is linked{then}")
            )
        )
    return ProvisioningPayload(
        errors=errors,
        trader=Trader.from_model(result.trader) if result.trader else None,
        accounts=[account_type(ctx, a) for a in result.accounts],
        steps=[
            ProvisioningStep(
                name=s.name,
                succeeded=s.succeeded,
                reference=s.reference,
                message=s.message,
                code=_step_code(s.code),
            )
            for s in result.steps
        ],
        resume_token=result.resume_token,
    )
