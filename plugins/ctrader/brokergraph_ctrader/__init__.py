"""brokergraph connector for the Spotware cTrader WebServices API (CRM manager API).

The plugin module is :mod:`brokergraph_ctrader.plugin` (entry point ``ctrader`` in
group ``brokergraph.plugins``); the sandbox is :mod:`brokergraph_ctrader.sandbox`.
Nothing heavy is imported here.
"""

__version__ = "0.1.0"
