"""brokergraph's QST plugin (entry point ``brokergraph.plugins: qst``): registers the
connector, its sandbox and the ``QstAccount`` type, through the public hooks only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from brokergraph_qst.connector import QstConnector
from brokergraph_qst.sandbox import QstSandbox
from brokergraph_qst.schema import QstAccount, QstAccountInformation, QstActivityItem
from gateway.contract import Connector, hookimpl
from gateway.contract.sandbox import Sandbox

__all__ = [
    "brokergraph_account_types",
    "brokergraph_connectors",
    "brokergraph_sandboxes",
    "brokergraph_schema_types",
]


#: The plugin contract version this plugin is built for (checked by the loader).
BROKERGRAPH_CONTRACT = 1


@hookimpl
def brokergraph_connectors() -> Sequence[type[Connector]]:
    return [QstConnector]


@hookimpl
def brokergraph_sandboxes() -> Sequence[type[Sandbox]]:
    return [QstSandbox]


@hookimpl
def brokergraph_account_types() -> Mapping[str, type[Any]]:
    return {QstConnector.platform: QstAccount}


@hookimpl
def brokergraph_schema_types() -> Sequence[type[Any]]:
    return [QstActivityItem, QstAccountInformation]
