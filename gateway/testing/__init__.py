"""The connector conformance kit: standard, capability-gated cases for any connector.

A connector author writes, in a test module::

    from gateway.testing import ConformanceSuite, Sample

    class TestAcmeConformance(ConformanceSuite):
        connector_class = AcmeConnector
        sandbox_class = AcmeSandbox
        sample = Sample(account_ids=["1001", "1002"], trader_ids=["T1"], ...)

and pytest runs every case against a real sandbox and a real connector.  The
``check_*`` functions assert the standard models' contract and are usable on their
own.  The pytest plugin (``gateway.testing.plugin``, registered as the ``pytest11``
entry point ``brokergraph_conformance``) skips undeclared capabilities at collection.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.testing._base import new_key
    from gateway.testing._checks import (
        check_account,
        check_account_event,
        check_analytics,
        check_balance_operation,
        check_business_partner,
        check_client_report,
        check_deal,
        check_execution,
        check_instrument,
        check_market_data_subscription,
        check_market_data_subscription_event,
        check_money,
        check_order,
        check_order_event,
        check_position,
        check_tax_calculation,
        check_trader,
    )
    from gateway.testing._gate import requires
    from gateway.testing._gateway import (
        DEMO_PARTNERS,
        TEST_JWT_SECRET,
        TestGateway,
        open_test_gateway,
    )
    from gateway.testing._harness import EventWatcher, assert_increasing, open_connector
    from gateway.testing._sample import Sample, need
    from gateway.testing._suite import ConformanceSuite

# Names are imported on first use: pytest imports this package (through the plugin
# entry point) in every run of an environment where brokergraph is installed, and
# the suite pulls in the store, the cache and pytest-asyncio (over a second).
__all__ = [
    "DEMO_PARTNERS",
    "TEST_JWT_SECRET",
    "ConformanceSuite",
    "EventWatcher",
    "Sample",
    "TestGateway",
    "assert_increasing",
    "check_account",
    "check_account_event",
    "check_analytics",
    "check_balance_operation",
    "check_business_partner",
    "check_client_report",
    "check_deal",
    "check_execution",
    "check_instrument",
    "check_market_data_subscription",
    "check_market_data_subscription_event",
    "check_money",
    "check_order",
    "check_order_event",
    "check_position",
    "check_tax_calculation",
    "check_trader",
    "need",
    "new_key",
    "open_connector",
    "open_test_gateway",
    "requires",
]
_MODULES = {
    "DEMO_PARTNERS": "_gateway",
    "TEST_JWT_SECRET": "_gateway",
    "TestGateway": "_gateway",
    "open_test_gateway": "_gateway",
    "ConformanceSuite": "_suite",
    "EventWatcher": "_harness",
    "Sample": "_sample",
    "assert_increasing": "_harness",
    "need": "_sample",
    "new_key": "_base",
    "open_connector": "_harness",
    "requires": "_gate",
}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_MODULES.get(name, '_checks')}")
    return getattr(module, name)
