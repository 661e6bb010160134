"""The hooks a brokergraph plugin may implement, one line of docstring each.

pluggy cannot await, so hooks only *declare* things (classes, types, routes,
commands); the async work happens in connectors.  Hooks are called with keyword
arguments only, and grow only by optional arguments: an implementation may take
a subset of a hook's arguments, so adding one never breaks an older plugin.
Every hook here is documented in the README ("Plugin hooks") and exercised by
tests/test_plugin_contract.py; a test fails when either is missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from gateway.cli_commands import CliCommand
    from gateway.connectors import Connector
    from gateway.sandboxes import Sandbox
    from gateway.services import GatewayServices

PROJECT_NAME = "brokergraph"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def brokergraph_connectors() -> Sequence[type[Connector]]:
    """Return the connector classes this plugin provides."""
    raise NotImplementedError


@hookspec
def brokergraph_account_types() -> Mapping[str, type[Any]]:
    """Map a platform name to the Strawberry type implementing ``Account`` for it."""
    raise NotImplementedError


@hookspec
def brokergraph_schema_types() -> Sequence[type[Any]]:
    """Return extra Strawberry types to add to the schema (platform-specific types)."""
    raise NotImplementedError


@hookspec
def brokergraph_query_fields() -> Sequence[type[Any]]:
    """Return Strawberry types whose fields are merged into ``Query``."""
    raise NotImplementedError


@hookspec
def brokergraph_mutation_fields() -> Sequence[type[Any]]:
    """Return Strawberry types whose fields are merged into ``Mutation``."""
    raise NotImplementedError


@hookspec
def brokergraph_subscription_fields() -> Sequence[type[Any]]:
    """Return Strawberry types whose fields are merged into ``Subscription``."""
    raise NotImplementedError


@hookspec
def brokergraph_routes(services: GatewayServices) -> Sequence[BaseRoute]:
    """Return Starlette routes (webhooks, downloads) to mount beside ``/graphql``."""
    raise NotImplementedError


@hookspec
def brokergraph_cli_commands() -> Sequence[CliCommand]:
    """Return subcommands to add to the ``brokergraph`` command line."""
    raise NotImplementedError


@hookspec
def brokergraph_sandboxes() -> Sequence[type[Sandbox]]:
    """Return sandbox classes (local servers speaking a vendor's protocol) for demo and tests."""
    raise NotImplementedError
