"""The cTrader plugin: entry point ``ctrader`` in group ``brokergraph.plugins``.

Hooks only declare things (pluggy cannot await): the connector class, its sandbox
the ``CTraderAccount`` type that serves accounts of platform ``ctrader``, the typed
provisioning options (``ctrader: {…}`` of createTrader, openAccount, newAccount), and
``CTraderMutation`` (what only cTrader can do, through the core's write path).
Everything else reaches GraphQL through the core's unified schema.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from brokergraph_ctrader.connector import CTraderConnector
from brokergraph_ctrader.options_schema import CTraderAccountOptions, CTraderTraderOptions
from brokergraph_ctrader.schema import CTraderAccount, CTraderMutation
from gateway.contract import Connector, hookimpl
from gateway.contract.sandbox import Sandbox

#: The plugin contract version this plugin is built for (checked by the loader).
BROKERGRAPH_CONTRACT = 1


@hookimpl
def brokergraph_connectors() -> Sequence[type[Connector]]:
    return [CTraderConnector]


@hookimpl
def brokergraph_sandboxes() -> Sequence[type[Sandbox]]:
    from brokergraph_ctrader.sandbox import CTraderSandbox

    return [CTraderSandbox]


@hookimpl
def brokergraph_account_types() -> Mapping[str, type[Any]]:
    return {CTraderConnector.platform: CTraderAccount}


@hookimpl
def brokergraph_mutation_fields() -> Sequence[type[Any]]:
    return [CTraderMutation]


@hookimpl
def brokergraph_schema_types() -> Sequence[type[Any]]:
    """The typed options of createTrader (``ctrader: CTraderTraderOptions``) and of
    openAccount / newAccount (``ctrader: CTraderAccountOptions``)."""
    return [CTraderTraderOptions, CTraderAccountOptions]
