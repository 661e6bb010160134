"""The QORT plugin's hooks (entry point ``brokergraph.plugins: qort``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from brokergraph_qort.connector import QortConnector
from brokergraph_qort.sandbox import QortSandbox
from brokergraph_qort.schema import QortMutation, QortQuery, QortSubaccount
from gateway.contract import Connector, hookimpl
from gateway.contract.sandbox import Sandbox

#: The plugin contract version this plugin is built for (checked by the loader).
BROKERGRAPH_CONTRACT = 1


@hookimpl
def brokergraph_connectors() -> Sequence[type[Connector]]:
    return [QortConnector]


@hookimpl
def brokergraph_sandboxes() -> Sequence[type[Sandbox]]:
    return [QortSandbox]


@hookimpl
def brokergraph_account_types() -> Mapping[str, type[Any]]:
    return {QortConnector.platform: QortSubaccount}


@hookimpl
def brokergraph_mutation_fields() -> Sequence[type[Any]]:
    return [QortMutation]


@hookimpl
def brokergraph_query_fields() -> Sequence[type[Any]]:
    return [QortQuery]
