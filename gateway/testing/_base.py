"""The suite's plumbing: what a subclass sets, its fixtures, its gate and helpers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import ClassVar

import pytest
import pytest_asyncio

from gateway.connectors import Capability, Connector
from gateway.sandboxes import Sandbox
from gateway.testing._gate import skip_reason
from gateway.testing._harness import open_connector
from gateway.testing._sample import Sample

__all__ = ["SuiteBase", "new_key"]


def new_key() -> str:
    """A fresh idempotency key: cases never reuse one by accident across runs."""
    return f"conformance-{uuid.uuid4().hex}"


class SuiteBase:
    """Set ``connector_class`` and ``sandbox_class`` (and ``sample``) in a subclass."""

    #: The plugin recognises suites by this flag, without importing this module.
    __conformance_suite__: ClassVar[bool] = True
    connector_class: ClassVar[type[Connector]]
    sandbox_class: ClassVar[type[Sandbox]]
    sample: ClassVar[Sample] = Sample()
    #: The bound on every wait for a stream event; generous, never a timing assertion.
    wait_seconds: ClassVar[float] = 20.0

    # One event loop for the suite's fixtures and cases, whatever the project's
    # pytest-asyncio mode: the connector's connections live on the loop they opened on.
    pytestmark = [pytest.mark.asyncio(loop_scope="session")]

    @pytest_asyncio.fixture(scope="class", loop_scope="session")
    @classmethod
    async def sandbox(cls) -> AsyncIterator[Sandbox]:
        """One started sandbox per suite class (cases leave it in a usable state)."""
        async with cls.sandbox_class() as sandbox:
            yield sandbox

    @pytest_asyncio.fixture(scope="class", loop_scope="session")
    @classmethod
    async def connector(
        cls, sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory
    ) -> AsyncIterator[Connector]:
        """A started ``connector_class`` pointed at the sandbox by its ``connector_settings()``."""
        directory = tmp_path_factory.mktemp(f"conformance-{cls.connector_class.name}")
        settings = sandbox.connector_settings()
        async with open_connector(cls.connector_class, settings, directory) as connector:
            yield connector

    @pytest.fixture(autouse=True)
    def _capability_gate(self, request: pytest.FixtureRequest) -> None:
        # The plugin skips at collection; this repeats the check for runs without it
        # (PYTEST_DISABLE_PLUGIN_AUTOLOAD), so an undeclared case never runs.
        reason = skip_reason(type(self).connector_class, request.function)
        if reason is not None:
            pytest.skip(reason)

    def declares(self, capability: Capability) -> bool:
        return capability in type(self).connector_class.capabilities
