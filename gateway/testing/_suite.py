"""ConformanceSuite: every standard case, gated by capability, in one class to subclass."""

from __future__ import annotations

from gateway.testing._cases_backoffice import BackOfficeCases
from gateway.testing._cases_faults import FaultCases
from gateway.testing._cases_money import MoneyCases
from gateway.testing._cases_orders import OrderCases
from gateway.testing._cases_reads import ReadCases

__all__ = ["ConformanceSuite"]


# Bases in reverse: pytest collects base-class methods first, so reads (validation,
# health) come first, then provisioning, and the fault cases (which re-seed) last.
class ConformanceSuite(FaultCases, BackOfficeCases, OrderCases, MoneyCases, ReadCases):
    """The standard cases any connector and its sandbox must pass.

    Subclass it in a test module (the class name must start with ``Test``)::

        class TestAcmeConformance(ConformanceSuite):
            connector_class = AcmeConnector
            sandbox_class = AcmeSandbox
            sample = Sample(account_ids=["1001"], funded_account_id="1001", ...)

    Each case runs against one started sandbox per class and a real connector
    instance built from ``sandbox.connector_settings()``.  A case is skipped only
    when the connector does not declare its capability, or when ``sample`` lacks
    a value it needs (the reason names the field).  Add platform-specific cases
    as ordinary async methods of the subclass; they get the same ``sandbox`` and
    ``connector`` fixtures and may use ``@requires(Capability.X)``.
    """
