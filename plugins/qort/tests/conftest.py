"""Fixtures of the QORT plugin's tests: a real sandbox, real clients, a real gateway.

Everything runs over real sockets: the QORT sandbox under uvicorn on a free port,
and for the GraphQL tests a gateway under uvicorn wired to the ``qort`` connector
exactly as a deployment would load it (``load_plugins`` with the plugin module).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import AsyncIterator, Callable
from typing import Any

import brokergraph_qort.plugin
import pytest
import pytest_asyncio
from brokergraph_qort.client import QortClient
from brokergraph_qort.sandbox import QortSandbox
from brokergraph_qort.settings import QortSettings

from gateway.auth import Role
from gateway.testing import TestGateway, open_test_gateway

#: The partner the end-to-end test onboards (the "client" token is this partner's).
NEW_PARTNER = "ONB-001"
BUSY_COOLDOWN_SECONDS = 0.5


# --------------------------------------------------------------------------- sandbox + client


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def module_sandbox() -> AsyncIterator[QortSandbox]:
    async with QortSandbox(report_delay_seconds=0.2) as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(module_sandbox: QortSandbox) -> QortSandbox:
    """The module's sandbox, re-seeded for each test (sessions ended, knobs cleared)."""
    module_sandbox.reset()
    return module_sandbox


def settings_for(sandbox: QortSandbox, **overrides: Any) -> QortSettings:
    return QortSettings.from_section("qort", {**sandbox.connector_settings(), **overrides})


@pytest.fixture
def make_settings(sandbox: QortSandbox) -> Callable[..., QortSettings]:
    """``make_settings(**overrides)``: the sandbox's connector settings as QortSettings."""
    return functools.partial(settings_for, sandbox)


@pytest_asyncio.fixture(loop_scope="session")
async def client(sandbox: QortSandbox) -> AsyncIterator[QortClient]:
    qort = QortClient(settings_for(sandbox, keepalive=False))
    try:
        yield qort
    finally:
        await qort.close()


# --------------------------------------------------------------------------- the gateway


@pytest.fixture
def busy_cooldown_seconds() -> float:
    """The gateway's cool-down after QORT answered BUSY (short, for the tests)."""
    return BUSY_COOLDOWN_SECONDS


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def qort_gateway(
    module_sandbox: QortSandbox,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[TestGateway]:
    """A running gateway with the QORT connector against ``module_sandbox``.

    Tokens: admin; manager (demo-broker); client (NEW_PARTNER, being onboarded);
    demo_client (DEMO-001); other_client (OTHER-001).
    """
    module_sandbox.reset()
    directory = tmp_path_factory.mktemp("qort-gateway")
    extra = {"qort": {"busy_cooldown_seconds": BUSY_COOLDOWN_SECONDS}}
    async with open_test_gateway(
        brokergraph_qort.plugin, [module_sandbox], directory, connector_settings=extra
    ) as running:
        tokens = {
            **running.tokens,
            # the client is the partner a test onboards; DEMO-001's client is demo_client
            "client": running.issue(Role.CLIENT, subject="qort-client", partner_code=NEW_PARTNER),
            "demo_client": running.tokens["client"],
        }
        yield dataclasses.replace(running, tokens=tokens)
