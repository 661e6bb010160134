"""The contract's version and the entry-point group plugins register under.

A plugin module states the version it was written for as ``BROKERGRAPH_CONTRACT``;
the loader refuses one written for another version with a message saying so.
"""

from __future__ import annotations

__all__ = ["CONTRACT_ATTRIBUTE", "CONTRACT_VERSION", "ENTRY_POINT_GROUP"]

#: Bumped only on a breaking change of the public faces, the hooks or the families.
CONTRACT_VERSION = 1
#: The module attribute where a plugin declares the contract version it was built for.
CONTRACT_ATTRIBUTE = "BROKERGRAPH_CONTRACT"
ENTRY_POINT_GROUP = "brokergraph.plugins"
