"""Fixtures of the QST plugin's tests (helpers: qst_testkit.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from brokergraph_qst.sandbox import QstSandbox

from gateway.testing import TestGateway
from plugins.qst.tests.qst_testkit import qst_gateway_on, started_sandbox


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def qst_sandbox() -> AsyncIterator[QstSandbox]:
    """The shared sandbox: prices move only by ``set_price`` (tick 0), responses jitter."""
    async with started_sandbox(tick_seconds=0) as sandbox:
        yield sandbox


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def qst_gateway(
    qst_sandbox: QstSandbox, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[TestGateway]:
    """A gateway on the shared sandbox (``qst_sandbox``)."""
    async with qst_gateway_on(qst_sandbox, tmp_path_factory.mktemp("qst-gateway")) as gateway:
        yield gateway
