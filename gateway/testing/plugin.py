"""The conformance kit's pytest plugin (entry point ``pytest11: brokergraph_conformance``).

It skips a suite's cases whose capabilities the connector does not declare at
collection time, so no sandbox starts for them and the report says why.  It
imports nothing heavy: it is loaded in every pytest run where brokergraph is
installed.
"""

from __future__ import annotations

import pytest

from gateway.testing._gate import skip_reason


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        cls = getattr(item, "cls", None)
        connector_class = getattr(cls, "connector_class", None)
        if not getattr(cls, "__conformance_suite__", False) or connector_class is None:
            continue
        reason = skip_reason(connector_class, getattr(item, "function", None))
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=reason))
