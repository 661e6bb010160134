"""The store's Alembic environment, shipped in the package (see ``gateway.store._migrate``)."""
