"""Money mutations: deposit, withdraw, credit and bonus changes on an account.

Staff only, each under the client's idempotency key (scope ``money:<platform>:<account>``):
a retry returns the first result and moves nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import strawberry
from strawberry.types import Info

from gateway import models
from gateway.connectors import Capability, MoneyMovement, family_of
from gateway.graphql import access
from gateway.graphql.context import RequestContext
from gateway.graphql.errors import UserError
from gateway.graphql.mutations._inputs import MoneyMovementInput
from gateway.graphql.mutations._payloads import MoneyMovementPayload
from gateway.graphql.mutations._validate import check_amount, check_text, decode_account
from gateway.graphql.mutations._write_path import STAFF, AccountWrite, Once, write
from gateway.graphql.types import BalanceOperation
from gateway.idempotency import check_idempotency_key

__all__ = ["MoneyMutation"]

Movement = AccountWrite[MoneyMovement, models.BalanceOperation]


def _payload(
    operation: models.BalanceOperation | None, errors: list[UserError], replayed: bool
) -> MoneyMovementPayload:
    return MoneyMovementPayload(
        operation=BalanceOperation.from_model(operation) if operation else None,
        replayed=replayed,
        errors=errors,
    )


def movement_reference(payload: MoneyMovementPayload) -> str | None:
    """The audit row's upstream reference: the platform's id where it has its own (the
    key is in the row already), else the movement's id."""
    operation = payload.operation
    return None if operation is None else operation.platform_id or operation.external_id


MONEY = Once(scope="money", model=models.BalanceOperation, present=_payload, find="find_movement")


def _movement(
    capability: Capability, method: str, *, signed: bool = False
) -> Callable[[RequestContext, MoneyMovementInput], Awaitable[Movement]]:
    """A validator of a movement sent to ``method`` of the ``capability``'s connector."""

    async def validate(ctx: RequestContext, input: MoneyMovementInput) -> Movement:
        platform, account_id = decode_account(input.account_id)
        movement = MoneyMovement(
            account_id=account_id,
            amount=check_amount(input.amount, signed=signed),
            idempotency_key=check_idempotency_key(input.idempotency_key),
            comment=check_text(input.comment, "comment") if input.comment else None,
        )
        await access.require_linked_account(ctx, platform, account_id)
        registry = ctx.services.registry
        connector: object = registry.require(platform, capability, family_of(capability))
        # The family is only known at run time, so the method is looked up by name.
        return AccountWrite(platform, account_id, movement, getattr(connector, method))

    return validate


DEPOSIT = _movement(Capability.FUNDING, "deposit")
WITHDRAW = _movement(Capability.FUNDING, "withdraw")
_CREDIT = _movement(Capability.CREDIT, "change_credit", signed=True)
_BONUS = _movement(Capability.BONUS, "change_bonus", signed=True)


@strawberry.type
class MoneyMutation:
    @strawberry.mutation(description="Credit an account's balance.")
    async def deposit(
        self, info: Info[Any, Any], input: MoneyMovementInput
    ) -> MoneyMovementPayload:
        return await write(
            info,
            input,
            "deposit",
            target=input.account_id,
            authorise=STAFF,
            validate=DEPOSIT,
            once=MONEY,
            reference=movement_reference,
        )

    @strawberry.mutation(
        description="Debit an account; succeeds only once the platform confirmed it."
    )
    async def withdraw(
        self, info: Info[Any, Any], input: MoneyMovementInput
    ) -> MoneyMovementPayload:
        return await write(
            info,
            input,
            "withdraw",
            target=input.account_id,
            authorise=STAFF,
            validate=WITHDRAW,
            once=MONEY,
            reference=movement_reference,
        )

    @strawberry.mutation(description="Add (>0) or remove (<0) non-withdrawable credit.")
    async def change_credit(
        self, info: Info[Any, Any], input: MoneyMovementInput
    ) -> MoneyMovementPayload:
        return await write(
            info,
            input,
            "changeCredit",
            target=input.account_id,
            authorise=STAFF,
            validate=_CREDIT,
            once=MONEY,
            reference=movement_reference,
        )

    @strawberry.mutation(description="Add (>0) or remove (<0) bonus.")
    async def change_bonus(
        self, info: Info[Any, Any], input: MoneyMovementInput
    ) -> MoneyMovementPayload:
        return await write(
            info,
            input,
            "changeBonus",
            target=input.account_id,
            authorise=STAFF,
            validate=_BONUS,
            once=MONEY,
            reference=movement_reference,
        )
