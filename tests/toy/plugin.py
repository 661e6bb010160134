"""The toy plugin: implements every hook of gateway/hookspecs.py, as a third party would.

Load it with ``load_plugins(entry_points=False, extra=[tests.toy.plugin], strict=True)``.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.cli_commands import CliCommand
from gateway.connectors import Connector
from gateway.hookspecs import hookimpl
from gateway.sandboxes import Sandbox
from gateway.services import GatewayServices
from tests.toy.connector import ToyConnector
from tests.toy.sandbox import ToySandbox
from tests.toy.schema import ToyAccount, ToyMutation, ToyQuery, ToyStatus, ToySubscription


@hookimpl
def brokergraph_connectors() -> Sequence[type[Connector]]:
    return [ToyConnector]


@hookimpl
def brokergraph_sandboxes() -> Sequence[type[Sandbox]]:
    return [ToySandbox]


@hookimpl
def brokergraph_account_types() -> Mapping[str, type[Any]]:
    return {ToyConnector.platform: ToyAccount}


@hookimpl
def brokergraph_schema_types() -> Sequence[type[Any]]:
    return [ToyStatus]


@hookimpl
def brokergraph_query_fields() -> Sequence[type[Any]]:
    return [ToyQuery]


@hookimpl
def brokergraph_mutation_fields() -> Sequence[type[Any]]:
    return [ToyMutation]


@hookimpl
def brokergraph_subscription_fields() -> Sequence[type[Any]]:
    return [ToySubscription]


@hookimpl
def brokergraph_routes(services: GatewayServices) -> Sequence[BaseRoute]:
    async def webhook(request: Request) -> Response:
        await request.body()  # read it, as a real webhook would before answering
        return JSONResponse({"received": True}, status_code=202)

    return [Route("/toy/webhook", webhook, methods=["POST"])]


def _hello(args: argparse.Namespace) -> int:
    print("hello from toy")
    return 0


@hookimpl
def brokergraph_cli_commands() -> Sequence[CliCommand]:
    return [CliCommand("toy-hello", "Print a greeting from the toy plugin.", _hello)]
