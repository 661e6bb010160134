"""``DxTradeConnector``: DXtrade's DxRegister (users, accounts, cash) and dxsca-web
(reads), with dxFeed market-data entitlements, behind the gateway's families.

Where each family goes (paths relative to ``/dxweb/rest`` or ``/dxsca-web``):

=====================  =================================================================
create_trader          POST /api/register/client (user + its first account, seed 004 §2.1)
open_account           POST /api/register/client/{domain}/{login}/account
update_account         PUT /api/register/account/{cc}/{ac} (status; leverage as metadata)
deactivate_trader      POST .../client/{domain}/{login}/disable-user-and-terminate-accounts
                       (seed 004 §2.3), or the two documented steps (B3) where it is missing
reactivate_trader      PUT .../client/{domain}/{login} {"status":"OFFLINE"}, then POST a new
                       account (seed 004 §2.4)
get_traders            GET /api/register/client/{domain}/{login} per trader (concurrent)
get_accounts           GET /api/register/account/{cc}/{ac} per account, then ONE
                       GET /dxsca-web/accounts/metrics?accounts=a,b,... for the live money
get_positions          ONE GET /dxsca-web/accounts/positions?accounts=a,b,...
get_balance_operations GET /dxsca-web/accounts/{account}/transfers?time-from=&time-to=
get_deals              GET /dxsca-web/accounts/{account}/orders/history (COMPLETED)
get_instruments        GET /dxsca-web/accounts/{account}/instruments/query?symbols=a,b
get_orders             ONE GET /dxsca-web/accounts/orders?accounts=a,b,... (working) and ONE
                       .../accounts/orders/history?completed-from= (the last 24 h), with fills
deposit / withdraw     PUT /api/register/account/{cc}/{ac}/deposit|withdrawal/{key}
change_credit          GET the account, PUT {"credit": old + change} (read-modify-write)
market-data            dxFeed account of the user (``dxFeedAccountId``), its subscriptions
                       from the dxFeed API stand-in; events from the webhook via the bus
=====================  =================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from brokergraph_dxtrade import __version__
from brokergraph_dxtrade.connector._funding import DxTradeFunding
from brokergraph_dxtrade.connector._instruments import DxTradeInstruments
from brokergraph_dxtrade.connector._market_data import DxTradeMarketData
from brokergraph_dxtrade.connector._options import MODES
from brokergraph_dxtrade.connector._orders import DxTradeOrders
from brokergraph_dxtrade.connector._provisioning import DxTradeProvisioning
from brokergraph_dxtrade.connector._reads import DxTradeReads
from brokergraph_dxtrade.mapping import PLATFORM
from gateway.contract import Capability

__all__ = ["MODES", "DxTradeConnector"]


class DxTradeConnector(
    DxTradeProvisioning,
    DxTradeReads,
    DxTradeFunding,
    DxTradeMarketData,
    DxTradeInstruments,
    DxTradeOrders,
):
    """DXtrade (DxRegister + dxsca-web) with dxFeed entitlements; see the module table.

    Each family lives in its own module; :class:`DxTradeBase` holds what they share.
    """

    name: ClassVar[str] = "dxtrade"
    platform: ClassVar[str] = PLATFORM
    version: ClassVar[str] = __version__
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.TRADER_PROVISIONING,
            Capability.ACCOUNT_READS,
            Capability.ACCOUNT_HISTORY,
            Capability.FUNDING,
            Capability.CREDIT,
            Capability.MARKET_DATA_ENTITLEMENTS,
            Capability.INSTRUMENTS,
            Capability.ORDER_READS,
        }
    )
    #: Account reads may be 5 s old (DXtrade allows ~10 reads/s per session); market-data
    #: entitlements change rarely and their callbacks are pushed to subscribers anyway;
    #: instrument specifications change more rarely still (a trading status with them).
    cache_ttl_seconds: ClassVar[Mapping[Capability, float]] = {
        Capability.ACCOUNT_READS: 5.0,
        Capability.MARKET_DATA_ENTITLEMENTS: 5.0,
        Capability.INSTRUMENTS: 60.0,
    }
    # A repeated key never applies a write twice, whatever DXtrade does with a repeated
    # cash id (its dedupe is only inferred, B3): cash operations settle an earlier
    # attempt by reading DXtrade's transfers and re-send only one proven absent
    # (``_funding``); credit changes compare against their recorded before/target.
    idempotent_writes: ClassVar[bool] = True
