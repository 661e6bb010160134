"""Root mutation fields of the core, one module per family.

Each family module (back office, provisioning, money, transfers, orders, admin) exposes a
Strawberry type whose fields :mod:`gateway.builtins` contributes to ``Mutation``
through ``brokergraph_mutation_fields``, the hook a plugin uses.  Every mutation
takes one ``input``, returns a payload with typed errors and writes through the
one path of :mod:`._write_path`.
"""

from __future__ import annotations

from typing import Final

from gateway.graphql.mutations._validate import decode_account, decode_trader
from gateway.graphql.mutations.admin import AdminMutation
from gateway.graphql.mutations.backoffice import BackOfficeMutation
from gateway.graphql.mutations.money import MoneyMutation
from gateway.graphql.mutations.orders import OrdersMutation
from gateway.graphql.mutations.provisioning import ProvisioningMutation
from gateway.graphql.mutations.transfers import TransfersMutation

__all__ = ["MUTATION_TYPES", "decode_account", "decode_trader"]

#: In the schema's field order.
MUTATION_TYPES: Final[tuple[type, ...]] = (
    BackOfficeMutation,
    ProvisioningMutation,
    MoneyMutation,
    TransfersMutation,
    OrdersMutation,
    AdminMutation,
)
