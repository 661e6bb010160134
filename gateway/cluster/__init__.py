"""One upstream session per credential, cluster-wide.

A connector that declares ``single_session`` (QST: one session per login; QORT: one
connected application) is started on one replica only — the holder of a lease on
its :meth:`~gateway.connectors.Connector.session_identity`.  The other replicas
never log in: the registry hands their resolvers a :class:`RoutedConnector`, which
sends each read or write to the holder's internal endpoint and returns its answer.

* :mod:`._leases` — the lease a replica holds, the manager's interface, and the
  single-process :class:`LocalLeases` (every lease held, nothing routed);
* :mod:`._postgres` — :class:`PostgresLeases`: session-level advisory locks on a
  dedicated connection, the lease record with the holder's address and a fencing
  token (the reasoning is in that module);
* :mod:`._routed`, :mod:`._router`, :mod:`._serve`, :mod:`._codec`,
  :mod:`._signing` — routing a call to the holder and serving it there;
* :mod:`._cluster` — :class:`Cluster`, what a replica holds, built from settings.
"""

from __future__ import annotations

from gateway.cluster._cluster import Cluster, lease_key, open_cluster
from gateway.cluster._leases import Holder, Lease, LeaseHooks, LeaseManager, LocalLeases
from gateway.cluster._postgres import PostgresLeases, lease_holders
from gateway.cluster._routed import RoutedConnector
from gateway.cluster._router import CALL_PATH
from gateway.cluster._serve import serve_call
from gateway.cluster._signing import SIGNATURE_HEADER

__all__ = [
    "CALL_PATH",
    "SIGNATURE_HEADER",
    "Cluster",
    "Holder",
    "Lease",
    "LeaseHooks",
    "LeaseManager",
    "LocalLeases",
    "PostgresLeases",
    "RoutedConnector",
    "lease_holders",
    "lease_key",
    "open_cluster",
    "serve_call",
]
