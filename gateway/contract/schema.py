"""The public face for schema contributors: what a plugin needs to add GraphQL types.

A platform's ``Account`` implementation subclasses :data:`AccountType` and fills
the interface's fields with :func:`account_fields`; its own fields reach the
request context with :func:`context_of` and build global ids with
:func:`encode_id`.  Money in a plugin's fields is :data:`MoneyType`, the schema's
one ``Money`` type.  Importing this module builds the core's GraphQL types, so it
loads Strawberry: connectors that add no schema import only ``gateway.contract``.

A field that reads its platform takes the one road every read takes —
``context_of(info).loaders.read(...)`` (:class:`Loaders`): batched per operation,
cached for the connector's declared TTL, dispatched through the breaker, rate
limit and retry policy of a method marked ``read``.

A plugin's own mutation takes the one write path every core mutation takes —
:func:`write` (authorise, e.g. ``STAFF`` → validate, e.g. ``decode_account`` and
``require_linked_account`` → dispatch, e.g. :func:`send` of an :class:`AccountWrite`
→ one audit row), its payload carrying ``errors: [UserError!]!``.

A platform's settings of a new trader or account are a Strawberry input subclassing
:class:`TraderOptions` (createTrader) or :class:`AccountOptions` (openAccount,
reactivateTrader's newAccount) with ``platform = "<platform>"``, contributed through
``brokergraph_schema_types``: the core input gets a typed field named after the
platform, whose value reaches the connector as its ``options``
(:mod:`gateway.graphql.platform_options`).
"""

from __future__ import annotations

from gateway.cache import cache_key
from gateway.contract._public import publish
from gateway.graphql.access import require_linked_account, require_partner, visible_partner
from gateway.graphql.context import RequestContext, context_of
from gateway.graphql.errors import UserError
from gateway.graphql.ids import decode_id, encode_id
from gateway.graphql.loaders import Loaders
from gateway.graphql.mutations._validate import decode_account
from gateway.graphql.mutations._write_path import STAFF, AccountWrite, send, write
from gateway.graphql.platform_options import AccountOptions, TraderOptions
from gateway.graphql.types import Account as AccountType
from gateway.graphql.types import Money as MoneyType
from gateway.graphql.types import account_fields

__all__ = [
    "STAFF",
    "AccountOptions",
    "AccountType",
    "AccountWrite",
    "Loaders",
    "MoneyType",
    "RequestContext",
    "TraderOptions",
    "UserError",
    "account_fields",
    "cache_key",
    "context_of",
    "decode_account",
    "decode_id",
    "encode_id",
    "require_linked_account",
    "require_partner",
    "send",
    "visible_partner",
    "write",
]

#: The one write path (authorise → validate → dispatch → audit) for a plugin's own
#: mutations: these keep their core home, where tracebacks and ``help()`` explain them.
_WRITE_PATH = {
    "STAFF",
    "AccountWrite",
    "UserError",
    "decode_account",
    "require_linked_account",
    "require_partner",
    "send",
    "visible_partner",
    "write",
}

publish(__name__, globals(), [name for name in __all__ if name not in _WRITE_PATH])
