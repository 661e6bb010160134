"""The QST Binary Order Routing sandbox: a local WebSocket server speaking our .proto.

Modules, one job each: ``market`` (contracts and the seeded price path), ``book``
(users, accounts, orders, matching, net positions), ``session`` (what outlives a
connection), ``wire`` (book objects <-> protobuf), ``outbox`` (a connection's send queue,
jitter, slow-consumer drop), ``handler`` (a connection's login gating and requests) and
``server`` (:class:`QstSandbox`: the websockets server, knobs and event routing).
"""

from brokergraph_qst.sandbox.book import password_hash
from brokergraph_qst.sandbox.server import QstSandbox

__all__ = ["QstSandbox", "password_hash"]
