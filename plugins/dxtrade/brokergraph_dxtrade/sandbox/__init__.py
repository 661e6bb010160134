"""The DXtrade sandbox: a local server speaking the DxRegister (``/dxweb/rest``) and
dxsca-web (``/dxsca-web``) REST APIs, with dxFeed subscriptions and signed callbacks."""

from brokergraph_dxtrade.sandbox.dxfeed import WEBHOOK_PATH, Delivery, sign
from brokergraph_dxtrade.sandbox.server import DEFAULT_WEBHOOK_SECRET, DxTradeSandbox

__all__ = ["DEFAULT_WEBHOOK_SECRET", "WEBHOOK_PATH", "Delivery", "DxTradeSandbox", "sign"]
