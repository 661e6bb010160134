"""What the cTrader plugin adds to the schema: ``CTraderAccount`` (implements ``Account``).

Every field of the ``Account`` interface comes from the core (``AccountType.lazily``);
this type adds what only cTrader has.  Those fields are read from the trader object
the connector kept in ``Account.raw``, when a query first asks for them; where no
payload is at hand (an idempotent replay rebuilds models without ``raw``) they are
null rather than guessed.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, Self, TypeVar

import strawberry
from strawberry.types import Info

from brokergraph_ctrader.connector import CTraderConnector
from brokergraph_ctrader.connector._provisioning import check_attribute_names, check_attributes
from brokergraph_ctrader.wire import epoch_ms
from gateway.contract import Account, Capability, InvalidInput, NotFound
from gateway.contract.schema import (
    STAFF,
    AccountType,
    AccountWrite,
    RequestContext,
    UserError,
    cache_key,
    context_of,
    decode_account,
    encode_id,
    require_linked_account,
    send,
    write,
)

__all__ = [
    "CTraderAccessRights",
    "CTraderAccount",
    "CTraderAccountKind",
    "CTraderAccountPayload",
    "CTraderAttribute",
    "CTraderAttributeInput",
    "CTraderCopySubAccount",
    "CTraderMutation",
    "CTraderPasswordCheckPayload",
    "ChangeCTraderAccountPasswordInput",
    "CheckCTraderAccountPasswordInput",
    "MoveCTraderAccountToWhiteLabelInput",
    "RemoveCTraderAccountAttributesInput",
    "ResetCTraderAccountPasswordInput",
    "SetCTraderAccountAttributesInput",
]


@strawberry.enum(description="cTrader's accessRights of a trading account.")
class CTraderAccessRights(enum.Enum):
    FULL_ACCESS = "FULL_ACCESS"
    CLOSE_ONLY = "CLOSE_ONLY"
    NO_TRADING = "NO_TRADING"
    NO_LOGIN = "NO_LOGIN"


@strawberry.enum(description="cTrader's accountType: position accounting of the account.")
class CTraderAccountKind(enum.Enum):
    HEDGED = "HEDGED"
    NETTED = "NETTED"
    SPREAD_BETTING = "SPREAD_BETTING"


@strawberry.type(description="A cTrader Copy sub-account of an account, with its money.")
class CTraderCopySubAccount:
    account_id: strawberry.ID = strawberry.field(description="Global id of the sub-account.")
    login: str
    currency: str
    balance: Decimal = strawberry.field(description="In currency units.")
    equity: Decimal | None = strawberry.field(description="In currency units.")


@strawberry.type(description="A cTrader trader attribute: key/value metadata (4.14).")
class CTraderAttribute:
    name: str
    value: str


#: The kind of the attributes read on the road of reads (and its cache key).
ATTRIBUTES = "ctrader-attributes"


def _enum(cls: type[enum.Enum], value: Any) -> Any:
    try:
        return cls(value)
    except ValueError:
        return None


def _introducers(raw: Mapping[str, Any]) -> list[str]:
    contact = raw.get("contactDetails")
    if not isinstance(contact, Mapping):
        return []
    keys = ("introducingBroker1", "introducingBroker2")
    return [v for v in (contact.get(k) for k in keys) if isinstance(v, str) and v]


V = TypeVar("V")


def _raw(m: Account) -> Mapping[str, Any]:
    return m.raw or {}


def _typed(value: Any, kind: type[V]) -> V | None:
    return value if isinstance(value, kind) else None


def _timestamps(m: Account) -> tuple[datetime | None, datetime | None]:
    """registrationTimestamp and lastConnectionTimestamp (both None when either is unreadable)."""
    raw = _raw(m)
    try:
        return (
            epoch_ms(raw.get("registrationTimestamp")),
            epoch_ms(raw.get("lastConnectionTimestamp")),
        )
    except Exception:  # a payload we cannot read leaves the extras empty
        return None, None


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@strawberry.federation.type(keys=["id"], description="A cTrader trading account (a 'trader').")
class CTraderAccount(AccountType):
    login: str = strawberry.field(description="The trader login (same as number).")
    money_digits: int | None = strawberry.field(
        description="Decimals of the deposit currency on cTrader (2 for fiat, 8 for BTC); "
        "amounts with more decimals are refused."
    )
    access_rights: CTraderAccessRights | None = strawberry.field(
        description="cTrader's accessRights (status says the same in gateway terms)."
    )
    account_type: CTraderAccountKind | None = strawberry.field(
        description="HEDGED, NETTED or SPREAD_BETTING."
    )
    broker_name: str | None = strawberry.field(description="The White Label (brokerName).")
    swap_free: bool | None = strawberry.field(description="Swap-free (Islamic) account.")
    registered_at: datetime | None = strawberry.field(description="registrationTimestamp.")
    last_connected_at: datetime | None = strawberry.field(
        description="lastConnectionTimestamp, when cTrader reports it."
    )
    introducing_brokers: list[str] | None = strawberry.field(
        description="The partner (IB) ids the trader is attributed to (contactDetails."
        "introducingBroker1 and 2; set with createTrader/openAccount's ctrader fields of "
        "those names)."
    )

    #: Read from the trader object only when a query asks for them (a warm
    #: ``account { balance }`` reads none).
    lazy_fields: ClassVar[Mapping[str, Callable[[Account], Any]]] = {
        "money_digits": lambda m: _int(_raw(m).get("moneyDigits")),
        "access_rights": lambda m: _enum(CTraderAccessRights, _raw(m).get("accessRights")),
        "account_type": lambda m: _enum(CTraderAccountKind, _raw(m).get("accountType")),
        "broker_name": lambda m: _typed(_raw(m).get("brokerName"), str),
        "swap_free": lambda m: _typed(_raw(m).get("swapFree"), bool),
        "registered_at": lambda m: _timestamps(m)[0] or m.created_at,
        "last_connected_at": lambda m: _timestamps(m)[1],
        "introducing_brokers": lambda m: None if m.raw is None else _introducers(m.raw),
    }

    @classmethod
    def from_model(cls, m: Account) -> Self:
        return cls.lazily(m, login=m.number)

    @strawberry.field(description="cTrader Copy sub-accounts of this account (4.4).")  # type: ignore[untyped-decorator]
    async def copy_sub_accounts(self, info: Info[Any, Any]) -> list[CTraderCopySubAccount] | None:
        # The one road of reads: deduplicated per operation, cached for the connector's
        # ACCOUNT_READS TTL, and guarded (get_copy_sub_accounts is marked ``read``).
        subs = await context_of(info).loaders.read(
            self.platform,
            Capability.ACCOUNT_READS,
            CTraderConnector,
            "ctrader-copy-sub-accounts",
            self.external_id,
            lambda connector: connector.get_copy_sub_accounts(self.external_id),
        )
        return [
            CTraderCopySubAccount(
                account_id=strawberry.ID(encode_id("Account", self.platform, sub.account_id)),
                login=sub.account_id,
                currency=sub.balance.currency,
                balance=sub.balance.amount,
                equity=None if sub.equity is None else sub.equity.amount,
            )
            for sub in subs
        ]

    @strawberry.field(  # type: ignore[untyped-decorator]
        description="The trader's attributes (cTrader 4.14), by name; set and remove them "
        "with setCTraderAccountAttributes / removeCTraderAccountAttributes."
    )
    async def attributes(self, info: Info[Any, Any]) -> list[CTraderAttribute]:
        found = await context_of(info).loaders.read(
            self.platform,
            Capability.ACCOUNT_READS,
            CTraderConnector,
            ATTRIBUTES,
            self.external_id,
            lambda connector: connector.get_trader_attributes(self.external_id),
        )
        return [CTraderAttribute(name=n, value=v) for n, v in sorted(found.items())]


# --------------------------------------------------------------------------- mutations


@strawberry.type(description="The cTrader account a cTrader-only mutation changed.")
class CTraderAccountPayload:
    account: CTraderAccount | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input(description="Move a trader to another White Label of the same plant (5.3).")
class MoveCTraderAccountToWhiteLabelInput:
    account_id: strawberry.ID = strawberry.field(description="Global id of the cTrader account.")
    broker_name: str = strawberry.field(
        description="The White Label's brokerName on cTrader (as cBroker names it)."
    )


@strawberry.input(description="Set a trader's password (cTrader 4.8).")
class ChangeCTraderAccountPasswordInput:
    account_id: strawberry.ID = strawberry.field(description="Global id of the cTrader account.")
    password: str = strawberry.field(
        description="The new trader password: 8-128 printable characters without surrounding "
        "spaces. Only its MD5 reaches cTrader; it is never logged, audited or answered."
    )


@strawberry.input(description="Revoke a trader's password (cTrader 4.8 with a random one).")
class ResetCTraderAccountPasswordInput:
    account_id: strawberry.ID = strawberry.field(description="Global id of the cTrader account.")


@strawberry.input(description="Check a trader's password (cTrader 4.9).")
class CheckCTraderAccountPasswordInput:
    account_id: strawberry.ID = strawberry.field(description="Global id of the cTrader account.")
    password: str = strawberry.field(description="Never logged, audited or answered.")


@strawberry.type(description="Whether a password is the trader's.")
class CTraderPasswordCheckPayload:
    matches: bool | None = strawberry.field(
        default=None, description="Null when the check could not be made (see errors)."
    )
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input(description="One attribute to add or replace.")
class CTraderAttributeInput:
    name: str = strawberry.field(description="1-64 characters.")
    value: str = strawberry.field(description="1-512 characters.")


@strawberry.input(description="Add or replace attributes of a trader (cTrader 4.17).")
class SetCTraderAccountAttributesInput:
    account_id: strawberry.ID = strawberry.field(description="Global id of the cTrader account.")
    attributes: list[CTraderAttributeInput] = strawberry.field(
        description="1-100 attributes, each name once; the trader's others stay."
    )


@strawberry.input(description="Remove attributes of a trader by name (cTrader 4.20).")
class RemoveCTraderAccountAttributesInput:
    account_id: strawberry.ID = strawberry.field(description="Global id of the cTrader account.")
    names: list[str] = strawberry.field(
        description="1-100 names; a name the trader does not have is no error."
    )


@dataclasses.dataclass(frozen=True, slots=True)
class _Move:
    account_id: str
    broker_name: str


def _ctrader_account(info_ctx: RequestContext, global_id: str) -> tuple[str, CTraderConnector]:
    """The login behind ``global_id`` and the cTrader connector behind its guards.

    Only a cTrader account's id is accepted: the move is cTrader's own call.
    """
    platform, account_id = decode_account(global_id)
    if platform != CTraderConnector.platform:
        raise NotFound("not a cTrader account", field=["accountId"])
    connector = info_ctx.services.registry.require(
        platform, Capability.TRADER_PROVISIONING, CTraderConnector
    )
    return account_id, connector


async def _linked(ctx: RequestContext, global_id: str) -> tuple[str, CTraderConnector]:
    """A cTrader account linked to a partner the viewer may see, and its connector."""
    account_id, connector = _ctrader_account(ctx, global_id)
    await require_linked_account(ctx, CTraderConnector.platform, account_id)
    return account_id, connector


async def _move_request(
    ctx: RequestContext, input: MoveCTraderAccountToWhiteLabelInput
) -> AccountWrite[_Move, None]:
    broker = input.broker_name
    # Checked here as well as in the connector so a bad name costs no store read either.
    if not broker.strip() or broker != broker.strip() or len(broker) > 100:
        raise InvalidInput(
            "brokerName must be a White Label's name, without surrounding spaces",
            field=["brokerName"],
        )
    account_id, connector = await _linked(ctx, input.account_id)

    async def move(request: _Move) -> None:
        await connector.move_to_white_label(request.account_id, request.broker_name)

    return AccountWrite(CTraderConnector.platform, account_id, _Move(account_id, broker), move)


async def _change_password_request(
    ctx: RequestContext, input: ChangeCTraderAccountPasswordInput
) -> AccountWrite[str, None]:
    account_id, connector = await _linked(ctx, input.account_id)
    password = input.password

    async def change(login: str) -> None:
        await connector.change_trader_password(login, password)

    return AccountWrite(CTraderConnector.platform, account_id, account_id, change)


async def _reset_password_request(
    ctx: RequestContext, input: ResetCTraderAccountPasswordInput
) -> AccountWrite[str, None]:
    account_id, connector = await _linked(ctx, input.account_id)
    return AccountWrite(
        CTraderConnector.platform, account_id, account_id, connector.reset_trader_password
    )


async def _set_attributes_request(
    ctx: RequestContext, input: SetCTraderAccountAttributesInput
) -> AccountWrite[dict[str, str], None]:
    names = [a.name for a in input.attributes]
    if len(set(names)) != len(names):
        raise InvalidInput("each attribute name once", field=["attributes"])
    attributes = check_attributes({a.name: a.value for a in input.attributes})
    account_id, connector = await _linked(ctx, input.account_id)

    async def upsert(pairs: dict[str, str]) -> None:
        await connector.set_trader_attributes(account_id, pairs)

    return AccountWrite(CTraderConnector.platform, account_id, attributes, upsert)


async def _remove_attributes_request(
    ctx: RequestContext, input: RemoveCTraderAccountAttributesInput
) -> AccountWrite[list[str], None]:
    names = check_attribute_names(input.names)
    account_id, connector = await _linked(ctx, input.account_id)

    async def remove(listed: list[str]) -> None:
        await connector.remove_trader_attributes(account_id, listed)

    return AccountWrite(CTraderConnector.platform, account_id, names, remove)


async def _attributes_changed(
    ctx: RequestContext, change: AccountWrite[Any, None]
) -> CTraderAccountPayload:
    """An attribute write, then the account; its cached attributes go first (the core
    forgets the account's own reads, not a plugin's), also when the write may have
    been applied though it failed."""
    key = cache_key(ATTRIBUTES, CTraderConnector.platform, change.account_id)
    try:
        return await _changed(ctx, change)
    finally:
        await ctx.services.cache.delete(key)


async def _check_password_request(
    ctx: RequestContext, input: CheckCTraderAccountPasswordInput
) -> tuple[str, CTraderConnector, str]:
    account_id, connector = await _linked(ctx, input.account_id)
    return account_id, connector, input.password


async def _check_password(
    ctx: RequestContext, check: tuple[str, CTraderConnector, str]
) -> CTraderPasswordCheckPayload:
    account_id, connector, password = check
    return CTraderPasswordCheckPayload(
        matches=await connector.check_trader_password(account_id, password)
    )


async def _reread(ctx: RequestContext, account_id: str) -> CTraderAccount | None:
    """The account as cTrader has it now (the write dropped its cached reads)."""
    connector = ctx.services.registry.require(
        CTraderConnector.platform, Capability.ACCOUNT_READS, CTraderConnector
    )
    (account,) = await connector.get_accounts([account_id])
    return None if account is None else CTraderAccount.from_model(account)


async def _changed(ctx: RequestContext, change: AccountWrite[Any, None]) -> CTraderAccountPayload:
    """Send an account write, then answer the account as cTrader has it now."""
    await send(ctx, change)
    return CTraderAccountPayload(account=await _reread(ctx, change.account_id))


@strawberry.type
class CTraderMutation:
    """cTrader-only mutations, merged into ``Mutation`` by the plugin's hook."""

    @strawberry.mutation(  # type: ignore[untyped-decorator]
        name="moveCTraderAccountToWhiteLabel",
        description="Move a cTrader trader to another White Label (brokerName) of the same "
        "plant (cTrader 5.3). Staff only; audited. The account's partner link is kept: "
        "relink it if the new White Label belongs to another partner. cTrader documents "
        "no separate move between jurisdictions: a jurisdiction served by its own White "
        "Label is reached with this move.",
    )
    async def move_ctrader_account_to_white_label(
        self, info: Info[Any, Any], input: MoveCTraderAccountToWhiteLabelInput
    ) -> CTraderAccountPayload:
        return await write(
            info,
            input,
            "moveCTraderAccountToWhiteLabel",
            target=input.account_id,
            authorise=STAFF,
            validate=_move_request,
            dispatch=_changed,
            payload=CTraderAccountPayload,
            reference=lambda p: p.account.broker_name if p.account else None,
        )

    @strawberry.mutation(  # type: ignore[untyped-decorator]
        name="changeCTraderAccountPassword",
        description="Set a trader's password (cTrader 4.8). Staff only; audited without the "
        "password.",
    )
    async def change_ctrader_account_password(
        self, info: Info[Any, Any], input: ChangeCTraderAccountPasswordInput
    ) -> CTraderAccountPayload:
        return await write(
            info,
            input,
            "changeCTraderAccountPassword",
            target=input.account_id,
            authorise=STAFF,
            validate=_change_password_request,
            dispatch=_changed,
            payload=CTraderAccountPayload,
        )

    @strawberry.mutation(  # type: ignore[untyped-decorator]
        name="resetCTraderAccountPassword",
        description="Replace a trader's password by a random one nobody learns, so a leaked "
        "one stops working (users sign in with their cTID; set a new one with "
        "changeCTraderAccountPassword). Staff only; audited.",
    )
    async def reset_ctrader_account_password(
        self, info: Info[Any, Any], input: ResetCTraderAccountPasswordInput
    ) -> CTraderAccountPayload:
        return await write(
            info,
            input,
            "resetCTraderAccountPassword",
            target=input.account_id,
            authorise=STAFF,
            validate=_reset_password_request,
            dispatch=_changed,
            payload=CTraderAccountPayload,
        )

    @strawberry.mutation(  # type: ignore[untyped-decorator]
        name="checkCTraderAccountPassword",
        description="Whether a password is the trader's (cTrader 4.9; its path is inferred "
        "and configurable). A mutation so that every attempt is audited; staff only.",
    )
    async def check_ctrader_account_password(
        self, info: Info[Any, Any], input: CheckCTraderAccountPasswordInput
    ) -> CTraderPasswordCheckPayload:
        return await write(
            info,
            input,
            "checkCTraderAccountPassword",
            target=input.account_id,
            authorise=STAFF,
            validate=_check_password_request,
            dispatch=_check_password,
            payload=CTraderPasswordCheckPayload,
            # Failed attempts stand out in the audit log without the password.
            reference=lambda p: None if p.matches is None else "match" if p.matches else "mismatch",
        )

    @strawberry.mutation(  # type: ignore[untyped-decorator]
        name="setCTraderAccountAttributes",
        description="Add or replace attributes of a trader (cTrader 4.17). Staff only; audited.",
    )
    async def set_ctrader_account_attributes(
        self, info: Info[Any, Any], input: SetCTraderAccountAttributesInput
    ) -> CTraderAccountPayload:
        return await write(
            info,
            input,
            "setCTraderAccountAttributes",
            target=input.account_id,
            authorise=STAFF,
            validate=_set_attributes_request,
            dispatch=_attributes_changed,
            payload=CTraderAccountPayload,
        )

    @strawberry.mutation(  # type: ignore[untyped-decorator]
        name="removeCTraderAccountAttributes",
        description="Remove attributes of a trader by name (cTrader 4.20). Staff only; audited.",
    )
    async def remove_ctrader_account_attributes(
        self, info: Info[Any, Any], input: RemoveCTraderAccountAttributesInput
    ) -> CTraderAccountPayload:
        return await write(
            info,
            input,
            "removeCTraderAccountAttributes",
            target=input.account_id,
            authorise=STAFF,
            validate=_remove_attributes_request,
            dispatch=_attributes_changed,
            payload=CTraderAccountPayload,
        )
