"""brokergraph: one GraphQL API over a broker's trading and back-office platforms."""

__version__ = "0.1.0"
