"""What the toy plugin adds to the schema: its Account type, a status field, a ping
mutation and a tick subscription.  Small on purpose: they exist so the core's
tests can check that plugin contributions reach the schema and answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any, Self

import strawberry
from strawberry.types import Info

from gateway import models
from gateway.errors import InvalidInput
from gateway.graphql.context import context_of
from gateway.graphql.types import Account, account_fields
from tests.toy.connector import ToyConnector

MAX_TICKS = 100


@strawberry.federation.type(keys=["id"], description="An account of the toy platform.")
class ToyAccount(Account):
    toy_tier: str = strawberry.field(description="The toy platform's service tier.")

    @classmethod
    def from_model(cls, m: models.Account) -> Self:
        # The tier follows the group ("gold" or not), which survives caching and
        # idempotent replays; ``raw`` would not.
        return cls(**account_fields(m), toy_tier="gold" if m.group == "gold" else "standard")


@strawberry.type(description="Whether the toy connector is configured in this gateway.")
class ToyStatus:
    platform: str
    configured: bool
    version: str


@strawberry.type
class ToyQuery:
    @strawberry.field(description="The toy plugin's status.")
    def toy_status(self, info: Info[Any, Any]) -> ToyStatus:
        registry = context_of(info).services.registry
        configured = ToyConnector.platform in registry.platforms()
        return ToyStatus(platform="toy", configured=configured, version=ToyConnector.version)


@strawberry.input
class ToyPingInput:
    message: str


@strawberry.type
class ToyPingPayload:
    message: str
    viewer: str


@strawberry.type
class ToyMutation:
    @strawberry.mutation(description="Echo a message back (checks plugin mutations and auth).")
    def toy_ping(self, info: Info[Any, Any], input: ToyPingInput) -> ToyPingPayload:
        viewer = context_of(info).require_viewer()
        return ToyPingPayload(message=f"pong: {input.message}", viewer=viewer.subject)


@strawberry.type
class ToySubscription:
    @strawberry.subscription(description="Yield 0 .. count-1, one per event-loop turn.")
    async def toy_ticks(self, count: int) -> AsyncGenerator[int, None]:
        if not 0 <= count <= MAX_TICKS:
            raise InvalidInput(f"count must be between 0 and {MAX_TICKS}", field=["count"])
        for tick in range(count):
            yield tick
            await asyncio.sleep(0)
