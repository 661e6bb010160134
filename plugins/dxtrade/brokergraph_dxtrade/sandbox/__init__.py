"""The DXtrade sandbox: a local server speaking the DxRegister (``/dxweb/rest``) and
dxsca-web (``/dxsca-web``) REST APIs, with dxFeed subscriptions and signed callbacks."""

from brokergraph_dxtrade.sandbox.dxfeed import WEBHOOK_PATH, Delivery, sign
from brokergraph_dxtrade.sandbox.rules import (
    CASH_ID_REPEATS,
    EXPIRED_SESSION_STATUSES,
    LOGIN_ON_BEHALF,
    MISSING_ROUTE_STATUSES,
    CashIdRepeat,
    Rules,
)
from brokergraph_dxtrade.sandbox.server import DEFAULT_WEBHOOK_SECRET, DxTradeSandbox

__all__ = [
    "CASH_ID_REPEATS",
    "DEFAULT_WEBHOOK_SECRET",
    "EXPIRED_SESSION_STATUSES",
    "LOGIN_ON_BEHALF",
    "MISSING_ROUTE_STATUSES",
    "WEBHOOK_PATH",
    "CashIdRepeat",
    "Delivery",
    "DxTradeSandbox",
    "Rules",
    "sign",
]
