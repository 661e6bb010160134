"""Shared fixtures of the core test suite.

PostgreSQL and Redis tests use the real servers on 127.0.0.1.  They are never
skipped silently: an unreachable server fails the test, unless the developer
sets BROKERGRAPH_SKIP_SERVICES=1 on a machine without them (CI never does).
"""

from __future__ import annotations

pytest_plugins = ["tests.services", "tests.gateway_fixtures"]
