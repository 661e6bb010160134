"""The cTrader WebServices sandbox (a local server speaking the documented API)."""

from brokergraph_ctrader.sandbox.server import CTraderSandbox

__all__ = ["CTraderSandbox"]
