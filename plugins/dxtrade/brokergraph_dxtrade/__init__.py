"""brokergraph connector for DXtrade (CRM/registration API) and dxFeed entitlement callbacks."""

__version__ = "0.1.0"
