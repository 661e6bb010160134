"""The DXtrade plugin's hooks (entry point ``brokergraph.plugins: dxtrade``).

Hooks only declare: the connector class, its sandbox, the ``DxTradeAccount`` type, the
typed provisioning options and the dxFeed callback route.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from starlette.routing import BaseRoute

from brokergraph_dxtrade.connector import DxTradeConnector
from brokergraph_dxtrade.options_schema import DxTradeAccountOptions, DxTradeTraderOptions
from brokergraph_dxtrade.sandbox import DxTradeSandbox
from brokergraph_dxtrade.schema import DxTradeAccount
from brokergraph_dxtrade.settings import DxTradeSettings
from brokergraph_dxtrade.webhook import dxfeed_route
from gateway.contract import Connector, PluginServices, hookimpl
from gateway.contract.sandbox import Sandbox

__all__ = [
    "brokergraph_account_types",
    "brokergraph_connectors",
    "brokergraph_routes",
    "brokergraph_sandboxes",
    "brokergraph_schema_types",
]

logger = logging.getLogger("brokergraph_dxtrade")


#: The plugin contract version this plugin is built for (checked by the loader).
BROKERGRAPH_CONTRACT = 1


@hookimpl
def brokergraph_connectors() -> Sequence[type[Connector]]:
    return [DxTradeConnector]


@hookimpl
def brokergraph_sandboxes() -> Sequence[type[Sandbox]]:
    return [DxTradeSandbox]


@hookimpl
def brokergraph_account_types() -> Mapping[str, type[Any]]:
    return {DxTradeConnector.platform: DxTradeAccount}


@hookimpl
def brokergraph_schema_types() -> Sequence[type[Any]]:
    """The typed options of createTrader (``dxtrade: DxTradeTraderOptions``) and of
    openAccount / newAccount (``dxtrade: DxTradeAccountOptions``)."""
    return [DxTradeTraderOptions, DxTradeAccountOptions]


@hookimpl
def brokergraph_routes(services: PluginServices) -> Sequence[BaseRoute]:
    """``POST /webhooks/dxtrade/dxfeed``, when the dxtrade connector is configured.

    The route verifies callbacks with the connector section's ``webhook_secret``
    (and ``webhook_previous_secret``); without a secret it refuses every callback
    (503) rather than accept unsigned ones.
    """
    section = services.settings.connectors.get(DxTradeConnector.name)
    if section is None:
        return []
    settings = DxTradeSettings.from_section(DxTradeConnector.name, section)
    if not settings.webhook_secrets:
        logger.warning(
            "[connectors.%s] has no webhook_secret: dxFeed callbacks will be refused",
            DxTradeConnector.name,
        )
    secrets = settings.webhook_secrets
    return [dxfeed_route(services, lambda: secrets)]
