"""The cTrader connector: WebServices behind the gateway's standard families.

Capabilities: TRADER_PROVISIONING, ACCOUNT_READS, ACCOUNT_HISTORY,
ACCOUNT_ANALYTICS, FUNDING, CREDIT, BONUS, INSTRUMENTS, one mixin per family
(``_reads``, ``_history``, ``_money``, ``_provisioning``, ``_instruments`` over
``_base``).  Everything goes
through :class:`~brokergraph_ctrader.client.WebServicesClient`; errors come from
its table.  The connector keeps no cache of its own: the gateway caches its reads
for the TTLs declared below.  Upstream-call bounds (stated in the README and tested):

* ``get_accounts(n ids)``: ``n`` trader reads (4.2) when ``n <= single_read_limit``
  (3), otherwise **one** list call (4.3) over the whole registration window (plus one
  per further 100 000-trader page);
* ``get_positions(n ids)``: **one** openPositions call (4.12) whatever ``n``;
* so a query for 50 accounts with their positions makes **2** upstream calls with a
  cold cache and **0** within the 60 s TTL.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from brokergraph_ctrader import __version__
from brokergraph_ctrader.connector._history import HistoryMixin
from brokergraph_ctrader.connector._instruments import InstrumentsMixin
from brokergraph_ctrader.connector._money import MoneyMixin
from brokergraph_ctrader.connector._provisioning import ProvisioningMixin
from brokergraph_ctrader.connector._white_label import WhiteLabelMixin
from gateway.contract import Capability

__all__ = ["CTraderConnector"]


class CTraderConnector(
    # InstrumentsMixin before HistoryMixin: its upstream_costs adds to History's.
    ProvisioningMixin,
    MoneyMixin,
    WhiteLabelMixin,
    InstrumentsMixin,
    HistoryMixin,
):
    name: ClassVar[str] = "ctrader"
    platform: ClassVar[str] = "ctrader"
    version: ClassVar[str] = __version__
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.TRADER_PROVISIONING,
            Capability.ACCOUNT_READS,
            Capability.ACCOUNT_HISTORY,
            Capability.ACCOUNT_ANALYTICS,
            Capability.FUNDING,
            Capability.CREDIT,
            Capability.BONUS,
            Capability.INSTRUMENTS,
        }
    )
    #: cTrader asks CRMs to refresh about once a minute, never every second: the
    #: gateway caches accounts and positions, deals, balance operations and analytics
    #: (by account and period) for 60 s.
    cache_ttl_seconds: ClassVar[Mapping[Capability, float]] = {
        Capability.ACCOUNT_READS: 60.0,
        Capability.ACCOUNT_HISTORY: 60.0,
        Capability.ACCOUNT_ANALYTICS: 60.0,
    }
    # changebalance/changebonus carry the idempotency key as externalId, but that
    # cTrader answers a repeated externalId with the first operation is only inferred
    # (../shared/vendors/, [I]): the gateway must not re-drive a write whose outcome
    # is unknown on the strength of it.
    idempotent_writes: ClassVar[bool] = False
